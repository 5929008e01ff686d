"""The engine's Dramatiq middleware: in every worker process, the lease heartbeat and the
reaper, each a ticker thread started when the worker boots and stopped once it has shut down.

At boot the process says it is alive before Dramatiq calls it ready (the API, seeing no live
worker, would otherwise refuse work for a heartbeat interval after a start), and its first reaper
round runs at once (a command restarted after a crash resumes the dead work without waiting an
interval). At boot it also asks for a refresh of the MSD page's option lists when they are
missing or stale (``pipeline.engine.options``: one message whichever process boots first).
The heartbeat goes on while a stopping process finishes its running messages (a
graceful stop may take longer than ``TRACE_STALL_SECONDS``: their leases must not look dead), and
a clean stop takes the process off the live workers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import dramatiq
import redis
from dramatiq.middleware import Middleware

from pipeline.engine import options
from pipeline.engine.leases import Ticker
from pipeline.engine.messages import BrokerDispatcher
from pipeline.engine.reaper import reap

if TYPE_CHECKING:
    from pipeline.engine.runtime import Runtime

log = logging.getLogger(__name__)


class EngineMiddleware(Middleware):
    """Starts the heartbeat (every ``TRACE_HEARTBEAT_SECONDS``) and the reaper (every
    ``TRACE_REAPER_INTERVAL_SECONDS``) of one worker process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tickers: list[Ticker] = []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings, runtime = self.runtime.settings, self.runtime
        try:
            runtime.leases.renew()  # alive from boot, not from the first tick
        except redis.RedisError as error:
            log.warning("worker not registered at boot (Redis: %s); next heartbeat will", error)
        self.tickers = [
            Ticker("trace-heartbeat", settings.heartbeat_seconds, runtime.leases.renew),
            Ticker(
                "trace-reaper",
                settings.reaper_interval_seconds,
                lambda: reap(runtime),
                at_start=True,
            ),
        ]
        for ticker in self.tickers:
            ticker.start()
        try:
            send = BrokerDispatcher(broker).send_options_refresh
            options.refresh_if_due(runtime.redis, settings, send)
        except Exception as error:  # the options wait for the API's next ask; the worker runs
            log.warning("msd options: no refresh asked at boot: %s", error)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        for ticker in self.tickers:
            ticker.stop()
        try:
            self.runtime.leases.retire()
        except redis.RedisError as error:
            log.warning("worker not taken off the live workers (Redis: %s)", error)
