"""Submitting a request: the job that serves it (an equal one, or a new one), its inputs written
and its first stage sent to the workers (``Runtime.submit``, the API's and the CLI's entry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from pipeline.engine import lifecycle, parts
from pipeline.engine.flow import dispatch_stage, events_spans, events_totals, fix_group_size
from pipeline.engine.inputs import write_inputs
from pipeline.engine.job import EVENTS, LARGE_QUEUE, LINEAGE, QUEUE, Job
from pipeline.engine.store import ChunkLost
from pipeline.errors import (
    InvalidInput,
    LineageJobNotFound,
    LineageJobNotReady,
    ServiceUnavailable,
    TraceError,
)
from pipeline.identities import trace_query_id
from pipeline.request import TraceRequest, check_cid_limit

if TYPE_CHECKING:
    from pipeline.engine.runtime import Runtime


def submit(
    runtime: Runtime,
    request: TraceRequest,
    *,
    fresh: bool = False,
    lineage: Mapping[str, Any] | None = None,
) -> tuple[Job, bool]:
    """The job for ``request``: the running or finished one for the same request (unless
    ``fresh``), or a new one whose first stage is sent to the workers. Returns the job and
    whether it is new. ``lineage`` is a dashboard's inline lineage map (an events request of a
    mid-section-defect analysis); its digest must be in ``request.lineage_digest``.

    An analysis's ``lineage_query_id`` is looked up first (``with_stored_lineage``).

    Raises ``InvalidInput`` for a bad request (``CidLimitExceeded`` past the profile's limit,
    ``LineageJobNotFound``/``LineageJobNotReady`` for a ``lineage_job_id`` that cannot serve)
    and ``ServiceUnavailable`` when Redis or the broker is down (the job then fails at once).

    A stored trace found whole that loses a piece before this job has linked it (``ChunkLost``:
    a manifest evicted in between) is marked damaged, never reused again, and the request is
    submitted as it came: it fetches its own events rather than fail.
    """
    request.check(runtime.settings)  # refused up front, not in the job
    try:
        reusing = with_stored_trace(runtime, request, fresh=fresh)
    except redis.RedisError as error:
        raise ServiceUnavailable(f"the job store cannot be reached: {error}") from error
    stored = reusing.events_of if reusing is not request else None
    if stored:
        try:
            return _submit(runtime, reusing, fresh=fresh, lineage=lineage)
        except ChunkLost as lost:  # the failed job says why; the trace is set aside
            runtime.registry.mark_damaged(stored, lost.message)
    return _submit(runtime, request, fresh=fresh, lineage=lineage)


def _submit(
    runtime: Runtime,
    request: TraceRequest,
    *,
    fresh: bool,
    lineage: Mapping[str, Any] | None,
) -> tuple[Job, bool]:
    """``submit`` of ``request`` as it is (a stored trace already chosen or not)."""
    settings, registry = runtime.settings, runtime.registry
    try:
        request = with_stored_lineage(runtime, request)
        count = len(request.container_ids)
        if request.lineage_job_id:
            count = _lineage_job_lots(runtime, request.lineage_job_id, count)
            check_cid_limit(count, request.profile, settings)
        queue = LARGE_QUEUE if count > settings.large_job_cids else QUEUE
        job, created = registry.submit(request, fresh=fresh, queue=queue)
        if not created:
            return job, False
        try:
            cids = write_inputs(
                runtime.store,
                job,
                batch_size=settings.fetch_rows,
                in_list_size=settings.in_list_size,
                lineage=lineage,
            )
        except TraceError as error:  # e.g. an earlier job's part gone (ChunkLost): the job
            # would wait for inputs it never gets, and an equal request would join it
            registry.fail(
                job.id, None, error.code, error.message, bad_input=isinstance(error, InvalidInput)
            )
            raise
        if request.from_cids:
            if cids != job.cid_count:
                registry.update(job.id, cid_count=cids)
            totals = events_totals(job, cids, settings)
            fix_group_size(registry, job.id, max(totals.values(), default=0), settings)
            registry.set_totals(job.id, totals, events_spans(job, settings))
        # Recorded before the first message goes out: a fast worker's stage_started must not
        # come first in the job's event log.
        registry.announce(
            lifecycle.ACCEPTED,
            job.id,
            profile=request.profile,
            kind=request.job_kind,
            lots=count or None,  # CIDs given (or of the lineage job); seeds are counted later
            seeds=len(request.params.values or ()) or None,
            queue=job.queue,
        )
    except redis.RedisError as error:
        raise ServiceUnavailable(f"the job store cannot be reached: {error}") from error
    try:
        dispatch_stage(runtime.context(job), job.stages[0])
    except TraceError as error:  # not the broker: a stage handed on at once failed (a
        # re-analysis's events, linked, finish here), and says why
        registry.fail(job.id, None, error.code, error.message)
        raise
    except Exception as error:
        registry.fail(job.id, None, ServiceUnavailable.code, "the broker is unavailable")
        raise ServiceUnavailable(f"the broker cannot be reached: {error}") from error
    return job, True


def with_stored_lineage(runtime: Runtime, request: TraceRequest) -> TraceRequest:
    """An analysis that brings no lineage but names one by ``lineage_query_id`` reads it from
    that lineage's job when it is finished and whole (its lots become the events' lots, its
    maps the analysis's); otherwise the request is left to walk the lineage itself."""
    if not (request.expands_lineage and request.lineage_query_id):
        return request
    stored = runtime.registry.stored_lineage(request.lineage_query_id)
    if stored is None or stored.query_id != request.lineage_id():
        return request  # unknown, expired, unfinished, damaged, or not these seeds' lineage
    return request.model_copy(update={"lineage_job_id": stored.id, "container_ids": ()})


