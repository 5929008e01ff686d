"""The job registry against real Redis (database 14): creation and dedupe, compare-and-set state
changes, indexes, claims; and the trace request's validation and fingerprint."""

from __future__ import annotations

import re
import time

import pytest
import redis

from pipeline.engine import keys, parts
from pipeline.engine.job import CANCELLED, FAILED, FINISHED, LINEAGE, QUEUED, SEED_RESOLVE, STARTED
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore
from pipeline.errors import InvalidInput, InvalidProfile
from pipeline.request import TraceRequest
from pipeline.rows import RowBatch

TTL = 600


def request(
    values: list[str] | None = None, domains: tuple[str, ...] = ("history", "holds")
) -> TraceRequest:
    values = ["L1", "L2", "L3"] if values is None else values
    params = {"resolve_type": "lot_id", "values": values}
    return TraceRequest(profile="query_tool", params=params, domains=domains)


@pytest.fixture
def store(store_redis: redis.Redis) -> CheckpointStore:
    return CheckpointStore(store_redis, ttl_seconds=TTL)


@pytest.fixture
def registry(store_redis: redis.Redis, store: CheckpointStore) -> JobRegistry:
    return JobRegistry(store_redis, store)


def in_index(client: redis.Redis, index: str, job_id: str) -> bool:
    return client.zscore(index, job_id) is not None


def finished_job(registry: JobRegistry) -> str:
    """A job that finished whole: its lineage found no lot, so each domain has no batch."""
    job, _ = registry.submit(request())
    assert registry.start_stage(job.id, SEED_RESOLVE)
    registry.set_totals(job.id, {parts.events(d): 0 for d in job.domains})
    assert registry.finish(job.id)
    return job.id


def test_submit_creates_a_queued_indexed_job_that_loads_back(
    registry: JobRegistry, store_redis: redis.Redis
) -> None:
    # Given a validated request
    wanted = request()
    # When it is submitted
    job, created = registry.submit(wanted)
    # Then a new queued job exists with a 128-bit hex id, in the recent and running indexes
    assert created is True
    assert re.fullmatch(r"[0-9a-f]{32}", job.id)
    assert in_index(store_redis, keys.RECENT, job.id)
    assert in_index(store_redis, keys.RUNNING, job.id)
    assert 0 < store_redis.ttl(keys.job(job.id)) <= TTL
    # And loading it gives back the same request, state and fingerprint
    loaded = registry.load(job.id)
    assert loaded is not None
    assert (loaded.request, loaded.state) == (wanted, QUEUED)
    assert loaded.fingerprint == wanted.fingerprint()
    assert loaded.cid_count == 0 and loaded.error is None and loaded.completed == []
    assert registry.load("f" * 32) is None


def test_submitting_the_same_request_again_returns_the_same_job(registry: JobRegistry) -> None:
    # Given a submitted job
    job, _ = registry.submit(request(["L1", "L2", "L3"], ("history", "holds")))
    # When the same request comes again, values and domains in another order
    again, created = registry.submit(request(["L3", "L1", "L2"], ("holds", "history")))
    # Then the existing job is returned, nothing created
    assert (again.id, created) == (job.id, False)
    # And a different request gets its own job
    other, created_other = registry.submit(request(["L4"]))
    assert created_other is True and other.id != job.id


def test_a_fresh_submit_creates_a_new_job_for_the_same_request(registry: JobRegistry) -> None:
    # Given a queued job
    job, _ = registry.submit(request())
    # When the same request is submitted with fresh=True
    fresh, created = registry.submit(request(), fresh=True)
    # Then it is a new job, and later plain submits are served by that new one
    assert created is True and fresh.id != job.id
    assert registry.submit(request())[0].id == fresh.id


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_a_failed_or_cancelled_job_is_not_reused(registry: JobRegistry, end: str) -> None:
    # Given a job that failed or was cancelled
    job, _ = registry.submit(request())
    if end == "fail":
        assert registry.fail(job.id, SEED_RESOLVE, "SOURCE_ERROR", "down")
    else:
        assert registry.cancel(job.id) == CANCELLED
    # When the same request is submitted again, Then a new job is created
    again, created = registry.submit(request())
    assert created is True and again.id != job.id
    assert again.state == QUEUED


def test_a_finished_job_is_still_returned_for_the_same_request(registry: JobRegistry) -> None:
    # Given a job that ran a stage and finished
    job_id = finished_job(registry)
    # When the same request is submitted again, Then the finished job is returned
    again, created = registry.submit(request())
    assert (again.id, again.state, created) == (job_id, FINISHED, False)


def test_a_finished_job_older_than_the_reuse_window_is_not_reused(
    store_redis: redis.Redis, store: CheckpointStore
) -> None:
    # Given a registry that reuses finished results for 300 s, and a job that finished 301 s ago
    registry = JobRegistry(store_redis, store, reuse_seconds=300)
    job_id = finished_job(registry)
    store_redis.hset(keys.job(job_id), "finished_at", repr(time.time() - 301))
    # When the same request comes, Then a new job runs it (the warehouse may have moved on)
    again, created = registry.submit(request())
    assert created is True and again.id != job_id
    # And a job still running is always joined, however old
    joined, created = registry.submit(request())
    assert (joined.id, created) == (again.id, False)


