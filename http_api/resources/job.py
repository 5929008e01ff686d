"""``/api/trace/job/{id}``: status (GET), cancel (DELETE), ``/result`` pages, ``/stream``."""

from __future__ import annotations

import falcon

from http_api.models.answers import JobResult
from http_api.models.queries import ResultQuery, StreamQuery
from http_api.models.stream_lines import StreamLine
from http_api.operation import NDJSON, Answer, Operation, operation
from http_api.resources.base import Resource
from http_api.results import expired, refuse_damaged, result_document
from http_api.services import Services
from http_api.stream import Cursor, JobStream
from pipeline.engine import job_ids, keys
from pipeline.engine.documents import JobStatus
from pipeline.engine.job import FINISHED, Job
from pipeline.engine.status import contract_state, job_status
from pipeline.errors import (
    InvalidInput,
    JobLost,
    JobNotCancellable,
    JobNotComplete,
    JobNotFound,
    ResultDamaged,
    ResultExpired,
    ServiceUnavailable,
    TraceError,
)

#: The errors every job endpoint may answer (besides its rate limit and the token).
JOB_ERRORS = (JobNotFound, JobLost, ServiceUnavailable)


def load_job(services: Services, job_id: str, *, for_result: bool = False) -> Job:
    """The job, or: 410 ``JOB_LOST`` when its id says it is younger than the job TTL (its keys
    vanished before they could expire: submit again); 404 ``JOB_NOT_FOUND``, or for a result
    whose job expired (the index still names it) ``JOB_RESULT_EXPIRED``."""
    job = services.runtime.registry.load(job_id) if len(job_id) <= 64 else None
    if job is not None:
        return job
    raise missing(services, job_id, for_result=for_result)


def missing(services: Services, job_id: str, *, for_result: bool = False) -> TraceError:
    """Why job ``job_id`` is not there (``load_job``'s errors)."""
    if job_ids.lost(job_id, services.settings.job_ttl_seconds):
        return JobLost.of(job_id)
    if for_result and services.redis.zscore(keys.RECENT, job_id) is not None:
        return expired(job_id)
    return JobNotFound(f"job {job_id} not found or expired")


def not_complete(job: Job) -> JobNotComplete:
    return JobNotComplete(
        f"job {job.id} has not completed (it is {job.state})",
        meta={"job_status": contract_state(job.state)},
    )


class JobResource(Resource):
    """``GET``: the contract's status document (plus per-stage progress); ``DELETE``: cancel."""

    tag = "jobs"
    rate_bucket = "job"

    @operation(
        Operation(
            "getJob",
            "A job's status (the dashboard polls it until finished or failed).",
            {200: Answer("The status.", JobStatus)},
            errors=JOB_ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        registry = self.services.runtime.registry
        # the job, its counters and domain states in one round trip: the dashboard polls this
        job, counters, states = (
            registry.load_with_progress(job_id) if len(job_id) <= 64 else (None, {}, {})
        )
        if job is None:
            raise missing(self.services, job_id)
        max_rows = self.services.settings.max_rows_per_domain
        status = job_status(job, registry, max_rows, counters=counters, states=states)
        resp.media = {"success": True, "data": status}

    @operation(
        Operation(
            "cancelJob",
            "Cancel a queued or started job (its checkpoints are released).",
            {200: Answer("Cancelled: the status afterwards.", JobStatus)},
            errors=(*JOB_ERRORS, JobNotCancellable),
        )
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        registry = self.services.runtime.registry
        state = registry.cancel(job.id)
        if state is None:
            raise JobNotFound(f"job {job_id} not found or expired")
        if state != "cancelled":  # cancelling a cancelled job again is fine (idempotent)
            raise JobNotCancellable(
                f"job {job.id} is {state}: only queued or started jobs can be cancelled",
                meta={"job_status": contract_state(state)},
            )
        fresh = registry.load(job.id) or job
        max_rows = self.services.settings.max_rows_per_domain
        resp.media = {"success": True, "data": job_status(fresh, registry, max_rows)}


class JobResultResource(Resource):
    """``GET .../result?domain=&offset=&limit=``: pages of a finished job (``limit=0``: all)."""

    tag = "jobs"
    rate_bucket = "job"

    @operation(
        Operation(
            "getJobResult",
            "A finished job's result (events: a page of each domain).",
            {200: Answer("The result document of the job's kind.", JobResult)},
            query=ResultQuery,
            errors=(InvalidInput, *JOB_ERRORS, ResultExpired, ResultDamaged, JobNotComplete),
        )
    )
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, job_id: str, query: ResultQuery
    ) -> None:
        job = load_job(self.services, job_id, for_result=True)
        if job.state != FINISHED:
            raise not_complete(job)
        refuse_damaged(self.services, job)
        resp.content_type = falcon.MEDIA_JSON
        resp.stream = result_document(self.services, job, query.domain, query.offset, query.limit)


class JobStreamResource(Resource):
    """``GET .../stream[?follow=1][&from=domain:batch]``: NDJSON (see ``http_api.stream``)."""

    tag = "jobs"
    rate_bucket = "job"

    @operation(
        Operation(
            "streamJob",
            "A finished job's result as NDJSON (with `follow`, a running one's).",
            {
                200: Answer(
                    "NDJSON: one StreamLine per line.",
                    StreamLine,
                    media=NDJSON,
                    enveloped=False,
                    headers=("Cache-Control", "X-Accel-Buffering"),
                )
            },
            description="Domains come in the request's order. A finished job's result with a "
            "piece gone is refused before the first byte (410 JOB_RESULT_DAMAGED). A failure "
            "mid-stream ends with an `error` line instead of `complete` (`JOB_LOST` when a "
            "followed job's keys vanish before its TTL: submit it again).",
            query=StreamQuery,
            errors=(InvalidInput, *JOB_ERRORS, ResultExpired, ResultDamaged, JobNotComplete),
        )
    )
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, job_id: str, query: StreamQuery
    ) -> None:
        job = load_job(self.services, job_id, for_result=True)
        cursor = None
        if query.start is not None:
            try:
                cursor = Cursor.parse(query.start, job)
            except ValueError as error:
                raise InvalidInput(str(error), field="from") from None
        if job.state != FINISHED and not (query.follow and job.active):
            raise not_complete(job)
        if job.state == FINISHED:
            refuse_damaged(self.services, job)
        resp.content_type = NDJSON
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = iter(
            JobStream(self.services, job, follow=query.follow, cursor=cursor, records=query.records)
        )
