"""What the benchmark's summary tables show: each section's columns, one definition shared by
the rich tables and the Markdown of ``BENCHMARKS.md`` (``pipeline.bench.report``), so both
always show the same figures. Every figure is the median over the runs at a size
(``figures.median``), except the resume's earlier-stage queries, the largest over the runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.bench import formats
from pipeline.bench.figures import (
    baseline_peak_ratio,
    baseline_time_ratio,
    end_to_end_of_floor,
    events_rows_per_s,
    floor_seconds,
    median,
    pipeline_of_scan,
    reanalysis_share,
    resume_seconds,
    stage_floor,
    stage_seconds,
    stream_of_read,
    worker_peak,
)
from pipeline.bench.model import STAGES, RunFigures, SizeResult

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


def _page_kb(run: RunFigures) -> float | None:
    return run.page_bytes / 1024 if run.page_bytes is not None else None


def _max_earlier_queries(size: SizeResult) -> str:
    counts = [run.resume.earlier_stage_queries for run in size.runs if run.resume is not None]
    return formats.count(max(counts)) if counts else formats.NONE


def _baseline_seconds(size: SizeResult) -> str:
    base = size.baseline
    if base is None:
        return formats.NONE
    if not base.finished:
        return f"did not finish: {base.reason or 'no reason given'}"
    return formats.seconds(base.seconds)


def _baseline_peak(size: SizeResult) -> str:
    base = size.baseline
    if base is None or base.peak_mb is None:
        return formats.NONE
    # A run that was stopped would have needed at least what it had when it stopped.
    return formats.mb(base.peak_mb) if base.finished else f"≥ {formats.mb(base.peak_mb)}"


def _max_reanalysis_earlier_queries(size: SizeResult) -> str:
    counts = [n for run in size.runs if (n := run.reanalysis_earlier_queries) is not None]
    return formats.count(max(counts)) if counts else formats.NONE


def _floor_columns(stage: str) -> tuple[Column, Column]:
    """A stage's median seconds, and its floor beside it."""
    return _stage_column(stage), Column(
        "floor s", lambda size: formats.seconds(stage_floor(stage)(size))
    )


def _size_column() -> Column:
    return Column("CIDs", lambda size: f"{size.cids:,}")


def _stage_column(stage: str) -> Column:
    return Column(f"{stage} s", lambda size: formats.seconds(median(size, stage_seconds(stage))))


