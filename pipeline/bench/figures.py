"""The benchmark's figures per size, read from its runs: every figure is the median over the
runs at a size that have it (``median``); ratios against the limits, the floor and the
baseline; sizes in order and the size closest to a number of CIDs."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from pipeline.bench.model import RunFigures, SizeResult

#: A figure "at 114K" reads the size closest to 114K CIDs if it is within this fraction of it.
SIZE_TOLERANCE = 0.2


def median(size: SizeResult, figure: Callable[[RunFigures], float | None]) -> float | None:
    """The median of ``figure`` over the runs that have it; ``None`` when none has."""
    values = [v for v in (figure(run) for run in size.runs) if v is not None]
    return float(statistics.median(values)) if values else None


def stage_seconds(stage: str) -> Callable[[RunFigures], float | None]:
    def figure(run: RunFigures) -> float | None:
        return run.stages[stage].seconds if stage in run.stages else None

    return figure


def stage_rows_per_s(stage: str) -> Callable[[RunFigures], float | None]:
    def figure(run: RunFigures) -> float | None:
        part = run.stages.get(stage)
        return part.rows / part.seconds if part is not None and part.seconds > 0 else None

    return figure


def events_rows_per_s(run: RunFigures) -> float | None:
    return run.events_rows_per_s if "events" in run.stages else None


def worker_peak(run: RunFigures) -> float | None:
    return run.worker_peak if run.worker_peak_mb else None


def resume_seconds(run: RunFigures) -> float | None:
    return run.resume.seconds if run.resume is not None else None


def reanalysis_share(run: RunFigures) -> float | None:
    """The re-analysis's seconds over the run's end-to-end seconds (a share)."""
    if run.reanalysis_seconds is None or run.end_to_end_seconds <= 0:
        return None
    return run.reanalysis_seconds / run.end_to_end_seconds


def floor_seconds(size: SizeResult) -> float | None:
    """The trace's floor at this size: the four stages' floors added up (seconds)."""
    return size.floor.total_seconds if size.floor is not None else None


def stage_floor(stage: str) -> Callable[[SizeResult], float | None]:
    """One stage's floor at a size (seconds)."""

    def figure(size: SizeResult) -> float | None:
        return size.floor.seconds.get(stage) if size.floor is not None else None

    return figure


def stage_of_floor(stage: str) -> Callable[[SizeResult], float | None]:
    """A stage's median seconds over its floor (a ratio, ≥ 1 but for noise)."""

    def figure(size: SizeResult) -> float | None:
        floor = stage_floor(stage)(size)
        seconds = median(size, stage_seconds(stage))
        return seconds / floor if seconds is not None and floor else None

    return figure


def end_to_end_of_floor(size: SizeResult) -> float | None:
    """The median end-to-end seconds over the trace's floor (a ratio)."""
    floor = floor_seconds(size)
    seconds = median(size, lambda run: run.end_to_end_seconds)
    return seconds / floor if seconds is not None and floor else None


def events_rows_per_process_s(run: RunFigures) -> float | None:
    """The events rows over the seconds their batches took (fetch + store), added up over the
    worker processes; ``None`` for figures without batch seconds."""
    seconds = sum(run.domain_seconds.values())
    return run.rows_stored / seconds if seconds > 0 else None


def pipeline_of_scan(size: SizeResult) -> float | None:
    """Median events rows per process-second over the bare scan's (its tasks' seconds added up
    over its processes): the fetching's own throughput, whatever else shares the workers (an
    analysis runs beside the domains it does not read, so the events stage's wall seconds
    count time a worker spent on it). Figures without batch seconds: the events stage's rows/s
    over the scan's."""
    if size.limits is None:
        return None
    rate = median(size, events_rows_per_process_s)
    scan = size.limits.scan_rows_per_process_s
    if rate is not None and scan:
        return rate / scan
    rate = median(size, events_rows_per_s)
    if rate is None or size.limits.scan_rows_per_s <= 0:
        return None
    return rate / size.limits.scan_rows_per_s


def stream_of_read(size: SizeResult) -> float | None:
    """Median stream rows/s over the bare Redis read + decompress + decode + encode rows/s."""
    rate = median(size, lambda run: run.stream_rows_per_s)
    if rate is None or size.limits is None or size.limits.read_encode_rows_per_s <= 0:
        return None
    return rate / size.limits.read_encode_rows_per_s


def baseline_time_ratio(size: SizeResult) -> float | None:
    """The old approach's seconds over the pipeline's median end-to-end seconds."""
    base = size.baseline
    pipeline = median(size, lambda run: run.end_to_end_seconds)
    if base is None or not base.finished or base.seconds is None or not pipeline:
        return None
    return base.seconds / pipeline


def baseline_peak_ratio(size: SizeResult) -> float | None:
    """The old approach's peak memory over the pipeline's median worker peak."""
    base = size.baseline
    worker = median(size, worker_peak)
    if base is None or not base.finished or base.peak_mb is None or not worker:
        return None
    return base.peak_mb / worker


def by_size(results: Sequence[SizeResult]) -> list[SizeResult]:
    """The sizes, smallest trace first."""
    return sorted(results, key=lambda size: size.cids)


def closest_size(results: Sequence[SizeResult], cids: int) -> SizeResult | None:
    """The measured size whose trace is closest to ``cids`` lots, if within SIZE_TOLERANCE."""
    sized = [size for size in results if size.runs]
    if not sized:
        return None
    closest = min(sized, key=lambda size: abs(size.cids - cids))
    return closest if abs(closest.cids - cids) <= SIZE_TOLERANCE * cids else None
