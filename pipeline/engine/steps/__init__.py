"""The job steps: each stage of a job as a function over a ``StageContext`` (job, store,
registry, source) that runs the stage function and checkpoints its output, so a restarted step
skips finished batches. ``STEPS`` maps a message's stage to its step (``Runtime.handle``)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.engine.context import StageContext
from pipeline.engine.job import AGGREGATION, EVENTS, LINEAGE, SEED_RESOLVE
from pipeline.engine.messages import MessageKey
from pipeline.engine.steps.aggregation_step import run_aggregation
from pipeline.engine.steps.events_step import run_events_group
from pipeline.engine.steps.lineage_step import run_lineage
from pipeline.engine.steps.seed_step import run_seed_resolve


def _events(ctx: StageContext, key: MessageKey) -> None:
    assert key.domain is not None and key.group is not None
    run_events_group(ctx, key.domain, key.group)


#: The step of each stage, given the job's context and the message's key.
STEPS: dict[str, Callable[[StageContext, MessageKey], None]] = {
    SEED_RESOLVE: lambda ctx, key: run_seed_resolve(ctx, key.group),
    LINEAGE: lambda ctx, key: run_lineage(ctx),
    EVENTS: _events,
    AGGREGATION: lambda ctx, key: run_aggregation(ctx),
}