def with_stored_trace(runtime: Runtime, request: TraceRequest, *, fresh: bool) -> TraceRequest:
    """An analysis of a trace that a finished job already fetched (the same ``trace_query_id``:
    seeds, dates, stations, direction; another mask, or the same one after the reuse window)
    re-runs the analysis alone: it takes that job's seeds, lineage and lots, and links its
    committed events in place (``CheckpointStore.link_part``), so its events stage finds every
    batch committed and the warehouse is asked only the analysis's own queries. ``fresh``
    asks for the warehouse again: the request is left as it is."""
    if fresh or not (request.aggregates and request.seed_container_ids) or request.events_of:
        return request
    if request.lineage_job_id or request.lineage_digest:
        return request  # the caller brings its own lineage: it is what it asks to analyse
    identity = trace_query_id(request.profile, request.seed_container_ids, request.params)
    stored = runtime.registry.stored_trace(identity)
    if stored is None or not stored.request.aggregates:
        return request
    return request.model_copy(
        update={"lineage_job_id": stored.id, "container_ids": (), "events_of": stored.id}
    )


def _lineage_job_lots(runtime: Runtime, lineage_job_id: str, given: int) -> int:
    """The lots of the job named by ``lineage_job_id`` (its lineage must be complete; the
    ``given`` lots when there are some); its keys get a fresh TTL, as the new job will read
    them."""
    source = runtime.registry.load(lineage_job_id)
    if source is None:
        raise LineageJobNotFound(
            f"lineage job {lineage_job_id} not found or expired", field="lineage_job_id"
        )
    if LINEAGE not in source.completed and EVENTS not in source.completed:
        raise LineageJobNotReady(
            f"lineage job {source.id} has no finished lineage (it is {source.state})",
            field="lineage_job_id",
        )
    runtime.store.touch(source.id)
    if given:
        return given
    stored = runtime.registry.progress(source.id).get(parts.rows(parts.CIDS))
    if stored is None and source.cid_count:
        # Its lots were never stored where this version reads them (a job of an older version)
        # or are gone: copying nothing would analyse no lot and look complete.
        raise LineageJobNotReady(
            f"lineage job {source.id} has no stored lot list; run its lineage again",
            field="lineage_job_id",
        )
    return stored or 0
