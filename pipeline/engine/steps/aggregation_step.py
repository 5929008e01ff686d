"""The aggregation stage of a job (mid-section-defect): the detection lots, the stored lineage
and the stored event rows folded into the analysis, written as a blob plus its detail rows.

It reads the events from the checkpoints, never from the source, and folds each committed chunk
exactly once per run (a run starts from a fresh aggregator, so a re-run cannot double-count).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.detail_rows import write_detail
from pipeline.engine.recording import RecordingSource
from pipeline.engine.steps.seed_step import seed_cids
from pipeline.engine.store import ChunkLost
from pipeline.stages.msd import lot_record
from pipeline.stages.msd.attribution import machine_ids
from pipeline.stages.msd.detail import EXPORT_COLUMNS, sorted_details
from pipeline.stages.msd.detection import prepare_aggregator, recorded_aggregator
from pipeline.stages.msd.families import machine_families
from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.folding import MsdAggregator
from pipeline.stages.msd.lot_record import LotRecordMeta, record_meta
from pipeline.stages.msd.result import result_json

log = logging.getLogger(__name__)

#: Lot record rows per stored chunk: a row is its lot's detection fields, machines, materials
#: and rejects (~1-3 KB as Python objects at 1M CIDs); 5,000 rows took the writing worker's
#: peak from ~110 to 142 MB there (`ops/bench`, 2026-12-06).
RECORD_CHUNK_ROWS = 500


def run_aggregation(ctx: StageContext) -> None:
    """Compute the analysis; store it as blob ``aggregation`` and rows ``parts.AGGREGATION_DETAIL``.

    Only the domains the analysis reads are read back; the detection lots come from the
    seed-resolve stage's recorded query when it asked the same (a date range). A re-analysis
    of a trace (``events_of``) reads, backward, its first analysis's lot record alone (no
    detection rows, lineage or events: ``pipeline.stages.msd.lot_record``); forward, or when
    there is no record, its detection lots and rejects from the trace's earlier analysis
    (``parts.PRIOR_QUERIES``), not from the source again, and the stored lineage and events.
    A record that lost batches or chunks since (``ChunkLost``) is set aside for the same fold of
    the events: never an analysis of the lots that were left.
    """
    job, store, settings = ctx.job, ctx.store, ctx.settings
    reuse = (parts.SEED_QUERIES, parts.DETECTION_LOTS, parts.PRIOR_QUERIES)
    source = RecordingSource(ctx, parts.AGGREGATION_QUERIES, reuse=reuse)
    request = job.request
    direction = request.direction()
    failed = ctx.registry.domain_states(job.id)
    # a backward re-analysis of a trace: its first analysis's lot record, if this version reads it
    blob = (
        store.get_blob(job.id, parts.LOT_RECORD_META)
        if request.events_of and direction == domains.BACKWARD
        else None
    )
    recorded = LotRecordMeta.from_blob(blob) if blob else None
    aggregator = None
    if recorded is not None:
        try:
            rows = _rows(ctx, parts.AGGREGATION_LOT_RECORD)
            aggregator = recorded_aggregator(request.params, rows, recorded, settings)
        except ChunkLost as lost:  # as without a record: fold the events
            log.warning("job %s: the lot record: %s; the events are folded instead", job.id, lost)
    from_record = aggregator is not None
    if aggregator is None:
        aggregator = prepare_aggregator(source, request.params, seed_cids(ctx), direction, settings)
    with aggregator:
        if not from_record:
            _fold_lineage_and_events(ctx, aggregator, failed)
        fold = aggregator.finish()
        # The detail rows first: the pass that writes them also credits the machines, which
        # the result then reuses.
        write_details(ctx, fold, keeps_record=blob is None and _every_lot(aggregator, failed))
        families = machine_families(source, machine_ids(fold))
        # Every result page and stream carries the whole analysis: encoded once, here.
        store.put_json(job.id, "aggregation", result_json(fold, families))


def _fold_lineage_and_events(
    ctx: StageContext, aggregator: MsdAggregator, failed: Mapping[str, Any]
) -> None:
    """The stored lineage, then the stored event rows the analysis reads (but the ``failed``
    domains')."""
    job, store = ctx.job, ctx.store
    related = parts.RELATED[domains.BACKWARD if aggregator.backward else domains.FORWARD]
    # No map ever stored (a request's inline lineage without this direction's): each lot
    # stands alone, and the result says so (genealogy_status: error). A map stored and lost
    # since is read all the same, and its read fails (ChunkLost), as any lost input's does.
    stored = bool(ctx.registry.progress(job.id).get(parts.done(parts.lineage(related))))
    aggregator.set_lineage(_pairs(ctx, related) if stored else None, _pairs(ctx, "seed_roots"))
    for domain in job.domains:
        if domain in failed or not aggregator.uses(domain):
            continue
        for batch in store.read(job.id, parts.events(domain)):
            ctx.check_active()
            aggregator.add_events(domain, batch)


def _every_lot(aggregator: MsdAggregator, failed: Mapping[str, Any]) -> bool:
    """Whether this backward analysis saw every detection lot whole (its lot record serves
    any mask): no PJ-type or package mask left a lot out, and no events domain it reads
    failed."""
    if not aggregator.backward or aggregator.pj_types or aggregator.packages:
        return False
    return not any(aggregator.uses(domain) for domain in failed)


def write_details(ctx: StageContext, fold: Fold, *, keeps_record: bool = False) -> None:
    """The detail rows in the table's order (``parts.AGGREGATION_DETAIL``, with the heads they
    name: ``pipeline.engine.detail_rows``) and the same rows as the CSV export's flat cells
    (``parts.AGGREGATION_EXPORT``); with ``keeps_record``, the lot record
    (``parts.AGGREGATION_LOT_RECORD``, its heads those of the detail rows, the blob
    ``parts.LOT_RECORD_META`` last: a re-analysis takes the rows only once it is there)."""
    job, store, rows = ctx.job, ctx.store, ctx.settings.fetch_rows
    recorded = keeps_record or fold.recorded
    heads = parts.AGGREGATION_RECORD_HEADS if recorded else parts.AGGREGATION_HEADS
    for part in (heads, parts.AGGREGATION_LOT_RECORD) if keeps_record else ():
        # linked with a lot record this run did not read (lost since): refs into other heads
        store.drop_linked(job.id, part)
    with sorted_details(fold) as table:
        write_detail(store, job.id, table, heads=heads, batch_rows=rows)
        columns = tuple(key for _, key in EXPORT_COLUMNS[fold.direction])
        store.write_rows(job.id, parts.AGGREGATION_EXPORT, columns, table.cells(), rows)
        if keeps_record:
            store.write_rows(
                job.id,
                parts.AGGREGATION_LOT_RECORD,
                lot_record.COLUMNS,
                table.lot_record(),
                RECORD_CHUNK_ROWS,
            )
            store.put_blob(job.id, parts.LOT_RECORD_META, record_meta(fold).to_blob())


def _pairs(ctx: StageContext, key: str) -> Iterator[tuple[Any, Any]]:
    """The (key, value) rows of a stored map part of the lineage document, streamed."""
    for batch in ctx.store.read(ctx.job.id, parts.lineage(key)):
        yield from ((name, value) for name, value in batch.rows)


def _rows(ctx: StageContext, part: str) -> Iterator[tuple[Any, ...]]:
    """The rows of a stored part of the job, streamed."""
    for batch in ctx.store.read(ctx.job.id, part):
        yield from batch.rows
