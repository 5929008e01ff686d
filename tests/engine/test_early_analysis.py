"""An analysis that begins once the events domains it reads are in, while the job's other
domains are still fetched (``pipeline.engine.flow``): against real Redis, messages run in this
process in the order a worker would take them; the job finishes when both have ended, never
before, and an operator retry or a lost hand-over sends what is missing once."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from pipeline import domains
from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.analyses import masks_key, reanalysis
from pipeline.engine.job import AGGREGATION, EVENTS, FAILED, FINISHED, STARTED, Job
from pipeline.engine.messages import MessageKey
from pipeline.engine.runtime import Runtime
from pipeline.engine.status import job_status
from pipeline.engine.timeline import timeline
from tests.engine.helpers import InlineDispatcher
from tests.engine.test_flow import MSD, faulty_runtime, run, run_until
from tests.support.faults import FAULTS_KEY

#: The MSD trace with every events domain: the analysis reads two (upstream history and
#: materials, backward); the other five are only fetched.
EVERY_DOMAIN = MSD.model_copy(update={"domains": domains.DOMAINS})
READ = set(domains.MSD_DOMAINS[domains.BACKWARD])


def queued(runtime: Runtime) -> list[MessageKey]:
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    return [key for _, key, _, _ in dispatcher.sent]


def run_next(runtime: Runtime, count: int | None = None) -> None:
    """Run the first ``count`` queued messages (all, and any they send, for ``None``)."""
    dispatcher = runtime.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    if count is None:
        dispatcher.run_all(runtime)
        return
    for _ in range(count):
        job_id, key, resumed, _ = dispatcher.sent.pop(0)
        runtime.handle(job_id, key, resumed=resumed)


def analysis(runtime: Runtime, job_id: str) -> dict:
    document = runtime.store.get_json(job_id, "aggregation")
    assert document is not None
    return orjson.loads(document)


def finished_without(
    settings: Settings, store_redis: redis.Redis, domain: str
) -> tuple[Runtime, Job]:
    """A trace of every domain run to its end with ``domain``'s query broken for good."""
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, f"fail:events/{domain}", "permanent")
    job, _ = runtime.submit(EVERY_DOMAIN)
    run(runtime)
    assert domain in runtime.registry.domain_states(job.id)
    return runtime, job


def retried(runtime: Runtime, store_redis: redis.Redis, job_id: str, domain: str) -> bool:
    """``domain``'s query mended, then the job retried by an operator."""
    store_redis.hdel(FAULTS_KEY, f"fail:events/{domain}")
    return runtime.retry(job_id)


def test_the_analysis_begins_once_its_domains_are_in_and_the_job_ends_with_the_last_domain(
    inline: Runtime,
) -> None:
    # Given a trace of every domain with the analysis, through seed-resolve and lineage
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, EVENTS)
    # Then only the domains the analysis reads are fetched first
    first = queued(inline)
    assert first and {key.domain for key in first} == READ
    run_next(inline, len(first))
    # ... and once they are in, the analysis is sent ahead of the other domains' messages
    then = queued(inline)
    assert then[0] == MessageKey(AGGREGATION)
    assert {key.domain for key in then[1:]} == set(domains.DOMAINS) - READ
    # When the analysis runs before any other domain is fetched
    run_next(inline, 1)
    # Then the job is still running: its events stage is not complete, and says so
    during = inline.registry.load(job.id)
    assert during.state == STARTED
    assert AGGREGATION in during.completed and EVENTS not in during.completed
    steps = timeline(during, inline.registry, inline.settings.max_rows_per_domain)["stages"]
    states = {step["stage"]: step["state"] for step in steps}
    assert states[EVENTS] == "running" and states[AGGREGATION] == "finished"
    status = job_status(during, inline.registry, inline.settings.max_rows_per_domain)
    assert status["status"] == STARTED and status["progress"].startswith("events:")
    # When the other domains are in
    run_next(inline)
    # Then the job finished once, with every domain whole and the analysis of the trace
    done = inline.registry.load(job.id)
    assert done.state == FINISHED and done.trace_query_id
    progress = inline.registry.progress(job.id)
    for domain in domains.DOMAINS:
        part = parts.events(domain)
        assert len(inline.store.finished(job.id, part)) == progress[parts.total(part)] > 0
    assert progress[parts.runs(AGGREGATION)] == 1
    # ... the same analysis as the trace of the analysis's domains alone, run stage after stage
    alone, _ = inline.submit(MSD, fresh=True)
    run(inline)
    assert inline.registry.load(alone.id).state == FINISHED
    assert analysis(inline, job.id) == analysis(inline, alone.id)


