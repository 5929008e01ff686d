"""Fixtures of the engine tests: real Redis (databases 14 and 15, flushed around each test),
settings sized so a 3,000-lot warehouse makes many batches, and real ``dramatiq`` workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.config import Settings
from pipeline.engine.broker import make_broker
from pipeline.engine.job import QUEUES
from pipeline.engine.runtime import Runtime, runtime_for
from pipeline.tools.stack import WORKER, clean_env
from tests.engine.helpers import InlineDispatcher
from tests.support.redis_dbs import REDIS, clean_databases

ROOT = Path(__file__).resolve().parents[2]
STORE_DB, BROKER_DB = 14, 15

#: Settings of the engine tests, as environment variables (workers read them the same way).
ENGINE_ENV = {
    "TRACE_REDIS_URL": f"{REDIS}/{STORE_DB}",
    "TRACE_BROKER_URL": f"{REDIS}/{BROKER_DB}",
    "TRACE_IN_LIST_SIZE": "100",
    "TRACE_FETCH_ROWS": "400",
    "TRACE_EVENTS_GROUP_BATCHES": "3",
    "TRACE_MAX_RETRIES": "2",
    "TRACE_RETRY_MIN_BACKOFF_MS": "100",
    "TRACE_RETRY_MAX_BACKOFF_MS": "300",
    "TRACE_BATCH_MAX_ATTEMPTS": "3",
    "TRACE_HEARTBEAT_SECONDS": "1",
    "TRACE_STALL_SECONDS": "2",
    "TRACE_REAPER_INTERVAL_SECONDS": "1",
    "TRACE_JOB_TTL_SECONDS": "600",
    "TRACE_MESSAGE_TIME_LIMIT_SECONDS": "60",
}


@pytest.fixture
def engine_env(warehouse: Path) -> dict[str, str]:
    return {**ENGINE_ENV, "TRACE_SOURCE_URL": f"sqlite:///{warehouse}"}


@pytest.fixture
def settings(engine_env: dict[str, str]) -> Settings:
    return Settings.from_env(engine_env)


@pytest.fixture
def store_redis() -> Iterator[redis.Redis]:
    """The store's database (and the broker's), empty before and after the test."""
    yield from clean_databases(STORE_DB, BROKER_DB)


@pytest.fixture
def inline(settings: Settings, store_redis: redis.Redis) -> Runtime:
    """A runtime whose messages are kept in a list (``runtime.dispatch.run_all()`` runs them
    in this process): the engine's logic against real Redis, without a broker."""
    return Runtime(settings, InlineDispatcher())


@pytest.fixture
def runtime(settings: Settings, store_redis: redis.Redis) -> Runtime:
    """A runtime sending to the real broker (Redis database 15), as the API does."""
    return runtime_for(settings, make_broker(settings))


class Workers:
    """``ops/worker`` commands (``dramatiq pipeline.actors``) started by a test, with the
    fault-injecting source; each one's output in ``<log_dir>/worker-<n>.log``; all stopped at
    the test's end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self, *queues: str, processes: int = 1, threads: int = 2, **extra: str
    ) -> subprocess.Popen[bytes]:
        env = clean_env({**self.env, **extra})
        env.update(
            PYTHON=sys.executable,
            WORKER_MODULES="tests.support.faulty_worker",
            WORKER_PROCESSES=str(processes),
            WORKER_THREADS=str(threads),
            WORKER_QUEUES=" ".join(queues or QUEUES),
        )
        log = self.log_dir / f"worker-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(WORKER)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes every process
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole command (main and worker processes): nothing gets to clean up."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the main process passes it on
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def workers(
    engine_env: dict[str, str], store_redis: redis.Redis, tmp_path: Path
) -> Iterator[Workers]:
    pool = Workers(engine_env, tmp_path)
    yield pool
    pool.stop_all()
