"""Never a partial result presented as complete: what a job whose events domains failed says,
what an operator retry re-runs, and when an equal request may join a finished job (issue 17).

The engine's logic against real Redis, messages run in this process (``InlineDispatcher``); the
fault-injecting source lets some calls of a query through, then fails it for good."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis

from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.analyses import reanalysis
from pipeline.engine.job import AGGREGATION, EVENTS, FAILED, FINISHED, Job
from pipeline.engine.quality import domain_quality, query_quality
from pipeline.engine.runtime import Runtime
from pipeline.engine.status import job_status
from pipeline.request import TraceRequest
from pipeline.runner import run_trace
from pipeline.sources.sqlite import SqliteSource
from tests.engine.helpers import detail_rows, direct_rows, job_rows
from tests.engine.test_flow import (
    MSD,
    faulty_runtime,
    finished_msd,
    query_tool,
    run,
    run_until,
)
from tests.support.faults import FAULTS_KEY
from tests.support.warehouse import lots

MSD_DOMAINS = ("upstream_history", "materials")


def break_query(client: redis.Redis, domain: str, *, after: int = 0) -> None:
    """The events query of ``domain`` answers ``after`` calls, then fails for good."""
    client.hset(FAULTS_KEY, f"fail:events/{domain}", "permanent")
    if after:
        client.hset(FAULTS_KEY, f"pass:events/{domain}", after)


def mend(client: redis.Redis) -> None:
    client.delete(FAULTS_KEY)


def msd_expected(source: SqliteSource, settings: Settings, tmp_path: Path) -> object:
    run_trace(source, MSD, settings, tmp_path / "runner")
    return orjson.loads((tmp_path / "runner" / "aggregation.json").read_bytes())


def stored_aggregation(runtime: Runtime, job_id: str) -> object:
    stored = runtime.store.get_json(job_id, "aggregation")
    return orjson.loads(stored) if stored else None


def test_an_msd_job_whose_every_domain_failed_is_failed_and_never_aggregates(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a warehouse whose events queries of both MSD domains fail for good
    runtime = faulty_runtime(settings, store_redis)
    for domain in MSD_DOMAINS:
        break_query(store_redis, domain)
    # When the job runs
    job, _ = runtime.submit(MSD)
    run(runtime)
    # Then it failed in events with the source's code, and the analysis never ran
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FAILED, ended
    assert ended.error is not None and ended.error["stage"] == EVENTS
    assert ended.error["code"] == "SOURCE_QUERY_FAILED"
    assert AGGREGATION not in ended.completed
    assert parts.runs(AGGREGATION) not in runtime.registry.progress(job.id)
    assert stored_aggregation(runtime, job.id) is None


def test_a_retry_refetches_only_the_uncommitted_batches_of_failed_domains_and_ends_complete(
    settings: Settings, store_redis: redis.Redis, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given an MSD job whose two domains failed after committing a few batches each
    runtime = faulty_runtime(settings, store_redis)
    break_query(store_redis, "upstream_history", after=2)
    break_query(store_redis, "materials", after=1)
    job, _ = runtime.submit(MSD)
    run(runtime)
    assert runtime.registry.state(job.id) == FAILED
    before = runtime.registry.queries(job.id)
    committed = {d: runtime.store.finished(job.id, parts.events(d)) for d in MSD_DOMAINS}
    assert all(committed.values()), committed
    # When the warehouse is back and an operator retries the job
    mend(store_redis)
    assert runtime.retry(job.id)
    run(runtime)
    # Then the job finished complete with the undisturbed result...
    done = runtime.registry.load(job.id)
    assert done is not None and done.state == FINISHED, done
    status = job_status(done, runtime.registry, settings.max_rows_per_domain)
    assert status["failed_domains"] == [] and status["error"] is None
    quality = domain_quality(done, runtime.registry, settings.max_rows_per_domain)
    assert {d: q["status"] for d, q in quality.items()} == dict.fromkeys(MSD_DOMAINS, "complete")
    expected = direct_rows(sqlite_source, MSD, settings)
    assert job_rows(runtime.store, job.id, MSD_DOMAINS) == {d: expected[d] for d in MSD_DOMAINS}
    assert stored_aggregation(runtime, job.id) == msd_expected(sqlite_source, settings, tmp_path)
    # ... and no committed batch was asked for again
    after = runtime.registry.queries(job.id)
    for domain, batches in committed.items():
        for batch in batches:
            tag = f"{parts.events(domain)}:{batch}"
            assert after[tag] == before[tag] == 1, tag


def test_a_partly_failed_job_says_partial_with_the_missing_ranges_and_can_be_retried(
    settings: Settings, warehouse: Path, store_redis: redis.Redis, sqlite_source: SqliteSource
) -> None:
    # Given a query-tool job whose holds query fails for good after one batch
    runtime = faulty_runtime(settings, store_redis)
    break_query(store_redis, "holds", after=1)
    request = query_tool(warehouse)
    job, _ = runtime.submit(request)
    run(runtime)
    # Then it finished, naming holds as failed, its missing lots as ranges, the query partial
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FINISHED
    assert job_status(ended, runtime.registry, settings.max_rows_per_domain)["failed_domains"] == [
        "holds"
    ]
    quality = domain_quality(ended, runtime.registry, settings.max_rows_per_domain)
    holds = quality["holds"]
    assert holds["status"] == "failed"
    total = runtime.registry.progress(job.id)[parts.total(parts.events("holds"))]
    assert total > 1
    cids = [row[0] for b in range(1, total) for row in runtime.store.read_batch(job.id, "cids", b)]
    assert holds["failed_ranges"] == [{"start": cids[0], "end": cids[-1], "lots": len(cids)}]
    assert query_quality(quality)["status"] == "partial"
    before = runtime.registry.queries(job.id)
    # When the warehouse is back and the job is retried
    mend(store_redis)
    assert runtime.retry(job.id)
    run(runtime)
    # Then only holds ran again, and the job is complete with the undisturbed rows
    done = runtime.registry.load(job.id)
    assert done is not None and done.state == FINISHED
    quality = domain_quality(done, runtime.registry, settings.max_rows_per_domain)
    assert query_quality(quality)["status"] == "complete"
    assert "failed_ranges" not in quality["holds"]
    expected = direct_rows(sqlite_source, request, settings)
    assert job_rows(runtime.store, job.id, request.domains) == expected
    after = runtime.registry.queries(job.id)
    assert {k: n for k, n in after.items() if not k.startswith("events:holds")} == {
        k: n for k, n in before.items() if not k.startswith("events:holds")
    }
    assert after["events:holds:0"] == 1 and after["events:holds:1"] == 2  # failed once, then ran


def test_a_job_whose_every_domain_failed_is_failed_and_a_retry_finishes_it(
    settings: Settings, warehouse: Path, store_redis: redis.Redis, sqlite_source: SqliteSource
) -> None:
    # Given a query-tool events job (from CIDs) whose every domain fails
    runtime = faulty_runtime(settings, store_redis)
    cids = tuple(lots(warehouse, "CONTAINERID", 250))
    request = TraceRequest(profile="query_tool", domains=("history", "holds"), container_ids=cids)
    for domain in request.domains:
        break_query(store_redis, domain, after=1)
    job, _ = runtime.submit(request)
    run(runtime)
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FAILED and ended.error is not None
    assert ended.error["stage"] == EVENTS
    # When retried once the warehouse is back, it finishes with every row
    mend(store_redis)
    assert runtime.retry(job.id)
    run(runtime)
    assert runtime.registry.state(job.id) == FINISHED
    expected = direct_rows(sqlite_source, request, settings)
    assert job_rows(runtime.store, job.id, request.domains) == expected


def test_an_analysis_over_a_failed_domain_says_it_is_partial_and_why(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given an MSD job whose materials fail for good (upstream_history is fine)
    runtime = faulty_runtime(settings, store_redis)
    break_query(store_redis, "materials")
    job, _ = runtime.submit(MSD)
    run(runtime)
    # Then the job finished, but its quality says partial, naming the analysis without materials
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FINISHED
    status = job_status(ended, runtime.registry, settings.max_rows_per_domain)
    assert status["failed_domains"] == ["materials"]
    meta = status["quality_meta"]
    assert meta is not None and meta["status"] == "partial"
    assert any("aggregation" in r and "materials" in r for r in meta["reasons"]), meta


def test_a_finished_job_missing_a_batch_is_never_reported_complete(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a finished job, then one committed batch of history vanishes from its manifest
    runtime = faulty_runtime(settings, store_redis)
    job, _ = runtime.submit(query_tool(warehouse))
    run(runtime)
    part = parts.events("history")
    store_redis.hdel(keys.manifest(job.id, part), "1")
    store_redis.hincrby(keys.progress(job.id), parts.done(part), -1)
    # Then its quality says partial with the missing range, not complete
    ended = runtime.registry.load(job.id)
    assert ended is not None
    quality = domain_quality(ended, runtime.registry, settings.max_rows_per_domain)
    assert quality["history"]["status"] == "partial"
    assert len(quality["history"]["failed_ranges"]) == 1
    assert query_quality(quality)["status"] == "partial"


def test_an_equal_request_never_joins_a_finished_job_whose_result_is_damaged(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a finished job, then one of its chunks is lost (evicted, say)
    runtime = faulty_runtime(settings, store_redis)
    request = query_tool(warehouse)
    first, _ = runtime.submit(request)
    run(runtime)
    again, created = runtime.submit(request)
    assert (again.id, created) == (first.id, False)  # whole: joined
    entry = runtime.store.manifest(first.id, parts.events("holds"))[0]
    store_redis.delete(entry.chunks[0].key)
    # When the same request comes again, then a new job runs, and the damaged one is marked
    fresh, created = runtime.submit(request)
    assert created and fresh.id != first.id
    assert runtime.registry.damaged(first.id)
    # ... and stays unused even once the newer job's dedupe entry is gone
    store_redis.delete(keys.dedupe(fresh.fingerprint))
    store_redis.set(keys.dedupe(first.fingerprint), first.id)
    third, created = runtime.submit(request)
    assert created and third.id != first.id


def test_an_equal_request_never_joins_a_partly_failed_job(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    runtime = faulty_runtime(settings, store_redis)
    break_query(store_redis, "holds")
    request = query_tool(warehouse)
    first, _ = runtime.submit(request)
    run(runtime)
    assert runtime.registry.state(first.id) == FINISHED
    again, created = runtime.submit(request)
    assert created and again.id != first.id


def test_a_job_before_its_events_and_one_ended_before_them_are_never_complete(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a job submitted and not run yet (its lots, and so its input batches, unknown)
    waiting, _ = inline.submit(MSD)
    quality = domain_quality(waiting, inline.registry, 1000)
    # Then no domain is complete: each is in progress, with nothing observed
    assert {m["status"] for m in quality.values()} == {"partial"}
    assert all("in progress" in m["reasons"][0] for m in quality.values())
    assert query_quality(quality, waiting)["status"] == "partial"
    status = job_status(inline.registry.load(waiting.id), inline.registry, 1000)
    assert status["quality_meta"]["status"] == "partial"
    # When it is cancelled before its events stage ran
    assert inline.registry.cancel(waiting.id) == "cancelled"
    ended = inline.registry.load(waiting.id)
    assert ended is not None and EVENTS not in ended.completed
    # Then its domains say they were never fetched, not complete
    quality = domain_quality(ended, inline.registry, 1000)
    assert {m["status"] for m in quality.values()} == {"partial"}
    assert all("not fetched" in m["reasons"][0] for m in quality.values())


def test_a_lot_record_read_short_is_set_aside_for_the_events(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a backward trace whose analysis kept its lot record, analysed again under another
    # mask from that record
    trace = finished_msd(inline)
    masked = reanalysis(trace, {"loss_reasons": ("刀痕",)})
    intact, _ = inline.submit(masked)
    run(inline)
    # When the same analysis runs again, its linked record's manifest gone before it is read
    again, created = inline.submit(masked, fresh=True)
    assert created and inline.store.get_blob(again.id, parts.LOT_RECORD_META) is not None
    store_redis.delete(keys.manifest(again.id, parts.AGGREGATION_LOT_RECORD))
    run(inline)
    # Then it folds the trace's events instead and answers the same: it once finished with
    # the lots it read, none, as if that were the trace
    ended = inline.registry.load(again.id)
    assert ended is not None and ended.state == FINISHED, ended
    assert stored_aggregation(inline, again.id) == stored_aggregation(inline, intact.id)
    rows = {job.id: detail_rows(inline, job.id) for job in (again, intact)}
    assert rows[again.id] == rows[intact.id] and rows[again.id]


def test_a_lot_record_linked_without_its_blob_is_written_afresh_not_kept(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a backward trace whose analysis kept its lot record, analysed again under a mask
    # from that record
    trace = finished_msd(inline)
    masked = reanalysis(trace, {"loss_reasons": ("刀痕",)})
    intact, _ = inline.submit(masked)
    run(inline)
    # When the same analysis runs again with the record and its heads linked but not its blob
    # (copied last: the submitting process died before it), so it folds the events and keeps
    # a record of its own, in the parts holding the linked ones
    again, created = inline.submit(masked, fresh=True)
    assert created and inline.store.finished(again.id, parts.AGGREGATION_RECORD_HEADS)
    store_redis.delete(keys.blob(again.id, parts.LOT_RECORD_META))
    run(inline)
    # Then its detail rows are the same as the analysis's from the record: the linked heads
    # (in the trace's detail order, not this mask's) were not kept as its own
    ended = inline.registry.load(again.id)
    assert ended is not None and ended.state == FINISHED, ended
    assert detail_rows(inline, again.id) == detail_rows(inline, intact.id)
    # And the record it kept serves the next analysis of it as the trace's did
    other = {"loss_reasons": ("異物",)}
    expected, _ = inline.submit(reanalysis(trace, other))
    following, _ = inline.submit(reanalysis(ended, other))
    run(inline)
    assert inline.store.get_blob(following.id, parts.LOT_RECORD_META) is not None
    assert detail_rows(inline, following.id) == detail_rows(inline, expected.id)


def test_lineage_lost_before_the_analysis_fails_it_rather_than_read_lots_alone(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a backward trace whose lineage was stored, up to its analysis
    job, _ = inline.submit(MSD)
    run_until(inline, AGGREGATION)
    assert inline.store.finished(job.id, parts.lineage("ancestors"))
    # When the ancestors' manifest is gone (evicted) before the analysis reads it
    store_redis.delete(keys.manifest(job.id, parts.lineage("ancestors")))
    run(inline)
    # Then the analysis fails saying so: it once took each lot as standing alone, the answer
    # for a request that brought no lineage, not for a lineage lost on the way
    ended = inline.registry.load(job.id)
    assert ended is not None and ended.state == FAILED, ended
    assert ended.error is not None and "ancestors" in ended.error["message"]


def test_an_analysis_of_an_analysis_reads_the_trace_s_detection_lots_back_not_the_warehouse(
    settings: Settings, store_redis: redis.Redis
) -> None:
    runtime = faulty_runtime(settings, store_redis)
    # Given a backward trace analysed again under a mask (from its lot record): that analysis
    # is now the trace's latest job, the one another mask is taken from
    trace = finished_msd(runtime)
    assert trace.trace_query_id
    masked, _ = runtime.submit(reanalysis(trace, {"loss_reasons": ("刀痕",)}))
    run(runtime)
    latest = runtime.registry.stored_trace(trace.trace_query_id)
    assert latest is not None and latest.id == masked.id
    second = {"loss_reasons": ("刀痕", "異物")}
    expected, _ = runtime.submit(reanalysis(trace, second))
    run(runtime)
    # When another mask's analysis of it must fold the events (its lot record's manifest gone)
    # while the warehouse's detection query would fail
    again, created = runtime.submit(reanalysis(latest, second), fresh=True)
    assert created
    store_redis.delete(keys.manifest(again.id, parts.AGGREGATION_LOT_RECORD))
    store_redis.hset(FAULTS_KEY, "fail:msd/detection_lots", "permanent")
    run(runtime)
    # Then it reads the trace's detection lots back, as every re-analysis does: it once asked
    # the warehouse for them again (the window's lots as they are now, not the trace's)
    mend(store_redis)
    ended = runtime.registry.load(again.id)
    assert ended is not None and ended.state == FINISHED, ended
    assert stored_aggregation(runtime, again.id) == stored_aggregation(runtime, expected.id)


def test_a_stored_trace_losing_a_part_as_it_is_reused_is_set_aside_and_the_request_runs_whole(
    settings: Settings, store_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = faulty_runtime(settings, store_redis)
    # Given a finished trace, found whole by an equal analysis under another mask (the page's
    # POST), whose events manifest is evicted before that job links it
    trace = finished_msd(runtime)
    find = runtime.registry.stored_trace

    def evicted_once_found(trace_query_id: str) -> Job | None:
        found = find(trace_query_id)
        if found is not None:
            store_redis.delete(keys.manifest(found.id, parts.events("upstream_history")))
        return found

    monkeypatch.setattr(runtime.registry, "stored_trace", evicted_once_found)
    seeds = [row[0] for batch in runtime.store.read(trace.id, parts.SEEDS) for row in batch.rows]
    masked = MSD.model_copy(
        update={
            "params": MSD.params.model_copy(update={"loss_reasons": ("刀痕",)}),
            "container_ids": tuple(seeds),
            "seed_container_ids": tuple(seeds),
            "kind": EVENTS,  # the page's events request (POST /api/trace/events)
        }
    )
    # When it is submitted
    job, created = runtime.submit(masked)
    run(runtime)
    # Then it is not refused (CHUNK_LOST, a 500): it fetched the trace itself and finished
    # whole, and the damaged trace is never reused again
    assert created
    ended = runtime.registry.load(job.id)
    assert ended is not None and ended.state == FINISHED, ended
    assert ended.request.events_of is None
    assert runtime.registry.flaw(ended) is None
    assert runtime.registry.damaged(trace.id)