def test_finish_of_a_queued_job_is_refused(registry: JobRegistry) -> None:
    # Given a queued job (no stage started)
    job, _ = registry.submit(request())
    # When it is finished, Then the change is refused and it stays queued
    assert registry.finish(job.id) is False
    assert registry.state(job.id) == QUEUED
    # And an unknown job cannot be finished either
    assert registry.finish("0" * 32) is False


def test_cancel_of_a_finished_job_leaves_it_finished(registry: JobRegistry) -> None:
    # Given a finished job
    job_id = finished_job(registry)
    # When it is cancelled, Then it stays finished, and cannot fail either
    assert registry.cancel(job_id) == FINISHED
    assert registry.fail(job_id, None, "X", "late") is False
    assert registry.state(job_id) == FINISHED


def test_fail_records_the_error_and_moves_the_job_to_the_failed_index(
    registry: JobRegistry, store_redis: redis.Redis
) -> None:
    # Given a started job
    job, _ = registry.submit(request())
    assert registry.start_stage(job.id, LINEAGE) is True
    assert registry.state(job.id) == STARTED
    # When it fails in lineage
    assert registry.fail(job.id, LINEAGE, "SOURCE_QUERY_FAILED", "no table") is True
    # Then the error is in its status, and it moved from the running to the failed index
    failed = registry.load(job.id)
    assert failed is not None and failed.state == FAILED
    assert failed.error == {"stage": LINEAGE, "code": "SOURCE_QUERY_FAILED", "message": "no table"}
    assert failed.finished_at is not None
    assert in_index(store_redis, keys.FAILED, job.id)
    assert not in_index(store_redis, keys.RUNNING, job.id)
    # And a second fail is refused, keeping the first error
    assert registry.fail(job.id, None, "OTHER", "again") is False
    assert registry.load(job.id).error["code"] == "SOURCE_QUERY_FAILED"  # type: ignore[union-attr]


def test_reopen_moves_a_failed_job_back_to_queued_keeping_completed_stages(
    registry: JobRegistry, store_redis: redis.Redis
) -> None:
    # Given a job that completed seed-resolve, then failed in lineage
    job, _ = registry.submit(request())
    registry.start_stage(job.id, SEED_RESOLVE)
    registry.complete_stage(job.id, SEED_RESOLVE)
    registry.start_stage(job.id, LINEAGE)
    registry.fail(job.id, LINEAGE, "SOURCE_ERROR", "down")
    # When it is reopened
    assert registry.reopen(job.id) is True
    # Then it is queued again, without error, out of the failed index and back in running
    reopened = registry.load(job.id)
    assert reopened is not None
    assert (reopened.state, reopened.error, reopened.finished_at) == (QUEUED, None, None)
    assert not in_index(store_redis, keys.FAILED, job.id)
    assert in_index(store_redis, keys.RUNNING, job.id)
    # And seed-resolve still counts as completed, so the job resumes at lineage
    assert reopened.completed == [SEED_RESOLVE]
    assert reopened.pending_stage() == LINEAGE
    # And a job that is not failed cannot be reopened
    assert registry.reopen(job.id) is False


