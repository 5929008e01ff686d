"""The benchmark's goals (issue 6), each evaluated on the results as met, not met or not
measurable. They are goals the report prints, never test assertions."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.bench import formats
from pipeline.bench.figures import (
    SIZE_TOLERANCE,
    by_size,
    closest_size,
    median,
    pipeline_of_scan,
    stream_of_read,
    worker_peak,
)
from pipeline.bench.model import SizeResult

TARGET_CIDS = 114_000
WORKER_PEAK_GOAL_MB = 256.0
WORKER_FLAT_BAND = 0.2
API_PEAK_GOAL_MB = 128.0
PIPELINE_OF_SCAN_GOAL = 0.5
STREAM_OF_READ_GOAL = 0.6
TTFB_GOAL_MS = 100.0
PAGE_LAST_GOAL_MS = 50.0


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


def _worker_peak_at_target(results: Sequence[SizeResult]) -> tuple[str, bool | None]:
    size = closest_size(results, TARGET_CIDS)
    if size is None:
        return f"no size within ±{SIZE_TOLERANCE:.0%} of {TARGET_CIDS:,} CIDs", None
    peak = median(size, worker_peak)
    if peak is None:
        return f"not measured at {size.cids:,} CIDs", None
    return f"{formats.mb(peak)} MB at {size.cids:,} CIDs", peak <= WORKER_PEAK_GOAL_MB


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
    _at_most(
        "API RSS while streaming (median over runs, worst size)",
        API_PEAK_GOAL_MB,
        lambda size: median(size, lambda run: run.api_peak_mb),
        formats.mb,
        " MB",
    ),
    _at_least(
        "Pipeline rows/s (events stage) / bare scan rows/s (medians, worst size)",
        PIPELINE_OF_SCAN_GOAL,
        pipeline_of_scan,
    ),
    _at_least(
        "Stream rows/s / bare read+encode rows/s (medians, worst size)",
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
