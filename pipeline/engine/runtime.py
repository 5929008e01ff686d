"""The glue between Dramatiq and the stage functions, one ``Runtime`` per worker process.

``Runtime.handle`` is what every actor calls: it loads the job, skips work that is no longer
wanted, holds a lease while the stage function runs, turns errors into retries or failures, and
hands the job on. Transient errors (``SourceUnavailable``, Redis hiccups, anything unexpected) are
raised for Dramatiq to retry while retries are left; permanent ones (``InvalidInput``,
``SourceQueryError``, too many attempts) fail the job at once, or, in the events stage, only the
domain (the job then ends with ``EVENTS_PARTIAL_FAILURE``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq.middleware.time_limit import TimeLimitExceeded

from pipeline import logs
from pipeline.config import Settings
from pipeline.engine import lifecycle, parts
from pipeline.engine.context import JobInactive, StageContext
from pipeline.engine.flow import (
    advance,
    dispatch_stage,
    events_settled,
    events_totals,
    resume,
)
from pipeline.engine.inputs import write_inputs
from pipeline.engine.job import AGGREGATION, EVENTS, LARGE_QUEUE, LINEAGE, QUEUE, SEED_RESOLVE, Job
from pipeline.engine.leases import LeaseBook, Ticker, resend_stale, take_reaper_lock
from pipeline.engine.messages import BrokerDispatcher, Dispatcher, MessageKey
from pipeline.engine.registry import JobRegistry
from pipeline.engine.steps.aggregation_step import run_aggregation
from pipeline.engine.steps.events_step import run_events_group
from pipeline.engine.steps.lineage_step import run_lineage
from pipeline.engine.steps.seed_step import run_seed_resolve
from pipeline.engine.store import CheckpointStore
from pipeline.errors import (
    LineageJobNotFound,
    LineageJobNotReady,
    ServiceUnavailable,
    TraceError,
)
from pipeline.request import TraceRequest, check_cid_limit
from pipeline.sources import open_source
from pipeline.sources.base import Source

log = logging.getLogger(__name__)

#: The code of a failure nobody planned for (a bug); its message names the exception.
INTERNAL_ERROR = "INTERNAL_ERROR"


class Runtime:
    """What one worker process shares between its threads: Redis, the source, the dispatcher."""

    def __init__(
        self, settings: Settings, dispatch: Dispatcher, source: Source | None = None
    ) -> None:
        self.settings = settings
        self.dispatch = dispatch
        self._source = source
        self._lock = threading.Lock()

    @cached_property
    def redis(self) -> redis.Redis:
        timeout = self.settings.redis_timeout_seconds  # a Redis that stops answering is an error
        return redis.Redis.from_url(
            self.settings.redis_url,
            health_check_interval=30,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )

    @cached_property
    def store(self) -> CheckpointStore:
        return CheckpointStore(self.redis, self.settings.job_ttl_seconds)

    @cached_property
    def registry(self) -> JobRegistry:
        return JobRegistry(
            self.redis,
            self.store,
            max_events=self.settings.event_log_max,
            reuse_seconds=self.settings.result_reuse_seconds,
        )

    @cached_property
    def leases(self) -> LeaseBook:
        return LeaseBook(self.redis)

    def use_source(self, source: Source) -> None:
        """Read from ``source`` instead of the one ``TRACE_SOURCE_URL`` names (a worker plugin
        module can wrap the warehouse this way, e.g. to inject faults in tests)."""
        with self._lock:
            self._source = source

    @property
    def source(self) -> Source:
        with self._lock:  # opened on first use, in the worker process (after the fork)
            if self._source is None:
                self._source = open_source(self.settings)
            return self._source

    def context(self, job: Job) -> StageContext:
        return StageContext(
            job, self.store, self.registry, self.source, self.settings, self.dispatch
        )

    # ---- one message -----------------------------------------------------------------------
    def handle(self, job_id: str, key: MessageKey, *, resumed: bool = False) -> None:
        """Run the work ``key`` of job ``job_id``; see the module docstring for errors. Every
        line logged meanwhile carries the job id (``pipeline.logs``)."""
        with logs.job_context(job_id):
            self._handle(job_id, key, resumed=resumed)

    def _handle(self, job_id: str, key: MessageKey, *, resumed: bool) -> None:
        job = self.registry.load(job_id)
        if job is None:
            log.warning("job %s: gone (expired or purged); %s dropped", job_id, key)
            return
        if not job.active:
            log.info("job %s: %s; %s not needed", job_id, job.state, key)
            return
        ctx = self.context(job)
        if key.stage in job.completed:  # a redelivery after the stage finished
            if resumed:
                advance(ctx, key.stage, resumed=True)
            return
        if not self.registry.start_stage(job_id, key.stage):
            return
        with self.leases.hold(job_id, str(key)), logs.stage_context(key.stage):
            try:
                STEPS[key.stage](ctx, key)
            except JobInactive:
                log.info("job %s: no longer active; %s stopped", job_id, key)
                return
            except TraceError as error:
                if error.retryable and self._retries_left():
                    self._retrying(job_id, key, error.code, error.message)
                    raise
                self._give_up(ctx, key, error.code, error.message, bad_input=error.bad_input)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                # The store is away: the event reaches the log only; Dramatiq retries.
                self._retrying(job_id, key, "SERVICE_UNAVAILABLE", f"Redis: {error}", log_only=True)
                raise
            except TimeLimitExceeded:
                limit = self.settings.message_time_limit_seconds
                self._retrying(job_id, key, "TIME_LIMIT_EXCEEDED", f"over {limit} s")
                raise
            except Exception as error:
                if self._retries_left():
                    log.exception("job %s: %s failed; it will be retried", job_id, key)
                    self._retrying(job_id, key, INTERNAL_ERROR, f"{type(error).__name__}: {error}")
                    raise
                self._give_up(ctx, key, INTERNAL_ERROR, f"{type(error).__name__}: {error}")
            if key.stage != EVENTS:
                if self.registry.state(job_id) == "started":
                    advance(ctx, key.stage, resumed=resumed)
            elif events_settled(self.registry, self.store, ctx.job):
                advance(ctx, EVENTS, resumed=resumed)

    def _retrying(
        self, job_id: str, key: MessageKey, code: str, reason: str, *, log_only: bool = False
    ) -> None:
        """The ``retry`` event of a message Dramatiq is about to retry (``log_only``: Redis,
        where the event stream lives, is away)."""
        record = lifecycle.note if log_only else self.registry.announce
        record(lifecycle.RETRY, job_id, level=logging.WARNING, work=key, code=code, reason=reason)

    def _retries_left(self) -> bool:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else 0
        return bool(retries < self.settings.max_retries)

    def _give_up(
        self,
        ctx: StageContext,
        key: MessageKey,
        code: str,
        message: str,
        *,
        bad_input: bool = False,
    ) -> None:
        job_id = ctx.job.id
        if key.stage == EVENTS and key.domain is not None:
            if self.registry.mark_domain(job_id, key.domain, "failed", code, message):
                self.registry.announce(
                    lifecycle.DOMAIN_FAILED,
                    job_id,
                    level=logging.ERROR,
                    domain=key.domain,
                    code=code,
                    reason=message,
                )
            return
        self.registry.fail(job_id, key.stage, code, message, bad_input=bad_input)

    # ---- submitting -----------------------------------------------------------------------
    def submit(
        self,
        request: TraceRequest,
        *,
        fresh: bool = False,
        lineage: Mapping[str, Any] | None = None,
    ) -> tuple[Job, bool]:
        """The job for ``request``: the running or finished one for the same request (unless
        ``fresh``), or a new one whose first stage is sent to the workers. Returns the job and
        whether it is new. ``lineage`` is a dashboard's inline lineage map (an events request
        of a mid-section-defect analysis); its digest must be in ``request.lineage_digest``.

        Raises ``InvalidInput`` for a bad request (``CID_LIMIT_EXCEEDED`` past the profile's
        limit, ``LINEAGE_JOB_NOT_FOUND``/``LINEAGE_JOB_NOT_READY`` for a ``lineage_job_id`` that
        cannot serve) and ``ServiceUnavailable`` when Redis or the broker is down.
        """
        settings = self.settings
        request.check(settings)  # refused up front, not in the job
        count = len(request.container_ids)
        try:
            if request.lineage_job_id:
                count = self._check_lineage_job(request.lineage_job_id, count)
                check_cid_limit(count, request.profile, settings)
            queue = LARGE_QUEUE if count > settings.large_job_cids else QUEUE
            job, created = self.registry.submit(request, fresh=fresh, queue=queue)
            if not created:
                return job, False
            ctx = self.context(job)
            cids = write_inputs(
                self.store,
                job,
                batch_size=settings.fetch_rows,
                in_list_size=settings.in_list_size,
                lineage=lineage,
            )
            if request.from_cids:
                if cids != job.cid_count:
                    self.registry.update(job.id, cid_count=cids)
                self.registry.set_totals(job.id, events_totals(job, cids, settings))
        except redis.RedisError as error:
            raise ServiceUnavailable(f"the job store cannot be reached: {error}") from error
        try:
            dispatch_stage(ctx, job.stages[0])
        except Exception as error:
            self.registry.fail(job.id, None, ServiceUnavailable.code, "the broker is unavailable")
            raise ServiceUnavailable(f"the broker cannot be reached: {error}") from error
        self.registry.announce(
            lifecycle.ACCEPTED,
            job.id,
            profile=request.profile,
            kind=request.job_kind,
            lots=count or None,  # CIDs given (or of the lineage job); seeds are counted later
            seeds=len(request.params.values or ()) or None,
            queue=job.queue,
        )
        return job, True

    def _check_lineage_job(self, lineage_job_id: str, given: int) -> int:
        """The lots of the job named by ``lineage_job_id`` (its lineage must be complete; the
        ``given`` lots when there are some); its keys get a fresh TTL, as the new job will read
        them."""
        source = self.registry.load(lineage_job_id)
        if source is None:
            raise LineageJobNotFound(
                f"lineage job {lineage_job_id} not found or expired", field="lineage_job_id"
            )
        if LINEAGE not in source.completed:
            raise LineageJobNotReady(
                f"lineage job {source.id} has no finished lineage (it is {source.state})",
                field="lineage_job_id",
            )
        self.store.touch(source.id)
        if given:
            return given
        return self.registry.progress(source.id).get(parts.rows(parts.CIDS), 0) or source.cid_count

    # ---- dead workers ----------------------------------------------------------------------
    def resend(self, job_id: str, message_key: str) -> bool:
        """Send a stalled message again (the reaper); False when the job no longer wants it."""
        job = self.registry.load(job_id)
        if job is None or not job.active:
            return False
        self.dispatch(job, [MessageKey.parse(message_key)], resumed=True)
        self.registry.seen(job_id)  # not quiet: its work was just sent again
        return True

    def reap(self) -> int:
        """One reaper round: resend the work of dead workers (stale leases), then revive jobs
        that went quiet with no work held at all. Returns the messages/jobs sent again."""
        settings = self.settings
        if not take_reaper_lock(self.leases, settings.reaper_interval_seconds):
            return 0  # another worker reaps this round
        return resend_stale(self.leases, settings.stall_seconds, self.resend) + (
            self.revive_quiet_jobs()
        )

    def revive_quiet_jobs(self) -> int:
        """Jobs with no lease anywhere and no sign of life for ``TRACE_STALL_SECONDS`` lost
        their messages (a killed worker had prefetched them, not started them, so no lease
        covered them): send again whatever their current stage still needs.

        A job that is merely waiting in a busy queue looks the same, so each revival doubles
        the quiet time the next one needs (stall, 2 x stall, 4 x ...): duplicates stay few and
        are harmless (committed batches are skipped).
        """
        now = time.time()
        quiet = self.registry.quiet_jobs(now - self.settings.stall_seconds)
        if not quiet:
            return 0
        busy = self.leases.jobs_with_leases()
        revived = 0
        for job_id, last_seen in quiet:
            if job_id in busy:
                continue
            job = self.registry.load(job_id)
            if job is None or not job.active:
                self.registry.forget_running(job_id)
                continue
            revivals = self.registry.revivals(job_id)
            if now - last_seen < self.settings.stall_seconds * 2**revivals:
                continue
            self.registry.note_revival(job_id, now)
            log.warning(
                "job %s: quiet for %.0f s with no work held; resumed",
                job_id,
                now - last_seen,
                extra={"job_id": job_id},
            )
            resume(self.context(job))
            revived += 1
        return revived

    def retry(self, job_id: str) -> bool:
        """Operator retry: a failed job goes back to queued and resumes at its failed stage,
        keeping finished stages and batches. False when the job is not failed."""
        if not self.registry.reopen(job_id):
            return False
        job = self.registry.load(job_id)
        if job is None:
            return False
        resume(self.context(job))
        return True


def _seed_resolve(ctx: StageContext, key: MessageKey) -> None:
    run_seed_resolve(ctx)


def _lineage(ctx: StageContext, key: MessageKey) -> None:
    run_lineage(ctx)


def _events(ctx: StageContext, key: MessageKey) -> None:
    assert key.domain is not None and key.group is not None
    run_events_group(ctx, key.domain, key.group)


def _aggregation(ctx: StageContext, key: MessageKey) -> None:
    run_aggregation(ctx)


STEPS = {
    SEED_RESOLVE: _seed_resolve,
    LINEAGE: _lineage,
    EVENTS: _events,
    AGGREGATION: _aggregation,
}


class EngineMiddleware(Middleware):
    """Starts, in every worker process, the lease heartbeat and the reaper."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tickers: list[Ticker] = []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings, runtime = self.runtime.settings, self.runtime
        self.tickers = [
            Ticker("trace-heartbeat", settings.heartbeat_seconds, runtime.leases.renew),
            Ticker("trace-reaper", settings.reaper_interval_seconds, runtime.reap),
        ]
        for ticker in self.tickers:
            ticker.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        for ticker in self.tickers:
            ticker.stop()


def runtime_for(settings: Settings, broker: dramatiq.Broker) -> Runtime:
    """A runtime sending messages through ``broker``."""
    return Runtime(settings, BrokerDispatcher(broker))
