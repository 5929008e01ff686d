"""The events of the seed lots begun while lineage walks (``pipeline.engine.early_events``):
against real Redis, messages run in this process in the order a worker would take them, and
on real workers. The early groups are sent once and not again by the events stage; one that
ends before lineage hands nothing on; the job's rows and analysis are those of the stage
functions run directly."""

from __future__ import annotations

from pathlib import Path

import redis

from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.early_events import EARLY_CLAIM, send_early_events
from pipeline.engine.flow import events_settled
from pipeline.engine.job import AGGREGATION, EVENTS, LARGE_QUEUE, LINEAGE
from pipeline.engine.messages import MessageKey
from pipeline.engine.runtime import Runtime
from pipeline.engine.steps.seed_step import seed_cids
from pipeline.sources.sqlite import SqliteSource
from tests.engine.conftest import Workers
from tests.engine.helpers import InlineDispatcher, wait_ended
from tests.engine.test_early_analysis import EVERY_DOMAIN, READ, queued, run_next
from tests.engine.test_flow import run, run_until
from tests.engine.test_workers import assert_same_result, expected_result
from tests.support.faults import FAULTS_KEY


def early_groups(runtime: Runtime, job_id: str) -> dict[str, int]:
    progress = runtime.registry.progress(job_id)
    found = {d: progress.get(parts.early(parts.events(d))) for d in EVERY_DOMAIN.domains}
    return {d: n for d, n in found.items() if n is not None}


def test_the_seed_lots_events_are_sent_before_lineage_walks_and_not_sent_again(
    inline: Runtime, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given a trace of every domain with the analysis, its seeds resolved
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, LINEAGE)
    # When lineage runs
    run_next(inline, 1)
    # Then the analysis's domains' groups that read seeds only were sent first (before the
    # walk), and the events stage sent every other group of those domains, none twice
    sent = early_groups(inline, job.id)
    assert set(sent) == READ and len(set(sent.values())) == 1
    groups = sent.popitem()[1]
    assert groups >= 2
    early = [
        MessageKey(EVENTS, d, g) for d in EVERY_DOMAIN.domains if d in READ for g in range(groups)
    ]
    messages = queued(inline)
    assert messages[: len(early)] == early
    assert len(set(messages)) == len(messages)
    rest = messages[len(early) :]
    assert rest and all(m.domain in READ and m.group >= groups for m in rest)
    # And the trace ends with the rows and analysis of the stage functions run directly
    run(inline)
    expected = expected_result(EVERY_DOMAIN, sqlite_source, inline.settings, tmp_path)
    assert_same_result(inline, job.id, expected)


def test_early_groups_that_end_before_lineage_hand_nothing_on(
    inline: Runtime, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given a trace whose lineage has sent the seeds' events groups and walks on
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, LINEAGE)
    lineage = inline.dispatch.sent.pop(0)  # type: ignore[attr-defined]
    ctx = inline.context(inline.registry.load(job.id))
    seeds = list(dict.fromkeys(seed_cids(ctx)))
    assert send_early_events(ctx, iter(seeds), len(seeds)) >= 1
    # When every early group is fetched before lineage ends
    run(inline)
    # Then the events stage is not settled, nothing was handed on, lineage not complete
    job_now = inline.registry.load(job.id)
    assert not events_settled(inline.registry, inline.store, job_now)
    assert EVENTS not in job_now.completed and LINEAGE not in job_now.completed
    assert inline.registry.claimed_at(job.id, AGGREGATION) is None
    assert queued(inline) == []
    # When lineage ends (its early groups already sent: not sent again)
    inline.dispatch.sent.append(lineage)  # type: ignore[attr-defined]
    run_next(inline, 1)
    assert all(m.group >= early_groups(inline, job.id)[m.domain] for m in queued(inline))
    # Then the trace finishes with the rows and analysis of the stage functions run directly
    run(inline)
    expected = expected_result(EVERY_DOMAIN, sqlite_source, inline.settings, tmp_path)
    assert_same_result(inline, job.id, expected)


def test_the_events_begin_while_lineage_walks_on_real_workers(
    runtime: Runtime,
    workers: Workers,
    store_redis: redis.Redis,
    sqlite_source: SqliteSource,
    tmp_path: Path,
) -> None:
    # Given two worker processes, one thread each, and a lineage that takes its time
    store_redis.hset(FAULTS_KEY, "delay_ms:lineage/containers", 150)
    workers.start(processes=2, threads=1)
    # When a trace of every domain is submitted
    job, _ = runtime.submit(EVERY_DOMAIN)
    wait_ended(runtime, job.id, timeout=120)
    # Then its events began before its lineage ended, and it finished with the rows and
    # analysis of the stage functions run directly
    stamps = store_redis.hgetall(keys.job(job.id))
    assert float(stamps[b"began:events"]) < float(stamps[b"done:lineage"])
    store_redis.delete(FAULTS_KEY)
    expected = expected_result(EVERY_DOMAIN, sqlite_source, runtime.settings, tmp_path)
    assert_same_result(runtime, job.id, expected)


