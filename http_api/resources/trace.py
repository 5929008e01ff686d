"""The staged endpoints (``seed-resolve``, ``lineage``, ``events``) and ``POST /api/trace/jobs``.

Each request becomes a job for the workers (the web process never queries the warehouse). A
request under its threshold waits for its job (``TRACE_SYNC_WAIT_SECONDS``) and answers 200 with
the result, streamed from the checkpoints; a bigger one, or one whose job is not done in time,
answers 202 with the job's urls (``async: true`` and ``status_url``: the July client follows
exactly those, for every stage, and reads ``{status_url}/result``). A seed-resolve with no worker
alive answers 503 ``SEED_RESOLVE_FAILED`` with ``Retry-After`` instead (asking again joins the
same job). The same request again is served by the same job (dedupe) unless the body says
``"fresh": true``.
"""

from __future__ import annotations

from typing import Any

import falcon

from http_api.models.answers import AcceptedJob, EventsResult, LineageResult, SeedResolveResult
from http_api.models.queries import SubmitHeaders
from http_api.models.requests import (
    EventsRequest,
    LineageRequest,
    SeedResolveRequest,
    TraceJobRequest,
)
from http_api.operation import Answer, ErrorSpec, Operation, operation
from http_api.resources.base import Resource
from http_api.results import refuse_damaged, result_document
from pipeline.engine.job import AGGREGATION, FINISHED, Job
from pipeline.engine.status import contract_state
from pipeline.errors import (
    AggregationFailed,
    CidLimitExceeded,
    InternalError,
    InvalidInput,
    InvalidProfile,
    LineageFailed,
    LineageJobNotFound,
    LineageJobNotReady,
    NoDetectionRecords,
    PayloadTooLarge,
    ResultDamaged,
    SeedResolveFailed,
    ServiceUnavailable,
    TraceError,
)
from pipeline.request import EVENTS, LINEAGE, SEED_RESOLVE, TRACE, Kind, TraceRequest

SYNC = (
    " A request under its size threshold waits for its job up to TRACE_SYNC_WAIT_SECONDS and "
    "answers 200 with the result; a bigger or slower one answers 202 with the job's urls. An "
    "equal request is served by the same job unless `fresh` is true."
)
#: What every submission may answer besides its own errors.
SUBMIT_ERRORS: tuple[ErrorSpec, ...] = (
    InvalidInput,
    ResultDamaged,
    InvalidProfile,
    PayloadTooLarge,
    CidLimitExceeded,
    InternalError,
    ServiceUnavailable,
)
ACCEPTED = Answer("Accepted: the job runs in the workers.", AcceptedJob, job_links=True)


def accepted_job(stage: Kind, job: Job) -> AcceptedJob:
    """The 202 answer: the job and where to follow it (the July client reads a seed-resolve or
    lineage result from ``{status_url}/result``, an events one from ``stream_url``). A
    lineage's carries its ``query_id`` already (the client keeps it from here when the result
    has none)."""
    answer: AcceptedJob = {
        "stage": stage,
        "async": True,
        "status": contract_state(job.state),
        "job_id": job.id,
        "status_url": f"/api/trace/job/{job.id}",
        "stream_url": f"/api/trace/job/{job.id}/stream",
        "result_url": f"/api/trace/job/{job.id}/result",
    }
    if job.query_id and stage == LINEAGE:
        answer["query_id"] = job.query_id
    if rows_unread(job.request):
        answer["stream_url"] += "?records=0"
    return answer


def rows_unread(request: TraceRequest) -> bool:
    """An analysis asked as the July client asks it (its seeds alone, maybe with
    ``lineage_query_id``): that client keeps every streamed row in the browser and never reads
    one (UTP:490-496), so its stream is offered without them. February clients (a lineage map
    or ``lineage_job_id``) keep the rows."""
    return request.aggregates and bool(request.lineage_query_id or request.expands_lineage)


