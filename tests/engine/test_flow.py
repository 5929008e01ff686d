"""The engine's logic against real Redis, messages run in this process (no broker): what a job
stores, how stages hand on, and how errors end up in the job's status."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis

from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.analyses import reanalysis
from pipeline.engine.detail_rows import WHOLE_ROWS
from pipeline.engine.job import (
    AGGREGATION,
    CANCELLED,
    EVENTS,
    FAILED,
    FINISHED,
    LARGE_QUEUE,
    LINEAGE,
    SEED_RESOLVE,
    Job,
)
from pipeline.engine.messages import MessageKey
from pipeline.engine.quality import domain_quality, query_quality
from pipeline.engine.runtime import Runtime
from pipeline.engine.status import job_status
from pipeline.engine.store import ChunkLost
from pipeline.errors import InvalidInput, SourceUnavailable
from pipeline.request import TraceRequest
from pipeline.runner import run_trace
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.events import fetch_events
from tests.engine.helpers import InlineDispatcher, detail_rows, direct_rows, job_rows
from tests.support.faults import FAULTS_KEY, FaultySqliteSource
from tests.support.warehouse import lots

MSD = TraceRequest(
    profile="mid_section_defect",
    params={"station": "測試", "start_date": "2026-01-01", "end_date": "2026-12-31"},
)


def query_tool(warehouse: Path, n: int = 150) -> TraceRequest:
    return TraceRequest(
        profile="query_tool",
        params={"resolve_type": "lot_id", "values": lots(warehouse, "CONTAINERNAME", n)},
    )


def run(inline: Runtime) -> None:
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.run_all(inline)


def finished_msd(runtime: Runtime) -> Job:
    """The ``MSD`` trace run to its end: its job as it finished (``trace_query_id`` set)."""
    job, _ = runtime.submit(MSD)
    run(runtime)
    finished = runtime.registry.load(job.id)
    assert finished is not None and finished.state == FINISHED, finished
    return finished


def test_a_job_from_seeds_stores_the_rows_the_stage_functions_return(
    inline: Runtime, warehouse: Path, sqlite_source: SqliteSource, settings: Settings
) -> None:
    # Given a query-tool trace of 150 lots (about 200 after lineage: several batches per domain)
    request = query_tool(warehouse)
    job, created = inline.submit(request)
    # When every message runs
    run(inline)
    # Then the job finished every stage, and each domain holds exactly the direct result
    job = inline.registry.load(job.id)
    assert created and job.state == FINISHED
    assert job.completed == ["seed-resolve", "lineage", "events"]
    expected = direct_rows(sqlite_source, request, settings)
    assert job_rows(inline.store, job.id, job.domains) == expected
    assert job.cid_count > settings.in_list_size  # the lots did span several batches
    progress = inline.registry.progress(job.id)
    for domain, rows in expected.items():
        assert progress[parts.rows(parts.events(domain))] == len(rows)


def test_an_msd_job_computes_the_same_analysis_as_the_in_process_runner(
    inline: Runtime, sqlite_source: SqliteSource, settings: Settings, tmp_path: Path
) -> None:
    # Given the mid-section-defect trace the in-process runner computes
    run_trace(sqlite_source, MSD, settings, tmp_path)
    expected = orjson.loads((tmp_path / "aggregation.json").read_bytes())
    # When the same request runs as a job
    job, _ = inline.submit(MSD)
    run(inline)
    # Then it finishes all four stages with the same analysis and detail rows
    job = inline.registry.load(job.id)
    assert job.state == FINISHED and job.completed[-1] == AGGREGATION
    assert orjson.loads(inline.store.get_json(job.id, "aggregation") or b"null") == expected
    detail = detail_rows(inline, job.id)
    expected_detail = (tmp_path / "detail.ndjson").read_bytes().splitlines()
    assert detail and detail == expected_detail


def test_a_detail_table_stored_with_its_rows_whole_is_read_as_it_was(inline: Runtime) -> None:
    # Given a finished trace whose detail rows are stored as a release before the heads were
    # kept apart stored them (each row's whole JSON object, a job still within its TTL)
    job = finished_msd(inline)
    whole = detail_rows(inline, job.id)
    inline.store.drop_part(job.id, parts.AGGREGATION_DETAIL)
    rows = ((row,) for row in whole)
    inline.store.write_rows(job.id, parts.AGGREGATION_DETAIL, WHOLE_ROWS, rows, 500)
    # Then its pages read those rows as they are
    assert detail_rows(inline, job.id) == whole and len(whole) > 1


def test_a_re_analysis_is_named_by_its_trace_without_reading_the_seed_lots_again(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a finished trace, its seed lots' chunks then gone (a re-analysis once digested
    # every seed lot again, ~0.7 s at 114K CIDs, inside the detail page's request)
    trace = finished_msd(inline)
    assert trace.trace_query_id
    seeds = [
        ref.key for e in inline.store.manifest(trace.id, parts.SEEDS).values() for ref in e.chunks
    ]
    assert seeds and store_redis.delete(*seeds) == len(seeds)
    # When it is analysed again under another mask (from its lot record: no seed is read)
    job, _ = inline.submit(reanalysis(trace, {"loss_reasons": ("刀痕",)}))
    run(inline)
    # Then the analysis finishes under the trace's id, the same one
    ended = inline.registry.load(job.id)
    assert ended is not None and ended.state == FINISHED, ended
    assert ended.trace_query_id == trace.trace_query_id


def test_a_job_that_cannot_be_handed_on_fails_saying_why(
    inline: Runtime, store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a trace by lot names whose seeds and lineage are done, and whose seed lots' chunks
    # are then lost (evicted): naming the trace, once its events are in, reads them
    request = query_tool(warehouse)
    job, _ = inline.submit(
        TraceRequest(profile=request.profile, params=request.params, domains=("holds",))
    )
    assert isinstance(inline.dispatch, InlineDispatcher)
    while LINEAGE not in inline.registry.load(job.id).completed:
        assert inline.dispatch.run_all(inline, limit=1) == 1
    seeds = [r.key for e in inline.store.manifest(job.id, parts.SEEDS).values() for r in e.chunks]
    assert seeds and store_redis.delete(*seeds) == len(seeds)
    # When its events run and the stage hands on
    run(inline)
    # Then the job failed with the lost chunk as its reason: the error escaped the hand-on,
    # so under Dramatiq the message was retried, dropped, and the job, still started, revived
    # by the reaper again and again, never ending
    ended = inline.registry.load(job.id)
    assert ended is not None and ended.state == FAILED, (ended.state, ended.error)
    assert ended.error is not None and ended.error["code"] == "CHUNK_LOST"
    assert ended.error["stage"] == "events" and parts.SEEDS in ended.error["message"]


def test_a_job_whose_inputs_cannot_be_taken_fails_at_once_and_is_never_joined(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a finished trace whose seed lots' manifest is gone (evicted)
    trace = finished_msd(inline)
    store_redis.delete(keys.manifest(trace.id, parts.SEEDS))
    # When an analysis of it under another mask is submitted
    masked = reanalysis(trace, {"loss_reasons": ("刀痕",)})
    with pytest.raises(ChunkLost):
        inline.submit(masked)
    # Then its job failed saying why: it once stayed queued without its inputs, and an equal
    # request joined it, waiting for good
    failed = inline.registry.load(inline.registry.ids(keys.RECENT)[0])
    assert failed is not None and failed.state == FAILED
    assert failed.error is not None and failed.error["code"] == "CHUNK_LOST"
    with pytest.raises(ChunkLost):
        inline.submit(masked)
    assert inline.registry.ids(keys.RECENT)[0] != failed.id


def test_a_trace_keeps_of_its_lineage_only_what_an_analysis_takes(inline: Runtime) -> None:
    # Given a finished MSD trace, and the lineage job of the same seeds (the dashboard's
    # second call, whose answer is the whole lineage document)
    trace = finished_msd(inline)
    seeds = [row[0] for b in inline.store.read(trace.id, parts.SEEDS) for row in b.rows]
    lineage_job, _ = inline.submit(
        TraceRequest(profile="mid_section_defect", container_ids=seeds, kind=LINEAGE)
    )
    run(inline)
    assert inline.registry.load(lineage_job.id).state == FINISHED

    def lineage_parts(job_id: str) -> set[str]:
        names = inline.store.part_summaries(job_id)
        return {n for n in names if n.startswith(f"{LINEAGE}:") and n != parts.LINEAGE_QUERIES}

    # Then the trace stored the lot list and the two maps its analyses read, nothing else...
    assert lineage_parts(trace.id) == {parts.lineage("ancestors"), parts.lineage("seed_roots")}
    assert inline.registry.progress(trace.id)[parts.rows(parts.CIDS)] == trace.cid_count > 0
    # ... the lineage job the whole document, the same maps among them
    kept = lineage_parts(lineage_job.id)
    assert kept > lineage_parts(trace.id) and parts.lineage("parent_map") in kept
    for key in ("ancestors", "seed_roots"):
        assert sorted(
            row for b in inline.store.read(trace.id, parts.lineage(key)) for row in b.rows
        ) == sorted(
            row for b in inline.store.read(lineage_job.id, parts.lineage(key)) for row in b.rows
        )


def test_a_job_from_cids_skips_seed_resolve_and_lineage(
    inline: Runtime, sqlite_source: SqliteSource, settings: Settings, warehouse: Path
) -> None:
    # Given the lots themselves (the dashboard's events call)
    cids = lots(warehouse, "CONTAINERID", 250)
    request = TraceRequest(
        profile="query_tool", domains=("history", "jobs"), container_ids=tuple(cids)
    )
    # When it runs
    job, _ = inline.submit(request)
    run(inline)
    # Then only the events stage ran, and it stored the direct result
    job = inline.registry.load(job.id)
    assert job.state == FINISHED and job.completed == [EVENTS]
    assert parts.runs(SEED_RESOLVE) not in inline.registry.progress(job.id)
    assert job_rows(inline.store, job.id, job.domains) == direct_rows(
        sqlite_source, request, settings
    )


def faulty_runtime(settings: Settings, client: redis.Redis) -> Runtime:
    source = FaultySqliteSource.for_settings(settings, client)
    return Runtime(settings, InlineDispatcher(), source=source)


def run_until(runtime: Runtime, stage: str) -> None:
    """Run messages until the next one belongs to ``stage`` (left unsent in the list)."""
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    while dispatcher.sent and dispatcher.sent[0][1].stage != stage:
        job_id, key, resumed, _ = dispatcher.sent.pop(0)
        runtime.handle(job_id, key, resumed=resumed)


def test_a_redelivered_events_message_neither_refetches_nor_starts_aggregation_twice(
    inline: Runtime,
) -> None:
    # Given an MSD job whose events messages all ran once
    job, _ = inline.submit(MSD)
    run_until(inline, EVENTS)
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    events = [m for m in dispatcher.sent if m[1].stage == EVENTS]
    assert len(events) > 1
    dispatcher.sent.clear()
    for job_id, key, _, _ in events:
        inline.handle(job_id, key)
    queries_before = inline.registry.queries(job.id)
    # When the broker delivers every events message a second time
    for job_id, key, _, _ in events:
        inline.handle(job_id, key)
    # Then no batch was queried again and aggregation was sent exactly once
    assert inline.registry.queries(job.id) == queries_before
    assert [m[1] for m in dispatcher.sent] == [MessageKey(AGGREGATION)]
    run(inline)
    assert inline.registry.progress(job.id)[parts.runs(AGGREGATION)] == 1
    assert inline.registry.load(job.id).state == FINISHED


def test_resumed_copies_of_finished_events_messages_hand_over_once(inline: Runtime) -> None:
    # Given an MSD job whose events stage completed and handed over to aggregation
    job, _ = inline.submit(MSD)
    run_until(inline, AGGREGATION)
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    assert [m[1] for m in dispatcher.sent] == [MessageKey(AGGREGATION)]
    # When the reaper (or a revival) sends copies of its events messages again, as resumed work
    for group in range(3):
        inline.handle(job.id, MessageKey(EVENTS, "upstream_history", group), resumed=True)
    # Then no second aggregation is sent while the first is merely waiting in its queue
    assert [m[1] for m in dispatcher.sent] == [MessageKey(AGGREGATION)]


def test_a_hand_over_lost_with_its_worker_is_sent_again_once_a_stall_later(
    inline: Runtime,
) -> None:
    # Given a job whose events stage completed and whose hand-over was claimed, but the worker
    # died before it sent the aggregation (the message is lost)
    job, _ = inline.submit(MSD)
    run_until(inline, AGGREGATION)
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    dispatcher.sent.clear()
    claim = keys.claim(job.id, AGGREGATION)
    # When resumed work arrives within a stall of the claim, nothing is sent...
    inline.handle(job.id, MessageKey(EVENTS, "upstream_history", 0), resumed=True)
    assert dispatcher.sent == []
    # ... and once the claim is older than a stall, the aggregation is sent again, once
    inline.registry.redis.set(claim, repr(time.time() - inline.settings.stall_seconds - 1))
    for _ in range(3):
        inline.handle(job.id, MessageKey(EVENTS, "upstream_history", 0), resumed=True)
    assert [m[1] for m in dispatcher.sent] == [MessageKey(AGGREGATION)]


def test_aggregation_waits_for_every_batch_not_for_a_count_of_messages(inline: Runtime) -> None:
    # Given an MSD job in its events stage
    inline.submit(MSD)
    run_until(inline, EVENTS)
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    events = [m for m in dispatcher.sent if m[1].stage == EVENTS]
    dispatcher.sent.clear()
    first, rest = events[0], events[1:]
    # When the first message is delivered as many times as there are messages
    for _ in events:
        inline.handle(first[0], first[1])
    # Then nothing was handed on: other batches are still missing
    assert dispatcher.sent == []
    # ... until every other message ran
    for job_id, key, _, _ in rest:
        inline.handle(job_id, key)
    assert [m[1] for m in dispatcher.sent] == [MessageKey(AGGREGATION)]


def test_a_domain_that_fails_for_good_ends_the_job_with_the_others_kept(
    settings: Settings, warehouse: Path, store_redis: redis.Redis, sqlite_source: SqliteSource
) -> None:
    # Given a warehouse whose holds query fails permanently
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, "fail:events/holds", "permanent")
    request = query_tool(warehouse)
    # When the job runs
    job, _ = runtime.submit(request)
    run(runtime)
    # Then it finished; holds is marked failed with the error; the other domains are complete
    job = runtime.registry.load(job.id)
    assert job.state == FINISHED
    failed = runtime.registry.domain_states(job.id)
    assert list(failed) == ["holds"]
    assert failed["holds"]["code"] == "SOURCE_QUERY_FAILED"
    expected = direct_rows(sqlite_source, request, settings)
    stored = job_rows(runtime.store, job.id, ["history", "materials", "rejects", "jobs"])
    assert stored == {d: expected[d] for d in stored}
    # ... and its status and quality_meta say which domain failed
    assert job_status(job, runtime.registry, settings.max_rows_per_domain)["failed_domains"] == [
        "holds"
    ]
    quality = domain_quality(job, runtime.registry, settings.max_rows_per_domain)
    assert quality["holds"]["status"] == "failed" and quality["history"]["status"] == "complete"
    assert query_quality(quality)["status"] == "partial"


def test_a_permanent_error_fails_the_job_at_once_with_stage_code_and_message(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a warehouse whose lineage query is broken
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, "fail:lineage/containers", "permanent")
    # When a job runs
    job, _ = runtime.submit(query_tool(warehouse))
    run(runtime)
    # Then it failed in lineage, saying why, and nothing after lineage was sent
    job = runtime.registry.load(job.id)
    assert job.state == FAILED
    assert job.error is not None
    assert job.error["stage"] == "lineage" and job.error["code"] == "SOURCE_QUERY_FAILED"
    assert "lineage/containers" in job.error["message"]
    assert job.id.encode() in store_redis.zrange(keys.FAILED, 0, -1)


def test_a_transient_error_is_raised_for_dramatiq_to_retry_and_the_retry_resumes(
    settings: Settings, warehouse: Path, store_redis: redis.Redis
) -> None:
    # Given a history query that fails once with a connection error
    runtime = faulty_runtime(settings, store_redis)
    job, _ = runtime.submit(query_tool(warehouse))
    run_until(runtime, EVENTS)
    store_redis.hset(FAULTS_KEY, "transient:events/history", 1)
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    history = next(m for m in dispatcher.sent if m[1].domain == "history")
    # When its message runs, the error reaches Dramatiq (which retries while retries are left)
    with pytest.raises(SourceUnavailable):
        runtime.handle(history[0], history[1])
    # Then the retry finishes the batch and the job
    run(runtime)
    runtime.handle(history[0], history[1])
    run(runtime)
    assert runtime.registry.load(job.id).state == FINISHED
    assert runtime.registry.queries(job.id)["events:history:0"] == 2


def test_a_batch_started_too_often_fails_its_domain_with_a_clear_code(inline: Runtime) -> None:
    # Given a job whose first history batch was already started as often as allowed
    job, _ = inline.submit(
        TraceRequest(profile="query_tool", domains=("history",), container_ids=("x",))
    )
    limit = inline.settings.batch_max_attempts
    inline.registry.redis.hset(keys.attempts(job.id), "events:history:0", limit)
    # When it is delivered once more (e.g. after killing its worker again)
    run(inline)
    # Then the domain failed with BATCH_ATTEMPTS_EXCEEDED and the source was not asked
    states = inline.registry.domain_states(job.id)
    assert states["history"]["code"] == "BATCH_ATTEMPTS_EXCEEDED"
    assert "events:history:0" not in inline.registry.queries(job.id)


def test_a_trace_over_the_profile_limit_is_refused_or_fails_with_cid_limit_exceeded(
    engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    settings = Settings.from_env({**engine_env, "TRACE_MAX_CIDS_QUERY_TOOL": "100"})
    runtime = Runtime(settings, InlineDispatcher())
    # Given more lots than the limit, when submitted as CIDs, then it is refused at once
    with pytest.raises(InvalidInput) as refused:
        runtime.submit(
            TraceRequest(profile="query_tool", container_ids=tuple(f"c{i}" for i in range(101)))
        )
    assert refused.value.code == "CID_LIMIT_EXCEEDED"
    assert "container_ids count (101) exceeds limit (100)" in refused.value.message
    # When seeds grow past it in lineage, the job fails there with the same code
    job, _ = runtime.submit(query_tool(warehouse, 150))
    run(runtime)
    job = runtime.registry.load(job.id)
    assert job.state == FAILED and job.error is not None
    assert (job.error["stage"], job.error["code"]) == ("lineage", "CID_LIMIT_EXCEEDED")


def test_the_row_guard_cuts_a_domain_at_its_limit_and_says_so(
    engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given a limit of 1,000 rows per domain
    settings = Settings.from_env({**engine_env, "TRACE_MAX_ROWS_PER_DOMAIN": "1000"})
    runtime = Runtime(settings, InlineDispatcher())
    job, _ = runtime.submit(query_tool(warehouse))
    # When a trace with far more history rows runs
    run(runtime)
    # Then history holds exactly 1,000 rows and its quality_meta says it was truncated
    rows = job_rows(runtime.store, job.id, ["history"])["history"]
    assert len(rows) == 1000
    job = runtime.registry.load(job.id)
    assert job.state == FINISHED
    quality = domain_quality(job, runtime.registry, 1000)
    assert quality["history"]["status"] == "truncated"
    assert (quality["history"]["observed_rows"], quality["history"]["max_rows"]) == (1000, 1000)
    assert quality["holds"]["status"] == "complete"  # fewer rows than the guard
    assert query_quality(quality)["status"] == "truncated"


def test_jobs_are_matched_a_pass_per_batch_of_lots_with_the_rows_of_one_pass(
    engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    # Given passes over the jobs table of 100 lots each (TRACE_JOBS_SCAN_LOTS)
    settings = Settings.from_env({**engine_env, "TRACE_JOBS_SCAN_LOTS": "100"})
    runtime = Runtime(settings, InlineDispatcher())
    cids = tuple(lots(warehouse, "CONTAINERID", 1500))
    job, _ = runtime.submit(
        TraceRequest(profile="query_tool", domains=("jobs",), container_ids=cids)
    )
    # When the job runs
    run(runtime)
    # Then the jobs domain took one batch per 100 lots, and holds the rows one pass over all the
    # lots gives (in another order: batch by batch)
    assert len(runtime.store.finished(job.id, parts.events("jobs"))) == 15
    stored = job_rows(runtime.store, job.id, ["jobs"])["jobs"]
    with SqliteSource(warehouse) as source:
        one_pass = [tuple(r) for b in fetch_events(source, "jobs", cids) for r in b.rows]
    assert sorted(map(tuple, stored)) == sorted(one_pass) and one_pass


def test_a_big_job_moves_to_the_large_queue_once_its_size_is_known(
    engine_env: dict[str, str], store_redis: redis.Redis, warehouse: Path
) -> None:
    settings = Settings.from_env({**engine_env, "TRACE_LARGE_JOB_CIDS": "100"})
    runtime = Runtime(settings, InlineDispatcher())
    # Given a trace of 150 seed lots, when seed-resolve and lineage ran
    job, _ = runtime.submit(query_tool(warehouse, 150))
    run_until(runtime, EVENTS)
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    # Then its events messages go to the large-job queue
    assert {m[3] for m in dispatcher.sent} == {LARGE_QUEUE}
    assert runtime.registry.load(job.id).queue == LARGE_QUEUE
    # And a small CID job goes to the normal queue from the start
    small, _ = runtime.submit(TraceRequest(profile="query_tool", container_ids=("a", "b")))
    assert small.queue == "trace"


def test_a_cancelled_job_stops_and_releases_its_keys(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a job in its events stage
    job, _ = inline.submit(MSD)
    run_until(inline, EVENTS)
    # When it is cancelled
    assert inline.registry.cancel(job.id) == CANCELLED
    # Then its pending messages do nothing and only the job's status remains
    run(inline)
    assert inline.registry.load(job.id).state == CANCELLED
    leftover = [k for k in store_redis.keys(f"trace:job:{job.id}*")]
    assert leftover == [keys.job(job.id).encode()]


def test_every_key_of_a_finished_job_expires_and_the_indexes_list_it(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a finished MSD job (every kind of key: chunks, manifests, blobs, claims, counters)
    job, _ = inline.submit(MSD)
    run(inline)
    # Then every key of it carries a TTL no longer than the job's
    names = store_redis.keys(f"trace:job:{job.id}*")
    assert len(names) > 20
    ttls = {n: store_redis.ttl(n) for n in names}
    assert all(0 < t <= inline.settings.job_ttl_seconds for t in ttls.values()), ttls
    # And the job is listed as recent, no longer as running
    assert store_redis.zscore(keys.RECENT, job.id) is not None
    assert store_redis.zscore(keys.RUNNING, job.id) is None


def test_an_operator_retry_resumes_at_the_failed_stage_without_rerunning_earlier_ones(
    settings: Settings, warehouse: Path, store_redis: redis.Redis, tmp_path: Path
) -> None:
    # Given an MSD job that failed in aggregation (its rejects lookup was broken)
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, "fail:msd/detection_rejects", "permanent")
    job, _ = runtime.submit(MSD)
    run(runtime)
    failed = runtime.registry.load(job.id)
    assert failed.state == FAILED and failed.error is not None
    assert failed.error["stage"] == AGGREGATION
    queries = runtime.registry.queries(job.id)
    before = runtime.registry.progress(job.id)
    runs = (before[parts.runs(SEED_RESOLVE)], before[parts.runs(LINEAGE)])
    # When the cause is fixed and the job is retried
    store_redis.hdel(FAULTS_KEY, "fail:msd/detection_rejects")
    assert runtime.retry(job.id)
    run(runtime)
    # Then it finishes; seed-resolve, lineage and events ran once and queried nothing again
    done = runtime.registry.load(job.id)
    assert done.state == FINISHED
    progress = runtime.registry.progress(job.id)
    # (seed-resolve: a message per date range of the window, lineage one)
    assert runs == (runtime.settings.detection_ranges, 1)
    assert (progress[parts.runs(SEED_RESOLVE)], progress[parts.runs(LINEAGE)]) == runs
    after = runtime.registry.queries(job.id)
    assert {k: v for k, v in after.items() if not k.startswith("aggregation")} == {
        k: v for k, v in queries.items() if not k.startswith("aggregation")
    }


def test_the_status_document_has_the_contract_fields_and_stage_progress(
    inline: Runtime, warehouse: Path
) -> None:
    # Given a job that ran seed-resolve and lineage only
    job, _ = inline.submit(query_tool(warehouse))
    run_until(inline, EVENTS)
    status = job_status(inline.registry.load(job.id), inline.registry, 1000)
    # Then the contract's fields are there, and the events stage knows its batch totals
    contract = {  # api-contract.md, "Job endpoints"
        "job_id", "status", "profile", "cid_count", "domains", "progress", "created_at",
        "elapsed_seconds", "error", "stage", "completed_stages",
    }  # fmt: skip
    assert contract <= set(status)
    assert status["status"] == "started" and status["completed_stages"] == [
        "seed-resolve",
        "lineage",
    ]
    assert isinstance(status["created_at"], int) and status["error"] is None
    events = status["stages"]["events"]
    assert events["batches_done"] == 0 and events["batches_total"] > len(status["domains"])
    # When every message ran, the progress is the final state and counts every batch
    run(inline)
    done = job_status(inline.registry.load(job.id), inline.registry, 1000)
    assert done["status"] == "finished" and done["progress"] == "finished"
    assert done["stages"]["events"]["batches_done"] == events["batches_total"]


def test_completing_a_stage_of_a_job_that_is_gone_recreates_nothing(
    inline: Runtime, store_redis: redis.Redis
) -> None:
    # Given a job id whose keys expired, when a late message completes a stage of it
    assert not inline.registry.complete_stage("0" * 32, EVENTS)
    # Then no half job appears
    assert not store_redis.exists(keys.job("0" * 32))