SECTIONS: tuple[Section, ...] = (
    Section(
        "Stages (median over the runs)",
        (
            _size_column(),
            Column("warehouse lots", lambda size: f"{size.lots:,}"),
            Column("runs", lambda size: str(len(size.runs))),
            *(_stage_column(stage) for stage in STAGES),
            Column(
                "end to end s", lambda s: formats.seconds(median(s, lambda r: r.end_to_end_seconds))
            ),
            Column("events rows/s", lambda size: formats.rate(median(size, events_rows_per_s))),
            Column("CPU steal", lambda size: formats.pct(median(size, lambda run: run.cpu_steal))),
        ),
        "CIDs: lots after lineage (the trace's size). Stage columns: wall seconds from the "
        "stage's start to its end. CPU steal: the share of the CPU the virtual machine's host "
        "took while the job ran (timings under steal are slower than the machine can be).",
    ),
    Section(
        "Stages against their floor (median over the runs)",
        (
            _size_column(),
            *(column for stage in STAGES for column in _floor_columns(stage)),
            Column(
                "end to end s", lambda s: formats.seconds(median(s, lambda r: r.end_to_end_seconds))
            ),
            Column("floor s", lambda size: formats.seconds(floor_seconds(size))),
            Column(
                "end to end / floor",
                lambda size: formats.times(end_to_end_of_floor(size)),
            ),
        ),
        "Floor: each stage's bare reads on the same data, measured once after the runs. "
        "Seed-resolve and lineage: their warehouse queries as the last run's workers ran them "
        "(recorded by the probe), replayed in order on warm processes, rows only counted. "
        "Events: the bare scan of every domain's query (its wall seconds added up over the "
        "domains). Aggregation: its own warehouse queries, replayed the same way, plus its "
        "stored input (seeds, the detection lots seed-resolve recorded, the lineage maps, the "
        "events domains the analysis folds) read back from Redis bare. The trace's floor adds "
        "the four up.",
    ),
    Section(
        "The MSD page (median over the runs)",
        (
            _size_column(),
            Column(
                "re-analysis s",
                lambda size: formats.seconds(median(size, lambda run: run.reanalysis_seconds)),
            ),
            Column(
                "re-analysis / end to end",
                lambda size: formats.pct(median(size, reanalysis_share)),
            ),
            Column("re-analysis: queries by earlier stages", _max_reanalysis_earlier_queries),
            Column(
                "detail first ms",
                lambda size: formats.ms(median(size, lambda run: run.detail_first_ms)),
            ),
            Column(
                "detail last ms",
                lambda size: formats.ms(median(size, lambda run: run.detail_last_ms)),
            ),
            Column(
                "export MB/s",
                lambda size: formats.mb(median(size, lambda run: run.export_mb_per_s)),
            ),
            Column(
                "API peak MB (export)",
                lambda size: formats.mb(median(size, lambda run: run.export_api_peak_mb)),
            ),
        ),
        "Re-analysis: the first detail call under another loss-reason mask, which runs the "
        "analysis again on the trace's checkpoints; its share of the trace's end to end, and "
        "the most source queries any run's re-analysis issued in a stage before the "
        "aggregation (the goal is 0). "
        "Detail: 20 rows at the first and the last page, to the last byte, on a new "
        "connection. Export: the whole detail table as CSV.",
    ),
    Section(
        "Memory and serving (median over the runs)",
        (
            _size_column(),
            Column("worker peak MB", lambda size: formats.mb(median(size, worker_peak))),
            Column(
                "API peak MB", lambda size: formats.mb(median(size, lambda run: run.api_peak_mb))
            ),
            Column(
                "Redis MB per M rows",
                lambda size: formats.mb(median(size, lambda run: run.redis_mb_per_million_rows)),
            ),
            Column(
                "stream rows/s",
                lambda size: formats.rate(median(size, lambda r: r.stream_rows_per_s)),
            ),
            Column(
                "stream MB/s",
                lambda size: formats.mb(median(size, lambda run: run.stream_mb_per_s)),
            ),
            Column("TTFB ms", lambda size: formats.ms(median(size, lambda run: run.ttfb_ms))),
            Column(
                "page first ms",
                lambda size: formats.ms(median(size, lambda run: run.page_first_ms)),
            ),
            Column(
                "page last ms", lambda size: formats.ms(median(size, lambda run: run.page_last_ms))
            ),
            Column("page KB", lambda size: formats.count(median(size, _page_kb))),
            Column(
                "page decode ms",
                lambda size: formats.ms(median(size, lambda run: run.page_decode_ms)),
            ),
        ),
        "Worker peak: the largest worker process. API peak: the largest API process while the "
        "whole result streams. Pages: 100 rows at offset 0 and near the end of the largest "
        "domain, from the request to the last byte, on a new connection; page KB: the page near "
        "the end (the contract puts the whole analysis in every page, so it grows with the "
        "trace's material lots); page decode ms: what a client then spends decoding it (orjson), "
        "not in the page times.",
    ),
    Section(
        "Resume, and throughput against the parts alone (median over the runs)",
        (
            _size_column(),
            Column("resume s", lambda size: formats.seconds(median(size, resume_seconds))),
            Column("resume: queries by earlier stages", _max_earlier_queries),
            Column(
                "scan rows/s",
                lambda size: formats.rate(size.limits.scan_rows_per_s if size.limits else None),
            ),
            Column("pipeline / scan", lambda size: formats.pct(pipeline_of_scan(size))),
            Column(
                "read+decode+encode rows/s",
                lambda size: formats.rate(
                    size.limits.read_encode_rows_per_s if size.limits else None
                ),
            ),
            Column("stream / read+decode+encode", lambda size: formats.pct(stream_of_read(size))),
        ),
        "Resume: a job failed in aggregation, then was retried; queries by earlier stages is the "
        "most any run's retry issued (the goal is 0). "
        "Scan: a bare fetchmany of each domain's query over the run's lots (rows/s: over its "
        "wall seconds); pipeline / scan compares rows per process-second, the events batches' "
        "seconds (fetch + store) added up over the workers against the scan tasks' added up "
        "(the analysis runs beside the domains it does not read: the stage's wall seconds "
        "include a worker's time on it). Read+decode+encode: a bare Redis GET + "
        "decompress (of a compressed chunk) + msgpack unpack + JSON encode of the stored chunks "
        "(CheckpointStore.read_chunk and the stream's encoding) in one thread of a process "
        "with the API's allocator (PYTHONMALLOC=malloc, pipeline/bench/read_encode.py); "
        "stream / read+decode+encode compares the API's stream with it.",
    ),
    Section(
        "Against the old approach",
        (
            _size_column(),
            Column("baseline s", _baseline_seconds),
            Column("baseline peak MB", _baseline_peak),
            Column(
                "baseline s / end to end s", lambda size: formats.times(baseline_time_ratio(size))
            ),
            Column(
                "baseline peak / worker peak", lambda size: formats.times(baseline_peak_ratio(size))
            ),
        ),
        "Baseline: the old approach (every row in a list of dicts, one JSON document) in a "
        "subprocess under a memory cap. Ratios: the baseline's seconds over the pipeline's end "
        "to end, its peak over the worker's peak; ≥ marks the peak when it was stopped.",
    ),
)


#: The per-domain table: one row per size and domain.
