"""How a job moves from stage to stage: which messages a stage needs, the events fan-in, and
resuming a job whose work was interrupted.

The fan-in counts distinct committed batches (manifest entries), never messages: a redelivered
events message finds its batches committed, adds nothing, and the hand-over to aggregation is
claimed once (``JobRegistry.claim``), so it is dispatched once.

The analysis reads only some events domains (``Job.analysis_domains``). A job that fetches others
too fetches the analysis's first; once they are settled the aggregation is sent, ahead of the
other domains' messages (held back until then: sent at once, they would queue in front of
it), so the analysis runs on one worker while the others fetch the rest. The job finishes when
both its events stage and its aggregation are complete, whichever ends last (``advance``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping

from pipeline import domains
from pipeline.config import Settings
from pipeline.engine import lifecycle, metrics, parts
from pipeline.engine.context import StageContext
from pipeline.engine.job import AGGREGATION, EVENTS, SEED_RESOLVE, Job
from pipeline.engine.messages import MessageKey
from pipeline.engine.pages import PageIndex
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore
from pipeline.identities import trace_query_id
from pipeline.stages.events import lots_per_fetch
from pipeline.stages.msd.scope import DetectionScope

log = logging.getLogger(__name__)


def events_totals(job: Job, cid_count: int, settings: Settings) -> dict[str, int]:
    """Input batches per events domain: one per ``in_list_size`` lots; ``jobs`` one per
    ``jobs_batches`` of those (its table is read once per batch: see ``fetch_events``)."""
    batches = math.ceil(cid_count / settings.in_list_size)
    jobs = math.ceil(batches / jobs_batches(settings))
    return {parts.events(d): (jobs if d == domains.JOBS else batches) for d in job.domains}


def events_spans(job: Job, settings: Settings) -> dict[str, int]:
    """Batches of the lot list (``parts.CIDS``) one input batch of each events domain reads."""
    return {
        parts.events(d): (jobs_batches(settings) if d == domains.JOBS else 1) for d in job.domains
    }


def jobs_batches(settings: Settings) -> int:
    """Lot-list batches one input batch of ``jobs`` covers (``TRACE_JOBS_SCAN_LOTS`` lots)."""
    lots = lots_per_fetch(domains.JOBS, settings.in_list_size, settings.jobs_scan_lots)
    return lots // settings.in_list_size


def fix_group_size(registry: JobRegistry, job_id: str, batches: int, settings: Settings) -> int:
    """Fix the input batches per events message of a job whose domains read ``batches`` input
    batches (the most any domain reads; at least, when more may come) unless fixed already,
    and return the job's: ``events_group_batches`` at least, more when a domain would
    otherwise take more than about ``events_messages_per_domain`` messages."""
    planned = max(
        settings.events_group_batches, math.ceil(batches / settings.events_messages_per_domain)
    )
    registry.set_progress(job_id, {parts.EVENTS_GROUP_BATCHES: planned}, once=True)
    return group_size(registry.progress(job_id), settings)


def group_size(progress: Mapping[str, int], settings: Settings) -> int:
    """The input batches per events message of the job of ``progress`` (``fix_group_size``;
    ``events_group_batches`` for a job whose messages were sent before it was fixed)."""
    return progress.get(parts.EVENTS_GROUP_BATCHES) or settings.events_group_batches


def events_groups(total: int, group_batches: int) -> int:
    return math.ceil(total / group_batches)


def group_batches(group: int, total: int, group_size: int) -> range:
    """The input batches events message ``group`` fetches."""
    return range(group * group_size, min(total, (group + 1) * group_size))


def analysis_first(job: Job) -> bool:
    """Whether ``job``'s aggregation begins before its events stage is complete: it fetches
    events domains that the analysis does not read."""
    return AGGREGATION in job.stages and len(job.analysis_domains) < len(job.domains)


def stage_messages(
    ctx: StageContext, stage: str, only: Iterable[str] | None = None, *, resumed: bool = False
) -> list[MessageKey]:
    """The messages ``stage`` still needs: events groups with an uncommitted batch (domains
    that failed excluded; ``only`` these domains when given; the groups sent while lineage
    walked, ``parts.early``, only when ``resumed``), the analysis's domains first;
    seed-resolve's (``_seed_messages``); one message for the other stages."""
    if stage == SEED_RESOLVE:
        return _seed_messages(ctx)
    if stage != EVENTS:
        return [MessageKey(stage)]
    job, store = ctx.job, ctx.store
    progress = ctx.registry.progress(job.id)
    failed = ctx.registry.domain_states(job.id)
    size = group_size(progress, ctx.settings)
    first = job.analysis_domains
    wanted = set(job.domains if only is None else only)
    messages = []
    for domain in (*first, *(d for d in job.domains if d not in first)):
        if domain in failed or domain not in wanted:
            continue
        part = parts.events(domain)
        total = progress.get(parts.total(part), 0)
        done = store.finished(job.id, part)
        sent = 0 if resumed else progress.get(parts.early(part), 0)  # under way, or done
        for group in range(sent, events_groups(total, size)):
            if any(b not in done for b in group_batches(group, total, size)):
                messages.append(MessageKey(EVENTS, domain, group))
    return messages


