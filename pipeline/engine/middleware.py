"""The engine's Dramatiq middleware: in every worker process, the lease heartbeat and the
reaper, each a ticker thread started when the worker boots and stopped when it shuts down."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dramatiq
from dramatiq.middleware import Middleware

from pipeline.engine.leases import Ticker
from pipeline.engine.reaper import reap

if TYPE_CHECKING:
    from pipeline.engine.runtime import Runtime


class EngineMiddleware(Middleware):
    """Starts the heartbeat (every ``TRACE_HEARTBEAT_SECONDS``) and the reaper (every
    ``TRACE_REAPER_INTERVAL_SECONDS``) of one worker process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tickers: list[Ticker] = []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings, runtime = self.runtime.settings, self.runtime
        self.tickers = [
            Ticker("trace-heartbeat", settings.heartbeat_seconds, runtime.leases.renew),
            Ticker("trace-reaper", settings.reaper_interval_seconds, lambda: reap(runtime)),
        ]
        for ticker in self.tickers:
            ticker.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        for ticker in self.tickers:
            ticker.stop()
