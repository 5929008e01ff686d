"""The lineage stage of a job: seeds -> the genealogy around them, stored part by part, and the
lot list the events stage reads, in batches of ``in_list_size``.

This is where a trace's size becomes known: past the profile's limit the job fails
(``CID_LIMIT_EXCEEDED``); past ``TRACE_LARGE_JOB_CIDS`` it moves to the large-job queue.
"""

from __future__ import annotations

from typing import Any

from pipeline.engine.context import StageContext
from pipeline.engine.flow import CIDS_PART, events_totals
from pipeline.engine.recording import RecordingSource
from pipeline.engine.seed_resolve import seed_cids
from pipeline.errors import InvalidInput
from pipeline.job import LARGE_QUEUE, QUEUE
from pipeline.stages.lineage import Lineage, trace_lineage

QUERIES_PART = "lineage:q"
#: Where a map-valued part of the lineage document goes: rows of (key, value).
MAP_COLUMNS = ("key", "value")
LIST_COLUMNS = ("value",)


def lineage_part(key: str) -> str:
    return f"lineage:{key}"


def run_lineage(ctx: StageContext) -> None:
    """Trace the seeds' genealogy; store the document and the lot list; size the job."""
    job, settings, store = ctx.job, ctx.settings, ctx.store
    direction = job.request.direction()
    seeds = seed_cids(ctx)
    graph = (
        trace_lineage(
            RecordingSource(ctx, QUERIES_PART),
            seeds,
            direction,
            max_depth=settings.lineage_max_depth,
        )
        if seeds
        else Lineage(direction, [], settings.lineage_max_depth)
    )
    cids = graph.all_cids()
    check_cid_limit(len(cids), job.request.profile, settings.max_cids(job.request.profile))
    store.write_rows(
        job.id, CIDS_PART, ("CONTAINERID",), ((c,) for c in cids), settings.in_list_size
    )
    scalars: dict[str, Any] = {}
    for key, value in graph.payload_parts():  # one part at a time: never the whole document
        if isinstance(value, dict):
            store.write_rows(
                job.id, lineage_part(key), MAP_COLUMNS, value.items(), settings.fetch_rows
            )
            scalars.setdefault("maps", []).append(key)
        elif isinstance(value, list):
            store.write_rows(
                job.id, lineage_part(key), LIST_COLUMNS, ((v,) for v in value), settings.fetch_rows
            )
            scalars.setdefault("lists", []).append(key)
        else:
            scalars[key] = value
        del value
    store.put_blob(job.id, "lineage", {**scalars, "direction": direction})
    queue = LARGE_QUEUE if len(cids) > settings.large_job_cids else QUEUE
    ctx.registry.update(job.id, cid_count=len(cids), queue=queue)
    ctx.registry.set_totals(job.id, events_totals(job, len(cids), settings.in_list_size))


def check_cid_limit(count: int, profile: str, limit: int) -> None:
    """Raise ``InvalidInput`` (``CID_LIMIT_EXCEEDED``, the contract's message) past ``limit``."""
    if count > limit:
        raise InvalidInput(
            f"container_ids count ({count}) exceeds limit ({limit})",
            field="container_ids",
            code="CID_LIMIT_EXCEEDED",
        )
