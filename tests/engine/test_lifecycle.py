"""A job's lifecycle events: one log line each with the job id, one entry each in the capped
Redis stream ``trace:events``, in the order they happened (real Redis, messages in process)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis

from pipeline.config import Settings
from pipeline.engine import keys, lifecycle, metrics
from pipeline.engine.job import FAILED, FINISHED
from pipeline.engine.runtime import Runtime
from tests.engine.helpers import InlineDispatcher
from tests.engine.test_flow import faulty_runtime, query_tool, run
from tests.support.faults import FAULTS_KEY


def events_of(client: redis.Redis, job_id: str) -> list[dict[str, str]]:
    return [e for _, e in lifecycle.latest(client, 1000) if e["job"] == job_id]


def test_a_finished_job_tells_its_story_in_order(
    inline: Runtime, warehouse: Path, store_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a job from seeds
    caplog.set_level(logging.INFO, logger="pipeline.jobs")
    job, _ = inline.submit(query_tool(warehouse))
    # When it runs to the end
    run(inline)
    assert inline.registry.state(job.id) == FINISHED
    # Then the stream holds accepted, each stage started then finished (with rows), finished
    events = events_of(store_redis, job.id)
    names = [(e["event"], e.get("stage")) for e in events]
    stages = ["seed-resolve", "lineage", "events"]
    expected = [("accepted", None)]
    for stage in stages:
        expected += [("stage_started", stage), ("stage_finished", stage)]
    expected.append(("finished", None))
    assert names == expected
    accepted = events[0]
    assert accepted["profile"] == "query_tool" and accepted["seeds"] == "150"
    finished = {e["stage"]: e for e in events if e["event"] == "stage_finished"}
    assert all(int(finished[stage]["rows"]) > 0 for stage in stages)
    assert float(finished["events"]["seconds"]) >= 0
    # And every line of the job's log names it
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.jobs"]
    assert len(lines) == len(events)
    assert all(line.startswith(f"job={job.id} event=") for line in lines)
    # And the job-level events were counted for /metrics
    counted = metrics.snapshot(store_redis)
    assert counted[("jobs", (("event", "finished"),))] == 1


def test_a_failure_and_a_retry_are_events_with_their_reason(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a lineage query that fails for good
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, "fail:lineage/containers", "permanent")
    job, _ = runtime.submit(query_tool(warehouse))
    # When the job runs
    run(runtime)
    assert runtime.registry.state(job.id) == FAILED
    # Then "failed" names the stage, the code and the reason
    failed = [e for e in events_of(store_redis, job.id) if e["event"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["stage"] == "lineage"
    assert failed[0]["code"] == "SOURCE_QUERY_FAILED"
    assert failed[0]["reason"]
    # And a retry from the failed stage is heard too: lineage starts again, seed-resolve doesn't
    store_redis.hdel(FAULTS_KEY, "fail:lineage/containers")
    before = len(events_of(store_redis, job.id))
    assert runtime.retry(job.id)
    run(runtime)
    after = events_of(store_redis, job.id)[before:]
    started = [e["stage"] for e in after if e["event"] == "stage_started"]
    assert "seed-resolve" not in started and started[0] == "lineage"
    assert after[-1]["event"] == "finished"


def test_the_event_stream_is_capped(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a stream capped at 100 events (Redis trims whole nodes, so "about" 100)
    runtime = Runtime(settings.model_copy(update={"event_log_max": 100}), InlineDispatcher())
    # When far more events are recorded
    for n in range(2000):
        runtime.registry.announce(lifecycle.RETRY, f"job-{n}", reason="load")
    # Then the stream kept a bounded tail, newest last
    length = int(store_redis.xlen(keys.EVENTS))
    assert 100 <= length < 400
    assert lifecycle.latest(store_redis, 1)[0][1]["job"] == "job-1999"


def test_reading_after_an_id_loses_nothing(store_redis: redis.Redis) -> None:
    # Given the id of the newest event a reader saw
    lifecycle.record(store_redis, lifecycle.ACCEPTED, "a")
    seen = lifecycle.latest(store_redis, 1)[-1][0]
    # When two more arrive before it reads again
    lifecycle.record(store_redis, lifecycle.FINISHED, "a")
    lifecycle.record(store_redis, lifecycle.PURGED, "a")
    # Then it gets both, in order
    assert [e["event"] for _, e in lifecycle.read(store_redis, seen)] == ["finished", "purged"]
