"""The events of the seed lots, begun while lineage walks their genealogy.

Lineage is one message: while it walks, the other workers have nothing to do, yet most of the
events' input is known. The lot list (``parts.CIDS``) lists the seeds first, in their order
(``Lineage.all_cids``), so its batches that hold seeds only are the same whatever lineage
finds. ``send_early_events`` stores those batches before the walk and sends the events groups
that read only them: of the analysis's domains for a job with an analysis (the others are held
back behind it as usual, ``pipeline.engine.flow``), of every domain but ``jobs`` otherwise
(its input batches span several lot-list batches). They go to the large-job queue when the
seeds alone pass ``TRACE_LARGE_JOB_CIDS`` (the job then is one, whatever lineage adds).

What keeps "finished" true while the lot list is not whole:

- the events stage counts as settled only once lineage has set its totals (``events_settled``):
  an early group that ends first hands nothing on;
- an early group reads its batches' range from the lot-list batches stored before it was sent
  (``run_events_group``), not from the totals it does not have yet;
- once lineage ends, the events stage sends every group but the early ones, which are recorded
  (``parts.early``) only after they were sent: a lineage that dies between the two leaves them
  unrecorded, and they are sent again (a duplicate skips committed batches). Work sent again
  (a dead worker's, an operator's retry) sends them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.context import StageContext
from pipeline.engine.flow import fix_group_size
from pipeline.engine.job import EVENTS, LARGE_QUEUE, LINEAGE
from pipeline.engine.messages import MessageKey

#: The claim of sending a job's early events groups (once, whatever redelivers lineage).
EARLY_CLAIM = "events:early"


def send_early_events(ctx: StageContext, seeds: Iterable[str], seed_count: int) -> int:
    """Before lineage walks: store the lot list's batches of ``in_list_size`` seeds (the full
    ones of ``seeds``, the job's seed lots in lineage's order, ``seed_count`` of them) and send
    the events groups that read only those batches; returns the groups sent per domain (0: none,
    for a job whose events do not follow its lineage, or too few seeds for a group)."""
    job, settings, store = ctx.job, ctx.settings, ctx.store
    if LINEAGE not in job.stages or job.next_stage(LINEAGE) != EVENTS:
        return 0
    wanted = [d for d in (job.analysis_domains or job.domains) if d != domains.JOBS]
    size = settings.in_list_size
    batches = seed_count // size
    if not wanted or batches < settings.events_group_batches:
        return 0
    lots = ((cid,) for cid in islice(seeds, batches * size))
    store.write_rows(job.id, parts.CIDS, ("CONTAINERID",), lots, size)
    if not ctx.registry.claim(job.id, EARLY_CLAIM):
        return 0  # sent by an earlier run of this lineage
    # the job's group size, fixed here from its seeds (lineage only adds lots)
    groups = batches // fix_group_size(ctx.registry, job.id, batches, settings)
    if seed_count > settings.large_job_cids and job.queue != LARGE_QUEUE:
        # at least this many lots: lineage will find it a large job, and so its events are
        ctx.registry.update(job.id, queue=LARGE_QUEUE)
        job = ctx.registry.load(job.id) or job
    ctx.dispatch(job, [MessageKey(EVENTS, d, g) for d in wanted for g in range(groups)])
    ctx.registry.set_progress(job.id, {parts.early(parts.events(d)): groups for d in wanted})
    return groups
