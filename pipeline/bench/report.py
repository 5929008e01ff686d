"""The benchmark's figures for people: rich tables for the terminal and ``BENCHMARKS.md``.

Every figure is the median over the runs at a size (``figures.median``), except the resume's
earlier-stage queries, which is the largest over the runs (the goal is zero in every run). The
rich tables and the Markdown tables come from the same column definitions (``SECTIONS``), so
they always show the same figures. The targets are in ``targets``, the chart in ``chart``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from pipeline.bench import formats
from pipeline.bench.figures import (
    by_size,
    closest_size,
    events_rows_per_process_s,
    median,
    stage_seconds,
    worker_peak,
)
from pipeline.bench.model import STAGES, Comparison, RunFigures, SizeResult
from pipeline.bench.sections import SECTIONS
from pipeline.bench.targets import evaluate_targets, verdict

DEFAULT_CHART = "benchmarks.png"

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
    for size in by_size(results):
        limits = size.limits
        for domain in list(size.runs[0].domain_rows) if size.runs else []:
            pipeline_rate = median(size, _domain_rate(domain))
            spent = limits.scan_task_seconds.get(domain) if limits else None
            scan = limits.scan_rows[domain] / spent if limits and spent else None
            ratio = pipeline_rate / scan if pipeline_rate is not None and scan else None
            table.append(
                [
                    f"{size.cids:,}",
                    domain,
                    formats.count(median(size, _domain_count(domain))),
                    formats.rate(pipeline_rate),
                    formats.rate(scan),
                    formats.pct(ratio),
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
        for size in by_size(results):
            # Text, not markup: a baseline's reason may hold brackets.
            table.add_row(*(Text(column.cell(size)) for column in section.columns))
        tables.append(table)
    tables.append(domain_table(results))
    return tables


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
            Text(verdict(result.met), style=styles[result.met]),
        )
    return table


# ---- before and after ---------------------------------------------------------------------------

#: The figures ``--before`` compares: header, per-run figure, format. A figure an earlier
#: benchmark did not measure (an older ``results.json``) shows as ``—``.
COMPARED: tuple[
    tuple[str, Callable[[RunFigures], float | None], Callable[[float | None], str]], ...
] = (
    ("end to end s", lambda run: run.end_to_end_seconds, formats.seconds),
    *((f"{stage} s", stage_seconds(stage), formats.seconds) for stage in STAGES),
    ("worker peak MB", worker_peak, formats.mb),
    ("Redis MB per M rows", lambda run: run.redis_mb_per_million_rows, formats.mb),
    ("re-analysis s", lambda run: run.reanalysis_seconds, formats.seconds),
    # per process-second: the events stage's wall seconds now overlap the analysis
    ("events rows per process-s", events_rows_per_process_s, formats.rate),
    ("stream rows/s", lambda run: run.stream_rows_per_s, formats.rate),
    ("stream first byte ms", lambda run: run.ttfb_ms, formats.ms),
    ("detail page ms", lambda run: run.detail_first_ms, formats.ms),
)


def comparison_rows(before: Comparison, results: Sequence[SizeResult]) -> list[list[str]]:
    """Per size: its CIDs, then ``before → now`` for each of ``COMPARED`` (the earlier size
    closest in CIDs, within SIZE_TOLERANCE; ``—`` where there is none)."""
    rows = []
    for size in by_size(results):
        old = closest_size(before.results, size.cids)
        cells = [f"{size.cids:,}"]
        for _header, figure, fmt in COMPARED:
            was = median(old, figure) if old is not None else None
            cells.append(f"{fmt(was)} → {fmt(median(size, figure))}")
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
    sizes = by_size(results)
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
                [t.label, t.goal, t.measured, "**NOT MET**" if t.met is False else verdict(t.met)]
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