class _Submit(Resource):
    """What every submitting endpoint shares: submit, wait (or not), answer."""

    tag = "trace"
    rate_bucket = "submit"

    def answer(
        self,
        resp: falcon.Response,
        request: TraceRequest,
        *,
        fresh: bool,
        wait: bool | None,
        lineage: dict[str, Any] | None = None,
    ) -> None:
        """Submit ``request`` and answer: with ``wait`` its result (200) if its job finishes
        in time, else 202 (``None``: wait when the job's lots are under the threshold)."""
        runtime, settings = self.services.runtime, self.services.settings
        job, _created = runtime.submit(request, fresh=fresh, lineage=lineage)
        if wait is None:  # lots known only now (another job's lineage): small ones wait
            job = runtime.registry.load(job.id) or job
            wait = job.cid_count <= settings.async_cid_threshold
        if wait and settings.sync_wait_seconds > 0:
            job = self.services.wait_for(job, settings.sync_wait_seconds)
        if wait and job.state == FINISHED:
            refuse_damaged(self.services, job)
            resp.status = falcon.HTTP_200
            resp.content_type = falcon.MEDIA_JSON
            resp.stream = result_document(
                self.services, job, None, 0, 0, rows=not rows_unread(job.request)
            )
            return
        if wait and job.error:  # the request failed in the workers: say why, as a sync call would
            raise failure(request, job.error)
        if request.job_kind == SEED_RESOLVE and not self.services.workers_alive():
            raise self.unfinished_seed_resolve(job)
        resp.status = falcon.HTTP_202
        resp.media = {"success": True, "data": accepted_job(request.job_kind, job)}

    def wait_unless_async(
        self, resp: falcon.Response, headers: SubmitHeaders, wait: bool | None
    ) -> bool | None:
        """``wait``, unless the client asked for 202 with ``Prefer: respond-async``."""
        if headers.respond_async:
            resp.set_header("Preference-Applied", "respond-async")
            return False
        return wait

    def unfinished_seed_resolve(self, job: Job) -> SeedResolveFailed:
        """A seed-resolve with no worker process to run it: 503 ``SEED_RESOLVE_FAILED`` with
        ``Retry-After`` (a 202 would have the client poll a job nothing runs). The job stays
        queued: the same request again joins it, and a worker that starts runs it."""
        return SeedResolveFailed(
            f"seed-resolve cannot run: no worker is running; ask again later (the same request "
            f"joins job {job.id})",
            status=503,
            meta={"job_id": job.id, "job_status": contract_state(job.state)},
        )


def failure(request: TraceRequest, error: dict[str, Any]) -> TraceError:
    """The answer of a job that failed. A seed-resolve or lineage that failed on our side (not
    its input) is the contract's ``SEED_RESOLVE_FAILED``/``LINEAGE_FAILED``, an events call
    whose aggregation failed ``EVENTS_AGGREGATION_FAILED`` (the old system's), each with the
    status of its cause and the job's own code in ``meta.cause``; anything else is the job's
    own error."""
    cause = TraceError.from_code(
        error["code"], error["message"], bad_input=bool(error.get("input"))
    )
    if request.job_kind == EVENTS and error.get("stage") == AGGREGATION:
        return AggregationFailed.because(cause)
    stage_failed = {SEED_RESOLVE: SeedResolveFailed, LINEAGE: LineageFailed}
    if cause.bad_input or request.job_kind not in stage_failed:
        return cause
    return stage_failed[request.job_kind].because(cause)


class SeedResolveResource(_Submit):
    """``POST /api/trace/seed-resolve``: seeds from lot names, work orders, ... or a station
    and date range (mid-section-defect)."""

    @operation(
        Operation(
            "seedResolve",
            "Stage 1: the seed lots.",
            {
                200: Answer("The job finished in time: its result.", SeedResolveResult),
                202: ACCEPTED,
            },
            description="Seeds from lot ids, work orders, wafer lots, serial numbers, GD orders "
            "or ids; mid_section_defect also from the detection lots at the stations in a date "
            "range, or (`mode: container`) the containers named that were detected at the "
            "stations: none detected is 404 NO_DETECTION_RECORDS. It waits for its job up to "
            "TRACE_SYNC_WAIT_SECONDS and answers 200; a resolve not done by then answers 202 "
            "(`async`, `status_url`: the result is at `{status_url}/result` once the status is "
            "finished). With no worker running it answers 503 SEED_RESOLVE_FAILED with "
            "Retry-After (the same request again joins the job). A failure of the service is "
            "SEED_RESOLVE_FAILED (`meta.cause`: the job's code): 503 when the warehouse was "
            "away, else 500.",
            body=SeedResolveRequest,
            errors=(
                *SUBMIT_ERRORS,
                NoDetectionRecords,
                (SeedResolveFailed, 500),
                (SeedResolveFailed, 503),
            ),
        )
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, body: SeedResolveRequest) -> None:
        self.answer(resp, body.trace_request(), fresh=body.fresh, wait=True)


