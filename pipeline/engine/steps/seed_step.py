"""The seed-resolve stage of a job: the request's inputs -> seed lots, stored as a part."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.recording import RecordingSource
from pipeline.errors import NoSeeds
from pipeline.request import SEED_RESOLVE
from pipeline.rows import Counted
from pipeline.stages import seed_resolve
from pipeline.stages.msd.scope import detection_seeds
from pipeline.stages.seeds import Seed

#: The columns of the seed lots (``parts.SEEDS``).
SEED_COLUMNS = ("container_id", "container_name", "lot_id")


def run_seed_resolve(ctx: StageContext) -> None:
    """Resolve the request's seeds; store them (``parts.SEEDS``) and a summary blob.

    Raises ``InvalidInput`` (``NO_SEEDS``) when a query-tool trace matches nothing, and
    ``NoDetectionRecords`` (404) when a mid-section-defect request in container mode names no
    container detected at its stations; a mid-section-defect range without detection lots goes
    on to an empty result, and a job that only resolves seeds answers with what was not found.
    """
    job, settings = ctx.job, ctx.settings
    request = job.request
    source = RecordingSource(ctx, parts.SEED_QUERIES)
    seeds: Iterable[Seed]
    if request.params.detects(request.profile):
        # A date range may hold hundreds of thousands of lots: they stream into the store.
        seeds = detection_seeds(source, request.params)
        not_found: list[str] = []
    else:
        found = seed_resolve.resolve(source, request.profile, request.params)
        alone = request.job_kind == SEED_RESOLVE  # the dashboard's call: nothing found is an answer
        if not found.seeds and request.profile != domains.MID_SECTION_DEFECT and not alone:
            raise NoSeeds("no seed matched: nothing to trace", field="params.values")
        seeds, not_found = found.seeds, found.not_found
    counted = Counted(seeds)
    ctx.store.write_rows(
        job.id,
        parts.SEEDS,
        SEED_COLUMNS,
        ((s.container_id, s.container_name, s.lot_id) for s in counted),
        settings.fetch_rows,
    )
    ctx.store.put_blob(job.id, "seed-resolve", {"seed_count": counted.n, "not_found": not_found})
    ctx.registry.update(job.id, seed_count=counted.n)


def seed_cids(ctx: StageContext) -> Iterator[str]:
    """The job's seed lots, in resolve order, read a chunk at a time."""
    for batch in ctx.store.read(ctx.job.id, parts.SEEDS):
        for row in batch.rows:
            yield row[0]
