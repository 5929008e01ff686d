"""The engine end to end: real ``dramatiq`` worker processes, the real Redis broker (and
RabbitMQ), workers killed with SIGKILL mid-stage, cancel, and the large-job queue."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest
import redis

from pipeline import domains
from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.broker import make_broker
from pipeline.engine.job import AGGREGATION, CANCELLED, EVENTS, FINISHED, LINEAGE, SEED_RESOLVE
from pipeline.engine.runtime import Runtime, runtime_for
from pipeline.request import TraceRequest
from pipeline.runner import run_trace
from pipeline.sources.sqlite import SqliteSource
from tests.engine.conftest import Workers
from tests.engine.helpers import direct_rows, job_rows, wait_ended, wait_for
from tests.engine.test_flow import MSD, query_tool
from tests.support.faults import FAULTS_KEY
from tests.support.warehouse import lots

#: The part whose first committed batch shows a stage is under way.
STAGE_PARTS = {
    SEED_RESOLVE: parts.SEED_QUERIES,
    LINEAGE: parts.LINEAGE_QUERIES,
    EVENTS: parts.events("history"),
    AGGREGATION: parts.AGGREGATION_QUERIES,
}


def expected_result(
    request: TraceRequest, source: SqliteSource, settings: Settings, tmp_path: Path
) -> tuple[dict[str, list[object]], object]:
    rows = direct_rows(source, request, settings)
    aggregation = None
    if request.profile == "mid_section_defect":
        run_trace(source, request, settings, tmp_path / "runner")
        aggregation = orjson.loads((tmp_path / "runner" / "aggregation.json").read_bytes())
    return rows, aggregation


def assert_same_result(
    runtime: Runtime, job_id: str, expected: tuple[dict[str, list[object]], object]
) -> None:
    job = runtime.registry.load(job_id)
    assert job is not None and job.state == FINISHED, job
    rows, aggregation = expected
    assert job_rows(runtime.store, job_id, job.domains) == rows
    stored = runtime.store.get_json(job_id, "aggregation")
    assert (orjson.loads(stored) if stored else None) == aggregation


def test_a_job_runs_to_the_end_on_a_dramatiq_worker(
    runtime: Runtime, workers: Workers, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given a worker process on the Redis broker
    workers.start()
    # When a mid-section-defect job is submitted
    job, _ = runtime.submit(MSD)
    # Then it finishes with the rows and analysis of the stage functions run directly
    wait_ended(runtime, job.id)
    expected = expected_result(MSD, sqlite_source, runtime.settings, tmp_path)
    assert_same_result(runtime, job.id, expected)


def test_an_analysis_runs_beside_the_domains_it_does_not_read(
    runtime: Runtime, workers: Workers, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given two worker processes, one thread each
    workers.start(processes=2, threads=1)
    # When a mid-section-defect job of every events domain is submitted
    request = MSD.model_copy(update={"domains": domains.DOMAINS})
    job, _ = runtime.submit(request)
    wait_ended(runtime, job.id)
    # Then its analysis began before its events stage ended (the other domains were fetched
    # beside it), and the job finished after both, with the rows and analysis of the stage
    # functions run directly
    stamps = runtime.registry.redis.hgetall(keys.job(job.id))
    began, events_done = (float(stamps[f.encode()]) for f in ("began:aggregation", "done:events"))
    assert began < events_done
    finished = runtime.registry.load(job.id)
    assert finished.finished_at >= max(events_done, float(stamps[b"done:aggregation"]))
    assert_same_result(
        runtime, job.id, expected_result(request, sqlite_source, runtime.settings, tmp_path)
    )


@pytest.mark.parametrize(
    ("stage", "msd"),
    [
        (SEED_RESOLVE, False),
        (SEED_RESOLVE, True),  # a detection window read in date ranges, one message each
        (LINEAGE, False),
        (EVENTS, False),
        (AGGREGATION, True),
    ],
    ids=["seed-resolve", "seed-resolve-ranges", "lineage", "events", "aggregation"],
)
def test_a_worker_killed_mid_stage_resumes_without_requerying_finished_batches(
    stage: str,
    msd: bool,
    runtime: Runtime,
    workers: Workers,
    store_redis: redis.Redis,
    sqlite_source: SqliteSource,
    warehouse: Path,
    tmp_path: Path,
) -> None:
    # Given slow queries (so each stage spans several of them) and a job under way (the
    # ranges on one thread: the first read, the second under way when the worker is killed)
    store_redis.hset(FAULTS_KEY, "delay_ms", 120)
    request = MSD if msd else query_tool(warehouse, 300)
    first = workers.start(threads=1) if msd and stage == SEED_RESOLVE else workers.start()
    job, _ = runtime.submit(request)
    part = STAGE_PARTS[stage]

    def mid_stage() -> bool:
        if stage == EVENTS:  # the seeds' events begin while lineage walks: once it has ended
            now = runtime.registry.load(job.id)
            if now is None or LINEAGE not in now.completed:
                return False
        return runtime.registry.progress(job.id).get(parts.done(part), 0) >= 1

    wait_for(mid_stage, timeout=60, what=f"{stage} to commit its first batch", every=0.01)
    # When the worker is killed outright in the middle of that stage
    workers.kill(first)
    at_kill = runtime.registry.load(job.id)
    assert at_kill is not None and stage not in at_kill.completed, "stage ended before the kill"
    committed = {
        f"{p}:{b}"
        for p in (*STAGE_PARTS.values(), *(parts.events(d) for d in at_kill.domains))
        for b in runtime.store.finished(job.id, p)
    }
    runs_before = runtime.registry.progress(job.id)
    # ... and a new worker comes up (the reaper sends the dead worker's work again)
    store_redis.hdel(FAULTS_KEY, "delay_ms")
    workers.start()
    # Then the job finishes with exactly the result of an undisturbed run
    wait_ended(runtime, job.id, timeout=90)
    assert_same_result(
        runtime, job.id, expected_result(request, sqlite_source, runtime.settings, tmp_path)
    )
    # ... no batch committed before the kill was asked of the source again (a batch linked
    # from an earlier stage's recording, as the aggregation's detection lots, never was)
    queries = runtime.registry.queries(job.id)
    assert committed and all(queries.get(tag, 0) <= 1 for tag in committed), {
        t: queries[t] for t in committed if queries.get(t, 0) > 1
    }
    assert any(queries.get(tag) == 1 for tag in committed)
    # ... and the stages finished before the kill did not run again
    progress = runtime.registry.progress(job.id)
    for earlier in at_kill.completed:
        assert progress[parts.runs(earlier)] == runs_before[parts.runs(earlier)]
    messages = {SEED_RESOLVE: runtime.settings.detection_ranges if msd else 1, LINEAGE: 1}
    assert all(progress[parts.runs(s)] == n for s, n in messages.items() if s != stage)


def test_a_message_that_keeps_killing_its_worker_fails_its_batch_after_the_attempt_limit(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a holds query that kills the worker process running it (as an OOM kill would)
    store_redis.hset(FAULTS_KEY, "fail:events/holds", "kill")
    cids = tuple(lots(warehouse, "CONTAINERID", 50))
    request = TraceRequest(profile="query_tool", domains=("history", "holds"), container_ids=cids)
    job, _ = runtime.submit(request)
    # When workers (one thread: the kill takes no other batch with it) keep being restarted,
    # as systemd would
    proc = workers.start(threads=1)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = runtime.registry.state(job.id)
        if state not in ("queued", "started"):
            break
        if proc.poll() is not None:
            proc = workers.start(threads=1)
        time.sleep(0.1)
    # Then the batch fails for good past the attempt limit and the job ends with what it has
    job = runtime.registry.load(job.id)
    assert job is not None and job.state == FINISHED
    failed = runtime.registry.domain_states(job.id)
    assert list(failed) == ["holds"]
    assert failed["holds"]["code"] == "BATCH_ATTEMPTS_EXCEEDED"
    # ... after its worker died the limit's number of times running it: the message's fourth
    # start fails it, before its batch is started a fourth time
    limit = runtime.settings.batch_max_attempts
    attempts = store_redis.hgetall(f"trace:job:{job.id}:attempts")
    assert int(attempts[b"message/events:holds:0"]) == limit + 1
    assert int(attempts[b"events:holds:0"]) == limit
    assert runtime.registry.progress(job.id)[parts.rows(parts.events("history"))] > 0


def test_transient_errors_are_retried_and_fail_the_domain_when_retries_run_out(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given history failing transiently once, and holds failing transiently without end
    store_redis.hset(
        FAULTS_KEY, mapping={"transient:events/history": 1, "transient:events/holds": 99}
    )
    cids = tuple(lots(warehouse, "CONTAINERID", 50))
    request = TraceRequest(profile="query_tool", domains=("history", "holds"), container_ids=cids)
    workers.start()
    # When the job runs
    job, _ = runtime.submit(request)
    job = wait_ended(runtime, job.id)
    # Then history made it on its retry; holds failed after the configured retries
    assert job.state == FINISHED
    failed = runtime.registry.domain_states(job.id)
    assert list(failed) == ["holds"] and failed["holds"]["code"] == "SOURCE_UNAVAILABLE"
    assert runtime.registry.progress(job.id)[parts.rows(parts.events("history"))] > 0
    left = int(store_redis.hget(FAULTS_KEY, "transient:events/holds") or 0)
    assert 99 - left == runtime.settings.max_retries + 1


def test_a_source_outage_past_the_retry_budget_fails_with_the_source_code(
    engine_env: dict[str, str], store_redis: redis.Redis, workers: Workers, warehouse: Path
) -> None:
    # Given the default budget: 1 + 3 starts per message, and an attempt limit of 3 (for
    # workers that die), and a holds query whose warehouse stays away
    budget = {"TRACE_MAX_RETRIES": "3", "TRACE_BATCH_MAX_ATTEMPTS": "3"}
    settings = Settings.from_env({**engine_env, **budget})
    runtime = runtime_for(settings, make_broker(settings))
    workers.env = {**workers.env, **budget}
    store_redis.hset(FAULTS_KEY, "transient:events/holds", 99)
    cids = tuple(lots(warehouse, "CONTAINERID", 50))
    request = TraceRequest(profile="query_tool", domains=("history", "holds"), container_ids=cids)
    workers.start()
    # When the job runs through the outage
    job, _ = runtime.submit(request)
    wait_ended(runtime, job.id, timeout=60)
    # Then holds failed with the source's code after all four starts, not the attempt limit's
    failed = runtime.registry.domain_states(job.id)
    assert failed["holds"]["code"] == "SOURCE_UNAVAILABLE", failed
    left = int(store_redis.hget(FAULTS_KEY, "transient:events/holds") or 0)
    assert 99 - left == 4


def test_cancel_stops_a_running_job(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a slow job of many batches, under way
    store_redis.hset(FAULTS_KEY, "delay_ms", 100)
    cids = tuple(lots(warehouse, "CONTAINERID", 3000))
    job, _ = runtime.submit(TraceRequest(profile="query_tool", container_ids=cids))
    workers.start()
    wait_for(
        lambda: runtime.registry.progress(job.id).get(parts.done(parts.events("history")), 0) >= 1,
        timeout=30,
        what="the first batch",
    )
    # When it is cancelled
    assert runtime.registry.cancel(job.id) == CANCELLED
    # Then the workers stop between batches: after the batches in flight, nothing more is
    # written, and what they wrote expires with the job
    time.sleep(1.5)
    pattern = f"trace:job:{job.id}:*"
    settled = set(store_redis.scan_iter(pattern))
    time.sleep(1.5)
    assert set(store_redis.scan_iter(pattern)) == settled
    assert all(0 < store_redis.ttl(k) <= runtime.settings.job_ttl_seconds for k in settled)
    assert runtime.registry.state(job.id) == CANCELLED


def test_the_large_job_queue_keeps_a_small_job_moving(
    engine_env: dict[str, str], store_redis: redis.Redis, workers: Workers, warehouse: Path
) -> None:
    # Given jobs over 100 lots counting as large, and a worker only for the normal queue
    settings = Settings.from_env({**engine_env, "TRACE_LARGE_JOB_CIDS": "100"})
    runtime = runtime_for(settings, make_broker(settings))
    workers.env = {**workers.env, "TRACE_LARGE_JOB_CIDS": "100"}
    workers.start("trace")
    # When a large job is submitted before a small one
    cids = lots(warehouse, "CONTAINERID", 300)
    large, _ = runtime.submit(TraceRequest(profile="query_tool", container_ids=tuple(cids)))
    small, _ = runtime.submit(TraceRequest(profile="query_tool", container_ids=tuple(cids[:20])))
    # Then the small one finishes while the large one waits for its own workers
    assert wait_ended(runtime, small.id).state == FINISHED
    assert runtime.registry.state(large.id) == "queued"
    workers.start("trace_large")
    assert wait_ended(runtime, large.id).state == FINISHED


def _rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_the_same_job_runs_on_rabbitmq(
    engine_env: dict[str, str],
    store_redis: redis.Redis,
    workers: Workers,
    sqlite_source: SqliteSource,
    tmp_path: Path,
) -> None:
    # Given the broker set to RabbitMQ (the checkpoint store stays in Redis)
    amqp = {"TRACE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F"}
    settings = Settings.from_env({**engine_env, **amqp})
    broker = make_broker(settings)
    broker.flush_all()  # nothing left over from an earlier run
    runtime = runtime_for(settings, broker)
    workers.env = {**workers.env, **amqp}
    workers.start()
    # When the mid-section-defect job runs
    job, _ = runtime.submit(MSD)
    wait_ended(runtime, job.id, timeout=90)
    # Then it gives the same result as on Redis
    assert_same_result(runtime, job.id, expected_result(MSD, sqlite_source, settings, tmp_path))
    broker.close()


def test_a_job_failed_in_a_stage_and_retried_does_not_rerun_earlier_stages(
    runtime: Runtime,
    workers: Workers,
    store_redis: redis.Redis,
    sqlite_source: SqliteSource,
    tmp_path: Path,
) -> None:
    # Given a worker and an MSD job that fails in aggregation (its rejects lookup is broken)
    store_redis.hset(FAULTS_KEY, "fail:msd/detection_rejects", "permanent")
    workers.start()
    job, _ = runtime.submit(MSD)
    failed = wait_ended(runtime, job.id)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error["stage"] == AGGREGATION
    before = runtime.registry.queries(job.id)
    # When the cause is fixed and an operator retries the job
    store_redis.hdel(FAULTS_KEY, "fail:msd/detection_rejects")
    assert runtime.retry(job.id)
    # Then it finishes with the undisturbed result, and only aggregation asked the source again
    wait_ended(runtime, job.id)
    assert_same_result(
        runtime, job.id, expected_result(MSD, sqlite_source, runtime.settings, tmp_path)
    )
    progress = runtime.registry.progress(job.id)
    ranges = runtime.settings.detection_ranges  # seed-resolve: a message per date range
    assert (progress[parts.runs(SEED_RESOLVE)], progress[parts.runs(LINEAGE)]) == (ranges, 1)
    after = runtime.registry.queries(job.id)
    earlier = {k: v for k, v in before.items() if not k.startswith("aggregation")}
    assert (
        earlier and {k: v for k, v in after.items() if not k.startswith("aggregation")} == earlier
    )
