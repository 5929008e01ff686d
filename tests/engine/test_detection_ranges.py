"""A mid-section-defect detection window read in date ranges, one seed-resolve message each
(``TRACE_DETECTION_RANGES``), merged by the message that finds them all read: against real
Redis, messages run in this process in the order a worker would take them. The seeds, the
detection lots the analysis reads and its result are those of the window read in one query;
the stage hands on once, after the merge; a failed or lost range is read again alone."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.job import FAILED, FINISHED, LINEAGE, SEED_RESOLVE, Job
from pipeline.engine.messages import MessageKey
from pipeline.engine.runtime import Runtime
from pipeline.engine.store import CheckpointStore
from tests.engine.helpers import InlineDispatcher, job_digest
from tests.engine.test_early_analysis import queued, run_next
from tests.engine.test_flow import MSD, faulty_runtime, run
from tests.support.faults import FAULTS_KEY

MERGE_CLAIM = "seed-resolve:merge"


def in_ranges(settings: Settings, count: int) -> Settings:
    return settings.model_copy(update={"detection_ranges": count})


def sent_in_two_ranges(settings: Settings) -> tuple[Runtime, Job]:
    """The ``MSD`` trace submitted by a service reading windows in two ranges: one message each."""
    runtime = Runtime(in_ranges(settings, 2), InlineDispatcher())
    job, _ = runtime.submit(MSD, fresh=True)
    assert queued(runtime) == [MessageKey(SEED_RESOLVE, group=0), MessageKey(SEED_RESOLVE, group=1)]
    return runtime, job


def rows(store: CheckpointStore, job_id: str, part: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for batch in store.read(job_id, part) for row in batch.rows]


def finished(runtime: Runtime) -> Job:
    job, _ = runtime.submit(MSD, fresh=True)
    run(runtime)
    done = runtime.registry.load(job.id)
    assert done is not None and done.state == FINISHED, done
    return done


def test_a_window_read_in_ranges_gives_what_one_query_gives_and_the_analysis_asks_it_nothing(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given the same trace with its window read in one query, and in three date ranges
    whole_rt = Runtime(in_ranges(settings, 1), InlineDispatcher())
    whole = finished(whole_rt)
    split_rt = Runtime(in_ranges(settings, 3), InlineDispatcher())
    split = finished(split_rt)
    store = split_rt.store
    # Then the ranges were three queries, and some lot tracked in within two of them
    ranges = store.manifest(split.id, parts.SEED_QUERIES)
    assert sorted(ranges) == [0, 1, 2]
    merged = rows(store, split.id, parts.DETECTION_LOTS)
    assert sum(entry.rows for entry in ranges.values()) > len(merged)
    # And their merge is the window's query's answer, row for row, in its order
    assert merged == rows(store, whole.id, parts.SEED_QUERIES)
    assert rows(store, split.id, parts.SEEDS) == rows(store, whole.id, parts.SEEDS)
    assert split.seed_count == whole.seed_count == len(merged)
    # And the analysis read the merge as the detection query: only its rejects were asked
    asked = split_rt.registry.queries(split.id)
    assert f"{parts.AGGREGATION_QUERIES}:0" not in asked
    assert any(tag.startswith(parts.AGGREGATION_QUERIES) for tag in asked)
    # And the result is the same, every row and the analysis
    assert job_digest(store, split.id, MSD.domains) == job_digest(store, whole.id, MSD.domains)


def test_the_stage_hands_on_once_after_the_message_that_merges(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace whose window is read in two ranges, one message each
    runtime, job = sent_in_two_ranges(settings)
    # When the first range is read, the stage is not complete and nothing else is sent
    run_next(runtime, 1)
    assert queued(runtime) == [MessageKey(SEED_RESOLVE, group=1)]
    assert runtime.store.get_blob(job.id, parts.SEED_SUMMARY) is None
    # When the second is read, it merges and hands on to lineage, once
    run_next(runtime, 1)
    assert queued(runtime) == [MessageKey(LINEAGE)]
    # And a copy of a range message (a redelivery) reads and sends nothing more
    runtime.handle(job.id, MessageKey(SEED_RESOLVE, group=0))
    assert queued(runtime) == [MessageKey(LINEAGE)]
    assert runtime.registry.queries(job.id) == {
        f"{parts.SEED_QUERIES}:0": 1,
        f"{parts.SEED_QUERIES}:1": 1,
    }
    run(runtime)
    assert runtime.registry.load(job.id).state == FINISHED


def test_a_merge_claimed_by_a_worker_that_died_is_done_by_the_work_sent_again(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace in two ranges whose merge another worker claimed (and then died)
    runtime = Runtime(in_ranges(settings, 2), InlineDispatcher())
    job, _ = runtime.submit(MSD, fresh=True)
    run_next(runtime, 1)
    assert runtime.registry.claim(job.id, MERGE_CLAIM)
    # When the last range is read: the merge is left to the claim's holder
    run_next(runtime, 1)
    assert queued(runtime) == []
    assert runtime.store.get_blob(job.id, parts.SEED_SUMMARY) is None
    # When its message is sent again (as the reaper does for a dead worker's work)
    runtime.handle(job.id, MessageKey(SEED_RESOLVE, group=1), resumed=True)
    # Then it merges, hands on, and the trace finishes without reading a range again
    assert queued(runtime) == [MessageKey(LINEAGE)]
    run(runtime)
    assert runtime.registry.load(job.id).state == FINISHED
    assert all(
        count == 1
        for tag, count in runtime.registry.queries(job.id).items()
        if tag.startswith(parts.SEED_QUERIES)
    )


@pytest.mark.parametrize("failure", ["permanent"])
def test_a_failed_range_is_read_again_alone_by_an_operator_retry(
    settings: Settings, store_redis: redis.Redis, failure: str
) -> None:
    # Given a trace in two ranges whose second range's query failed
    runtime = faulty_runtime(in_ranges(settings, 2), store_redis)
    store_redis.hset(
        FAULTS_KEY, mapping={"pass:msd/detection_lots": 1, "fail:msd/detection_lots": failure}
    )
    job, _ = runtime.submit(MSD, fresh=True)
    run(runtime)
    failed = runtime.registry.load(job.id)
    assert failed.state == FAILED and failed.error["stage"] == SEED_RESOLVE
    assert runtime.store.get_blob(job.id, parts.SEED_SUMMARY) is None
    # When the cause is fixed and an operator retries it
    store_redis.hdel(FAULTS_KEY, "fail:msd/detection_lots")
    assert runtime.retry(job.id)
    assert queued(runtime) == [MessageKey(SEED_RESOLVE, group=1)]
    run(runtime)
    # Then it finishes; the first range was read once, the second again
    assert runtime.registry.load(job.id).state == FINISHED
    asked = runtime.registry.queries(job.id)
    assert asked[f"{parts.SEED_QUERIES}:0"] == 1
    assert asked[f"{parts.SEED_QUERIES}:1"] == 2


def test_workers_set_for_another_count_read_the_ranges_the_job_was_sent_for(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace sent by a service that reads a window in two ranges
    sender, job = sent_in_two_ranges(settings)
    # When workers set for three ranges (a configuration rolled out meanwhile) run it
    worker = Runtime(in_ranges(settings, 3), sender.dispatch)
    run(worker)
    # Then they read the two ranges it was sent for, merged them, and it finished
    done = worker.registry.load(job.id)
    assert done is not None and done.state == FINISHED, done
    assert sorted(worker.store.manifest(job.id, parts.SEED_QUERIES)) == [0, 1]