class LineageResource(_Submit):
    """``POST /api/trace/lineage``: the genealogy around the given lots (202 past
    ``TRACE_LINEAGE_ASYNC_SEEDS`` lots, or asked with ``Prefer: respond-async``)."""

    @operation(
        Operation(
            "lineage",
            "Stage 2: the genealogy of the given lots.",
            {
                200: Answer("The job finished in time: its result.", LineageResult),
                202: ACCEPTED,
            },
            description="Past TRACE_LINEAGE_ASYNC_SEEDS lots it always answers 202. A failure "
            "of the service is LINEAGE_FAILED (`meta.cause`: the job's code): 503 when the "
            "warehouse was away, else 500." + SYNC,
            body=LineageRequest,
            headers=SubmitHeaders,
            errors=(*SUBMIT_ERRORS, (LineageFailed, 500), (LineageFailed, 503)),
        )
    )
    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        body: LineageRequest,
        headers: SubmitHeaders,
    ) -> None:
        request = body.trace_request()
        small = len(request.container_ids) <= self.services.settings.lineage_async_seeds
        wait = self.wait_unless_async(resp, headers, small)
        self.answer(resp, request, fresh=body.fresh, wait=wait)


class EventsResource(_Submit):
    """``POST /api/trace/events``: the events of the given lots per domain (202 past
    ``TRACE_ASYNC_CID_THRESHOLD`` lots, or asked with ``Prefer: respond-async``). A
    mid-section-defect request with its detection lots (``seed_container_ids``) and their
    lineage (``lineage`` map, or ``lineage_job_id``) also gets the aggregation."""

    @operation(
        Operation(
            "events",
            "Stage 3: the events of the given lots per domain.",
            {
                200: Answer("The job finished in time: its result.", EventsResult),
                202: ACCEPTED,
            },
            description="Past TRACE_ASYNC_CID_THRESHOLD lots it always answers 202. A "
            "mid_section_defect request with its detection lots also gets the aggregation; an "
            "aggregation that failed is EVENTS_AGGREGATION_FAILED (`meta.cause`: the job's "
            "code): 503 when the warehouse was away, 400 for bad input, else 500." + SYNC,
            body=EventsRequest,
            headers=SubmitHeaders,
            errors=(
                *SUBMIT_ERRORS,
                LineageJobNotFound,
                LineageJobNotReady,
                (AggregationFailed, 400),
                (AggregationFailed, 500),
                (AggregationFailed, 503),
            ),
        )
    )
    def on_post(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        body: EventsRequest,
        headers: SubmitHeaders,
    ) -> None:
        request = body.trace_request()
        small = len(request.container_ids) <= self.services.settings.async_cid_threshold
        wait = self.wait_unless_async(resp, headers, small if request.container_ids else None)
        inline = body.inline_lineage()
        lineage = inline.maps() if inline is not None else None
        self.answer(resp, request, fresh=body.fresh, wait=wait, lineage=lineage)


class JobsResource(_Submit):
    """``POST /api/trace/jobs``: a whole trace from seeds (seed-resolve -> lineage -> events ->
    aggregation) in the workers; always 202."""

    @operation(
        Operation(
            "submitTrace",
            "A whole trace from seeds, in the workers (always 202).",
            {202: ACCEPTED},
            description="seed-resolve, lineage, events and (mid_section_defect) the aggregation.",
            body=TraceJobRequest,
            errors=SUBMIT_ERRORS,
        )
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, body: TraceJobRequest) -> None:
        request = body.trace_request()
        assert request.job_kind == TRACE
        self.answer(resp, request, fresh=body.fresh, wait=False)
