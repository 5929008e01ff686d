"""The glue between Dramatiq and the job steps, one ``Runtime`` per process (worker or API).

A ``Runtime`` holds what a process shares between its threads: the Redis client, the store, the
registry, the leases, the source and the dispatcher. ``Runtime.handle`` is what every actor
calls: it loads the job, skips work that is no longer wanted, holds a lease while the step runs,
turns errors into retries or failures, and hands the job on. Transient errors
(``SourceUnavailable``, a message over its time limit, anything unexpected) are raised for
Dramatiq to retry while retries are left, then fail the job (Redis away: retried until it
answers, the reaper resuming what Dramatiq gave up); permanent ones (``InvalidInput``,
``SourceQueryError``, too many attempts: a batch or a message whose worker died running it
``TRACE_BATCH_MAX_ATTEMPTS`` times) fail the job at once, or, in the events stage, only
the domain (the job then ends with ``EVENTS_PARTIAL_FAILURE``). Handing on after the work
(``_hand_on``) is guarded the same way, and a failure there fails the whole job.

Submitting (``engine/submission.py``), dead workers (``engine/reaper.py``, run by
``engine/middleware.py``) and the operator's retry and purge (``engine/operator.py``) are modules
of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.time_limit import TimeLimitExceeded

from pipeline import logs
from pipeline.config import Settings
from pipeline.engine import lifecycle, operator, options, submission
from pipeline.engine.broker import time_limit_seconds
from pipeline.engine.context import JobInactive, StageContext
from pipeline.engine.flow import advance, begin_analysis, events_settled, stage_settled
from pipeline.engine.job import EVENTS, Job
from pipeline.engine.leases import LeaseBook
from pipeline.engine.messages import BrokerDispatcher, Dispatcher, MessageKey
from pipeline.engine.registry import JobRegistry
from pipeline.engine.steps import STEPS
from pipeline.engine.store import CheckpointStore
from pipeline.errors import InternalError, TraceError
from pipeline.request import TraceRequest
from pipeline.sources import open_source
from pipeline.sources.base import Source

log = logging.getLogger(__name__)

#: The code of a failure nobody planned for (a bug); its message names the exception.
INTERNAL_ERROR = InternalError.code
#: The code of a message Dramatiq interrupted at its time limit (``time_limit_seconds``).
TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"


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

    def context(self, job: Job, *, resumed: bool = False) -> StageContext:
        return StageContext(
            job,
            self.store,
            self.registry,
            self.source,
            self.settings,
            self.dispatch,
            resumed=resumed,
        )

    # ---- what the API and the CLI ask of it (each in its own module) ----------------------------
    def submit(
        self,
        request: TraceRequest,
        *,
        fresh: bool = False,
        lineage: Mapping[str, Any] | None = None,
    ) -> tuple[Job, bool]:
        """``pipeline.engine.submission.submit`` with this runtime."""
        return submission.submit(self, request, fresh=fresh, lineage=lineage)

    def retry(self, job_id: str) -> bool:
        """``pipeline.engine.operator.retry`` with this runtime."""
        return operator.retry(self, job_id)

    def refresh_msd_options(self) -> None:
        """``pipeline.engine.options.refresh_options`` with this runtime (its actor's work)."""
        options.refresh_options(self.redis, self.source, self.settings)

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
        ctx = self.context(job, resumed=resumed)
        if key.stage in job.completed:  # a redelivery after the stage finished
            if resumed:
                self._guarded(ctx, key, lambda: advance(ctx, key.stage, resumed=True), whole=True)
            return
        if not self.registry.start_stage(job_id, key.stage):
            return
        with self.leases.hold(job_id, str(key)), logs.stage_context(key.stage):
            # This run counts as an attempt of the message; one its worker never ends (killed
            # in the work) is a death, and too many fail the job (``start_message``).
            attempt: list[str] = []
            self._guarded(ctx, key, lambda: attempt.append(ctx.start_message(key)))
            if not attempt:  # over the limit (the job failed), or no longer active
                return
            try:
                if self._guarded(ctx, key, lambda: STEPS[key.stage](ctx, key)):
                    # Handing on reads stored parts too (naming a trace reads its seeds): what
                    # fails there fails the job, never escapes to be retried and revived unseen.
                    self._guarded(ctx, key, lambda: self._hand_on(ctx, key, resumed), whole=True)
            finally:
                self._message_ended(ctx, attempt)

    def _hand_on(self, ctx: StageContext, key: MessageKey, resumed: bool) -> None:
        """After the work of ``key``: hand the job on once its stage is settled."""
        job_id = ctx.job.id
        if key.stage != EVENTS:
            if self.registry.state(job_id) == "started" and stage_settled(ctx, key.stage):
                advance(ctx, key.stage, resumed=resumed)
        elif events_settled(self.registry, self.store, ctx.job):
            advance(ctx, EVENTS, resumed=resumed)
        else:  # the analysis may begin once the domains it reads are in
            begin_analysis(ctx, resumed=resumed)

    def _guarded(
        self, ctx: StageContext, key: MessageKey, work: Callable[[], None], *, whole: bool = False
    ) -> bool:
        """Run ``work`` for message ``key``; False when the job stopped being active meanwhile.
        An error is raised again for Dramatiq to retry while the message has retries left
        (Redis away: always, the event to the log only); past them, or for an error no retry
        mends, it is given up here (``_give_up``; ``whole``: the job fails even in the events
        stage), never by Dramatiq: a message it drops unseen leaves the job started and quiet,
        and the reaper would revive it without end."""
        job_id = ctx.job.id
        try:
            work()
        except JobInactive:
            log.info("job %s: no longer active; %s stopped", job_id, key)
            return False
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._retrying(job_id, key, "SERVICE_UNAVAILABLE", f"Redis: {error}", log_only=True)
            raise
        except (TimeLimitExceeded, Exception) as error:
            code, reason, retryable, bad_input = self._failure(key, error)
            self._reported(ctx)
            if retryable and self._retries_left():
                if code == INTERNAL_ERROR:
                    log.exception("job %s: %s failed; it will be retried", job_id, key)
                self._retrying(job_id, key, code, reason)
                raise
            self._give_up(ctx, key, code, reason, bad_input=bad_input, whole=whole)
        return True

    def _failure(self, key: MessageKey, error: BaseException) -> tuple[str, str, bool, bool]:
        """What ``error`` in the work of ``key`` is: its code, its reason, whether a retry may
        mend it and whether the caller's input is at fault."""
        if isinstance(error, TimeLimitExceeded):
            limit = time_limit_seconds(self.settings, key.stage)
            return TIME_LIMIT_EXCEEDED, f"over {limit} s", True, False
        if isinstance(error, TraceError):
            return error.code, error.message, error.retryable, error.bad_input
        return INTERNAL_ERROR, f"{type(error).__name__}: {error}", True, False

    def _retrying(
        self, job_id: str, key: MessageKey, code: str, reason: str, *, log_only: bool = False
    ) -> None:
        """The ``retry`` event of a message Dramatiq is about to retry (``log_only``: Redis,
        where the event stream lives, is away)."""
        record = lifecycle.note if log_only else self.registry.announce
        record(lifecycle.RETRY, job_id, level=logging.WARNING, work=key, code=code, reason=reason)

    @staticmethod
    def _message_ended(ctx: StageContext, attempt: list[str]) -> None:
        """The message's attempt (``StageContext.start_message``; none: its start failed)
        ended with an outcome this worker saw: not a death."""
        try:
            for tag in attempt:
                ctx.message_ended(tag)
        except redis.RedisError as error:
            log.warning("job %s: the end of a message was not noted: %s", ctx.job.id, error)

    @staticmethod
    def _reported(ctx: StageContext) -> None:
        """The batch under way ended with an error this worker reports: not a crash, so it
        counts against the retry budget, not the attempt limit (``start_batch``)."""
        try:
            ctx.batch_ended()
        except redis.RedisError as error:
            log.warning("job %s: the end of a failed batch was not noted: %s", ctx.job.id, error)

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
        whole: bool = False,
    ) -> None:
        """Fail the job in ``key``'s stage with ``code`` (an events message: only its domain,
        unless ``whole``)."""
        job_id = ctx.job.id
        if key.stage == EVENTS and key.domain is not None and not whole:
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


def runtime_for(settings: Settings, broker: dramatiq.Broker) -> Runtime:
    """A runtime sending messages through ``broker``."""
    return Runtime(settings, BrokerDispatcher(broker))
