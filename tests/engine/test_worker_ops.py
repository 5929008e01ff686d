"""The worker command an operator runs (``ops/worker``: ``dramatiq pipeline.actors`` with its
settings from the environment): one dead process stops the whole command so its service
manager restarts it, prefetch is the thread count, SIGTERM lets running batches finish, and
its log lines are structured with the job id on every line about a job."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import redis

from pipeline.engine import lifecycle, parts
from pipeline.engine.job import EVENTS, FAILED, FINISHED, QUEUE, QUEUED
from pipeline.engine.runtime import Runtime
from pipeline.request import TraceRequest
from tests.engine.conftest import BROKER_DB, Workers
from tests.engine.helpers import wait_ended, wait_for
from tests.engine.test_flow import MSD, query_tool
from tests.support.faults import FAULTS_KEY
from tests.support.redis_dbs import REDIS
from tests.support.warehouse import lots

EVENT = re.compile(r" event=(\w+)")
LOGFMT = re.compile(r"^time=\S+ level=(debug|info|warning|error|critical) logger=\S+ pid=\d+ ")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def ready(log: Path, processes: int) -> bool:
    return log.read_text(errors="replace").count("Worker process is ready") >= processes


def many_batches(warehouse: Path) -> TraceRequest:
    """Events of 3,000 lots: 30 batches per domain (IN lists of 100), 10 messages each."""
    cids = tuple(lots(warehouse, "CONTAINERID", 3000))
    return TraceRequest(profile="query_tool", domains=("history", "holds"), container_ids=cids)


def test_one_dead_worker_process_stops_the_whole_command(workers: Workers) -> None:
    # Given the worker command with two processes, both ready
    proc = workers.start(processes=2)
    wait_for(lambda: ready(workers.logs[0], 2), timeout=30, what="two ready processes")
    pids = children(proc.pid)
    assert len(pids) == 2, pids
    # When one of them dies (the OOM killer, say)
    os.kill(pids[0], signal.SIGKILL)
    # Then the whole command exits, non-zero, so that systemd's Restart=on-failure restarts it
    code = proc.wait(timeout=30)
    assert code != 0
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in pids)
    assert "exited unexpectedly" in workers.logs[0].read_text()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_worker_holds_no_more_messages_than_it_has_threads(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a job of many slow messages queued for one worker process of two threads
    store_redis.hset(FAULTS_KEY, "delay_ms", 30)
    broker = redis.Redis.from_url(f"{REDIS}/{BROKER_DB}")
    job, _ = runtime.submit(many_batches(warehouse))
    workers.start(processes=1, threads=2)
    # When it runs, count what the worker holds: messages taken from the queue and not yet
    # acknowledged (running or waiting in its buffer)
    held = []
    while runtime.registry.state(job.id) in ("queued", "started"):
        acks = [k for k in broker.scan_iter(match=f"dramatiq:__acks__.*.{QUEUE}")]
        held.append(sum(broker.scard(k) for k in acks))
        time.sleep(0.02)
    assert runtime.registry.state(job.id) == FINISHED
    # Then it never held more than its two threads run (Dramatiq's default is twice that),
    # so the rest waited in the queue where another worker could take them
    assert max(held) == 2, held


def test_sigterm_lets_the_running_batches_finish(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a worker in the middle of slow batches (0.6 s per query)
    store_redis.hset(FAULTS_KEY, "delay_ms", 600)
    job, _ = runtime.submit(many_batches(warehouse))
    proc = workers.start(processes=1, threads=1)
    wait_for(
        lambda: runtime.registry.state(job.id) == "started" and runtime.leases.jobs_with_leases(),
        timeout=30,
        what="a batch under way",
    )
    domain_parts = [parts.events(d) for d in ("history", "holds")]
    progress = runtime.registry.progress(job.id)
    done_before = sum(progress.get(parts.done(p), 0) for p in domain_parts)
    # When the operator stops it (systemctl stop: SIGTERM to the main process)
    proc.send_signal(signal.SIGTERM)
    # Then it exits cleanly once the batch it was running is committed, well before the
    # shutdown timeout, and took nothing new
    assert proc.wait(timeout=60) == 0
    progress = runtime.registry.progress(job.id)
    done_after = sum(progress.get(parts.done(p), 0) for p in domain_parts)
    assert done_after > done_before
    log = workers.logs[0].read_text()
    assert "Killing worker process" not in log
    assert runtime.registry.state(job.id) in (QUEUED, "started")
    # And a new worker finishes the job from there
    store_redis.hdel(FAULTS_KEY, "delay_ms")
    workers.start()
    assert wait_ended(runtime, job.id).state == FINISHED


def test_log_lines_are_structured_with_the_job_on_every_line_about_it(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given history failing once with a transient error
    store_redis.hset(FAULTS_KEY, "transient:events/history", 1)
    cids = tuple(lots(warehouse, "CONTAINERID", 50))
    workers.start()
    # When a job runs to the end on the worker command
    job, _ = runtime.submit(
        TraceRequest(profile="query_tool", domains=("history",), container_ids=cids)
    )
    assert wait_ended(runtime, job.id).state == FINISHED
    workers.stop_all()
    lines = workers.logs[0].read_text().splitlines()
    # Then every line of the worker processes is logfmt (the dramatiq main process keeps its
    # own format for its few lines: booting, stopping)
    ours = [line for line in lines if "[dramatiq.MainProcess]" not in line]
    assert ours and all(LOGFMT.match(line) for line in ours), ours
    # and every line logged about the job carries its id: ours, and Dramatiq's own (the
    # traceback of the failed try, the retry it schedules)
    about_job = [line for line in ours if job.id in line or "Retrying message" in line]
    assert any("Traceback" in line for line in about_job), about_job
    assert all(f" job={job.id} " in line for line in about_job), about_job
    # And the operator reads its story (accepted is logged where the job was submitted: the
    # API): stage started, finished with rows and seconds, retry with the reason, finished
    story = [m.group(1) for m in map(EVENT.search, about_job) if m]
    assert story == ["stage_started", "retry", "stage_finished", "finished"], story
    retry = next(line for line in about_job if " event=retry " in line)
    assert "code=SOURCE_UNAVAILABLE" in retry and 'reason="injected outage' in retry
    stage = next(line for line in about_job if " event=stage_finished " in line)
    assert re.search(r" stage=events rows=\d+ seconds=\d+\.\d{3}", stage), stage


def test_the_stages_whose_work_grows_with_the_trace_have_the_stage_time_limit(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis
) -> None:
    # Given workers whose events messages may take 1 s and whose whole-trace messages (the
    # detection window's reads, the lineage walk, the analysis: 134, 118 and over 300 s at 1M
    # CIDs on a slow day) may take 60, and a warehouse answering their queries in 1.5 s
    for query in ("msd/detection_lots", "lineage/containers", "msd/detection_rejects"):
        store_redis.hset(FAULTS_KEY, f"delay_ms:{query}", 1500)
    workers.start(TRACE_MESSAGE_TIME_LIMIT_SECONDS="1", TRACE_STAGE_TIME_LIMIT_SECONDS="60")
    # When a mid-section-defect trace runs
    job, _ = runtime.submit(MSD)
    ended = wait_ended(runtime, job.id, timeout=120)
    # Then it finishes with no message interrupted: under the events' limit alone each of
    # those messages was cut off at 1 s and retried until the job failed
    assert ended.state == FINISHED, ended.error
    limits = [
        e
        for _, e in lifecycle.latest(store_redis, 500)
        if e["event"] == "retry" and e["job"] == job.id
    ]
    assert limits == []


def test_a_stage_over_its_time_limit_at_every_try_fails_the_job_with_that_reason(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis
) -> None:
    # Given workers whose lineage may take 1 s, 2 retries, and a warehouse answering the
    # lineage's queries in 2.5 s: every try of the stage is cut off
    store_redis.hset(FAULTS_KEY, "delay_ms:lineage/containers", 2500)
    workers.start(TRACE_STAGE_TIME_LIMIT_SECONDS="1")
    # When a mid-section-defect trace runs
    job, _ = runtime.submit(MSD)
    # Then the job ends, failed with the time limit as its reason, after the retries it has:
    # it used to stay started, Dramatiq giving the message up unseen and the reaper reviving
    # the quiet job again and again (lineage ran 38 times in two minutes)
    ended = wait_ended(runtime, job.id, timeout=60)
    assert ended.state == FAILED, (ended.state, ended.error)
    assert ended.error is not None
    assert ended.error["code"] == "TIME_LIMIT_EXCEEDED" and ended.error["stage"] == "lineage"
    retries = [
        e
        for _, e in lifecycle.latest(store_redis, 500)
        if e["event"] == "retry" and e["job"] == job.id
    ]
    assert [e["code"] for e in retries] == ["TIME_LIMIT_EXCEEDED"] * 2
    # And the reaper does not bring it back
    time.sleep(5)
    assert runtime.registry.load(job.id).state == FAILED


def test_a_job_whose_hand_on_fails_ends_failed_not_revived_without_end(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given workers, and a trace by lot names whose holds are read in 2 s a query
    store_redis.hset(FAULTS_KEY, "delay_ms:events/holds", 2000)
    workers.start()
    names = query_tool(warehouse).params
    job, _ = runtime.submit(TraceRequest(profile="query_tool", params=names, domains=("holds",)))
    # When its seed lots' chunks are lost (evicted) while its events are read: naming the
    # trace, as the events stage hands on, reads them
    wait_for(lambda: runtime.registry.field(job.id, "stage") == EVENTS, timeout=30, what="events")
    seeds = [r.key for e in runtime.store.manifest(job.id, parts.SEEDS).values() for r in e.chunks]
    assert seeds and store_redis.delete(*seeds) == len(seeds)
    store_redis.hdel(FAULTS_KEY, "delay_ms:events/holds")
    # Then the job fails with the lost chunk as its reason; it used to stay started for good:
    # the error escaped the hand-on, Dramatiq dropped the message after its retries and the
    # reaper revived the quiet job again and again
    ended = wait_ended(runtime, job.id, timeout=30)
    assert ended.state == FAILED, (ended.state, ended.error)
    assert ended.error is not None and ended.error["code"] == "CHUNK_LOST"


def test_a_message_over_its_time_limit_is_a_retry_event_with_the_reason(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a worker whose messages may take 1 s, and a warehouse answering in 2.5 s
    store_redis.hset(FAULTS_KEY, "delay_ms", 2500)
    workers.start(TRACE_MESSAGE_TIME_LIMIT_SECONDS="1")
    cids = tuple(lots(warehouse, "CONTAINERID", 20))
    job, _ = runtime.submit(
        TraceRequest(profile="query_tool", domains=("holds",), container_ids=cids)
    )
    # When a message runs over its limit, Dramatiq interrupts it
    retries = wait_for(
        lambda: [e for _, e in lifecycle.latest(store_redis, 100) if e["event"] == "retry"],
        timeout=30,
        what="a retry event",
    )
    store_redis.hdel(FAULTS_KEY, "delay_ms")
    # Then the operator hears of it, with the reason, as of any other retry
    assert retries[0]["job"] == job.id
    assert retries[0]["code"] == "TIME_LIMIT_EXCEEDED" and retries[0]["reason"] == "over 1 s"
    # And the retry finishes the job
    assert wait_ended(runtime, job.id).state == FINISHED


def test_a_stage_that_keeps_killing_its_worker_outside_any_query_fails_after_the_attempt_limit(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis
) -> None:
    # Given an analysis whose worker is killed once its work has begun, before any query (as
    # an OOM kill in its fold would be: no batch is started, so no batch's attempts count it)
    store_redis.hset(FAULTS_KEY, "kill_stage:aggregation", "1")
    job, _ = runtime.submit(MSD)
    # When workers (one thread) keep being restarted, as systemd would
    proc = workers.start(threads=1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and runtime.registry.state(job.id) in (QUEUED, "started"):
        if proc.poll() is not None:
            proc = workers.start(threads=1)
        time.sleep(0.1)
    # Then the job fails in the analysis past the attempt limit, saying why (before: the
    # reaper sent the message again after every death, the job started until its TTL)
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FAILED, (
        ended and (ended.state, ended.stage),
        runtime.registry.progress(job.id).get(parts.runs("aggregation")),
    )
    assert ended.error is not None
    assert (ended.error["stage"], ended.error["code"]) == ("aggregation", "BATCH_ATTEMPTS_EXCEEDED")
    assert "died 3 times" in ended.error["message"]
    starts = store_redis.hget(f"trace:job:{job.id}:attempts", "message/aggregation")
    assert int(starts or 0) == runtime.settings.batch_max_attempts + 1
    # And the message is not run again: the job stays failed and its workers alive
    time.sleep(4)
    assert runtime.registry.load(job.id).state == FAILED
    assert proc.poll() is None
    starts = store_redis.hget(f"trace:job:{job.id}:attempts", "message/aggregation")
    assert int(starts or 0) == runtime.settings.batch_max_attempts + 1


def test_a_long_message_killed_while_it_progresses_is_not_failed_by_the_attempt_limit(
    runtime: Runtime, workers: Workers, store_redis: redis.Redis
) -> None:
    # Given a lineage walk whose worker is killed after each query it gets through (a long
    # message killed five times for other reasons, each run committing one more query)
    query = "lineage/containers"
    store_redis.hset(FAULTS_KEY, mapping={f"fail:{query}": "kill", f"pass:{query}": 1})
    job, _ = runtime.submit(MSD)
    # When workers (one thread) keep being restarted, as systemd would, and the kills stop
    # after the fifth
    proc, deaths = workers.start(threads=1), 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and runtime.registry.state(job.id) in (QUEUED, "started"):
        if proc.poll() is not None:
            deaths += 1
            if deaths < 5:
                store_redis.hset(FAULTS_KEY, f"pass:{query}", 1)
            else:
                store_redis.hdel(FAULTS_KEY, f"fail:{query}")
            proc = workers.start(threads=1)
        time.sleep(0.1)
    # Then the trace finishes: deaths of a message that progressed are not held against it
    # (each run committed a query), where three deaths without progress fail it
    ended = runtime.registry.load(job.id)
    assert deaths == 5, deaths
    assert ended is not None and ended.state == FINISHED, (ended and ended.error, deaths)
    starts = store_redis.hget(f"trace:job:{job.id}:attempts", "message/lineage")
    assert int(starts or 0) == 6
