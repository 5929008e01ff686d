"""Redis faults, on a Redis server of the test's own (``private_redis``) that a worker command
and the API (gunicorn) use for the store and the broker:

* restarted without persistence in the middle of a job: everything is gone, so the job is
  *lost*: the API answers 410 ``JOB_LOST`` (never 404 "expired", never a short result), a
  stream following it ends with an ``error`` line ``JOB_LOST`` (never ``complete``, never
  hanging), and the ``jobs`` tool says so;
* SIGKILLed with AOF ``everysec`` and started again on its files: at most the last second of
  writes is lost, and the job finishes with the digest of an undisturbed run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.job import EVENTS, FINISHED
from pipeline.engine.runtime import Runtime
from pipeline.tools.stack import LocalStack, StackError, clean_env
from tests.chaos.conftest import ROOT, RedisServer
from tests.chaos.reliability import Trial, scale
from tests.engine.helpers import InlineDispatcher, job_digest, wait_for
from tests.engine.test_flow import MSD
from tests.support.faults import FAULTS_KEY

#: Slow queries, so a fault lands in the middle of the job (ms).
DELAYS = {"delay_ms": 20}
MSD_BODY = {"profile": "mid_section_defect", "params": dict(MSD.params or {}), "fresh": True}


def _env(server: RedisServer, warehouse: Path) -> dict[str, str]:
    return {
        "TRACE_REDIS_URL": f"{server.url}/0",
        "TRACE_BROKER_URL": f"{server.url}/1",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_IN_LIST_SIZE": "100",
        "TRACE_FETCH_ROWS": "400",
        "TRACE_EVENTS_GROUP_BATCHES": "3",
        "TRACE_HEARTBEAT_SECONDS": "1",
        "TRACE_STALL_SECONDS": "2",
        "TRACE_REAPER_INTERVAL_SECONDS": "1",
        "TRACE_RATE_LIMIT_REQUESTS": "100000",
        "TRACE_RATE_LIMIT_PER_JOB_REQUESTS": "100000",
        "WORKER_MODULES": "tests.support.faulty_worker",
    }


def _stack(env: dict[str, str], log_dir: Path) -> LocalStack:
    stack = LocalStack(env, log_dir, processes=1, threads=2, api_workers=1)
    try:
        return stack.start(60)
    except StackError as error:
        stack.stop()
        pytest.fail(str(error))


def _submit(stack: LocalStack) -> str:
    status, body = stack.api.request("POST", "/api/trace/jobs", MSD_BODY)
    assert status == 202, body
    return str(orjson.loads(body)["data"]["job_id"])


def _in_events(settings: Settings, server: RedisServer, job_id: str) -> Callable[[], bool]:
    client = server.client(0)

    def check() -> bool:
        done = client.hget(f"trace:job:{job_id}:progress", parts.done(parts.events("materials")))
        return int(done or 0) >= 1

    return check


def _follow(stack: LocalStack, path: str, into: list[dict[str, Any]]) -> None:
    into.extend(orjson.loads(line) for line in stack.api.lines(path) if line.strip())


def test_a_restart_without_persistence_reports_running_jobs_lost(
    private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path, trial: Trial
) -> None:
    server = private_redis(aof=False)
    env = _env(server, warehouse)
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("TRACE_")})
    server.client(0).hset(FAULTS_KEY, mapping=DELAYS)
    stack = _stack(env, tmp_path)
    try:
        for _ in range(scale(1, 3)):
            # Given a whole trace in its events stage, followed by a stream
            server.client(0).hset(FAULTS_KEY, mapping=DELAYS)
            job_id = _submit(stack)
            wait_for(_in_events(settings, server, job_id), timeout=120, what="the events stage")
            lines: list[dict[str, Any]] = []
            path = f"/api/trace/job/{job_id}/stream?follow=1"
            follower = threading.Thread(target=_follow, args=(stack, path, lines), daemon=True)
            follower.start()
            time.sleep(0.3)
            # When Redis restarts with nothing kept
            server.restart()
            restarted = time.monotonic()
            trial.fault("Redis restarted without persistence mid-job")
            # Then the stream ends, with an error line naming JOB_LOST, never complete
            follower.join(timeout=60)
            assert not follower.is_alive(), "the followed stream hung"
            trial.recovered(time.monotonic() - restarted)
            assert lines and lines[-1]["type"] == "error", lines[-3:]
            assert lines[-1]["code"] == "JOB_LOST", lines[-1]
            assert all(line["type"] != "complete" for line in lines)
            # ... and status, result and stream answer 410 JOB_LOST, never 404 or a result
            for path in ("", "/result", "/stream"):
                status, body = stack.api.request("GET", f"/api/trace/job/{job_id}{path}")
                assert status == 410, (path, status, body[:300])
                assert orjson.loads(body)["error"]["code"] == "JOB_LOST"
            # ... and the jobs tool says lost too
            shown = subprocess.run(
                [sys.executable, "-m", "pipeline", "jobs", "show", job_id],
                cwd=ROOT,
                env=clean_env({k: v for k, v in env.items() if k.startswith("TRACE_")}),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert shown.returncode == 5 and "JOB_LOST" in shown.stderr, shown.stderr
            trial.jobs += 1
    finally:
        stack.stop()
        print(stack.logs())


def test_a_redis_killed_with_aof_everysec_loses_no_job(
    private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path, trial: Trial
) -> None:
    server = private_redis(aof=True)
    env = _env(server, warehouse)
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("TRACE_")})
    # The undisturbed digest: the engine's own code, message by message in this process
    inline = Runtime(settings, InlineDispatcher())
    reference, _ = inline.submit(MSD, fresh=True)
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.run_all(inline)
    expected = job_digest(inline.store, reference.id, reference.domains)
    server.client(0).hset(FAULTS_KEY, mapping=DELAYS)
    stack = _stack(env, tmp_path)
    runtime = Runtime(settings, InlineDispatcher())  # reads the store; sends nothing
    try:
        for _ in range(scale(1, 3)):
            # Given a whole trace in its events stage
            job_id = _submit(stack)
            wait_for(_in_events(settings, server, job_id), timeout=120, what="the events stage")
            # When Redis is SIGKILLed and started again on its append-only file
            server.restart()
            restarted = time.monotonic()
            trial.fault("Redis SIGKILLed (AOF everysec) mid-job, restarted")

            # Then the job finishes, with the digest of an undisturbed run
            def ended(job_id: str = job_id) -> bool:
                job = runtime.registry.load(job_id)
                return job is not None and not job.active

            wait_for(ended, timeout=180, what=f"job {job_id} to end after the restart")
            trial.recovered(time.monotonic() - restarted)
            job = runtime.registry.load(job_id)
            assert job is not None and job.state == FINISHED, job
            assert EVENTS in job.completed
            assert job_digest(runtime.store, job_id, job.domains) == expected
            trial.jobs += 1
            trial.rows_compared += sum(
                runtime.registry.progress(job_id).get(parts.rows(parts.events(d)), 0)
                for d in job.domains
            )
    finally:
        stack.stop()
        print(stack.logs())