def test_reopen_gives_a_job_late_in_its_life_a_fresh_ttl_and_a_place_in_the_recent_index(
    registry: JobRegistry, store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a job that failed, with a checkpoint key, seconds before it expires, and that a
    # later submit's trim dropped from the recent index
    job, _ = registry.submit(request())
    registry.start_stage(job.id, SEED_RESOLVE)
    part_key = keys.job(job.id) + ":probe"
    pipe = store_redis.pipeline()
    store.register(pipe, job.id, part_key)
    pipe.set(part_key, b"x")
    pipe.execute()
    registry.fail(job.id, SEED_RESOLVE, "SOURCE_ERROR", "down")
    for name in (keys.job(job.id), part_key):
        store_redis.expire(name, 5)
    store_redis.zrem(keys.RECENT, job.id)
    # When an operator retries it
    assert registry.reopen(job.id) is True
    # Then its keys live a whole TTL again and it is listed among the recent jobs
    assert store_redis.ttl(keys.job(job.id)) > TTL - 10
    assert store_redis.ttl(part_key) > TTL - 10
    assert in_index(store_redis, keys.RECENT, job.id)


def test_complete_stage_and_claim_answer_true_only_the_first_time(
    registry: JobRegistry, store_redis: redis.Redis
) -> None:
    # Given a started job
    job, _ = registry.submit(request())
    registry.start_stage(job.id, SEED_RESOLVE)
    # When a stage is completed and a step claimed twice each
    completes = [registry.complete_stage(job.id, SEED_RESOLVE) for _ in range(2)]
    claims = [registry.claim(job.id, "events:history:0") for _ in range(2)]
    # Then only the first call of each says True, and the claim is a key of the job
    assert completes == [True, False]
    assert claims == [True, False]
    assert registry.claim(job.id, "events:history:1") is True
    claim_key = keys.claim(job.id, "events:history:0").encode()
    assert claim_key in store_redis.smembers(keys.job_keys(job.id))
    assert 0 < store_redis.ttl(claim_key) <= TTL


def test_cancel_releases_the_checkpoints_but_keeps_the_status_readable(
    registry: JobRegistry, store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a started job with a committed chunk
    job, _ = registry.submit(request())
    registry.start_stage(job.id, SEED_RESOLVE)
    entry = store.write_batch(job.id, parts.SEED_QUERIES, 0, [RowBatch(("X",), [("a",)])])
    store.commit(job.id, parts.SEED_QUERIES, entry)
    checkpoints = [m.decode() for m in store_redis.smembers(keys.job_keys(job.id))]
    assert entry.chunks[0].key in checkpoints
    # When it is cancelled
    assert registry.cancel(job.id) == CANCELLED
    # Then every checkpoint key is gone, but the job hash says cancelled until its TTL
    assert store_redis.exists(*checkpoints, keys.job_keys(job.id)) == 0
    cancelled = registry.load(job.id)
    assert cancelled is not None and cancelled.state == CANCELLED
    assert 0 < store_redis.ttl(keys.job(job.id)) <= TTL
    assert not store_redis.zscore(keys.RUNNING, job.id)
    # And a cancelled job cannot be started again
    assert registry.start_stage(job.id, LINEAGE) is False
    assert registry.state(job.id) == CANCELLED


def test_an_unknown_profile_is_invalid_profile() -> None:
    # When a request names no known profile, Then InvalidProfile names the field
    with pytest.raises(InvalidProfile) as caught:
        TraceRequest(profile="no_such_profile", params={})
    assert caught.value.field == "profile"
    assert caught.value.code == "INVALID_PROFILE"


def test_an_unknown_domain_is_invalid_input() -> None:
    # When a request asks for an unknown domain, Then InvalidInput (not a profile error) names it
    with pytest.raises(InvalidInput, match="nope") as caught:
        TraceRequest(profile="query_tool", params={}, domains=("history", "nope"))
    assert type(caught.value) is InvalidInput
    assert caught.value.field == "domains[1]"  # the field and the position


@pytest.mark.parametrize("field", ["container_ids", "domains"])
def test_from_dict_refuses_a_string_where_a_list_is_expected(field: str) -> None:
    # Given a body whose list field is a single string
    body = {"profile": "query_tool", "container_ids": ["C1"], field: "history"}
    # When it is read, Then InvalidInput names the field
    with pytest.raises(InvalidInput, match=f"{field}: must be a list") as caught:
        TraceRequest.from_dict(body)
    assert caught.value.field == field


def test_from_dict_reads_back_as_dict() -> None:
    # Given a validated request, When its JSON form is read back, Then it is the same request
    original = TraceRequest(
        profile="query_tool", params={}, domains=(), container_ids=(" C2 ", "C1", "C1")
    )
    assert original.container_ids == ("C2", "C1")
    assert TraceRequest.from_dict(original.as_dict()) == original


def test_fingerprint_is_equal_for_reordered_ids_and_different_for_different_params() -> None:
    # Given requests differing only in the order of their ids, values and domains
    base = TraceRequest(
        profile="query_tool",
        params={"values": ["A", "B"]},
        domains=("history", "holds"),
        container_ids=("C1", "C2"),
    )
    same = TraceRequest(
        profile="query_tool",
        params={"values": ["B", "A"]},
        domains=("holds", "history"),
        container_ids=("C2", "C1"),
    )
    # Then their fingerprints are equal (a sha256 hex)
    assert base.fingerprint() == same.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", base.fingerprint())
    # And any real difference changes it
    cids = base.container_ids
    others = [
        TraceRequest(
            profile="query_tool",
            params={"values": ["A", "C"]},
            domains=("history", "holds"),
            container_ids=("C1", "C2"),
        ),
        TraceRequest(
            profile="query_tool",
            params={"values": ["A", "B"], "direction": "backward"},
            domains=base.domains,
            container_ids=cids,
        ),
        TraceRequest(
            profile="query_tool",
            params={"values": ["A", "B"]},
            domains=("history",),
            container_ids=("C1", "C2"),
        ),
        TraceRequest(
            profile="query_tool",
            params={"values": ["A", "B"]},
            domains=base.domains,
            container_ids=("C1", "C3"),
        ),
        TraceRequest(
            profile="query_tool_reverse",
            params={"values": ["A", "B"]},
            domains=base.domains,
            container_ids=("C1", "C2"),
        ),
    ]
    prints = {r.fingerprint() for r in others}
    assert len(prints) == len(others) and base.fingerprint() not in prints