def test_the_seeds_events_go_to_the_large_job_queue_when_the_seeds_alone_make_it_large(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a service whose large jobs start at fewer lots than the trace has seeds
    runtime = Runtime(settings.model_copy(update={"large_job_cids": 100}), InlineDispatcher())
    job, _ = runtime.submit(EVERY_DOMAIN)
    run_until(runtime, LINEAGE)
    # When lineage runs
    run_next(runtime, 1)
    # Then the seeds' events were sent to the large-job queue, as everything after them
    sent = runtime.dispatch.sent  # type: ignore[attr-defined]
    early = early_groups(runtime, job.id)
    assert early and sent
    assert {queue for _, key, _, queue in sent} == {LARGE_QUEUE}
    assert runtime.registry.load(job.id).queue == LARGE_QUEUE


def test_a_domains_events_take_the_messages_the_job_fixed_whatever_the_workers_settings(
    settings: Settings, store_redis: redis.Redis, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given a service that splits a domain's events into about two messages (a batch at least)
    planned = settings.model_copy(
        update={"events_group_batches": 1, "events_messages_per_domain": 2}
    )
    runtime = Runtime(planned, InlineDispatcher())
    job, _ = runtime.submit(EVERY_DOMAIN)
    run_until(runtime, LINEAGE)
    # When lineage runs: its seeds' events are sent before it walks
    run_next(runtime, 1)
    progress = runtime.registry.progress(job.id)
    seeds = set(seed_cids(runtime.context(runtime.registry.load(job.id))))
    seed_batches = len(seeds) // planned.in_list_size
    size = progress[parts.EVENTS_GROUP_BATCHES]
    # Then the job's messages were sized from its seeds: two per domain of them
    assert seed_batches >= 4 and size == -(-seed_batches // 2)
    assert len(runtime.store.finished(job.id, parts.CIDS)) > seed_batches  # lineage added
    assert set(early_groups(runtime, job.id).values()) == {seed_batches // size}
    # When the rest runs on workers of other settings (three batches a message at least,
    # about eight messages a domain)
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    other = Runtime(settings, dispatcher)
    ran: dict[str, list[int]] = {}
    while dispatcher.sent:
        job_id, key, resumed, _ = dispatcher.sent.pop(0)
        if key.stage == EVENTS:
            ran.setdefault(key.domain, []).append(key.group)
        other.handle(job_id, key, resumed=resumed)
    # Then every domain's batches were fetched in the job's groups, each group once
    progress = other.registry.progress(job.id)
    assert progress[parts.EVENTS_GROUP_BATCHES] == size
    for domain in EVERY_DOMAIN.domains:
        total = progress[parts.total(parts.events(domain))]
        assert sorted(ran[domain]) == list(range(-(-total // size))), domain
    # And the trace ends with the rows and analysis of the stage functions run directly
    expected = expected_result(EVERY_DOMAIN, sqlite_source, settings, tmp_path)
    assert_same_result(other, job.id, expected)


def test_early_events_sent_before_the_size_was_fixed_keep_the_settings_size(
    settings: Settings, store_redis: redis.Redis, sqlite_source: SqliteSource, tmp_path: Path
) -> None:
    # Given a trace whose seeds' events were sent as an earlier release sent them: groups of
    # TRACE_EVENTS_GROUP_BATCHES, claimed and recorded, no size fixed for the job (this
    # release, about two messages a domain, would group them otherwise)
    settings = settings.model_copy(update={"events_messages_per_domain": 2})
    runtime = Runtime(settings, InlineDispatcher())
    job, _ = runtime.submit(EVERY_DOMAIN)
    run_until(runtime, LINEAGE)
    ctx = runtime.context(runtime.registry.load(job.id))
    seeds = list(dict.fromkeys(seed_cids(ctx)))
    size = settings.events_group_batches
    batches = len(seeds) // settings.in_list_size
    lots = ((cid,) for cid in seeds[: batches * settings.in_list_size])
    runtime.store.write_rows(job.id, parts.CIDS, ("CONTAINERID",), lots, settings.in_list_size)
    assert runtime.registry.claim(job.id, EARLY_CLAIM)
    groups = batches // size
    early = [MessageKey(EVENTS, d, g) for d in sorted(READ) for g in range(groups)]
    assert len(early) > 2 and -(-batches // 2) > size
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    dispatcher.sent[1:1] = [(job.id, key, False, job.queue) for key in early]
    runtime.registry.set_progress(job.id, {parts.early(parts.events(d)): groups for d in READ})
    # When this release's lineage and the rest run
    run(runtime)
    # Then the job kept the size its early groups were sent with, and it ends with the rows
    # and analysis of the stage functions run directly
    assert runtime.registry.progress(job.id)[parts.EVENTS_GROUP_BATCHES] == size
    expected = expected_result(EVERY_DOMAIN, sqlite_source, settings, tmp_path)
    assert_same_result(runtime, job.id, expected)
