"""The benchmark's goals (issue 6, raised and extended by issue 20), each evaluated on the
results as met, not met or not measurable. They are goals the report prints, never test
assertions. "At every size" goals are judged on the worst size; the floor's on the size nearest
``TARGET_CIDS``."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.bench import formats
from pipeline.bench.figures import (
    SIZE_TOLERANCE,
    by_size,
    closest_size,
    end_to_end_of_floor,
    floor_seconds,
    median,
    pipeline_of_scan,
    reanalysis_share,
    stream_of_read,
    worker_peak,
)
from pipeline.bench.model import SizeResult

#: The size (CIDs) the floor's goal is judged at: the old system's crash.
TARGET_CIDS = 114_000
#: End to end over the floor (the four stages' bare reads added up), at ``TARGET_CIDS``.
END_TO_END_OF_FLOOR_GOAL = 1.3
#: The largest worker process, MB, at every size (issue 6 asked 256 MB at 114K).
WORKER_PEAK_GOAL_MB = 128.0
WORKER_FLAT_BAND = 0.2
API_PEAK_GOAL_MB = 128.0
#: Redis memory the stored rows take, MB per million rows, at every size.
REDIS_MB_PER_MILLION_ROWS_GOAL = 40.0
PIPELINE_OF_SCAN_GOAL = 0.5
#: The stream's rows/s over the bare read + decompress + decode + encode (issue 6: 60 %).
STREAM_OF_READ_GOAL = 0.9
TTFB_GOAL_MS = 100.0
PAGE_LAST_GOAL_MS = 50.0
#: An MSD detail page (first and last), ms to the last byte, at every size.
DETAIL_PAGE_GOAL_MS = 100.0
#: The re-analysis under another mask, as a share of the trace's end to end, at every size.
REANALYSIS_SHARE_GOAL = 0.10


class TargetResult(NamedTuple):
    """A target, evaluated: what was measured, against which goal, and whether it was met."""

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


def _per_size(
    results: Sequence[SizeResult], figure: Callable[[SizeResult], float | None]
) -> list[tuple[SizeResult, float]]:
    return [(size, v) for size in by_size(results) if (v := figure(size)) is not None]


def _end_to_end_of_floor(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    size = closest_size(results, TARGET_CIDS)
    if size is None:
        return f"no size within ±{SIZE_TOLERANCE:.0%} of {TARGET_CIDS:,} CIDs", None
    ratio = end_to_end_of_floor(size)
    if ratio is None:
        return f"not measured at {size.cids:,} CIDs", None
    seconds = median(size, lambda run: run.end_to_end_seconds)
    measured = (
        f"{ratio:.2f}× ({formats.seconds(seconds)} s over a floor of "
        f"{formats.seconds(floor_seconds(size))} s) at {size.cids:,} CIDs"
    )
    return measured, ratio <= END_TO_END_OF_FLOOR_GOAL


def _worker_peak_flat(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    peaks = _per_size(results, lambda size: median(size, worker_peak))
    if len(peaks) < 2:
        return "needs two sizes or more", None
    mean = statistics.fmean(peak for _, peak in peaks)
    if mean <= 0:
        return "no worker memory measured", None
    deviations = [(size, peak / mean - 1) for size, peak in peaks]
    worst_size, worst = max(deviations, key=lambda item: abs(item[1]))
    low, high = min(peak for _, peak in peaks), max(peak for _, peak in peaks)
    measured = (
        f"{formats.mb(low)}–{formats.mb(high)} MB over {len(peaks)} sizes, "
        f"mean {formats.mb(mean)}; "
        f"furthest {worst:+.0%} at {worst_size.cids:,} CIDs"
    )
    return measured, all(abs(d) <= WORKER_FLAT_BAND for _, d in deviations)


def _worst(
    results: Sequence[SizeResult],
    figure: Callable[[SizeResult], float | None],
    *,
    limit: float,
    ceiling: bool,
    fmt: Callable[[float | None], str],
    unit: str,
) -> tuple[str, bool | None]:
    """The worst size's ``figure`` against ``limit``: the largest value when ``limit`` is a
    ceiling, the smallest when it is a floor."""
    values = _per_size(results, figure)
    if not values:
        return "not measured", None
    pick = max if ceiling else min
    size, value = pick(values, key=lambda item: item[1])
    measured = f"{fmt(value)}{unit} at {size.cids:,} CIDs"
    if len(values) > 1:
        measured = f"worst {measured}"
    if len(values) < len(results):
        measured += f" ({len(values)} of {len(results)} sizes measured)"
    return measured, value <= limit if ceiling else value >= limit


def _at_most(
    label: str,
    limit: float,
    figure: Callable[[SizeResult], float | None],
    fmt: Callable[[float | None], str],
    unit: str,
) -> Target:
    """A target every size's ``figure`` must stay at or under (judged on the worst size)."""
    return Target(
        label,
        f"≤ {limit:.0f}{unit}",
        lambda results: _worst(results, figure, limit=limit, ceiling=True, fmt=fmt, unit=unit),
    )


def _share_at_most(
    label: str, share: float, figure: Callable[[SizeResult], float | None]
) -> Target:
    """A target every size's ``figure``, a share, must stay at or under (the worst size)."""
    return Target(
        label,
        f"≤ {share:.0%}",
        lambda results: _worst(
            results, figure, limit=share, ceiling=True, fmt=formats.pct, unit=""
        ),
    )


