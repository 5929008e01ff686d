"""``/api/ops/``: what operators (and the monitor page) read and do besides cancelling a job
(``DELETE /api/trace/job/{id}``): the job list, a job's stage timeline, retry and purge, and the
overview of workers, queues, Redis and stalled jobs.

Reads count against the job reads' rate limit (bucket ``job``; a job's timeline also against the
per-job one), retry and purge against the submissions' (bucket ``submit``). Every answer is
enveloped; errors go through ``http_api.errors`` like every other.
"""

from __future__ import annotations

import falcon
import redis

from http_api.models.answers import JobList, Purged, RetryAccepted
from http_api.models.queries import OpsJobsQuery
from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from http_api.resources.job import JOB_ERRORS, load_job
from pipeline.engine import lifecycle, operator
from pipeline.engine.job_list import list_jobs
from pipeline.engine.overview import Overview, overview
from pipeline.engine.status import contract_state
from pipeline.engine.timeline import Timeline, timeline
from pipeline.errors import (
    InvalidInput,
    JobNotPurgeable,
    JobNotRetryable,
    ServiceUnavailable,
    TraceError,
)


class OpsJobsResource(Resource):
    """``GET /api/ops/jobs?state=&profile=&max_age_seconds=&limit=``."""

    rate_bucket = "job"

    @operation(
        Operation(
            "listOpsJobs",
            "Jobs, newest first, filtered by state, profile and age.",
            {200: Answer("Up to `limit` jobs (maybe none).", JobList)},
            description="Each line: kind, profile, state, current stage, lots, rows, creation "
            "time, elapsed seconds, quality (`complete`, `partial` (also while running), "
            "`truncated`, `failed`), queue and error. Expired jobs are left out.",
            query=OpsJobsQuery,
            errors=(InvalidInput, ServiceUnavailable),
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, query: OpsJobsQuery) -> None:
        settings = self.services.settings
        jobs = list_jobs(
            self.services.runtime.registry,
            settings.max_rows_per_domain,
            state=query.state,
            profile=query.profile,
            max_age_seconds=query.max_age_seconds,
            limit=query.limit,
        )
        answer: JobList = {"jobs": jobs}
        resp.media = {"success": True, "data": answer}


class OpsJobResource(Resource):
    """``GET /api/ops/jobs/{job_id}``: the stage timeline."""

    rate_bucket = "job"

    @operation(
        Operation(
            "getOpsJob",
            "A job's stage timeline: per stage (events per domain) state, times, seconds, "
            "batches, rows, retried batches; the error; quality; key TTLs.",
            {200: Answer("The timeline.", Timeline)},
            errors=JOB_ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        registry = self.services.runtime.registry
        document = timeline(job, registry, self.services.settings.max_rows_per_domain)
        resp.media = {"success": True, "data": document}


class OpsRetryResource(Resource):
    """``POST /api/ops/jobs/{job_id}/retry``."""

    rate_bucket = "submit"

    @operation(
        Operation(
            "retryOpsJob",
            "Retry a failed job (or a finished one with failed domains) from where it failed.",
            {202: Answer("Queued again: follow it at `status_url`.", RetryAccepted)},
            description="Finished stages and committed batches are kept; the failed stage (the "
            "failed domains' uncommitted batches) runs again, and the job's keys get a fresh "
            "TTL. 409 `JOB_NOT_RETRYABLE` for a job that is neither failed nor partly failed.",
            errors=(*JOB_ERRORS, JobNotRetryable),
        )
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        registry = self.services.runtime.registry
        try:
            retried = self.services.runtime.retry(job.id)
        except (redis.RedisError, TraceError):
            raise
        except Exception as error:  # the broker: the job is queued, the reaper sends it later
            raise ServiceUnavailable(
                f"the broker cannot be reached ({error}); the job is queued again and the "
                "reaper sends its work once the broker answers"
            ) from error
        if not retried:
            state = registry.state(job.id) or job.state
            raise JobNotRetryable(
                f"job {job.id} is {state}: only a failed job, or a finished one with failed "
                "domains, can be retried",
                meta={"job_id": job.id, "job_status": contract_state(state)},
            )
        answer: RetryAccepted = {
            "job_id": job.id,
            "state": "queued",  # as the retry left it (a worker may have started it since)
            "status_url": f"/api/trace/job/{job.id}",
            "timeline_url": f"/api/ops/jobs/{job.id}",
        }
        resp.status = falcon.HTTP_202
        resp.media = {"success": True, "data": answer}


class OpsPurgeResource(Resource):
    """``POST /api/ops/jobs/{job_id}/purge``."""

    rate_bucket = "submit"

    @operation(
        Operation(
            "purgeOpsJob",
            "Release every key of an ended job (finished, failed or cancelled).",
            {200: Answer("Purged: the keys released.", Purged)},
            description="`UNLINK`s the job's keys and its hash and drops it from the indexes; "
            "the job is gone afterwards (its id answers 410 `JOB_LOST` until its TTL would "
            "have passed). 409 `JOB_NOT_PURGEABLE` for a queued or started job: cancel it "
            "first.",
            errors=(*JOB_ERRORS, JobNotPurgeable),
        )
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = load_job(self.services, job_id)
        if job.active:
            raise JobNotPurgeable(
                f"job {job.id} is {job.state}: cancel it first (DELETE /api/trace/job/{job.id})",
                meta={"job_id": job.id, "job_status": contract_state(job.state)},
            )
        runtime = self.services.runtime
        released = operator.purge(runtime, job.id)
        runtime.registry.announce(lifecycle.PURGED, job.id, why="operator", keys=released)
        answer: Purged = {"job_id": job.id, "released_keys": released}
        resp.media = {"success": True, "data": answer}


class OpsOverviewResource(Resource):
    """``GET /api/ops/overview``."""

    rate_bucket = "job"

    @operation(
        Operation(
            "getOpsOverview",
            "Workers seen, queue depths, Redis memory and eviction policy, stalled jobs.",
            {200: Answer("The overview.", Overview)},
            description="Workers: every process of the heartbeat set, `alive` within "
            "TRACE_STALL_SECONDS. Queues: ready, delayed and dead-lettered messages per job "
            "queue (null when the broker cannot say, with `detail`). Stalled jobs: active jobs "
            "with no sign of life for longer than `resume_bound_seconds`.",
            errors=(ServiceUnavailable,),
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        services = self.services
        answer = overview(services.redis, services.broker, services.settings)
        resp.media = {"success": True, "data": answer}
