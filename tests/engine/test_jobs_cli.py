"""``python -m pipeline jobs ...`` run as an operator runs it (a subprocess reading the
environment) against real Redis, a real Redis broker and, where work must happen, a real
``dramatiq`` worker: every command, its ``--json`` output and its exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from pipeline.cli.exit_codes import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from pipeline.cli.jobs.parser import duration
from pipeline.engine import keys, lifecycle, parts
from pipeline.engine.broker import make_broker
from pipeline.engine.job import (
    AGGREGATION,
    CANCELLED,
    FAILED,
    FINISHED,
    LINEAGE,
    QUEUE,
    QUEUED,
    SEED_RESOLVE,
)
from pipeline.engine.job_ids import new_job_id
from pipeline.engine.runtime import Runtime
from tests.engine.conftest import ROOT, Workers
from tests.engine.helpers import InlineDispatcher, wait_ended, wait_for
from tests.engine.test_flow import query_tool, run
from tests.engine.test_workers import MSD
from tests.support.faults import FAULTS_KEY


def jobs(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline jobs ARGS`` with the tests' settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_")}
    full.update(env, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "jobs", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == EXIT_OK, done.stderr
    return orjson.loads(done.stdout)


def job_keys(client: redis.Redis, job_id: str) -> list[bytes]:
    return [k for k in client.scan_iter(match=f"*{job_id}*", count=1000)]


@pytest.fixture
def finished(inline: Runtime, warehouse: Path) -> str:
    """A job of 150 lots that ran to the end."""
    job, _ = inline.submit(query_tool(warehouse))
    run(inline)
    return job.id


def test_list_filters_by_state_and_profile_and_speaks_json(
    inline: Runtime, engine_env: dict[str, str], finished: str, warehouse: Path
) -> None:
    # Given a finished job and a cancelled one of the same profile
    other, _ = inline.submit(query_tool(warehouse, 40))
    inline.registry.cancel(other.id)
    # When an operator lists them
    everything = as_json(jobs(engine_env, "list", "--json"))
    only_finished = as_json(jobs(engine_env, "list", "--state", "finished", "--json"))
    other_profile = as_json(jobs(engine_env, "list", "--profile", "mid_section_defect", "--json"))
    table = jobs(engine_env, "list", "--since", "1h")
    # Then each filter holds, newest first, and the table names both jobs
    assert [line["job_id"] for line in everything] == [other.id, finished]
    assert [(j["job_id"], j["status"]) for j in only_finished] == [(finished, FINISHED)]
    done = inline.registry.load(finished)
    assert done is not None and everything[1]["cid_count"] == done.cid_count >= 150
    assert everything[1]["profile"] == "query_tool"
    assert other_profile == []
    assert table.returncode == EXIT_OK and finished in table.stdout and other.id in table.stdout


def test_show_gives_stages_parts_and_ttls(
    inline: Runtime, engine_env: dict[str, str], finished: str
) -> None:
    # When an operator shows a finished job
    shown = as_json(jobs(engine_env, "show", finished, "--json"))
    # Then it has its state, every stage with its rows, each part's batches/chunks/rows (events
    # parts with the worker seconds their batches took), and TTLs
    assert shown["job_id"] == finished and shown["status"] == FINISHED
    assert all(stage["completed"] for stage in shown["stages"].values())
    history = shown["parts"]["events:history"]
    stored = sum(e.rows for e in inline.store.manifest(finished, "events:history").values())
    assert history["rows"] == stored > 0
    assert history["chunks"] >= history["batches"] >= 1
    assert history["seconds"] > 0 and shown["parts"]["cids"]["seconds"] == 0
    assert 0 < shown["ttl_seconds"] <= inline.settings.job_ttl_seconds
    assert shown["keys"] > 1
    ttls = shown["key_ttls"]  # every key of the job, its hash and key set included
    assert ttls["keys"] == shown["keys"] + 1 and ttls["gone"] == ttls["without_ttl"] == 0
    assert 0 < ttls["min_seconds"] <= ttls["max_seconds"] <= inline.settings.job_ttl_seconds
    assert shown["request"]["container_ids"] == 0  # a count, never the list itself
    # And the table for people says the same
    table = jobs(engine_env, "show", finished)
    assert table.returncode == EXIT_OK and "events:history" in table.stdout


def test_unknown_jobs_bad_usage_and_a_missing_redis_have_their_exit_codes(
    engine_env: dict[str, str], store_redis: redis.Redis
) -> None:
    missing = jobs(engine_env, "show", "no-such-job")
    assert missing.returncode == EXIT_NOT_FOUND and "JOB_NOT_FOUND" in missing.stderr
    assert jobs(engine_env, "cancel", "no-such-job").returncode == EXIT_NOT_FOUND
    assert jobs(engine_env, "retry").returncode == EXIT_USAGE
    assert jobs(engine_env, "list", "--since", "soon").returncode == EXIT_USAGE
    # A job whose keys vanished before its TTL (Redis restarted without persistence) is lost
    lost = new_job_id()
    for verb in ("show", "cancel"):
        answer = jobs(engine_env, verb, lost)
        assert answer.returncode == EXIT_NOT_FOUND and "JOB_LOST" in answer.stderr, answer.stderr
        assert "submit the request again" in " ".join(answer.stderr.split())
    away = {**engine_env, "TRACE_REDIS_URL": "redis://127.0.0.1:1/14"}
    down = jobs(away, "list")
    assert down.returncode == EXIT_UNAVAILABLE and "SERVICE_UNAVAILABLE" in down.stderr
    assert "Traceback" not in down.stderr


def test_retry_resumes_at_the_failed_stage_through_a_worker(
    runtime: Runtime, workers: Workers, engine_env: dict[str, str], store_redis: redis.Redis
) -> None:
    # Given an MSD job that failed in aggregation on a worker
    store_redis.hset(FAULTS_KEY, "fail:msd/detection_rejects", "permanent")
    workers.start()
    job, _ = runtime.submit(MSD)
    assert wait_ended(runtime, job.id).state == FAILED
    failed_list = as_json(jobs(engine_env, "list", "--state", "failed", "--json"))
    assert [j["job_id"] for j in failed_list] == [job.id]
    assert failed_list[0]["error"]["stage"] == AGGREGATION
    # When the cause is fixed and the operator retries it
    store_redis.hdel(FAULTS_KEY, "fail:msd/detection_rejects")
    retried = as_json(jobs(engine_env, "retry", job.id, "--json"))
    # Then it finishes, and seed-resolve and lineage did not run again
    assert retried == {"retried": [job.id], "refused": [], "skipped": []}
    assert wait_ended(runtime, job.id).state == FINISHED
    progress = runtime.registry.progress(job.id)
    ranges = runtime.settings.detection_ranges  # seed-resolve: a message per date range
    assert (progress[parts.runs(SEED_RESOLVE)], progress[parts.runs(LINEAGE)]) == (ranges, 1)
    # And retrying a job that is not failed is refused with exit code 1
    again = jobs(engine_env, "retry", job.id)
    assert again.returncode == EXIT_REFUSED and "not failed" in again.stdout


def test_bulk_retry_takes_the_jobs_failed_within_the_window(
    inline: Runtime, engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given three failed jobs: one failed now, one (by its index score) two hours ago, and one
    # failed now for its input (which would fail the same way again)
    made = []
    for n in (30, 31, 32):
        job, _ = inline.submit(query_tool(warehouse, n))
        assert isinstance(inline.dispatch, InlineDispatcher)
        inline.dispatch.sent.clear()  # never ran: failed by an operator's hand below
        made.append(job.id)
    inline.registry.fail(made[0], "seed-resolve", "SOURCE_QUERY_FAILED", "test")
    inline.registry.fail(made[1], "seed-resolve", "SOURCE_QUERY_FAILED", "test")
    inline.registry.fail(made[2], "seed-resolve", "INVALID_PARAMS", "no", bad_input=True)
    store_redis.zadd(keys.FAILED, {made[1]: time.time() - 7200})
    # When the operator retries what failed in the last hour
    done = as_json(jobs(engine_env, "retry", "--failed", "--since", "1h", "--json"))
    # Then only the recent one failed on our side went back to the queue (the CLI sends to the
    # real broker); the bad-input one is named as skipped
    assert done == {"retried": [made[0]], "refused": [], "skipped": [made[2]]}
    assert inline.registry.state(made[0]) == QUEUED
    assert inline.registry.state(made[1]) == FAILED
    assert inline.registry.state(made[2]) == FAILED
    assert int(redis.Redis.from_url(inline.settings.broker_url).llen(f"dramatiq:{QUEUE}")) >= 1
    # And a job id with --since is a usage error, not a silently ignored window
    assert jobs(engine_env, "retry", made[1], "--since", "1h").returncode == EXIT_USAGE


def test_cancel_then_purge_releases_every_key(
    runtime: Runtime, engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a queued job (no worker runs) with its inputs stored
    job, _ = runtime.submit(query_tool(warehouse))
    assert job_keys(store_redis, job.id)
    # When it is cancelled, then purged (first a dry run)
    cancelled = as_json(jobs(engine_env, "cancel", job.id, "--json"))
    assert cancelled == {"job_id": job.id, "status": CANCELLED}
    assert jobs(engine_env, "cancel", job.id).returncode == EXIT_OK  # idempotent
    dry = as_json(jobs(engine_env, "purge", "--dry-run", "--json"))
    assert [p["job_id"] for p in dry["purged"]] == [job.id] and job_keys(store_redis, job.id)
    purged = as_json(jobs(engine_env, "purge", "--json"))
    # Then no key of the job is left, not even in the indexes, and "purged" was announced
    assert [(p["job_id"], p["why"]) for p in purged["purged"]] == [(job.id, "cancelled")]
    assert job_keys(store_redis, job.id) == []
    assert store_redis.zscore(keys.RECENT, job.id) is None
    events = [e["event"] for _, e in lifecycle.latest(store_redis, 100) if e["job"] == job.id]
    assert events[-2:] == ["cancelled", "purged"]


def test_purge_takes_expired_jobs_and_old_finished_ones_only_when_asked(
    inline: Runtime,
    engine_env: dict[str, str],
    store_redis: redis.Redis,
    finished: str,
    warehouse: Path,
) -> None:
    # Given a finished job whose hash expired while its other keys remain
    store_redis.pexpire(keys.job(finished), 1)
    wait_for(lambda: not store_redis.exists(keys.job(finished)), timeout=5, what="expiry")
    assert job_keys(store_redis, finished)
    # And another finished job, ended just now
    other, _ = inline.submit(query_tool(warehouse, 20))
    run(inline)
    # When purge runs without --ended-before, the expired one goes and the finished one stays
    first = as_json(jobs(engine_env, "purge", "--json"))
    assert [(p["job_id"], p["why"]) for p in first["purged"]] == [(finished, "expired")]
    assert job_keys(store_redis, finished) == []
    assert inline.registry.state(other.id) == FINISHED
    # And with --ended-before 0s the finished one goes too
    second = as_json(jobs(engine_env, "purge", "--ended-before", "0s", "--json"))
    assert [p["job_id"] for p in second["purged"]] == [other.id]
    assert job_keys(store_redis, other.id) == []


def test_requeue_dead_sends_our_dead_letters_back_to_their_queue(
    runtime: Runtime, workers: Workers, engine_env: dict[str, str], warehouse: Path
) -> None:
    # Given a job whose first message the broker dead-lettered (consumed and rejected)
    job, _ = runtime.submit(query_tool(warehouse))
    broker = make_broker(runtime.settings)
    consumer = broker.consume(QUEUE, timeout=1000)
    message = next(m for m in consumer if m is not None)
    consumer.nack(message)
    consumer.close()
    dead = f"dramatiq:{QUEUE}.XQ"
    client = redis.Redis.from_url(runtime.settings.broker_url)
    assert client.zcard(dead) == 1
    # When the operator counts, then requeues them
    counted = as_json(jobs(engine_env, "requeue-dead", "--dry-run", "--json"))
    assert [m["job_id"] for m in counted["requeued"]] == [job.id] and client.zcard(dead) == 1
    moved = as_json(jobs(engine_env, "requeue-dead", "--json"))
    # Then the dead-letter set is empty and a worker finishes the job
    assert [m["job_id"] for m in moved["requeued"]] == [job.id]
    assert client.zcard(dead) == 0
    workers.start()
    assert wait_ended(runtime, job.id).state == FINISHED
    broker.close()


def test_watch_tails_new_events_as_they_come(
    inline: Runtime, engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given an old event and a watcher started with no backlog, stopping after 3 new events
    lifecycle.record(store_redis, lifecycle.PURGED, "old-job")
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_")}
    full.update(engine_env, PYTHONPATH=str(ROOT))
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "jobs",
            "watch",
            "--last",
            "0",
            "--count",
            "3",
            "--json",
        ],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # it is reading; anything recorded from now on must reach it
        # When a job is accepted and starts
        job, _ = inline.submit(query_tool(warehouse, 10))
        run(inline)
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    # Then it printed exactly the first three new events, as JSON lines, and nothing older
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert watcher.returncode == EXIT_OK, err
    assert [(e["job"], e["event"]) for e in lines] == [
        (job.id, "accepted"),
        (job.id, "stage_started"),
        (job.id, "stage_finished"),
    ]


def test_watch_of_one_job_shows_its_last_events_even_behind_others(
    engine_env: dict[str, str], store_redis: redis.Redis
) -> None:
    # Given one job's three events, then 50 of other jobs
    for event in (lifecycle.ACCEPTED, lifecycle.STAGE_STARTED, lifecycle.FINISHED):
        lifecycle.record(store_redis, event, "the-job")
    for n in range(50):
        lifecycle.record(store_redis, lifecycle.PURGED, f"other-{n}")
    # When the operator asks for that job's last two events (and no new ones)
    done = jobs(engine_env, "watch", "--job", "the-job", "--last", "2", "--count", "0", "--json")
    # Then both are shown, though neither is among the newest two of the stream
    assert done.returncode == EXIT_OK, done.stderr
    shown = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(e["job"], e["event"]) for e in shown] == [
        ("the-job", "stage_started"),
        ("the-job", "finished"),
    ]


def test_durations_read_as_operators_write_them() -> None:
    assert [duration(t) for t in ("90", "90s", "30m", "1h", "2d", "1.5h")] == [
        90,
        90,
        1800,
        3600,
        172800,
        5400,
    ]
