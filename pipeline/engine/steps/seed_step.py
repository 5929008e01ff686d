"""The seed-resolve stage of a job: the request's inputs -> seed lots, stored as a part."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.flow import detection_ranges, seeds_settled
from pipeline.engine.recording import RecordingSource
from pipeline.errors import NoSeeds
from pipeline.request import SEED_RESOLVE
from pipeline.rows import Counted, RowBatch
from pipeline.stages import seed_resolve
from pipeline.stages.msd.ranges import merge_ranges
from pipeline.stages.msd.scope import DetectionScope, detection_seeds
from pipeline.stages.seeds import Seed

#: The columns of the seed lots (``parts.SEEDS``).
SEED_COLUMNS = ("container_id", "container_name", "lot_id")
#: The claim of merging a detection window's ranges into the seeds (one message does it).
MERGE_CLAIM = "seed-resolve:merge"


def run_seed_resolve(ctx: StageContext, window_range: int | None = None) -> None:
    """Resolve the request's seeds; store them (``parts.SEEDS``) and a summary blob.

    A mid-section-defect detection window of several days is read in date ranges
    (``detection_ranges``): each message reads its ``window_range`` (``None``: every range
    not yet read), and whichever message finds them all read merges them into the seeds
    (``_merge_ranges``); the others return, and the stage is complete once the summary blob is
    stored (``seeds_settled``).

    Raises ``InvalidInput`` (``NO_SEEDS``) when a query-tool trace matches nothing, and
    ``NoDetectionRecords`` (404) when a mid-section-defect request in container mode names no
    container detected at its stations; a mid-section-defect range without detection lots goes
    on to an empty result, and a job that only resolves seeds answers with what was not found.
    """
    job = ctx.job
    request = job.request
    ranges = detection_ranges(ctx)
    if ranges:
        read = ctx.store.finished(job.id, parts.SEED_QUERIES)
        for number in range(len(ranges)) if window_range is None else (window_range,):
            if number in read:
                continue  # a redelivery, or the message that merges once every range is read
            source = RecordingSource(ctx, parts.SEED_QUERIES, first=number)
            for _batch in ranges[number].lots_query(source):
                pass  # recorded as they stream through; merged once every range is in
        _merge_ranges(ctx, ranges, read_all=window_range is None)
        return
    source = RecordingSource(ctx, parts.SEED_QUERIES)
    if request.params.detects(request.profile):
        # A date range may hold hundreds of thousands of lots: they stream into the store.
        _store_seeds(ctx, detection_seeds(source, request.params), [])
        return
    found = seed_resolve.resolve(source, request.profile, request.params)
    alone = request.job_kind == SEED_RESOLVE  # the dashboard's call: nothing found is an answer
    if not found.seeds and request.profile != domains.MID_SECTION_DEFECT and not alone:
        raise NoSeeds("no seed matched: nothing to trace", field="params.values")
    _store_seeds(ctx, found.seeds, found.not_found)


def _merge_ranges(ctx: StageContext, ranges: list[DetectionScope], *, read_all: bool) -> None:
    """Once every range is read: their lots merged into the seeds, by one message (the first to
    claim it; work sent again, ``ctx.resumed``, or a message that read every range itself,
    ``read_all``, merges regardless: the merge is deterministic and its batches are committed
    once). The merged rows are recorded as the whole window's detection query
    (``parts.DETECTION_LOTS``), so the analysis reads them as it reads that query's answer.
    An error gives the claim back, so that the message's retry merges."""
    job, store = ctx.job, ctx.store
    read = store.finished(job.id, parts.SEED_QUERIES)
    if any(number not in read for number in range(len(ranges))) or seeds_settled(ctx):
        return  # a range is still being read (its message merges), or merged already
    if not (ctx.registry.claim(job.id, MERGE_CLAIM) or ctx.resumed or read_all):
        return
    try:
        source = RecordingSource(ctx, parts.DETECTION_LOTS)
        count, rows = len(ranges), source.fetch_rows
        source.answer_next_with(lambda: merge_ranges(_range_rows(ctx, count), rows))
        _store_seeds(ctx, detection_seeds(source, job.request.params), [])
    except BaseException:
        ctx.registry.release_claim(job.id, MERGE_CLAIM)
        raise


def _range_rows(ctx: StageContext, count: int) -> list[Iterator[RowBatch]]:
    """The recorded rows of the first ``count`` seed queries (the ranges), each streamed."""
    store, job_id = ctx.store, ctx.job.id
    manifest = store.manifest(job_id, parts.SEED_QUERIES)
    return [store.read_entry(job_id, parts.SEED_QUERIES, manifest[n]) for n in range(count)]


def _store_seeds(ctx: StageContext, seeds: Iterable[Seed], not_found: list[str]) -> None:
    """The seed lots (``parts.SEEDS``, streamed), then the summary blob, then the count."""
    job, settings = ctx.job, ctx.settings
    counted = Counted(seeds)
    ctx.store.write_rows(
        job.id,
        parts.SEEDS,
        SEED_COLUMNS,
        ((s.container_id, s.container_name, s.lot_id) for s in counted),
        settings.fetch_rows,
    )
    ctx.store.put_blob(
        job.id, parts.SEED_SUMMARY, {"seed_count": counted.n, "not_found": not_found}
    )
    ctx.registry.update(job.id, seed_count=counted.n)


def seed_cids(ctx: StageContext) -> Iterator[str]:
    """The job's seed lots, in resolve order, read a chunk at a time."""
    for batch in ctx.store.read(ctx.job.id, parts.SEEDS):
        for row in batch.rows:
            yield row[0]
