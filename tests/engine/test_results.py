"""The result reader: a domain's chunks as committed, pages checked before anything is read, the
aggregation, and following a job while it runs, which ends with an error (never silently short)
when the job finishes short, fails, is cancelled or is gone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.engine import keys, parts
from pipeline.engine.job import AGGREGATION, CANCELLED, FINISHED, Job
from pipeline.engine.results import JobEnded, ResultGone, ResultIncomplete, ResultReader
from pipeline.engine.runtime import Runtime
from pipeline.errors import JobLost
from pipeline.request import TraceRequest
from tests.engine.helpers import InlineDispatcher
from tests.support.warehouse import lots

DOMAINS = ("history", "materials")


@pytest.fixture
def reader(inline: Runtime) -> ResultReader:
    settings = inline.settings
    return ResultReader(
        inline.store, inline.registry, settings.max_rows_per_domain, poll_seconds=0.01
    )


def submit(inline: Runtime, warehouse: Path, n: int = 250) -> Job:
    """An events job from ``n`` lots (several input batches per domain), not run yet."""
    cids = tuple(lots(warehouse, "CONTAINERID", n))
    job, _ = inline.submit(TraceRequest(profile="query_tool", domains=DOMAINS, container_ids=cids))
    return job


def run(inline: Runtime) -> None:
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.run_all(inline)


def finished(inline: Runtime, warehouse: Path) -> Job:
    job = submit(inline, warehouse)
    run(inline)
    done = inline.registry.load(job.id)
    assert done is not None and done.state == FINISHED
    return done


def stored_rows(inline: Runtime, job: Job, domain: str) -> list[Any]:
    return [row for batch in inline.store.read(job.id, parts.events(domain)) for row in batch.rows]


def later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_the_chunks_of_a_finished_domain_are_its_rows_numbered_in_manifest_order(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    job = finished(inline, warehouse)
    chunks = list(reader.chunks(job.id, "history", follow=False))
    assert [c.number for c in chunks] == list(range(len(chunks)))
    assert len({c.batch for c in chunks}) > 1, "the domain must span several input batches"
    starts = [c.start for c in chunks]
    assert starts == [sum(c.ref.rows for c in chunks[:i]) for i in range(len(chunks))]
    rows = [row for c in chunks for row in reader.chunk_rows("history", c)]
    assert rows == stored_rows(inline, job, "history")
    assert reader.final_rows(job.id, "history") == reader.rows(job.id, "history") == len(rows)


@pytest.mark.parametrize("follow", [False, True])
def test_a_finished_job_missing_a_batch_ends_with_result_incomplete_naming_it(
    inline: Runtime, reader: ResultReader, warehouse: Path, follow: bool
) -> None:
    # Given a finished job whose manifest lost input batch 1 of history
    job = finished(inline, warehouse)
    inline.redis.hdel(keys.manifest(job.id, parts.events("history")), "1")
    # When its chunks are read, followed or not
    seen: list[int] = []
    with pytest.raises(ResultIncomplete) as raised:
        for chunk in reader.chunks(job.id, "history", follow=follow):
            seen.append(chunk.batch)
    # Then batch 0 came, and then an error naming the missing batch instead of waiting for it
    assert set(seen) == {0}
    gap = raised.value
    assert (gap.code, gap.domain, gap.batch) == ("CHUNK_LOST", "history", 1)
    assert gap.message == "the result is incomplete: history batch 1 is not in the manifest"


def test_following_a_running_job_yields_every_chunk_as_its_batch_is_committed(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    # Given a job that starts running only after the reader began to follow it
    job = submit(inline, warehouse)
    worker = later(0.1, lambda: run(inline))
    # When its domains are followed
    followed = {d: list(reader.chunks(job.id, d, follow=True)) for d in DOMAINS}
    worker.join()
    # Then every chunk came, the same as reading the finished job
    assert reader.wait_finished(job.id, follow=True).state == FINISHED
    for domain in DOMAINS:
        assert followed[domain] == list(reader.chunks(job.id, domain, follow=False))
        assert followed[domain], "the domain has rows"


def test_following_a_job_that_is_cancelled_ends_with_job_ended(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    # Given a job that never runs, cancelled while the reader waits for its first batch
    job = submit(inline, warehouse)
    timer = later(0.2, lambda: inline.registry.cancel(job.id))
    # Then following its chunks stops waiting and ends with JOB_CANCELLED
    with pytest.raises(JobEnded) as chunks_ended:
        list(reader.chunks(job.id, "history", follow=True))
    timer.join()
    assert chunks_ended.value.code == "JOB_CANCELLED" and chunks_ended.value.state == CANCELLED
    assert chunks_ended.value.message == "the job cancelled while it was streamed"
    # And so does waiting for it to finish
    with pytest.raises(JobEnded) as wait_ended:
        reader.wait_finished(job.id, follow=True)
    assert (wait_ended.value.code, wait_ended.value.message) == (
        "JOB_CANCELLED",
        "the job is cancelled",
    )


def test_a_job_that_vanishes_while_followed_ends_as_lost(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    # A job younger than its TTL cannot have expired: its keys were lost (JobLost), and a
    # follower stops at once instead of waiting (an expired job is ResultGone: tests/api)
    job = submit(inline, warehouse)
    timer = later(0.2, lambda: inline.redis.delete(keys.job(job.id)))
    with pytest.raises(JobLost, match="was lost"):
        list(reader.chunks(job.id, "history", follow=True))
    timer.join()
    with pytest.raises(JobLost) as lost:
        reader.wait_finished(job.id, follow=True)
    assert lost.value.code == "JOB_LOST"


def test_a_page_that_needs_a_lost_chunk_is_gone_before_anything_is_read(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    # Given a finished job whose third history chunk is gone
    job = finished(inline, warehouse)
    rows = stored_rows(inline, job, "history")
    chunks = list(reader.chunks(job.id, "history", follow=False))
    inline.redis.delete(chunks[2].ref.key)
    # Then a page inside the first chunk is still whole, and one that needs the third is gone
    first = reader.page(job.id, "history", 0, 5)
    assert [row for chunk in reader.page_chunks("history", first) for row in chunk] == rows[:5]
    with pytest.raises(ResultGone):
        reader.page(job.id, "history", chunks[2].start, 1)


def test_rows_at_offsets_read_each_chunk_once_and_are_gone_with_a_lost_one(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    # Given a finished job's history, over several chunks
    job = finished(inline, warehouse)
    rows = stored_rows(inline, job, "history")
    chunks = list(reader.chunks(job.id, "history", follow=False))
    part = parts.events("history")
    # When rows are asked for by offset, scattered over the chunks (some in the same chunk)
    offsets = {0, 1, chunks[1].start - 1, chunks[1].start, chunks[2].start + 3, len(rows) - 1}
    # Then each is the row at that offset
    assert reader.part_rows_at(job.id, part, offsets) == {n: rows[n] for n in offsets}
    assert reader.part_rows_at(job.id, part, ()) == {}
    # And an offset the part does not hold, or one in a chunk gone since, is gone (and the
    # job marked damaged), never left out of the answer
    with pytest.raises(ResultGone):
        reader.part_rows_at(job.id, part, {0, len(rows)})
    inline.redis.delete(chunks[2].ref.key)
    assert reader.part_rows_at(job.id, part, {0}) == {0: rows[0]}
    with pytest.raises(ResultGone):
        reader.part_rows_at(job.id, part, {0, chunks[2].start})
    assert inline.registry.flaw(job) is not None


def test_a_chunk_damaged_after_its_page_was_checked_is_result_incomplete(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    job = finished(inline, warehouse)
    page = reader.page(job.id, "materials", 0, 0)
    damaged = page.chunks[0]
    inline.redis.set(damaged.ref.key, b"\x90")  # valid msgpack, but not what was stored
    with pytest.raises(ResultIncomplete) as raised:
        list(reader.page_chunks("materials", page))
    assert (raised.value.domain, raised.value.batch) == ("materials", damaged.batch)
    assert "checksum" in raised.value.message
    with pytest.raises(ResultIncomplete):
        reader.chunk_rows("materials", damaged)


def test_the_aggregation_is_none_until_it_ran_and_gone_once_it_expired(
    inline: Runtime, reader: ResultReader, warehouse: Path
) -> None:
    request = TraceRequest(
        profile="mid_section_defect",
        params={"station": "測試", "start_date": "2026-01-01", "end_date": "2026-12-31"},
    )
    assert request.aggregates
    job = Job(id="a" * 32, request=request)
    assert reader.aggregation(job) is None  # not run yet
    job.completed.append(AGGREGATION)
    with pytest.raises(ResultGone):
        reader.aggregation(job)
    inline.store.put_json(job.id, "aggregation", b'{"attribution":[]}')
    assert reader.aggregation(job) == b'{"attribution":[]}'
    plain = finished(inline, warehouse)
    assert reader.aggregation(plain) is None  # a job that does not aggregate