def test_an_analysis_ending_after_the_last_domain_finishes_the_job(inline: Runtime) -> None:
    # Given a trace of every domain whose analysis was sent ahead of the other domains
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, EVENTS)
    run_next(inline, len(queued(inline)))
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    aggregation = dispatcher.sent.pop(0)
    assert aggregation[1] == MessageKey(AGGREGATION)
    # When every other domain is in before the analysis runs
    run_next(inline)
    # Then the job waits for it (nothing sent again), and finishes when it ends
    assert inline.registry.load(job.id).state == STARTED
    assert EVENTS in inline.registry.load(job.id).completed
    assert queued(inline) == []
    inline.handle(aggregation[0], aggregation[1])
    assert inline.registry.load(job.id).state == FINISHED
    assert inline.registry.progress(job.id)[parts.runs(AGGREGATION)] == 1


def test_an_analysis_ending_while_the_events_stage_names_the_trace_finishes_a_named_trace(
    inline: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers: the last events message's worker names the trace (``trace_query_id``, the
    digest of its seeds: ~1 s at 114K CIDs) while the other worker's analysis ends. The job
    must finish named and indexed: the MSD page finds its detail and export by that id (it
    finished unnamed, and a later naming is refused: the job no longer active)."""
    # Given a trace of every domain whose analysis was sent ahead of the other domains
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, EVENTS)
    run_next(inline, len(queued(inline)))
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    held = [dispatcher.sent.pop(0)]
    assert held[0][1] == MessageKey(AGGREGATION)
    registry = inline.registry
    name_the_trace = registry.update

    def analysis_ends_meanwhile(job_id: str, **values: object) -> bool:
        if "trace_query_id" in values and held:  # the other worker's analysis ends now
            job_id_held, key, _, _ = held.pop()
            inline.handle(job_id_held, key)
        return name_the_trace(job_id, **values)

    monkeypatch.setattr(registry, "update", analysis_ends_meanwhile)
    # When the other domains are fetched and the analysis ends as the trace is named
    run_next(inline)
    assert not held
    # Then the job finished once, named, and the trace and its analysis are found by that name
    done = registry.load(job.id)
    assert done.state == FINISHED and done.trace_query_id
    assert registry.progress(job.id)[parts.runs(AGGREGATION)] == 1
    found = registry.stored_trace(done.trace_query_id)
    assert found is not None and found.id == job.id
    by_masks = keys.analysis(done.trace_query_id, masks_key(done.request.params))
    assert inline.redis.get(by_masks) == job.id.encode()


def test_a_retry_of_an_analysis_failed_beside_the_fetch_sends_it_again_and_fetches_the_rest(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace of every domain whose analysis failed (its rejects lookup broken) while the
    # other domains were still to be fetched
    runtime = faulty_runtime(settings, store_redis)
    store_redis.hset(FAULTS_KEY, "fail:msd/detection_rejects", "permanent")
    job, _ = runtime.submit(EVERY_DOMAIN)
    run_until(runtime, EVENTS)
    run_next(runtime, len(queued(runtime)))
    run_next(runtime, 1)  # the analysis: fails the job
    failed = runtime.registry.load(job.id)
    assert failed.state == FAILED and failed.error["stage"] == AGGREGATION
    run_next(runtime)  # the other domains' messages: the job is no longer active
    fetched = runtime.registry.queries(job.id)
    # When the cause is fixed and an operator retries the job
    store_redis.hdel(FAULTS_KEY, "fail:msd/detection_rejects")
    assert runtime.retry(job.id)
    # Then the analysis is sent again with the domains still missing, and the job finishes
    assert MessageKey(AGGREGATION) in queued(runtime)
    run(runtime)
    done = runtime.registry.load(job.id)
    assert done.state == FINISHED, done.error
    assert runtime.registry.progress(job.id)[parts.runs(AGGREGATION)] == 2
    # ... having asked nothing again of the analysis's domains
    after = runtime.registry.queries(job.id)
    for domain in READ:
        name = parts.events(domain)
        assert {k: v for k, v in after.items() if k.startswith(name)} == {
            k: v for k, v in fetched.items() if k.startswith(name)
        }


def test_an_early_hand_over_lost_with_its_worker_is_sent_again_once_a_stall_later(
    inline: Runtime,
) -> None:
    # Given a trace whose analysis's domains are in, the hand-over claimed, but the worker died
    # before it sent the analysis and the other domains' messages
    job, _ = inline.submit(EVERY_DOMAIN)
    run_until(inline, EVENTS)
    first = queued(inline)
    run_next(inline, len(first))
    dispatcher = inline.dispatch
    assert isinstance(dispatcher, InlineDispatcher)
    dispatcher.sent.clear()
    resent = first[-1]
    # When resumed work arrives within a stall of the claim, nothing is sent...
    inline.handle(job.id, resent, resumed=True)
    assert queued(inline) == []
    # ... and a stall later the analysis and the missing domains are sent again, once, however
    # the copies fall on the clock: here half a second apart, across a multiple of the stall
    # since the epoch (a copy's claim used to hold until the next such multiple, not a stall)
    claim = keys.claim(job.id, AGGREGATION)
    stall = inline.settings.stall_seconds
    inline.registry.redis.set(claim, repr(time.time() - stall - 1))
    time.sleep((-time.time() - 0.5) % stall)  # to half a second before the next multiple
    for _ in range(3):
        inline.handle(job.id, resent, resumed=True)
        time.sleep(0.5)
    again = queued(inline)
    assert again[0] == MessageKey(AGGREGATION) and again.count(MessageKey(AGGREGATION)) == 1
    assert {key.domain for key in again[1:]} == set(domains.DOMAINS) - READ
    # ... and once more a stall after that copy, should it be lost too
    dispatcher.sent.clear()
    time.sleep(stall)
    inline.handle(job.id, resent, resumed=True)
    assert queued(inline).count(MessageKey(AGGREGATION)) == 1
    run(inline)
    assert inline.registry.load(job.id).state == FINISHED


def test_a_re_analysis_of_a_trace_of_every_domain_finishes_as_its_analysis_ends(
    inline: Runtime,
) -> None:
    # Given a finished trace of every domain
    trace, _ = inline.submit(EVERY_DOMAIN)
    run(inline)
    trace = inline.registry.load(trace.id)
    assert trace.state == FINISHED
    # When it is analysed again under another mask (its events read in place: none to fetch)
    job, _ = inline.submit(reanalysis(trace, {"loss_reasons": ("刀痕",)}))
    # Then only the analysis is sent, and the job finishes when it ends (it once waited for an
    # events stage nobody would complete, until the reaper revived it)
    assert queued(inline) == [MessageKey(AGGREGATION)]
    run_next(inline, 1)
    ended = inline.registry.load(job.id)
    assert ended.state == FINISHED, ended
    assert set(ended.completed) >= {EVENTS, AGGREGATION}
    assert ended.trace_query_id == trace.trace_query_id


def test_a_retry_after_a_domain_the_analysis_does_not_read_failed_keeps_the_analysis(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace of every domain that finished with its holds failed for good (the analysis
    # never reads them: it ran beside them, whole)
    runtime, job = finished_without(settings, store_redis, "holds")
    assert runtime.registry.load(job.id).state == FINISHED
    before = analysis(runtime, job.id)
    # When the cause is fixed and an operator retries the job
    assert retried(runtime, store_redis, job.id, "holds")
    # Then only the holds are fetched: the analysis stands and is not run again
    assert {key.domain for key in queued(runtime)} == {"holds"}
    run(runtime)
    done = runtime.registry.load(job.id)
    assert done.state == FINISHED and runtime.registry.domain_states(job.id) == {}
    assert runtime.registry.progress(job.id)[parts.runs(AGGREGATION)] == 1
    assert analysis(runtime, job.id) == before
    whole = runtime.store.finished(job.id, parts.events("holds"))
    assert len(whole) == runtime.registry.progress(job.id)[parts.total(parts.events("holds"))]


def test_a_retry_after_a_domain_the_analysis_reads_failed_runs_the_analysis_again(
    settings: Settings, store_redis: redis.Redis
) -> None:
    # Given a trace of every domain that finished with its materials (read by the analysis)
    # failed for good: its analysis was computed without them
    runtime, job = finished_without(settings, store_redis, "materials")
    # When the cause is fixed and an operator retries the job
    assert retried(runtime, store_redis, job.id, "materials")
    run(runtime)
    # Then the analysis ran again once the materials were in
    assert runtime.registry.load(job.id).state == FINISHED
    assert runtime.registry.progress(job.id)[parts.runs(AGGREGATION)] == 2