def detection_ranges(ctx: StageContext) -> list[DetectionScope]:
    """The date ranges the job's detection window is read in, one message each (at most
    ``TRACE_DETECTION_RANGES`` as it was when its first messages were sent:
    ``parts.SEED_RANGES``); empty when its seeds are read in one query (not a
    mid-section-defect date window, a window of one day, or one range configured)."""
    request = ctx.job.request
    if not request.params.detects(request.profile):
        return []
    count = ctx.registry.progress(ctx.job.id).get(parts.SEED_RANGES)
    ranges = DetectionScope.window(request.params).ranges(count or ctx.settings.detection_ranges)
    return ranges if len(ranges) > 1 else []


def seeds_settled(ctx: StageContext) -> bool:
    """Whether the job's seeds are stored whole (the summary blob is written last)."""
    return ctx.store.get_blob(ctx.job.id, parts.SEED_SUMMARY) is not None


def _seed_messages(ctx: StageContext) -> list[MessageKey]:
    """Seed-resolve's messages: one, or for a detection window read in date ranges one per
    range not yet read (every range read: one, which merges them)."""
    ranges = detection_ranges(ctx)
    request = ctx.job.request
    if request.params.detects(request.profile):
        # the count the messages are sent for, whatever the settings of the workers
        ranges_read = {parts.SEED_RANGES: max(1, len(ranges))}
        ctx.registry.set_progress(ctx.job.id, ranges_read, once=True)
    if not ranges:
        return [MessageKey(SEED_RESOLVE)]
    read = ctx.store.finished(ctx.job.id, parts.SEED_QUERIES)
    unread = [MessageKey(SEED_RESOLVE, group=n) for n in range(len(ranges)) if n not in read]
    return unread or [MessageKey(SEED_RESOLVE, group=0)]


def stage_settled(ctx: StageContext, stage: str) -> bool:
    """Whether the work of ``stage`` (not the events: ``events_settled``) is all done once one
    of its messages has ended: seed-resolve's once its seeds are stored (a window read in date
    ranges: after the message that merges them), the others' always (one message each)."""
    return seeds_settled(ctx) if stage == SEED_RESOLVE else True


def events_settled(
    registry: JobRegistry, store: CheckpointStore, job: Job, only: Iterable[str] | None = None
) -> bool:
    """Every domain (``only`` these, when given) either failed or has every input batch
    committed; never before its totals are set (the events of the seed lots begin while
    lineage walks: ``pipeline.engine.early_events``)."""
    progress = registry.progress(job.id)
    failed = registry.domain_states(job.id)
    for domain in job.domains if only is None else only:
        if domain in failed:
            continue
        part = parts.events(domain)
        total = progress.get(parts.total(part))
        if total is None or len(store.finished(job.id, part)) < total:
            return False
    return True


