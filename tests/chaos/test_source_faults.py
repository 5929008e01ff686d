"""Source faults on the real stack (worker processes, Redis broker, a Redis of the test's own):
a blip is retried and changes nothing; an outage past the retry budget fails the job with
``SOURCE_UNAVAILABLE`` in its stage, and ``jobs retry`` after recovery finishes it with the
result of an undisturbed run, asking nothing again for a batch already committed; a query that
outlasts the source's timeout is retried like a blip.

The outage is real: the test holds an exclusive lock on (a copy of) the warehouse file, so the
workers' queries wait out SQLite's busy timeout (5 s, the source's call timeout) and fail with
"database is locked", as an Oracle query fails with its call timeout (``DPY-4024``).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.broker import make_broker
from pipeline.engine.job import EVENTS, FAILED, FINISHED, LINEAGE, Job
from pipeline.engine.runtime import Runtime, runtime_for
from pipeline.request import TraceRequest
from pipeline.sources.sqlite import SqliteSource
from pipeline.tools.stack import clean_env
from tests.chaos.conftest import ROOT, RedisServer
from tests.chaos.reliability import Trial, scale
from tests.engine.conftest import ENGINE_ENV, Workers
from tests.engine.helpers import wait_ended, wait_for
from tests.engine.test_workers import assert_same_result, expected_result
from tests.support.faults import FAULTS_KEY

#: A mid-section-defect trace of about 1,200 lots: ~12 input batches per domain.
MSD = TraceRequest(
    profile="mid_section_defect",
    params={"station": "測試", "start_date": "2026-03-01", "end_date": "2026-06-30"},
)
#: The retry budget of the full suite is the default one (1 + 3 starts of a message, each
#: waiting out the 5 s busy timeout); CI's subset allows one retry to stay short.
RETRIES = scale(1, 3)
#: Input batches per events message: CI's fewer, larger messages wait out fewer busy timeouts.
GROUP_BATCHES = scale(6, 3)


@pytest.fixture
def copy_of_warehouse(warehouse: Path, tmp_path: Path) -> Path:
    """The session's warehouse, copied: a lock on it holds up this test's workers only."""
    path = tmp_path / "dwh.db"
    shutil.copyfile(warehouse, path)
    return path


@pytest.fixture
def env(private_redis: Callable[..., RedisServer], copy_of_warehouse: Path) -> dict[str, str]:
    server = private_redis()
    return {
        **ENGINE_ENV,
        "TRACE_REDIS_URL": f"{server.url}/0",
        "TRACE_BROKER_URL": f"{server.url}/1",
        "TRACE_SOURCE_URL": f"sqlite:///{copy_of_warehouse}",
        "TRACE_MAX_RETRIES": str(RETRIES),
        "TRACE_BATCH_MAX_ATTEMPTS": "3",
        "TRACE_EVENTS_GROUP_BATCHES": str(GROUP_BATCHES),
    }


@pytest.fixture
def runtime(env: dict[str, str]) -> Runtime:
    settings = Settings.from_env(env)
    return runtime_for(settings, make_broker(settings))


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the warehouse file while the block runs: every reader waits out its
    busy timeout, then fails with "database is locked" (a transient source error)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"  # WAL lets readers in
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def under_way_in_events(runtime: Runtime, workers: Workers, delay_ms: int) -> Job:
    """A worker started and the trace submitted, every query slowed by ``delay_ms`` so a fault
    finds it mid-stage; returns once lineage has ended and an events batch is committed."""
    runtime.redis.hset(FAULTS_KEY, "delay_ms", delay_ms)
    workers.start()
    job, _ = runtime.submit(MSD)

    def committed() -> bool:
        now = runtime.registry.load(job.id)  # the seeds' events begin while lineage walks
        if now is None or LINEAGE not in now.completed:
            return False
        progress = runtime.registry.progress(job.id)
        return any(progress.get(parts.done(parts.events(d)), 0) for d in MSD.domains)

    wait_for(committed, timeout=90, what="lineage's end and an events batch")
    return job


def expected(copy: Path, settings: Settings, tmp_path: Path) -> Any:
    with SqliteSource(copy) as source:
        return expected_result(MSD, source, settings, tmp_path)


def compare(trial: Trial, runtime: Runtime, job_id: str, wanted: Any) -> None:
    assert_same_result(runtime, job_id, wanted)
    trial.jobs += 1
    trial.rows_compared += sum(len(rows) for rows in wanted[0].values())


def test_a_blip_is_retried_and_changes_nothing(
    runtime: Runtime,
    workers: Workers,
    copy_of_warehouse: Path,
    tmp_path: Path,
    trial: Trial,
) -> None:
    # Given a warehouse that drops one call of each stage's queries once
    blips = {
        "transient:msd/detection_lots": 1,
        "transient:lineage/containers": 1,
        "transient:events/upstream_history": 1,
        "transient:events/materials": 1,
        "transient:msd/detection_rejects": 1,
    }
    runtime.redis.hset(FAULTS_KEY, mapping=blips)
    trial.fault(f"one transient error in each of {len(blips)} queries")
    workers.start()
    # When the trace runs
    job, _ = runtime.submit(MSD)
    ended = wait_ended(runtime, job.id, timeout=120)
    # Then every blip was used up, and the result is the undisturbed one
    assert ended.state == FINISHED, ended.error
    left = {k: v for k, v in runtime.redis.hgetall(FAULTS_KEY).items() if int(v) > 0}
    assert not left, f"blips never met: {left}"
    compare(trial, runtime, job.id, expected(copy_of_warehouse, runtime.settings, tmp_path))


def test_an_outage_past_the_retry_budget_fails_and_a_retry_after_recovery_finishes_it(
    runtime: Runtime,
    workers: Workers,
    env: dict[str, str],
    copy_of_warehouse: Path,
    tmp_path: Path,
    trial: Trial,
) -> None:
    # Given a trace under way in its events stage, slowed so the outage finds it there
    job = under_way_in_events(runtime, workers, delay_ms=150)
    # When the warehouse is locked for longer than the retry budget
    budget = (RETRIES + 1) * 5
    with locked(copy_of_warehouse):
        trial.fault(f"warehouse locked past the retry budget ({RETRIES} retries, ~{budget} s)")
        began = time.monotonic()
        failed = wait_ended(runtime, job.id, timeout=budget * 6 + 60)
        trial.notes.append(f"the outage failed the job in {time.monotonic() - began:.1f} s")
    # Then the job failed in events with the source's code, never finished short
    assert failed.state == FAILED, failed
    assert failed.error is not None and failed.error["stage"] == EVENTS
    assert failed.error["code"] == "SOURCE_UNAVAILABLE", failed.error
    assert runtime.store.get_json(job.id, "aggregation") is None
    before = runtime.registry.queries(job.id)
    committed = {
        f"{parts.events(d)}:{b}"
        for d in MSD.domains
        for b in runtime.store.finished(job.id, parts.events(d))
    }
    # When the warehouse is back and an operator retries the job
    runtime.redis.hdel(FAULTS_KEY, "delay_ms")
    began = time.monotonic()
    retried = subprocess.run(
        [sys.executable, "-m", "pipeline", "jobs", "retry", job.id],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    done = wait_ended(runtime, job.id, timeout=120)
    trial.recovered(time.monotonic() - began)
    # Then it finished with the undisturbed result, asking nothing again of a committed batch
    assert done.state == FINISHED, done.error
    compare(trial, runtime, job.id, expected(copy_of_warehouse, runtime.settings, tmp_path))
    after = runtime.registry.queries(job.id)
    assert all(after[tag] == before[tag] for tag in committed), "a committed batch ran again"
    trial.notes.append(f"{len(committed)} batches committed before the outage were kept")


def test_a_query_past_the_call_timeout_is_retried_like_a_blip(
    runtime: Runtime,
    workers: Workers,
    copy_of_warehouse: Path,
    tmp_path: Path,
    trial: Trial,
) -> None:
    # Given a trace whose next events query finds the warehouse locked for one call timeout
    job = under_way_in_events(runtime, workers, delay_ms=100)
    with locked(copy_of_warehouse):
        trial.fault("warehouse locked for one call timeout (5 s busy wait, then 'locked')")
        time.sleep(6)
    runtime.redis.hdel(FAULTS_KEY, "delay_ms")
    # Then the job finished whole, with the undisturbed result
    done = wait_ended(runtime, job.id, timeout=120)
    assert done.state == FINISHED, done.error
    retries = [e for e in runtime.redis.xrange("trace:events") if e[1][b"event"] == b"retry"]
    assert retries, "the lock was expected to time out at least one query"
    compare(trial, runtime, job.id, expected(copy_of_warehouse, runtime.settings, tmp_path))
