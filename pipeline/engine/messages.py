"""The messages of a job: which actor runs which piece of work, and how they are sent.

A *message key* names one piece of work of a job: ``seed-resolve`` (or
``seed-resolve:{range}``, one date range of a detection window), ``lineage``,
``events:{domain}:{group}`` or ``aggregation``. The key is what leases and the reaper track, and
``BrokerDispatcher`` turns it back into a Dramatiq message on the job's queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dramatiq

from pipeline.engine.job import AGGREGATION, EVENTS, LINEAGE, QUEUE, SEED_RESOLVE, STAGES, Job

#: The Dramatiq actor of each stage (``pipeline.actors`` defines them under these names).
ACTOR_NAMES = {
    SEED_RESOLVE: "trace_seed_resolve",
    LINEAGE: "trace_lineage",
    EVENTS: "trace_events",
    AGGREGATION: "trace_aggregation",
}

#: The actor that refreshes the mid-section-defect page's option lists (no job: it reads the
#: warehouse into ``trace:msd:options``, ``pipeline.engine.options``), on the normal queue.
OPTIONS_ACTOR = "trace_msd_options"


@dataclass(frozen=True)
class MessageKey:
    stage: str
    domain: str | None = None
    group: int | None = None

    def __str__(self) -> str:
        if self.stage == EVENTS:
            return f"{EVENTS}:{self.domain}:{self.group}"
        if self.group is not None:  # a date range of a detection window
            return f"{self.stage}:{self.group}"
        return self.stage

    @classmethod
    def parse(cls, text: str) -> MessageKey:
        stage, _, rest = text.partition(":")
        if stage not in STAGES:
            raise ValueError(f"not a message key: {text!r}")
        if stage == EVENTS:
            domain, _, group = rest.rpartition(":")
            return cls(stage, domain, int(group))
        return cls(stage, group=int(rest)) if rest else cls(stage)

    def actor_kwargs(self) -> dict[str, Any]:
        if self.stage == EVENTS:
            return {"domain": self.domain, "group": self.group}
        if self.group is not None:
            return {"window_range": self.group}
        return {}


class Dispatcher(Protocol):
    """Sends messages of a job to the workers."""

    def __call__(
        self, job: Job, messages: Sequence[MessageKey], *, resumed: bool = False
    ) -> None: ...


class BrokerDispatcher:
    """Sends each message key as a message of its stage's actor on the job's queue.

    ``resumed`` marks work sent again after a worker died (or by an operator): such a message
    hands on to the next stage even if a dead worker had claimed that hand-over.
    """

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def __call__(self, job: Job, messages: Sequence[MessageKey], *, resumed: bool = False) -> None:
        for key in messages:
            kwargs = {**key.actor_kwargs(), "resumed": resumed} if resumed else key.actor_kwargs()
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=job.queue,
                actor_name=ACTOR_NAMES[key.stage],
                args=(job.id,),
                kwargs=kwargs,
                options={},
            )
            self.broker.enqueue(message)

    def send_options_refresh(self) -> None:
        """One message asking a worker to refresh the MSD option lists (``OPTIONS_ACTOR``)."""
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=QUEUE, actor_name=OPTIONS_ACTOR, args=(), kwargs={}, options={}
        )
        self.broker.enqueue(message)