def dispatch_stage(ctx: StageContext, stage: str, *, resumed: bool = False) -> None:
    """Send the messages of ``stage``; an events stage with nothing left hands on at once.

    An events stage whose analysis goes first (``analysis_first``) sends the analysis's domains
    only, until they are settled; then the aggregation (once: ``begin_analysis``) and the
    other domains. Resumed, it sends every domain's missing messages once the analysis's are in.
    """
    job = ctx.job
    messages = stage_messages(ctx, stage, resumed=resumed)
    if stage == EVENTS and analysis_first(job) and AGGREGATION not in job.completed:
        read = job.analysis_domains
        if not events_settled(ctx.registry, ctx.store, job, read):
            messages = [m for m in messages if m.domain in read]  # the others held back
        elif begin_analysis(ctx, resumed=resumed) or not resumed:
            messages = []  # sent with the aggregation (here or by the hand-over's holder)
    if stage == EVENTS and not messages and events_settled(ctx.registry, ctx.store, job):
        advance(ctx, EVENTS, resumed=resumed)  # nothing to fetch (a re-analysis's are linked)
        return
    ctx.dispatch(job, messages, resumed=resumed)


def begin_analysis(ctx: StageContext, *, resumed: bool = False) -> bool:
    """After an events message of a job whose analysis goes first: once the analysis's domains
    are settled, send the aggregation and then the other domains' messages, once (the claim of
    the hand-over to aggregation; resumed work sends them again only when that hand-over looks
    lost, as ``advance``). True when this call sent them."""
    job = ctx.job
    if not analysis_first(job) or AGGREGATION in job.completed:
        return False
    if not resumed and ctx.registry.claimed_at(job.id, AGGREGATION) is not None:
        return False  # handed over: one GET instead of the domains' state after each message
    if not events_settled(ctx.registry, ctx.store, job, job.analysis_domains):
        return False
    if not (
        ctx.registry.claim(job.id, AGGREGATION) or (resumed and _hand_over_lost(ctx, AGGREGATION))
    ):
        return False
    rest = [d for d in job.domains if d not in job.analysis_domains]
    others = stage_messages(ctx, EVENTS, rest, resumed=resumed)
    # as the job is now: a message begun while lineage walked knows neither its lots nor its
    # queue (``TRACE_LARGE_JOB_CIDS``)
    ctx.dispatch(ctx.registry.load(job.id) or job, [MessageKey(AGGREGATION), *others])
    return True


def advance(ctx: StageContext, finished: str, *, resumed: bool = False) -> None:
    """``finished`` is complete: dispatch the next stage once, or finish the job when every
    stage is complete (an analysis that began beside the events may end before or after them).

    The first caller to claim the hand-over sends it. ``resumed`` work (re-sent after a worker
    died, or by an operator) may send it again only when it looks lost: a worker that died
    after claiming it but before sending it must not leave the job stuck, yet copies of resumed
    work must not each send the next stage (``_hand_over_lost``).
    """
    job, registry = ctx.job, ctx.registry
    if finished == EVENTS and _every_domain_failed(ctx):
        return
    if finished == EVENTS:
        # Named before it counts as complete: an analysis that began beside the events may
        # end meanwhile and finish the job, and a finished job is indexed by its name (and
        # refuses it later), so it would finish unnamed, unfindable by the MSD page.
        _name_the_trace(ctx)
    if registry.complete_stage(job.id, finished):
        # A job may wait in its queue and run for longer than its TTL: every stage boundary
        # gives all its keys (earlier stages' outputs included) a fresh TTL.
        ctx.store.touch(job.id)
        if finished == EVENTS:  # its parts no longer change: index them for result pages
            index = PageIndex(ctx.store)
            for domain in job.domains:
                index.ensure(job.id, parts.events(domain))
        _record_stage(ctx, finished)
    fresh = registry.load(job.id)  # the other stages' ends, as they are now
    if fresh is None:
        return
    if all(stage in fresh.completed for stage in fresh.stages):
        registry.finish(job.id)
        return
    after = job.next_stage(finished)
    if after is None or after in fresh.completed:
        return  # begun before this one ended (the analysis): the later end finishes the job
    if registry.claim(job.id, after) or (resumed and _hand_over_lost(ctx, after)):
        ctx.job = fresh  # queue and counts may have changed in this stage
        dispatch_stage(ctx, after)


