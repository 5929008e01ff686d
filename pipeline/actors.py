"""The Dramatiq actors of a trace, one per stage: ``dramatiq pipeline.actors`` starts a worker.

Importing this module reads the settings from the environment once, builds the broker
(``TRACE_BROKER_URL``: Redis by default, RabbitMQ for ``amqp://``) and sets it as Dramatiq's
global broker, and makes the process's log lines logfmt with the job id (``pipeline.logs``).
Each actor is a thin wrapper: ``Runtime.handle`` loads the job, runs the stage
function and hands on; ``msd_options`` (no job) refreshes the MSD page's option lists in Redis.
Messages go to queue ``trace``, or ``trace_large`` for jobs over ``TRACE_LARGE_JOB_CIDS`` lots
(run workers for both: ``--queues trace trace_large``).
"""

from __future__ import annotations

from typing import Any

import dramatiq

from pipeline import logs
from pipeline.config import Settings
from pipeline.engine.broker import make_broker, time_limit_seconds
from pipeline.engine.job import AGGREGATION, EVENTS, LINEAGE, QUEUE, SEED_RESOLVE
from pipeline.engine.messages import ACTOR_NAMES, OPTIONS_ACTOR, MessageKey
from pipeline.engine.middleware import EngineMiddleware
from pipeline.engine.runtime import Runtime, runtime_for

settings = Settings.from_env()
logs.install(settings.log_level)  # logfmt lines through the handlers the dramatiq CLI set up
broker = make_broker(settings)
runtime: Runtime = runtime_for(settings, broker)
broker.add_middleware(EngineMiddleware(runtime))
dramatiq.set_broker(broker)

_options: dict[str, Any] = {"queue_name": QUEUE, "broker": broker}


def _stage(stage: str) -> dict[str, Any]:
    """The options of ``stage``'s actor: its time limit (``time_limit_seconds``, in ms)."""
    return {**_options, "time_limit": time_limit_seconds(settings, stage) * 1000}


@dramatiq.actor(actor_name=ACTOR_NAMES[SEED_RESOLVE], **_stage(SEED_RESOLVE))
def seed_resolve(job_id: str, resumed: bool = False, window_range: int | None = None) -> None:
    """Resolve the job's seeds (``window_range``: one date range of its detection window)."""
    runtime.handle(job_id, MessageKey(SEED_RESOLVE, group=window_range), resumed=resumed)


@dramatiq.actor(actor_name=ACTOR_NAMES[LINEAGE], **_stage(LINEAGE))
def lineage(job_id: str, resumed: bool = False) -> None:
    """Trace the genealogy of the job's seeds."""
    runtime.handle(job_id, MessageKey(LINEAGE), resumed=resumed)


@dramatiq.actor(actor_name=ACTOR_NAMES[EVENTS], **_stage(EVENTS))
def events(job_id: str, domain: str, group: int, resumed: bool = False) -> None:
    """Fetch one group of input batches of one domain."""
    runtime.handle(job_id, MessageKey(EVENTS, domain, group), resumed=resumed)


@dramatiq.actor(actor_name=ACTOR_NAMES[AGGREGATION], **_stage(AGGREGATION))
def aggregation(job_id: str, resumed: bool = False) -> None:
    """Run the mid-section-defect analysis over the stored events."""
    runtime.handle(job_id, MessageKey(AGGREGATION), resumed=resumed)


@dramatiq.actor(actor_name=OPTIONS_ACTOR, **_options)
def msd_options() -> None:
    """Refresh the mid-section-defect page's option lists from the warehouse."""
    runtime.refresh_msd_options()
