"""The dead-worker reaper against a real Redis: what makes a job whose worker died resume within
``TRACE_STALL_SECONDS + TRACE_REAPER_INTERVAL_SECONDS`` (README "Dead workers").

Two runtimes of this process stand for two worker processes: each has a lease book of its own
(its own holder name), as two processes would; their messages go to in-memory dispatchers.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import redis

from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.job import AGGREGATION, FINISHED
from pipeline.engine.leases import Ticker
from pipeline.engine.messages import MessageKey
from pipeline.engine.reaper import reap
from pipeline.engine.runtime import Runtime
from tests.engine.helpers import InlineDispatcher, wait_for
from tests.engine.test_flow import MSD, query_tool


def test_a_stale_lease_is_resent_by_the_next_round_of_any_process(
    inline: Runtime, settings: Settings, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a queued job, and a second worker process whose reaper has just run a round
    job, _ = inline.submit(query_tool(warehouse, 5))
    other = Runtime(settings, InlineDispatcher())
    assert reap(other) == 0  # nothing to do yet: this round took the reaper lock
    # When a lease of the job goes stale right after (its worker died stall seconds ago)
    member = keys.lease(job.id, str(MessageKey("seed-resolve")), "12345-dead00-1")
    store_redis.zadd(keys.LEASES, {member: time.time() - settings.stall_seconds - 1})
    # Then the very next round of another process sends the work again: it does not skip its
    # round because a round ran less than an interval ago (that cost up to one more interval)
    assert reap(inline) == 1
    assert isinstance(inline.dispatch, InlineDispatcher)
    assert [(j, str(k), resumed) for j, k, resumed, _q in inline.dispatch.sent][-1] == (
        job.id,
        "seed-resolve",
        False,  # not "resumed": that would hand on past a claimed hand-over (a duplicate)
    )
    assert store_redis.zscore(keys.LEASES, member) is None
    # ... and the reaper lock is not left behind for the rest of the interval
    assert store_redis.get(keys.REAPER_LOCK) is None


def test_two_dead_copies_of_one_message_are_sent_again_once(
    inline: Runtime, settings: Settings, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given two stale leases of the same message of a job (two threads of a dead process ran
    # copies of it: a redelivery, or a hand-over sent twice)
    job, _ = inline.submit(query_tool(warehouse, 5))
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.sent.clear()
    old = time.time() - settings.stall_seconds - 1
    for thread in ("1", "2"):
        member = keys.lease(job.id, str(MessageKey("seed-resolve")), f"12345-dead00-{thread}")
        store_redis.zadd(keys.LEASES, {member: old})
    # When a reaper round runs
    reap(inline)
    # Then the message is sent again once (each start counts against the attempt limit), and
    # both leases are gone
    assert [str(k) for _j, k, _r, _q in inline.dispatch.sent] == ["seed-resolve"]
    assert store_redis.zcard(keys.LEASES) == 0


def test_a_dead_copy_of_a_handed_over_message_does_not_hand_over_again(
    inline: Runtime, settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a mid-section-defect job whose events stage completed and handed over to the
    # aggregation (sent once), and a dead worker's stale lease on a copy of an events message
    job, _ = inline.submit(MSD)
    assert isinstance(inline.dispatch, InlineDispatcher)
    sent = inline.dispatch.sent
    while sent and str(sent[0][1]) != "aggregation":
        job_id, key, resumed, _queue = sent.pop(0)
        inline.handle(job_id, key, resumed=resumed)
    assert [str(k) for _j, k, _r, _q in sent] == ["aggregation"]
    dead = keys.lease(job.id, "events:upstream_history:0", "12345-dead00-1")
    store_redis.zadd(keys.LEASES, {dead: time.time() - settings.stall_seconds - 1})
    # When the reaper sends it again and it runs (before the aggregation message does)
    assert reap(inline) == 1
    job_id, key, resumed, _queue = sent.pop()
    assert str(key) == "events:upstream_history:0"
    inline.handle(job_id, key, resumed=resumed)
    # Then the aggregation is not sent a second time (two copies would run at once, each
    # start counting against the attempt limit), and the job finishes
    assert [str(k) for _j, k, _r, _q in sent] == ["aggregation"]
    inline.dispatch.run_all(inline)
    assert inline.registry.progress(job.id)[parts.runs(AGGREGATION)] == 1
    assert inline.registry.state(job.id) == FINISHED


def test_a_process_up_for_less_than_a_stall_revives_no_quiet_job(
    inline: Runtime, settings: Settings, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a queued job with no sign of life for longer than a stall and no lease (its
    # message waits in the queue while the workers restart)
    job, _ = inline.submit(query_tool(warehouse, 5))
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.sent.clear()
    store_redis.zadd(keys.RUNNING, {job.id: time.time() - 10 * settings.stall_seconds})
    # When a worker process that has just booted runs its first reaper round
    reap(inline)
    # Then it sends nothing again: it cannot tell a lost message from one waiting for it
    assert inline.dispatch.sent == []
    # ... while a process up for a stall does revive it
    inline.leases.since -= settings.stall_seconds
    reap(inline)
    assert [str(k) for _j, k, _r, _q in inline.dispatch.sent] == ["seed-resolve"]


def test_a_ticker_runs_at_start_when_asked_then_every_interval() -> None:
    # Given a ticker with an interval far longer than the test
    calls: list[float] = []
    ticked = threading.Event()

    def tick() -> None:
        calls.append(time.monotonic())
        ticked.set()

    ticker = Ticker("test-ticker", 3600, tick, at_start=True)
    # When it starts
    ticker.start()
    # Then it has run once without waiting an interval (a restarted worker reaps at once)
    try:
        assert ticked.wait(30), "the first tick waited for the interval"
        assert len(calls) == 1
    finally:
        ticker.stop()


def test_a_worker_process_is_alive_from_boot_and_gone_after_a_clean_stop(
    engine_env: dict[str, str], store_redis: redis.Redis, tmp_path: Path
) -> None:
    # Given heartbeats far apart (an hour), so only a registration at boot can be seen
    from tests.engine.conftest import Workers

    pool = Workers({**engine_env, "TRACE_HEARTBEAT_SECONDS": "3600",
                    "TRACE_STALL_SECONDS": "7200"}, tmp_path)  # fmt: skip
    # When a worker command starts
    proc = pool.start(processes=2)
    try:
        # Then both of its processes count as alive once they are ready, long before a tick
        wait_for(
            lambda: store_redis.zcard(keys.WORKERS) == 2,
            timeout=60,
            what="both worker processes to register at boot",
        )
        assert proc.poll() is None
    finally:
        pool.stop_all()
    # ... and a clean stop takes them off the live workers
    assert store_redis.zcard(keys.WORKERS) == 0
