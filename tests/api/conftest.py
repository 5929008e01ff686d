"""Fixtures of the API tests: real Redis (databases 12 and 13, flushed around each test), the
demo warehouse, and an app whose jobs run in a thread of the test process (``ThreadDispatcher``:
the engine's real code, without a broker). End-to-end tests start gunicorn and dramatiq."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
import redis

from http_api.app import create_app
from http_api.services import Services
from pipeline.config import Settings
from pipeline.engine.job import Job
from pipeline.engine.leases import LeaseBook
from pipeline.engine.messages import MessageKey
from pipeline.engine.runtime import Runtime
from pipeline.sources import open_source
from tests.support.redis_dbs import REDIS, clean_databases

STORE_DB, BROKER_DB = 12, 13

#: Settings of the API tests, as environment variables (gunicorn and workers read them so).
API_ENV = {
    "TRACE_REDIS_URL": f"{REDIS}/{STORE_DB}",
    "TRACE_BROKER_URL": f"{REDIS}/{BROKER_DB}",
    "TRACE_IN_LIST_SIZE": "100",
    "TRACE_FETCH_ROWS": "400",
    "TRACE_EVENTS_GROUP_BATCHES": "3",
    "TRACE_HEARTBEAT_SECONDS": "1",
    "TRACE_STALL_SECONDS": "2",
    "TRACE_REAPER_INTERVAL_SECONDS": "1",
    "TRACE_JOB_TTL_SECONDS": "600",
    "TRACE_SYNC_WAIT_SECONDS": "30",
    # wait_status polls every 50 ms: on a busy machine a job outlasts the dashboard's 60 reads
    # per 60 s and the poll would get a 429. The guard tests set the limits they test.
    "TRACE_RATE_LIMIT_REQUESTS": "100000",
    "TRACE_RATE_LIMIT_PER_JOB_REQUESTS": "100000",
}

log = logging.getLogger(__name__)


class ThreadDispatcher:
    """Runs sent messages in one background thread, in order, as a worker would."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.todo: queue.Queue[tuple[str, MessageKey, bool] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="test-worker", daemon=True)
        self.thread.start()

    def beat(self) -> None:
        """A heartbeat, as every worker process sends (the API does not wait for a job that no
        worker would run)."""
        assert self.runtime is not None
        if self.thread.is_alive():
            LeaseBook(self.runtime.redis).renew()

    def __call__(self, job: Job, messages: Sequence[MessageKey], *, resumed: bool = False) -> None:
        self.beat()
        for key in messages:
            self.todo.put((job.id, key, resumed))

    def _run(self) -> None:
        while (item := self.todo.get()) is not None:
            job_id, key, resumed = item
            try:
                assert self.runtime is not None
                self.beat()
                self.runtime.handle(job_id, key, resumed=resumed)
            except Exception:
                log.exception("test worker: %s of %s failed", key, job_id)
            finally:
                self.todo.task_done()

    def drain(self) -> None:
        self.todo.join()

    def stop(self) -> None:
        self.todo.put(None)
        self.thread.join(timeout=10)


@pytest.fixture
def api_env(warehouse: Path) -> dict[str, str]:
    return {**API_ENV, "TRACE_SOURCE_URL": f"sqlite:///{warehouse}"}


@pytest.fixture
def api_redis() -> Iterator[redis.Redis]:
    """The store's database (and the broker's), empty before and after the test."""
    yield from clean_databases(STORE_DB, BROKER_DB)


AppFactory = Callable[..., tuple[falcon.testing.TestClient, Services]]


@pytest.fixture
def make_app(
    api_env: dict[str, str], api_redis: redis.Redis, warehouse: Path
) -> Iterator[AppFactory]:
    """``make_app(**env)``: a test client and its services, with extra ``TRACE_*`` settings."""
    dispatchers: list[ThreadDispatcher] = []

    def build(**env: Any) -> tuple[falcon.testing.TestClient, Services]:
        settings = Settings.from_env({**api_env, **{k: str(v) for k, v in env.items()}})
        dispatcher = ThreadDispatcher()
        dispatchers.append(dispatcher)
        runtime = Runtime(settings, dispatcher, open_source(settings))
        dispatcher.runtime = runtime
        dispatcher.beat()
        services = Services(settings, runtime, None, lambda: open_source(settings))
        return falcon.testing.TestClient(create_app(settings, services)), services

    yield build
    for dispatcher in dispatchers:
        dispatcher.stop()


@pytest.fixture
def api(make_app: AppFactory) -> tuple[falcon.testing.TestClient, Services]:
    return make_app()


@pytest.fixture
def client(api: tuple[falcon.testing.TestClient, Services]) -> falcon.testing.TestClient:
    return api[0]
