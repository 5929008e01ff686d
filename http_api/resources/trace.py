"""The staged endpoints (``seed-resolve``, ``lineage``, ``events``) and ``POST /api/trace/jobs``.

Each request becomes a job for the workers (the web process never queries the warehouse). A
request under its threshold waits for its job (``TRACE_SYNC_WAIT_SECONDS``) and answers 200 with
the result, streamed from the checkpoints; a bigger one, or one whose job is not done in time,
answers 202 with the job's urls (seed-resolve, which the contract gives no 202, answers 503
``SEED_RESOLVE_FAILED`` with ``Retry-After`` instead: asking again joins the same job). The same
request again is served by the same job (dedupe) unless the body says ``"fresh": true``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import falcon
import orjson

from http_api.body import bad_params, read_json
from http_api.errors import ApiError, api_error, error_status
from http_api.results import result_document
from http_api.services import Services
from pipeline.engine.job import AGGREGATION, FINISHED, QUEUED, Job
from pipeline.engine.status import contract_state
from pipeline.request import EVENTS, LINEAGE, SEED_RESOLVE, TRACE, TraceRequest
from pipeline.stages import seed_resolve

#: The contract's code for a seed-resolve or lineage call that failed on the service's side.
STAGE_FAILURES = {SEED_RESOLVE: "SEED_RESOLVE_FAILED", LINEAGE: "LINEAGE_FAILED"}


def job_links(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "status_url": f"/api/trace/job/{job.id}",
        "stream_url": f"/api/trace/job/{job.id}/stream",
        "result_url": f"/api/trace/job/{job.id}/result",
    }


class _Submit:
    """What every submitting endpoint shares."""

    rate_bucket = "submit"

    def __init__(self, services: Services) -> None:
        self.services = services

    def body(self, req: falcon.Request) -> dict[str, Any]:
        return read_json(req, self.services.settings.max_body_bytes)

    @staticmethod
    def prefers_async(req: falcon.Request) -> bool:
        """``Prefer: respond-async`` (RFC 7240): the client polls the job itself (202 at once,
        whatever the request's size), e.g. to show its progress."""
        prefer = req.get_header("Prefer") or ""
        return any(p.split("=")[0].strip().lower() == "respond-async" for p in prefer.split(","))

    def accepted(
        self, req: falcon.Request, resp: falcon.Response, wait: bool | None
    ) -> bool | None:
        """``wait``, unless the client asked for 202 with ``Prefer: respond-async``."""
        if self.prefers_async(req):
            resp.set_header("Preference-Applied", "respond-async")
            return False
        return wait

    def answer(
        self,
        resp: falcon.Response,
        request: TraceRequest,
        body: dict[str, Any],
        *,
        wait: bool | None,
        lineage: dict[str, Any] | None = None,
    ) -> None:
        """Submit ``request`` and answer: with ``wait`` its result (200) if its job finishes
        in time, else 202 (``None``: wait when the job's lots are under the threshold)."""
        fresh = body.get("fresh", False)
        if not isinstance(fresh, bool):
            raise bad_params("fresh must be true or false")
        job, _created = self.services.runtime.submit(request, fresh=fresh, lineage=lineage)
        settings = self.services.settings
        if wait is None:  # lots known only now (another job's lineage): small ones wait
            job = self.services.runtime.registry.load(job.id) or job
            wait = job.cid_count <= settings.async_cid_threshold
        if wait and settings.sync_wait_seconds > 0:
            job = self.services.wait_for(job, settings.sync_wait_seconds)
        if wait and job.state == FINISHED:
            resp.status = falcon.HTTP_200
            resp.content_type = falcon.MEDIA_JSON
            resp.stream = result_document(self.services, job, None, 0, 0)
            return
        if wait and job.error:  # the request failed in the workers: say why, as a sync call would
            raise self.failure(request, job.error)
        if request.job_kind == SEED_RESOLVE:  # the contract knows no 202 here
            raise self.unfinished_seed_resolve(job)
        resp.status = falcon.HTTP_202
        resp.media = {
            "success": True,
            "data": {
                "stage": request.job_kind if request.job_kind != TRACE else "trace",
                "async": True,
                "status": contract_state(job.state),
                **job_links(job),
            },
        }

    def failure(self, request: TraceRequest, error: dict[str, Any]) -> ApiError:
        """The error answer of a job that failed. A seed-resolve or lineage call that failed on
        our side (not its input) is the contract's ``SEED_RESOLVE_FAILED``/``LINEAGE_FAILED``,
        an events call whose aggregation failed ``EVENTS_AGGREGATION_FAILED`` (the old system's):
        503 with ``Retry-After`` when the warehouse or Redis was away, else 500 (400 for bad
        input); the job's own code is in ``meta.cause``."""
        code, message = error["code"], error["message"]
        retry_after = self.services.settings.retry_after_seconds
        bad_input = bool(error.get("input"))
        if request.job_kind == EVENTS and error.get("stage") == AGGREGATION:
            stage_code: str | None = "EVENTS_AGGREGATION_FAILED"  # the old system's (400/503)
        else:  # bad input keeps its own code (INVALID_PARAMS, ...)
            stage_code = None if bad_input else STAGE_FAILURES.get(request.job_kind)
        if stage_code is None:
            return api_error(code, message, bad_input=bad_input, retry_after=retry_after)
        return api_error(
            stage_code,
            message,
            bad_input=bad_input,
            retry_after=retry_after,
            status=error_status(code, bad_input),  # the cause's: 503 for a service away
            meta={"cause": code},
        )

    def unfinished_seed_resolve(self, job: Job) -> ApiError:
        """A seed-resolve not done in time (or with no worker to run it): 503
        ``SEED_RESOLVE_FAILED`` with ``Retry-After``. The job goes on: the same request again
        joins it and answers at once when it is done."""
        why = (
            "no worker is running"
            if job.state == QUEUED and not self.services.workers_alive()
            else f"it is still {job.state} after {self.services.settings.sync_wait_seconds} s"
        )
        return api_error(
            "SEED_RESOLVE_FAILED",
            f"seed-resolve did not finish: {why}; ask again later (the same request joins "
            f"job {job.id})",
            bad_input=False,
            retry_after=self.services.settings.retry_after_seconds,
            status=falcon.HTTP_503,
            meta={"job_id": job.id, "job_status": contract_state(job.state)},
        )


def _request(body: dict[str, Any], **extra: Any) -> TraceRequest:
    return TraceRequest.from_dict({**body, **extra})


class SeedResolveResource(_Submit):
    """``POST /api/trace/seed-resolve``: seeds from lot names, work orders, ... or a station
    and date range (mid-section-defect)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        settings = self.services.settings
        params = body.get("params") or {}
        seed_resolve.check_request(
            body.get("profile"),  # type: ignore[arg-type]
            params,
            min_prefix=settings.resolve_min_prefix,
            max_days=settings.msd_max_days,
        )
        request = _request({"profile": body.get("profile"), "params": params}, kind=SEED_RESOLVE)
        self.answer(resp, request, body, wait=True)


class LineageResource(_Submit):
    """``POST /api/trace/lineage``: the genealogy around the given lots (202 past
    ``TRACE_LINEAGE_ASYNC_SEEDS`` lots, or asked with ``Prefer: respond-async``)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        if not body.get("container_ids"):
            raise bad_params("container_ids is missing or empty")
        request = _request(
            {k: body.get(k) for k in ("profile", "params", "container_ids")}, kind=LINEAGE
        )
        small = len(request.container_ids) <= self.services.settings.lineage_async_seeds
        self.answer(resp, request, body, wait=self.accepted(req, resp, small))


class EventsResource(_Submit):
    """``POST /api/trace/events``: the events of the given lots per domain (202 past
    ``TRACE_ASYNC_CID_THRESHOLD`` lots, or asked with ``Prefer: respond-async``). A
    mid-section-defect request with its detection lots (``seed_container_ids``) and their
    lineage (``lineage`` map, or ``lineage_job_id``) also gets the aggregation."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        if not body.get("container_ids") and not body.get("lineage_job_id"):
            raise bad_params("container_ids is missing or empty")
        if not body.get("domains"):
            raise bad_params("domains is missing or empty")
        lineage = body.get("lineage")
        if lineage is not None and not isinstance(lineage, dict):
            raise bad_params("lineage must be an object")
        fields = {
            k: body.get(k)
            for k in (
                "profile",
                "params",
                "container_ids",
                "domains",
                "seed_container_ids",
                "lineage_job_id",
            )
        }
        digest = _digest(lineage) if lineage else ""
        request = _request(fields, kind=EVENTS, lineage_digest=digest)
        small = len(request.container_ids) <= self.services.settings.async_cid_threshold
        wait = small if request.container_ids else None
        self.answer(resp, request, body, wait=self.accepted(req, resp, wait), lineage=lineage)


class JobsResource(_Submit):
    """``POST /api/trace/jobs``: a whole trace from seeds (seed-resolve -> lineage -> events ->
    aggregation) in the workers; always 202."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req)
        settings = self.services.settings
        seed_resolve.check_request(
            body.get("profile"),  # type: ignore[arg-type]
            body.get("params") or {},
            min_prefix=settings.resolve_min_prefix,
            max_days=settings.msd_max_days,
        )
        request = _request({k: body.get(k) for k in ("profile", "params", "domains")}, kind=TRACE)
        self.answer(resp, request, body, wait=False)


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
