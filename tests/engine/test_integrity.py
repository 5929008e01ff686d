"""The whole-result check's kept chunk keys (``integrity.ResultKeys``): read once per finished
job, read again when the job's parts or its finishing change, bounded over all jobs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import redis

from pipeline.engine import keys, parts
from pipeline.engine.integrity import ResultKeys, chunk_keys, flaw, result_parts
from pipeline.engine.job import Job
from pipeline.engine.manifest import ChunkRef, Entry
from pipeline.engine.runtime import Runtime
from tests.engine.test_flow import query_tool, run


def finished(inline: Runtime, warehouse: Path, n: int) -> Job:
    job, _ = inline.submit(query_tool(warehouse, n))
    run(inline)
    loaded = inline.registry.load(job.id)
    assert loaded is not None and loaded.state == "finished"
    return loaded


def test_kept_keys_serve_until_a_commit_or_a_new_finish_changes_them(
    inline: Runtime, warehouse: Path, store_redis: redis.Redis
) -> None:
    store = inline.store
    job = finished(inline, warehouse, 150)
    result, _ = result_parts(store, job)
    kept = ResultKeys()
    counters = inline.registry.progress(job.id)
    first = kept.of(store, job, result, counters)
    assert first == chunk_keys(store, job.id, result) and len(first) > 3
    assert kept.of(store, job, result, counters) is first  # read once
    # Given a batch rewritten in place under another chunk key, its count unchanged (what only
    # a retry does, and a retry finishes the job again)
    part = parts.events("holds")
    entry = store.manifest(job.id, part)[0]
    moved = Entry(0, (ChunkRef("elsewhere", entry.rows, 0),), entry.truncated, entry.note)
    store_redis.hset(keys.manifest(job.id, part), "0", moved.to_bytes())
    # Then the same finishing keeps its keys, and a new one reads the manifests again
    assert kept.of(store, job, result, counters) is first
    again = dataclasses.replace(job, finished_at=(job.finished_at or 0) + 1)
    assert "elsewhere" in kept.of(store, again, result, counters)
    # ... as does a commit (it counts in the part's ``done``)
    store_redis.hincrby(keys.progress(job.id), parts.done(part), 1)
    grown = kept.of(store, job, result, inline.registry.progress(job.id))
    assert grown is not first and "elsewhere" in grown


def test_a_check_with_kept_keys_finds_a_chunk_gone_since(
    inline: Runtime, warehouse: Path, store_redis: redis.Redis
) -> None:
    job = finished(inline, warehouse, 150)
    registry = inline.registry
    assert registry.flaw(job) is None  # the keys are kept now
    store_redis.delete(chunk_keys(inline.store, job.id, [parts.events("history")])[-1])
    found = flaw(inline.store, job, {}, registry.progress(job.id), registry.result_keys)
    assert found is not None and found.damaged and "gone" in found.reason


def test_kept_keys_stay_within_their_bound_dropping_the_oldest(
    inline: Runtime, warehouse: Path, store_redis: redis.Redis
) -> None:
    store = inline.store
    old, new = finished(inline, warehouse, 150), finished(inline, warehouse, 40)
    sizes = {}
    for job in (old, new):
        result, _ = result_parts(store, job)
        sizes[job.id] = len(chunk_keys(store, job.id, result))
    kept = ResultKeys(limit=max(sizes.values()) + 1)
    for job in (old, new):
        result, _ = result_parts(store, job)
        kept.of(store, job, result, inline.registry.progress(job.id))
    # Then only the newest job's keys are kept
    assert kept.jobs() == [new.id]


def test_keys_of_two_sets_of_parts_of_one_job_are_kept_apart(
    inline: Runtime, warehouse: Path, store_redis: redis.Redis
) -> None:
    store = inline.store
    job = finished(inline, warehouse, 150)
    result, _ = result_parts(store, job)
    counters = inline.registry.progress(job.id)
    kept = ResultKeys()
    # Given the keys of all parts and of the first two (as the detail page and a result page ask)
    whole, some = kept.of(store, job, result, counters), kept.of(store, job, result[:2], counters)
    # Then each set has its own keys, both kept, and neither is given for the other
    assert some == chunk_keys(store, job.id, result[:2]) and len(some) < len(whole)
    assert kept.of(store, job, result, counters) is whole
    assert kept.of(store, job, result[:2], counters) is some
    assert kept.jobs() == [job.id]
