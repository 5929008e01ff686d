"""``/api/trace/job/{id}``: status (GET), cancel (DELETE), ``/result`` pages, ``/stream``."""

from __future__ import annotations

import falcon

from http_api.body import bad_params, flag_param, int_param
from http_api.errors import ApiError
from http_api.results import check_domain, expired, result_document
from http_api.services import Services
from http_api.stream import Cursor, JobStream
from pipeline.engine import keys
from pipeline.engine.job import FINISHED, Job
from pipeline.engine.status import contract_state, job_status

NDJSON = "application/x-ndjson"


def load_job(services: Services, job_id: str, *, for_result: bool = False) -> Job:
    """The job, or 404: ``JOB_NOT_FOUND``, or for a result whose job expired (the index still
    names it) ``JOB_RESULT_EXPIRED``."""
    job = services.runtime.registry.load(job_id) if len(job_id) <= 64 else None
    if job is not None:
        return job
    if for_result and services.redis.zscore(keys.RECENT, job_id) is not None:
        raise expired(job_id)
    raise ApiError(falcon.HTTP_404, "JOB_NOT_FOUND", f"job {job_id} not found or expired")


def not_complete(job: Job) -> ApiError:
    return ApiError(
        falcon.HTTP_409,
        "JOB_NOT_COMPLETE",
        f"job {job.id} has not completed (it is {job.state})",
        meta={"job_status": contract_state(job.state)},
    )


class JobResource:
    """``GET``: the contract's status document (plus per-stage progress); ``DELETE``: cancel."""

    rate_bucket = "job"

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        resp.media = {"success": True, "data": job_status(job, self.services.runtime.registry)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        registry = self.services.runtime.registry
        state = registry.cancel(job.id)
        if state is None:
            raise ApiError(falcon.HTTP_404, "JOB_NOT_FOUND", f"job {job_id} not found or expired")
        if state != "cancelled":  # cancelling a cancelled job again is fine (idempotent)
            raise ApiError(
                falcon.HTTP_409,
                "JOB_NOT_CANCELLABLE",
                f"job {job.id} is {state}: only queued or started jobs can be cancelled",
                meta={"job_status": contract_state(state)},
            )
        fresh = registry.load(job.id) or job
        resp.media = {"success": True, "data": job_status(fresh, registry)}


class JobResultResource:
    """``GET .../result?domain=&offset=&limit=``: pages of a finished job (``limit=0``: all)."""

    rate_bucket = "job"

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        domain = check_domain(req.get_param("domain"))
        offset = int_param(req, "offset", 0)
        limit = int_param(req, "limit", 0)
        job = load_job(self.services, job_id, for_result=True)
        if job.state != FINISHED:
            raise not_complete(job)
        resp.content_type = falcon.MEDIA_JSON
        resp.stream = result_document(self.services, job, domain, offset, limit)


class JobStreamResource:
    """``GET .../stream[?follow=1][&from=domain:batch]``: NDJSON (see ``http_api.stream``)."""

    rate_bucket = "job"

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        follow = flag_param(req, "follow")
        job = load_job(self.services, job_id, for_result=True)
        cursor = None
        if req.get_param("from"):
            try:
                cursor = Cursor.parse(req.get_param("from") or "", job)
            except ValueError as error:
                raise bad_params(str(error)) from None
        if job.state != FINISHED and not (follow and job.active):
            raise not_complete(job)
        resp.content_type = NDJSON
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = iter(JobStream(self.services, job, follow=follow, cursor=cursor))
