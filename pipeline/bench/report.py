"""The benchmark's figures for people: rich tables for the terminal, ``BENCHMARKS.md``, a PNG
chart, the targets with met / not met, and a one-line description of the machine.

Every figure is the median over the runs at a size (``SizeResult.median``), except the
resume's earlier-stage queries, which is the largest over the runs (the goal is zero in every
run). The rich tables and the Markdown tables come from the same column definitions
(``SECTIONS``), so they always show the same figures.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from rich.table import Table
from rich.text import Text

from pipeline.bench.model import STAGES, Comparison, RunFigures, SizeResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

NONE = "—"  # a figure that was not measured
TARGET_CIDS = 114_000
#: The "114K" target reads the size closest to TARGET_CIDS, if it is within this fraction.
TARGET_TOLERANCE = 0.2
WORKER_PEAK_GOAL_MB = 256.0
WORKER_FLAT_BAND = 0.2
API_PEAK_GOAL_MB = 128.0
PIPELINE_OF_SCAN_GOAL = 0.5
STREAM_OF_READ_GOAL = 0.6
TTFB_GOAL_MS = 100.0
PAGE_LAST_GOAL_MS = 50.0
DEFAULT_CHART = "benchmarks.png"


# ---- figures per size -----------------------------------------------------------------------


def _median(size: SizeResult, figure: Callable[[RunFigures], float | None]) -> float | None:
    """The median of ``figure`` over the runs that have it; ``None`` when none has."""
    values = [v for v in (figure(run) for run in size.runs) if v is not None]
    return float(statistics.median(values)) if values else None


def _stage_seconds(stage: str) -> Callable[[RunFigures], float | None]:
    def figure(run: RunFigures) -> float | None:
        return run.stages[stage].seconds if stage in run.stages else None

    return figure


def _stage_rows_per_s(stage: str) -> Callable[[RunFigures], float | None]:
    def figure(run: RunFigures) -> float | None:
        part = run.stages.get(stage)
        return part.rows / part.seconds if part is not None and part.seconds > 0 else None

    return figure


def _events_rows_per_s(run: RunFigures) -> float | None:
    return run.events_rows_per_s if "events" in run.stages else None


def _worker_peak(run: RunFigures) -> float | None:
    return run.worker_peak if run.worker_peak_mb else None


def _resume_seconds(run: RunFigures) -> float | None:
    return run.resume.seconds if run.resume is not None else None


def _pipeline_of_scan(size: SizeResult) -> float | None:
    """Median events rows/s over the bare scan's rows/s."""
    rate = _median(size, _events_rows_per_s)
    if rate is None or size.limits is None or size.limits.scan_rows_per_s <= 0:
        return None
    return rate / size.limits.scan_rows_per_s


def _stream_of_read(size: SizeResult) -> float | None:
    """Median stream rows/s over the bare Redis read + decode + encode rows/s."""
    rate = _median(size, lambda run: run.stream_rows_per_s)
    if rate is None or size.limits is None or size.limits.read_encode_rows_per_s <= 0:
        return None
    return rate / size.limits.read_encode_rows_per_s


def _baseline_time_ratio(size: SizeResult) -> float | None:
    """The old approach's seconds over the pipeline's median end-to-end seconds."""
    base = size.baseline
    pipeline = _median(size, lambda run: run.end_to_end_seconds)
    if base is None or not base.finished or base.seconds is None or not pipeline:
        return None
    return base.seconds / pipeline


def _baseline_peak_ratio(size: SizeResult) -> float | None:
    """The old approach's peak memory over the pipeline's median worker peak."""
    base = size.baseline
    worker = _median(size, _worker_peak)
    if base is None or not base.finished or base.peak_mb is None or not worker:
        return None
    return base.peak_mb / worker


# ---- formatting -------------------------------------------------------------------------------


def _fmt(value: float | None, fmt: Callable[[float], str]) -> str:
    return NONE if value is None or math.isnan(value) else fmt(value)