def _name_the_trace(ctx: StageContext) -> None:
    """Set the job's ``trace_query_id`` (``trace_identity``) unless it has one: its events are
    all in (a copy of this call, or a retry, finds it set and reads no seed again)."""
    registry, job_id = ctx.registry, ctx.job.id
    if not registry.field(job_id, "trace_query_id"):
        registry.update(job_id, trace_query_id=trace_identity(ctx))


def trace_identity(ctx: StageContext) -> str:
    """The job's ``trace_query_id`` (``pipeline.identities``), from its seeds: the stored seed
    lots (read a chunk at a time) when it has them, else the lots its request names. An
    analysis of a stored trace (``events_of``: a re-analysis, or a request found to be that
    trace) has that trace's id by construction (its seeds, dates, stations and direction; the
    masks are not in it): taken from the trace's job while it is stored, not digested again
    (every seed lot read, ~0.7 s at 114K CIDs, inside the request that asked)."""
    request = ctx.job.request
    if request.events_of:
        trace = ctx.registry.load(request.events_of)
        if trace is not None and trace.trace_query_id:
            return trace.trace_query_id
    if request.from_cids and not request.aggregates:
        seeds: Iterable[str] = request.container_ids
    else:
        seeds = (row[0] for batch in ctx.store.read(ctx.job.id, parts.SEEDS) for row in batch.rows)
    return trace_query_id(request.profile, seeds, request.params)


def _hand_over_lost(ctx: StageContext, after: str) -> bool:
    """True for one caller per stall when the hand-over to ``after`` was claimed more than
    ``TRACE_STALL_SECONDS`` ago and ``after`` never began: its message was lost with the worker
    that claimed it (or never sent). A message merely waiting in its queue stays the only one
    for a stall; after that a copy is sent at most once per stall (committed work is skipped,
    so a copy is harmless, only not free): a copy's claim lapses a stall after it was made,
    wherever that falls on the clock."""
    registry, job_id = ctx.registry, ctx.job.id
    stall = ctx.settings.stall_seconds
    if registry.stage_began(job_id, after) is not None:
        return False
    claimed = registry.claimed_at(job_id, after)
    now = time.time()
    if claimed is not None and now - claimed < stall:
        return False
    return registry.claim(job_id, f"{after}:again", hold_seconds=stall)


def _every_domain_failed(ctx: StageContext) -> bool:
    """When every events domain failed, fail the job in its events stage (with the domains'
    code, if they share one) and say True: there is no result to finish with, nor to analyse.
    A retry re-runs the domains' uncommitted batches (``operator.retry``)."""
    job = ctx.job
    failed = ctx.registry.domain_states(job.id)
    if not job.domains or any(d not in failed for d in job.domains):
        return False
    codes = {failed[d]["code"] for d in job.domains}
    code = codes.pop() if len(codes) == 1 else "EVENTS_FAILED"
    why = "; ".join(f"{d}: {failed[d]['code']}: {failed[d]['message']}" for d in job.domains)
    ctx.registry.fail(job.id, EVENTS, code, f"every events domain failed ({why})")
    return True


def _record_stage(ctx: StageContext, stage: str) -> None:
    """Count a completed stage: its seconds (first start to now) and the rows it wrote."""
    job, client = ctx.job, ctx.store.redis
    began = ctx.registry.stage_began(job.id, stage)
    seconds = time.time() - began if began is not None else None
    if seconds is not None:
        metrics.count(client, "stage_seconds", seconds, stage=stage)
    metrics.count(client, "stage_runs", stage=stage)
    progress = ctx.registry.progress(job.id)
    rows = 0
    if stage == EVENTS:
        for domain in job.domains:
            part = parts.events(domain)
            rows += progress.get(parts.rows(part), 0)
            metrics.count(client, "rows_written", progress.get(parts.rows(part), 0), part=part)
    else:
        rows = progress.get(parts.rows(parts.queries(stage)), 0)
    ctx.registry.announce(lifecycle.STAGE_FINISHED, job.id, stage=stage, rows=rows, seconds=seconds)


def resume(ctx: StageContext) -> None:
    """Send again whatever the job's first unfinished stage still needs (operator retry)."""
    stage = ctx.job.pending_stage()
    if stage is None:
        ctx.registry.finish(ctx.job.id)
        return
    dispatch_stage(ctx, stage, resumed=True)
