"""The events stage of a job, one message at a time: a group of input batches of one domain.

Each input batch (``in_list_size`` lots; for ``jobs`` ``TRACE_JOBS_SCAN_LOTS``) is fetched with
``fetch_events`` and its rows are stored chunk by chunk as they arrive, then committed. A batch
already in the manifest is skipped without asking the source. The domain's row guard
(``TRACE_MAX_ROWS_PER_DOMAIN``) stops fetching once the domain is full and marks it truncated.
"""

from __future__ import annotations

import time

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.flow import group_batches, group_size, jobs_batches
from pipeline.engine.manifest import Entry
from pipeline.stages.events import fetch_events


def run_events_group(ctx: StageContext, domain: str, group: int) -> None:
    """Fetch and commit every uncommitted input batch of events message ``group`` of ``domain``.

    Stops between batches when the job is no longer active or the domain has failed. Source
    errors propagate (the caller retries or fails the domain).
    """
    job, store, registry = ctx.job, ctx.store, ctx.registry
    part = parts.events(domain)
    progress = registry.progress(job.id)
    total = progress.get(parts.total(part))
    if total is None:  # sent while lineage walks: its batches are lot-list batches stored
        total = len(store.finished(job.id, parts.CIDS))  # before it was sent (early_events)
    done = store.finished(job.id, part)
    for batch in group_batches(group, total, group_size(progress, ctx.settings)):
        if batch in done:
            continue
        ctx.check_active()
        if domain in registry.domain_states(job.id):
            return  # failed for good elsewhere: its other batches are not wanted
        fetch_batch(ctx, domain, batch)


def fetch_batch(ctx: StageContext, domain: str, batch: int) -> Entry:
    """Fetch, store and commit one input batch of ``domain``; returns its manifest entry."""
    job, store = ctx.job, ctx.store
    part = parts.events(domain)
    limit = ctx.settings.max_rows_per_domain
    room = limit - ctx.registry.progress(job.id).get(parts.rows(part), 0)
    writer = store.writer(job.id, part, batch)
    began = time.perf_counter()
    if room > 0:
        ctx.start_batch(part, batch)
        rows = fetch_events(
            ctx.source,
            domain,
            batch_cids(ctx, domain, batch),
            jobs_probe_max=ctx.settings.jobs_probe_max,
        )
        try:
            for rows_batch in rows:
                writer.add(rows_batch)
                if writer.rows > room:
                    break  # the domain is full (commit cuts the excess): stop asking
        finally:
            rows.close()
    # The batch's seconds (fetch + store) go with it: per-domain throughput, for operators
    # (``jobs show``) and the benchmark.
    note = {"seconds": round(time.perf_counter() - began, 3)}
    entry, _ = store.commit(job.id, part, writer.entry(note, truncated=room <= 0), row_limit=limit)
    return entry


def batch_cids(ctx: StageContext, domain: str, batch: int) -> list[str]:
    """The lots of input ``batch``: one stored batch of the lot list (``jobs``: the
    ``jobs_batches`` stored batches from ``batch`` times that on)."""
    store, job_id = ctx.store, ctx.job.id
    if domain != domains.JOBS:
        return [row[0] for row in store.read_batch(job_id, parts.CIDS, batch)]
    span = jobs_batches(ctx.settings)
    total = store.finished(job_id, parts.CIDS)
    return [
        row[0]
        for number in range(batch * span, (batch + 1) * span)
        if number in total
        for row in store.read_batch(job_id, parts.CIDS, number)
    ]
