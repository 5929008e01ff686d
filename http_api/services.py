"""What the API's resources share: the engine runtime (Redis, store, registry, a dispatcher to
the broker), the broker itself (readiness), and the warehouse only for ``/readyz``.

The web process never queries the warehouse for a trace: every request that needs data becomes a
job that the workers run; the API reads the job's checkpoints (and the MSD page's option lists,
which a worker keeps in Redis: ``msd_options``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dramatiq
import redis

from pipeline.config import Settings
from pipeline.engine import lifecycle, options
from pipeline.engine.broker import make_broker
from pipeline.engine.job import ACTIVE, QUEUED, Job
from pipeline.engine.messages import BrokerDispatcher
from pipeline.engine.metrics import live_workers
from pipeline.engine.options import OptionsDocument
from pipeline.engine.results import ResultReader
from pipeline.engine.runtime import Runtime
from pipeline.sources import open_source
from pipeline.sources.base import Source

#: How often a request waiting for a job looks at it without being woken (seconds): one HGET
#: per look. The job's end wakes the wait at once (its event in the job event log, which the
#: wait blocks on between looks); the looks are the net for an event that never came.
LOOK_EVERY_SECONDS = 0.25
#: Events read per wake (any job's: each wake is one look at the waited job's state).
WAKE_EVENTS = 1000

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The API's dependencies, built once per process (``from_settings``) or given by tests."""

    settings: Settings
    runtime: Runtime
    broker: dramatiq.Broker | None = None
    open_source: Callable[[], Source] | None = None
    #: Sends one message asking a worker to refresh the MSD option lists (the broker's, by
    #: default; tests give their own); ``None``: nobody to ask, the lists stay as they are.
    send_options_refresh: Callable[[], None] | None = None
    _source: Source | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        broker = make_broker(settings)
        dispatcher = BrokerDispatcher(broker)
        runtime = Runtime(settings, dispatcher)
        return cls(
            settings,
            runtime,
            broker,
            lambda: open_source(settings),
            send_options_refresh=dispatcher.send_options_refresh,
        )

    @property
    def redis(self) -> redis.Redis:
        return self.runtime.redis

    @property
    def results(self) -> ResultReader:
        """The reader of jobs' results (result pages, streams)."""
        runtime = self.runtime
        return ResultReader(runtime.store, runtime.registry, self.settings.max_rows_per_domain)

    def source(self) -> Source | None:
        """The warehouse, opened on first use (``/readyz`` only)."""
        if self.open_source is None:
            return None
        with self._lock:
            if self._source is None:
                self._source = self.open_source()
            return self._source

    def msd_options(self) -> OptionsDocument | None:
        """The MSD page's cached option lists (``None`` when cold); when they are missing or
        stale, a worker is asked to refresh them (once: ``pipeline.engine.options``)."""
        document = options.read(self.redis)  # Redis away: a 503, like every request
        if self.send_options_refresh is not None:
            try:
                options.refresh_if_due(
                    self.redis, self.settings, self.send_options_refresh, document
                )
            except Exception as error:  # the broker away: answer what there is, ask next time
                log.warning("msd options: no refresh asked: %s", error)
        return document

    def workers_alive(self) -> bool:
        """Whether some worker process sent a heartbeat within ``TRACE_STALL_SECONDS`` (a worker
        registers when it boots, then every ``TRACE_HEARTBEAT_SECONDS``)."""
        return live_workers(self.redis, self.settings.stall_seconds) > 0

    def wait_for(self, job: Job, seconds: float, *, look_every: float = LOOK_EVERY_SECONDS) -> Job:
        """``job`` once it left queued/started, or as it is after ``seconds``: answered as the
        job ends, woken by any new entry of the job event log (``lifecycle.read``, blocking up
        to ``look_every`` seconds between looks at the job's state). A queued job with no live
        worker process is given up on early, but only after no worker was seen for
        ``TRACE_HEARTBEAT_SECONDS`` (looking again meanwhile): workers started with the API
        register as they boot, and a request must not be refused while they do. Redis errors
        pass through (the API answers 503)."""
        registry, client = self.runtime.registry, self.redis
        deadline = time.monotonic() + seconds
        no_worker_until: float | None = None  # when we stop waiting for a worker to appear
        newest = lifecycle.latest(client, 1)  # events after this one wake the wait
        after = newest[-1][0] if newest else "0-0"
        state: str | None = registry.state(job.id)
        while state in ACTIVE:  # one HGET per look; the job is loaded once, at the end
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                break
            if state == QUEUED and not self.workers_alive():
                if no_worker_until is None:
                    no_worker_until = now + self.settings.heartbeat_seconds
                elif now >= no_worker_until:
                    break
            else:
                no_worker_until = None
            block_ms = max(1, int(min(look_every, left) * 1000))  # never 0: "forever" to Redis
            woken = lifecycle.read(client, after, count=WAKE_EVENTS, block_ms=block_ms)
            if woken:
                after = woken[-1][0]
            state = registry.state(job.id)
        return registry.load(job.id) or job
