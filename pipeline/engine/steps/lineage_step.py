"""The lineage stage of a job: seeds -> the genealogy around them, stored part by part, and the
lot list the events stage reads, in batches of ``in_list_size``.

This is where a trace's size becomes known: past the profile's limit the job fails
(``CID_LIMIT_EXCEEDED``); past ``TRACE_LARGE_JOB_CIDS`` it moves to the large-job queue.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.early_events import EARLY_CLAIM, send_early_events
from pipeline.engine.flow import events_spans, events_totals, fix_group_size
from pipeline.engine.job import LARGE_QUEUE, LINEAGE, QUEUE, Job
from pipeline.engine.recording import RecordingSource
from pipeline.engine.steps.seed_step import seed_cids
from pipeline.request import check_cid_limit
from pipeline.stages.lineage import walk
from pipeline.stages.lineage_document import ListPart, MapPart, payload_parts
from pipeline.stages.lineage_graph import Lineage

#: Where a map-valued part of the lineage document goes: rows of (key, value).
MAP_COLUMNS = ("key", "value")
LIST_COLUMNS = ("value",)


def run_lineage(ctx: StageContext) -> None:
    """Trace the seeds' genealogy; store the lot list and the document (a lineage job's
    whole, another job's fields its analysis reads: ``kept_parts``); size the job.

    The graph lives in a scratch database while this runs (``pipeline.stages.scratch``); every part
    is streamed from it into the store, so no part of the document is ever held whole.
    """
    settings, request = ctx.settings, ctx.job.request
    direction, tree = request.direction(), request.profile in domains.TREE_PROFILES
    depth, cache_mb = settings.lineage_max_depth, settings.scratch_cache_mb
    with Lineage(direction, seed_cids(ctx), depth, cache_mb=cache_mb, semantic=tree) as graph:
        if seeds := graph.seed_count():
            # the seeds' own events begin meanwhile, on the workers lineage leaves idle
            with closing(graph.seed_ids()) as ids:
                send_early_events(ctx, ids, seeds)
            walk(RecordingSource(ctx, parts.LINEAGE_QUERIES), graph)
        _store_graph(ctx, graph)


def kept_parts(job: Job) -> frozenset[str] | None:
    """The map and list fields of the lineage document ``job`` stores (``None``: all of them).
    A lineage job's answer is the document; any other job's lineage is read only by its
    analysis and by another analysis of the same trace (``parts.trace_inputs``): the seeds'
    related lots and roots. The rest (names, nodes, edges, links: about half of the stage's
    time at 114K CIDs) would be written for no reader."""
    if job.request.job_kind == LINEAGE:
        return None
    if not job.request.aggregates:
        return frozenset()
    taken = parts.trace_inputs(job.request.direction())
    return frozenset(parts.name_in_stage(p) for p in taken if p.startswith(f"{LINEAGE}:"))


def _store_graph(ctx: StageContext, graph: Lineage) -> None:
    job, settings, store = ctx.job, ctx.settings, ctx.store
    count = graph.cid_count()
    check_cid_limit(count, job.request.profile, settings)
    lots = ((c,) for c in graph.all_cids())
    store.write_rows(job.id, parts.CIDS, ("CONTAINERID",), lots, settings.in_list_size)
    scalars: dict[str, Any] = {}
    # one part at a time, each streamed as it is read
    for key, value in payload_parts(graph, only=kept_parts(job)):
        if isinstance(value, MapPart):
            store.write_rows(job.id, parts.lineage(key), MAP_COLUMNS, value, settings.fetch_rows)
            scalars.setdefault("maps", []).append(key)
        elif isinstance(value, ListPart):
            store.write_rows(
                job.id, parts.lineage(key), LIST_COLUMNS, ((v,) for v in value), settings.fetch_rows
            )
            scalars.setdefault("lists", []).append(key)
        elif isinstance(value, dict):  # a fixed empty map of the contract ("merges")
            store.write_rows(
                job.id, parts.lineage(key), MAP_COLUMNS, value.items(), settings.fetch_rows
            )
            scalars.setdefault("maps", []).append(key)
        else:
            scalars[key] = value
    store.put_blob(job.id, "lineage", {**scalars, "direction": graph.direction})
    queue = LARGE_QUEUE if count > settings.large_job_cids else QUEUE
    ctx.registry.update(job.id, cid_count=count, queue=queue)
    totals = events_totals(job, count, settings)
    # Early events claimed with no size fixed (by an earlier release, or a run that died
    # before fixing it) were grouped by the setting: the job keeps that size.
    legacy = ctx.registry.claimed_at(job.id, EARLY_CLAIM) is not None
    batches = 0 if legacy else max(totals.values(), default=0)
    fix_group_size(ctx.registry, job.id, batches, settings)
    ctx.registry.set_totals(job.id, totals, events_spans(job, settings))