def _seconds(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def _mb(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def _ms(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def _rate(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:,.0f}")


def _count(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:,.0f}")


def _pct(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.0%}")


def _times(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}×")


def _compact(value: float) -> str:
    """12,345,678 -> 12.3M; for the chart's bar labels."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


# ---- the columns, shared by the rich tables and the Markdown ------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[SizeResult], str]
    numeric: bool = True


@dataclass(frozen=True)
class Section:
    """One table: a title, the columns and a short note on what they mean."""

    title: str
    columns: tuple[Column, ...]
    note: str = ""


def _max_earlier_queries(size: SizeResult) -> str:
    counts = [run.resume.earlier_stage_queries for run in size.runs if run.resume is not None]
    return _count(max(counts)) if counts else NONE


def _baseline_seconds(size: SizeResult) -> str:
    base = size.baseline
    if base is None:
        return NONE
    if not base.finished:
        return f"did not finish: {base.reason or 'no reason given'}"
    return _seconds(base.seconds)


def _baseline_peak(size: SizeResult) -> str:
    base = size.baseline
    if base is None or base.peak_mb is None:
        return NONE
    # A run that was stopped would have needed at least what it had when it stopped.
    return _mb(base.peak_mb) if base.finished else f"≥ {_mb(base.peak_mb)}"


def _size_column() -> Column:
    return Column("CIDs", lambda size: f"{size.cids:,}")


def _stage_column(stage: str) -> Column:
    return Column(f"{stage} s", lambda size: _seconds(_median(size, _stage_seconds(stage))))


SECTIONS: tuple[Section, ...] = (
    Section(
        "Stages (median over the runs)",
        (
            _size_column(),
            Column("warehouse lots", lambda size: f"{size.lots:,}"),
            Column("runs", lambda size: str(len(size.runs))),
            *(_stage_column(stage) for stage in STAGES),
            Column("end to end s", lambda s: _seconds(_median(s, lambda r: r.end_to_end_seconds))),
            Column("events rows/s", lambda size: _rate(_median(size, _events_rows_per_s))),
            Column("CPU steal", lambda size: _pct(_median(size, lambda run: run.cpu_steal))),
        ),
        "CIDs: lots after lineage (the trace's size). Stage columns: wall seconds from the "
        "stage's start to its end. CPU steal: the share of the CPU the virtual machine's host "
        "took while the job ran (timings under steal are slower than the machine can be).",
    ),
    Section(
        "Memory and serving (median over the runs)",
        (
            _size_column(),
            Column("worker peak MB", lambda size: _mb(_median(size, _worker_peak))),
            Column("API peak MB", lambda size: _mb(_median(size, lambda run: run.api_peak_mb))),
            Column(
                "Redis MB per M rows",
                lambda size: _mb(_median(size, lambda run: run.redis_mb_per_million_rows)),
            ),
            Column(
                "stream rows/s", lambda size: _rate(_median(size, lambda r: r.stream_rows_per_s))
            ),
            Column("stream MB/s", lambda size: _mb(_median(size, lambda run: run.stream_mb_per_s))),
            Column("TTFB ms", lambda size: _ms(_median(size, lambda run: run.ttfb_ms))),
            Column("page first ms", lambda size: _ms(_median(size, lambda run: run.page_first_ms))),
            Column("page last ms", lambda size: _ms(_median(size, lambda run: run.page_last_ms))),
        ),
        "Worker peak: the largest worker process. API peak: the largest API process while the "
        "whole result streams. Pages: offset 0 and near the end of the largest domain.",
    ),
    Section(
        "Resume, and throughput against the parts alone (median over the runs)",
        (
            _size_column(),
            Column("resume s", lambda size: _seconds(_median(size, _resume_seconds))),
            Column("resume: queries by earlier stages", _max_earlier_queries),
            Column(
                "scan rows/s",
                lambda size: _rate(size.limits.scan_rows_per_s if size.limits else None),
            ),
            Column("pipeline / scan", lambda size: _pct(_pipeline_of_scan(size))),
            Column(
                "read+encode rows/s",
                lambda size: _rate(size.limits.read_encode_rows_per_s if size.limits else None),
            ),
            Column("stream / read+encode", lambda size: _pct(_stream_of_read(size))),
        ),
        "Resume: a job failed in aggregation, then was retried; queries by earlier stages is the "
        "most any run's retry issued (the goal is 0). "
        "Scan: a bare fetchmany of each domain's query over the run's lots; pipeline / scan "
        "compares the events stage's rows/s with it. Read+encode: a bare Redis GET + msgpack "
        "unpack + JSON encode of the stored chunks; stream / read+encode compares the API's "
        "stream with it.",
    ),
    Section(
        "Against the old approach",
        (
            _size_column(),
            Column("baseline s", _baseline_seconds),
            Column("baseline peak MB", _baseline_peak),
            Column("baseline s / end to end s", lambda size: _times(_baseline_time_ratio(size))),
            Column("baseline peak / worker peak", lambda size: _times(_baseline_peak_ratio(size))),
        ),
        "Baseline: the old approach (every row in a list of dicts, one JSON document) in a "
        "subprocess under a memory cap. Ratios: the baseline's seconds over the pipeline's end "
        "to end, its peak over the worker's peak; ≥ marks the peak when it was stopped.",
    ),
)


#: The per-domain table: one row per size and domain.
DOMAIN_HEADERS = (
    "CIDs",
    "domain",
    "rows",
    "pipeline rows/s per process",
    "bare scan rows/s per process",
    "pipeline / scan",
)
DOMAIN_NOTE = (
    "Per process: rows over the seconds spent on them, added up over the worker processes (each "
    "events batch records its fetch + store time) or over the scan's tasks; so the two compare "
    "one process's work whatever the parallelism. For jobs the scan counts the jobs table's "
    "rows, the pipeline the job-per-lot rows it derives."
)


def _domain_rate(domain: str) -> Callable[[RunFigures], float | None]:
    def figure(run: RunFigures) -> float | None:
        seconds = run.domain_seconds.get(domain)
        return run.domain_rows.get(domain, 0) / seconds if seconds else None

    return figure


def _domain_count(domain: str) -> Callable[[RunFigures], float | None]:
    return lambda run: run.domain_rows.get(domain)


def domain_rows(results: Sequence[SizeResult]) -> list[list[str]]:
    """The per-domain table's cells (``DOMAIN_HEADERS``), sizes in order."""
    table = []
    for size in _sorted(results):
        limits = size.limits
        for domain in list(size.runs[0].domain_rows) if size.runs else []:
            pipeline_rate = _median(size, _domain_rate(domain))
            spent = limits.scan_task_seconds.get(domain) if limits else None
            scan = limits.scan_rows[domain] / spent if limits and spent else None
            ratio = pipeline_rate / scan if pipeline_rate is not None and scan else None
            table.append(
                [
                    f"{size.cids:,}",
                    domain,
                    _count(_median(size, _domain_count(domain))),
                    _rate(pipeline_rate),
                    _rate(scan),
                    _pct(ratio),
                ]
            )
    return table


def domain_table(results: Sequence[SizeResult]) -> Table:
    table = Table(title="Per domain (median over the runs)", caption=DOMAIN_NOTE)
    for header in DOMAIN_HEADERS:
        table.add_column(header, justify="left" if header == "domain" else "right")
    for row in domain_rows(results):
        table.add_row(*(Text(cell) for cell in row))
    return table


def _sorted(results: Sequence[SizeResult]) -> list[SizeResult]:
    return sorted(results, key=lambda size: size.cids)


def summary_tables(results: Sequence[SizeResult]) -> list[Table]:
    """The figures as rich tables, one row per size, split to fit a 120-column terminal."""
    tables = []
    for section in SECTIONS:
        table = Table(title=section.title, caption=section.note, caption_justify="left")
        for column in section.columns:
            table.add_column(
                column.header,
                justify="right" if column.numeric else "left",
                # Fold rather than "…" when the terminal is too narrow: no figure is cut.
                overflow="fold",
            )
        for size in _sorted(results):
            # Text, not markup: a baseline's reason may hold brackets.
            table.add_row(*(Text(column.cell(size)) for column in section.columns))
        tables.append(table)
    tables.append(domain_table(results))
    return tables


# ---- targets ----------------------------------------------------------------------------------


class TargetResult(NamedTuple):
    label: str
    measured: str
    goal: str
    met: bool | None  # None: could not be measured (a size or a figure is missing)


Measure = Callable[[Sequence[SizeResult]], tuple[str, bool | None]]


@dataclass(frozen=True)
class Target:
    """One of the benchmark's goals; calling it on the results evaluates it."""

    label: str
    goal: str
    measure: Measure

    def __call__(self, results: Sequence[SizeResult]) -> TargetResult:
        measured, met = self.measure(results)
        return TargetResult(self.label, measured, self.goal, met)


def _closest_size(results: Sequence[SizeResult], cids: int) -> SizeResult | None:
    """The size whose trace is closest to ``cids`` lots, if within TARGET_TOLERANCE of it."""
    sized = [size for size in results if size.runs]
    if not sized:
        return None
    closest = min(sized, key=lambda size: abs(size.cids - cids))
    return closest if abs(closest.cids - cids) <= TARGET_TOLERANCE * cids else None


def _per_size(
    results: Sequence[SizeResult], figure: Callable[[SizeResult], float | None]
) -> list[tuple[SizeResult, float]]:
    return [(size, v) for size in _sorted(results) if (v := figure(size)) is not None]


def _worker_peak_at_target(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    size = _closest_size(results, TARGET_CIDS)
    if size is None:
        return f"no size within ±{TARGET_TOLERANCE:.0%} of {TARGET_CIDS:,} CIDs", None
    peak = _median(size, _worker_peak)
    if peak is None:
        return f"not measured at {size.cids:,} CIDs", None
    return f"{_mb(peak)} MB at {size.cids:,} CIDs", peak <= WORKER_PEAK_GOAL_MB


def _worker_peak_flat(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    peaks = _per_size(results, lambda size: _median(size, _worker_peak))
    if len(peaks) < 2:
        return "needs two sizes or more", None
    mean = statistics.fmean(peak for _, peak in peaks)
    if mean <= 0:
        return "no worker memory measured", None
    deviations = [(size, peak / mean - 1) for size, peak in peaks]
    worst_size, worst = max(deviations, key=lambda item: abs(item[1]))
    low, high = min(peak for _, peak in peaks), max(peak for _, peak in peaks)
    measured = (
        f"{_mb(low)}–{_mb(high)} MB over {len(peaks)} sizes, mean {_mb(mean)}; "
        f"furthest {worst:+.0%} at {worst_size.cids:,} CIDs"
    )
    return measured, all(abs(d) <= WORKER_FLAT_BAND for _, d in deviations)


def _worst(
    results: Sequence[SizeResult],
    figure: Callable[[SizeResult], float | None],
    *,
    largest_is_worst: bool,
    fmt: Callable[[float | None], str],
    unit: str,
    goal_met: Callable[[float], bool],
) -> tuple[str, bool | None]:
    values = _per_size(results, figure)
    if not values:
        return "not measured", None
    pick = max if largest_is_worst else min
    size, value = pick(values, key=lambda item: item[1])
    measured = f"{fmt(value)}{unit} at {size.cids:,} CIDs"
    if len(values) > 1:
        measured = f"worst {measured}"
    if len(values) < len(results):
        measured += f" ({len(values)} of {len(results)} sizes measured)"
    return measured, goal_met(value)


def _resume_clean(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    resumes = [run.resume for size in results for run in size.runs if run.resume is not None]
    if not resumes:
        return "no resume measured", None
    dirty = [resume for resume in resumes if resume.earlier_stage_queries]
    if not dirty:
        return f"0 in {_plural(len(resumes), 'retry', 'retries')}", True
    by_stage: dict[str, int] = {}
    for resume in dirty:
        for stage, n in resume.queries_by_stage.items():
            if stage != "aggregation" and n:
                by_stage[stage] = by_stage.get(stage, 0) + n
    stages = ", ".join(f"{stage} {n:,}" for stage, n in by_stage.items())
    total = sum(by_stage.values())
    retries = _plural(len(resumes), "retry", "retries")
    return f"{total:,} in {len(dirty)} of {retries} ({stages})", False


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


TARGETS: tuple[Target, ...] = (
    Target(
        f"Worker peak RSS at {TARGET_CIDS // 1000}K CIDs (median over runs)",
        f"≤ {WORKER_PEAK_GOAL_MB:.0f} MB",
        _worker_peak_at_target,
    ),
    Target(
        f"Worker peak RSS flat across sizes: every size's median within "
        f"±{WORKER_FLAT_BAND:.0%} of the mean of the medians, i.e. |median / mean − 1|",
        f"≤ {WORKER_FLAT_BAND:.0%}",
        _worker_peak_flat,
    ),
    Target(
        "API RSS while streaming (median over runs, worst size)",
        f"≤ {API_PEAK_GOAL_MB:.0f} MB",
        lambda results: _worst(
            results,
            lambda size: _median(size, lambda run: run.api_peak_mb),
            largest_is_worst=True,
            fmt=_mb,
            unit=" MB",
            goal_met=lambda v: v <= API_PEAK_GOAL_MB,
        ),
    ),
    Target(
        "Pipeline rows/s (events stage) / bare scan rows/s (medians, worst size)",
        f"≥ {PIPELINE_OF_SCAN_GOAL:.0%}",
        lambda results: _worst(
            results,
            _pipeline_of_scan,
            largest_is_worst=False,
            fmt=_pct,
            unit="",
            goal_met=lambda v: v >= PIPELINE_OF_SCAN_GOAL,
        ),
    ),
    Target(
        "Stream rows/s / bare read+encode rows/s (medians, worst size)",
        f"≥ {STREAM_OF_READ_GOAL:.0%}",
        lambda results: _worst(
            results,
            _stream_of_read,
            largest_is_worst=False,
            fmt=_pct,
            unit="",
            goal_met=lambda v: v >= STREAM_OF_READ_GOAL,
        ),
    ),
    Target(
        "Time to first byte of the stream (median over runs, worst size)",
        f"≤ {TTFB_GOAL_MS:.0f} ms",
        lambda results: _worst(
            results,
            lambda size: _median(size, lambda run: run.ttfb_ms),
            largest_is_worst=True,
            fmt=_ms,
            unit=" ms",
            goal_met=lambda v: v <= TTFB_GOAL_MS,
        ),
    ),
    Target(
        "A result page near the end of the largest domain (median over runs, worst size)",
        f"≤ {PAGE_LAST_GOAL_MS:.0f} ms",
        lambda results: _worst(
            results,
            lambda size: _median(size, lambda run: run.page_last_ms),
            largest_is_worst=True,
            fmt=_ms,
            unit=" ms",
            goal_met=lambda v: v <= PAGE_LAST_GOAL_MS,
        ),
    ),
    Target(
        "Resume after a failure in aggregation: source queries by earlier stages (every run)",
        "0",
        _resume_clean,
    ),
)


def evaluate_targets(results: Sequence[SizeResult]) -> list[TargetResult]:
    return [target(results) for target in TARGETS]


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else "met" if met else "NOT MET"


def targets_table(results: Sequence[SizeResult]) -> Table:
    """The targets as a rich table: goal, measured, met / NOT MET / n/a."""
    table = Table(title="Targets")
    table.add_column("target", ratio=3)
    table.add_column("goal", no_wrap=True)
    table.add_column("measured", ratio=2)
    table.add_column("result", no_wrap=True)
    styles = {True: "green", False: "bold red", None: "dim"}
    for result in evaluate_targets(results):
        table.add_row(
            Text(result.label),
            Text(result.goal),
            Text(result.measured),
            Text(_verdict(result.met), style=styles[result.met]),
        )
    return table


# ---- before and after ---------------------------------------------------------------------------

#: The figures ``--before`` compares: header, per-run figure, format.
COMPARED: tuple[
    tuple[str, Callable[[RunFigures], float | None], Callable[[float | None], str]], ...
] = (
    ("worker peak MB", _worker_peak, _mb),
    ("end to end s", lambda run: run.end_to_end_seconds, _seconds),
    *((f"{stage} s", _stage_seconds(stage), _seconds) for stage in STAGES),
    ("events rows/s", _events_rows_per_s, _rate),
)


def comparison_rows(before: Comparison, results: Sequence[SizeResult]) -> list[list[str]]:
    """Per size: its CIDs, then ``before → now`` for each of ``COMPARED`` (the earlier size
    closest in CIDs, within TARGET_TOLERANCE; ``—`` where there is none)."""
    rows = []
    for size in _sorted(results):
        old = _closest_size(before.results, size.cids)
        cells = [f"{size.cids:,}"]
        for _header, figure, fmt in COMPARED:
            was = _median(old, figure) if old is not None else None
            cells.append(f"{fmt(was)} → {fmt(_median(size, figure))}")
        rows.append(cells)
    return rows


def comparison_table(before: Comparison, results: Sequence[SizeResult]) -> Table:
    """``comparison_rows`` as a rich table."""
    table = Table(title=f"Before ({before.label}, {before.commit}) → now")
    for header in ("CIDs", *(header for header, _, _ in COMPARED)):
        table.add_column(header, justify="right", overflow="fold")
    for row in comparison_rows(before, results):
        table.add_row(*(Text(cell) for cell in row))
    return table


# ---- BENCHMARKS.md ------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]
) -> str:
    lines = [
        "| " + " | ".join(_md_cell(h) for h in headers) + " |",
        "|" + "|".join("---:" if right else ":---" for right in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(
    results: Sequence[SizeResult],
    *,
    machine: str,
    command: str,
    notes: str = "",
    chart: str | Path | None = DEFAULT_CHART,
    generated: dt.datetime | None = None,
    before: Comparison | None = None,
) -> str:
    """The text of ``BENCHMARKS.md`` (see ``write_markdown``)."""
    when = (generated or dt.datetime.now()).astimezone()
    sizes = _sorted(results)
    out = [
        "# Benchmarks",
        "",
        f"- **Date:** {when:%Y-%m-%d %H:%M %Z}",
        f"- **Machine:** {machine}",
        "- **To reproduce:**",
        "",
        "```sh",
        command,
        "```",
        "",
        "## Figures",
        "",
        "One row per size: the lots after lineage (CIDs) of the trace; the first table also "
        "gives the warehouse's lots. Figures are medians over the runs at that size; the *runs* "
        "column says how many.",
    ]
    for section in SECTIONS:
        out += [
            "",
            f"### {section.title}",
            "",
            _md_table(
                [column.header for column in section.columns],
                [[column.cell(size) for column in section.columns] for size in sizes],
                [column.numeric for column in section.columns],
            ),
        ]
        if section.note:
            out += ["", section.note]
    out += [
        "",
        "### Per domain (median over the runs)",
        "",
        _md_table(DOMAIN_HEADERS, domain_rows(results), [h != "domain" for h in DOMAIN_HEADERS]),
        "",
        DOMAIN_NOTE,
    ]
    targets = evaluate_targets(results)
    met = sum(1 for t in targets if t.met)
    missed = sum(1 for t in targets if t.met is False)
    out += [
        "",
        "## Targets",
        "",
        f"{met} of {len(targets)} met, {missed} not met, "
        f"{len(targets) - met - missed} not measurable.",
        "",
        _md_table(
            ["target", "goal", "measured", "result"],
            [
                [t.label, t.goal, t.measured, "**NOT MET**" if t.met is False else _verdict(t.met)]
                for t in targets
            ],
            [False, False, False, False],
        ),
    ]
    if before is not None:
        out += [
            "",
            "## Before and after",
            "",
            f"Against {before.label} (commit `{before.commit}`), measured with the same "
            "benchmark on the same warehouses; each cell is *before → now* (medians).",
            "",
            _md_table(
                ["CIDs", *(header for header, _, _ in COMPARED)],
                comparison_rows(before, results),
                [True] * (len(COMPARED) + 1),
            ),
        ]
        if before.changes.strip():
            out += ["", before.changes.strip()]
    if chart is not None:
        out += [
            "",
            "## Chart",
            "",
            "Worker resident memory over time for the largest size's first run, shaded by stage; "
            "rows per second per stage at each size.",
            "",
            f"![Worker memory over time and throughput per stage]({Path(chart).as_posix()})",
        ]
    if notes.strip():
        out += ["", "## Notes", "", notes.strip()]
    return "\n".join(out) + "\n"


def write_markdown(
    path: Path,
    results: Sequence[SizeResult],
    *,
    machine: str,
    command: str,
    notes: str = "",
    chart: str | Path | None = DEFAULT_CHART,
    generated: dt.datetime | None = None,
    before: Comparison | None = None,
) -> None:
    """Write ``BENCHMARKS.md``: how to reproduce, the machine and date, the figures, the targets,
    a link to the chart and the notes. ``chart`` is the PNG's path, relative to ``path``'s
    folder or absolute (made relative); ``None`` leaves the chart out."""
    if chart is not None and Path(chart).is_absolute():
        chart = os.path.relpath(chart, path.resolve().parent)
    text = markdown(
        results,
        machine=machine,
        command=command,
        notes=notes,
        chart=chart,
        generated=generated,
        before=before,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ---- the chart ----------------------------------------------------------------------------------

STAGE_COLORS = {
    "seed-resolve": "#9ecae1",
    "lineage": "#a1d99b",
    "events": "#fdd0a2",
    "aggregation": "#dadaeb",
}
OTHER_STAGE_COLOR = "#d9d9d9"


def write_chart(path: Path, results: Sequence[SizeResult]) -> None:
    """A PNG with two panels: (a) each worker's RSS over time in the largest size's first run,
    shaded by stage; (b) rows/s per stage, one bar per size (log scale when the rates span more
    than 30x). Draws with the Agg canvas directly: no display, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rss, ax_rate = fig.subplots(2, 1, height_ratios=[1.15, 1])
    _draw_rss(ax_rss, results)
    _draw_throughput(ax_rate, results)
    fig.suptitle("Trace pipeline benchmark", fontsize=14, fontweight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _stage_spans(samples: Sequence[tuple[float, str | None]]) -> list[tuple[str, float, float]]:
    """Contiguous runs of one stage as (stage, start, end): a sample's stage holds until the
    next sample."""
    spans: list[tuple[str, float, float]] = []
    for (t, stage), (t_next, _) in itertools.pairwise(samples):
        if stage is None:
            continue
        if spans and spans[-1][0] == stage and spans[-1][2] == t:
            spans[-1] = (stage, spans[-1][1], t_next)
        else:
            spans.append((stage, t, t_next))
    return spans


def _draw_rss(ax: Axes, results: Sequence[SizeResult]) -> None:
    from matplotlib.patches import Patch

    sized = [size for size in results if size.runs]
    largest = max(sized, key=lambda size: size.cids) if sized else None
    samples = sorted(largest.runs[0].rss_series, key=lambda s: s.t) if largest else []
    ax.set_xlabel("seconds since the job was submitted")
    ax.set_ylabel("resident memory (MB)")
    if largest is None or not samples:
        ax.set_title("(a) Worker resident memory over time", loc="left")
        ax.text(0.5, 0.5, "no RSS samples", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_title(
        f"(a) Worker resident memory over time: {largest.cids:,} CIDs, first run", loc="left"
    )
    spans = _stage_spans([(s.t, s.stage) for s in samples])
    for stage, start, end in spans:
        color = STAGE_COLORS.get(stage, OTHER_STAGE_COLOR)
        ax.axvspan(start, end, color=color, alpha=0.6, lw=0, zorder=0)
    times = [s.t for s in samples]
    pids = sorted({pid for s in samples for pid in s.worker_mb})
    for pid in pids:
        mb = [s.worker_mb.get(pid, math.nan) for s in samples]
        ax.plot(times, mb, lw=1.6, label=f"worker pid {pid}", zorder=2)
    ax.axhline(
        WORKER_PEAK_GOAL_MB,
        color="crimson",
        ls="--",
        lw=1.2,
        label=f"goal {WORKER_PEAK_GOAL_MB:.0f} MB",
        zorder=3,
    )
    if times[-1] > times[0]:
        ax.set_xlim(times[0], times[-1])
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    seen = {stage for stage, _, _ in spans}
    stages = [stage for stage in STAGES if stage in seen] + sorted(seen - set(STAGES))
    handles, _labels = ax.get_legend_handles_labels()
    handles += [
        Patch(color=STAGE_COLORS.get(stage, OTHER_STAGE_COLOR), alpha=0.6, label=stage)
        for stage in stages
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _draw_throughput(ax: Axes, results: Sequence[SizeResult]) -> None:
    sizes = [size for size in _sorted(results) if size.runs]
    ax.set_title("(b) Throughput per stage (median over the runs)", loc="left")
    ax.set_ylabel("rows per second")
    if not sizes:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        return
    cmap = _colormap(len(sizes))
    width = 0.8 / len(sizes)
    rates: list[float] = []
    for i, size in enumerate(sizes):
        values = [_median(size, _stage_rows_per_s(stage)) for stage in STAGES]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(STAGES))]
        heights = [v if v is not None else math.nan for v in values]
        bars = ax.bar(xs, heights, width * 0.92, color=cmap[i], label=f"{size.cids:,} CIDs")
        ax.bar_label(
            bars,
            labels=[_compact(v) if v is not None else "" for v in values],
            fontsize="x-small",
            padding=2,
        )
        rates += [v for v in values if v is not None and v > 0]
    ax.set_xticks(range(len(STAGES)), list(STAGES))
    if rates and max(rates) / min(rates) > 30:
        ax.set_yscale("log")
        ax.set_ylabel("rows per second (log scale)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="size", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _colormap(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    return [viridis(0.15 + 0.7 * i / max(n - 1, 1)) for i in range(n)]


# ---- the machine ------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu() -> str:
    cpuinfo = _read("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith(("model name", "Model", "Hardware")) and ":" in line
    ]
    model = models[0] if models else platform.processor() or platform.machine() or "unknown CPU"
    logical = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
    count = logical or os.cpu_count() or 0
    text = f"{model}, {count} CPU{'s' if count != 1 else ''}"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = count
    return text + (f" ({usable} usable)" if usable and usable != count else "")


def _memory() -> str | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            kb = int(line.split()[1])
            return f"{kb / 2**20:.1f} GiB RAM"
    return None


def _os() -> str:
    release = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            release[key] = value.strip().strip('"')
    name = release.get("PRETTY_NAME") or platform.system() or "unknown OS"
    return f"{name}, {platform.system()} {platform.release()} {platform.machine()}".strip()


def machine_description(redis_version: str | None = None) -> str:
    """One line: CPU model and count, memory, OS and kernel, Python, and Redis if given."""
    parts = [_cpu(), _memory(), _os(), f"Python {platform.python_version()}"]
    if redis_version:
        parts.append(f"Redis {redis_version}")
    return "; ".join(part for part in parts if part)