def _at_least(label: str, share: float, figure: Callable[[SizeResult], float | None]) -> Target:
    """A target every size's ``figure``, a share, must reach (judged on the worst size)."""
    return Target(
        label,
        f"≥ {share:.0%}",
        lambda results: _worst(
            results, figure, limit=share, ceiling=False, fmt=formats.pct, unit=""
        ),
    )


def _resume_clean(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    resumes = [run.resume for size in results for run in size.runs if run.resume is not None]
    if not resumes:
        return "no resume measured", None
    return _no_earlier_queries(
        [resume.queries_by_stage for resume in resumes], _plural(len(resumes), "retry", "retries")
    )


def _reanalysis_clean(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    counts = [
        run.reanalysis_queries
        for size in results
        for run in size.runs
        if run.reanalysis_queries is not None
    ]
    if not counts:
        return "no re-analysis measured", None
    return _no_earlier_queries(counts, _plural(len(counts), "re-analysis", "re-analyses"))


def _no_earlier_queries(
    counts: Sequence[Mapping[str, int]], measured_in: str
) -> tuple[str, bool | None]:
    """Whether none of ``counts`` (source queries per stage, one per measurement) holds a query
    of a stage before the aggregation; what was found, said as ``N in M of {measured_in}``."""
    dirty = [by_stage for by_stage in counts if _earlier(by_stage.items())]
    if not dirty:
        return f"0 in {measured_in}", True
    totals: dict[str, int] = {}
    for by_stage in dirty:
        for stage, n in _earlier(by_stage.items()):
            totals[stage] = totals.get(stage, 0) + n
    stages = ", ".join(f"{stage} {n:,}" for stage, n in totals.items())
    return f"{sum(totals.values()):,} in {len(dirty)} of {measured_in} ({stages})", False


def _earlier(by_stage: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(stage, n) for stage, n in by_stage if stage != "aggregation" and n]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


TARGETS: tuple[Target, ...] = (
    Target(
        f"End to end / floor at {TARGET_CIDS // 1000}K CIDs (medians; floor: the four stages' "
        "bare reads added up)",
        f"≤ {END_TO_END_OF_FLOOR_GOAL:.1f}×",
        _end_to_end_of_floor,
    ),
    _at_most(
        "Worker peak RSS at every size (median over runs, worst size)",
        WORKER_PEAK_GOAL_MB,
        lambda size: median(size, worker_peak),
        formats.mb,
        " MB",
    ),
    Target(
        f"Worker peak RSS flat across sizes: every size's median within "
        f"±{WORKER_FLAT_BAND:.0%} of the mean of the medians, i.e. |median / mean − 1|",
        f"≤ {WORKER_FLAT_BAND:.0%}",
        _worker_peak_flat,
    ),
    _at_most(
        "Redis memory per million rows stored (median over runs, worst size)",
        REDIS_MB_PER_MILLION_ROWS_GOAL,
        lambda size: median(size, lambda run: run.redis_mb_per_million_rows),
        formats.mb,
        " MB",
    ),
    _at_most(
        "API RSS while streaming (median over runs, worst size)",
        API_PEAK_GOAL_MB,
        lambda size: median(size, lambda run: run.api_peak_mb),
        formats.mb,
        " MB",
    ),
    _at_least(
        "Events rows per process-second / bare scan's (medians, worst size)",
        PIPELINE_OF_SCAN_GOAL,
        pipeline_of_scan,
    ),
    _at_least(
        "Stream rows/s / bare read + decompress + decode + encode rows/s (medians, worst size)",
        STREAM_OF_READ_GOAL,
        stream_of_read,
    ),
    _at_most(
        "Time to first byte of the stream (median over runs, worst size)",
        TTFB_GOAL_MS,
        lambda size: median(size, lambda run: run.ttfb_ms),
        formats.ms,
        " ms",
    ),
    _at_most(
        "A result page near the end of the largest domain (median over runs, worst size)",
        PAGE_LAST_GOAL_MS,
        lambda size: median(size, lambda run: run.page_last_ms),
        formats.ms,
        " ms",
    ),
    _at_most(
        "MSD detail page, the first (median over runs, worst size)",
        DETAIL_PAGE_GOAL_MS,
        lambda size: median(size, lambda run: run.detail_first_ms),
        formats.ms,
        " ms",
    ),
    _at_most(
        "MSD detail page, the last (median over runs, worst size)",
        DETAIL_PAGE_GOAL_MS,
        lambda size: median(size, lambda run: run.detail_last_ms),
        formats.ms,
        " ms",
    ),
    _share_at_most(
        "Re-analysis under another loss-reason mask / end to end (median over runs, worst size)",
        REANALYSIS_SHARE_GOAL,
        lambda size: median(size, reanalysis_share),
    ),
    Target(
        "Re-analysis: source queries by earlier stages (every run)",
        "0",
        _reanalysis_clean,
    ),
    Target(
        "Resume after a failure in aggregation: source queries by earlier stages (every run)",
        "0",
        _resume_clean,
    ),
)


def evaluate_targets(results: Sequence[SizeResult]) -> list[TargetResult]:
    """Every target of ``TARGETS``, evaluated on ``results``."""
    return [target(results) for target in TARGETS]


def verdict(met: bool | None) -> str:
    """``met``, ``NOT MET``, or ``n/a`` when the target could not be measured."""
    return "n/a" if met is None else "met" if met else "NOT MET"
