"""A trace job as stored: its request, state, stages, timestamps and error.

States are the contract's (``queued``, ``started``, ``finished``, ``failed``) plus ``cancelled``.
A job runs the stages of its plan in order; a job given CIDs skips seed-resolve and lineage (an
analysis given its detection lots without their lineage skips seed-resolve only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.domains import MSD_DOMAINS, Domain
from pipeline.request import TraceRequest

QUEUED = "queued"
STARTED = "started"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, STARTED, FINISHED, FAILED, CANCELLED)
ACTIVE = (QUEUED, STARTED)
#: States a job is in when its request may be served again instead of starting a new job.

SEED_RESOLVE = "seed-resolve"
LINEAGE = "lineage"
EVENTS = "events"
AGGREGATION = "aggregation"
STAGES = (SEED_RESOLVE, LINEAGE, EVENTS, AGGREGATION)

#: The queue of small jobs and the queue of jobs over ``TRACE_LARGE_JOB_CIDS`` lots.
QUEUE = "trace"
LARGE_QUEUE = "trace_large"
QUEUES = (QUEUE, LARGE_QUEUE)


def plan(request: TraceRequest) -> tuple[str, ...]:
    """The stages ``request`` runs, in order (see ``TraceRequest`` for the kinds)."""
    kind = request.job_kind
    if kind == SEED_RESOLVE:
        return (SEED_RESOLVE,)
    if kind == LINEAGE:
        return (LINEAGE,)
    head: tuple[str, ...] = (
        (SEED_RESOLVE, LINEAGE) if kind != EVENTS else (LINEAGE,) if request.expands_lineage else ()
    )
    tail = (AGGREGATION,) if request.aggregates else ()
    return (*head, EVENTS, *tail)


@dataclass
class Job:
    """One job, as read from its Redis hash."""

    id: str
    request: TraceRequest
    state: str = QUEUED
    stage: str | None = None
    completed: list[str] = field(default_factory=list)
    queue: str = QUEUE
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    cid_count: int = 0
    seed_count: int = 0
    error: dict[str, Any] | None = None
    fingerprint: str = ""
    #: The lineage ``query_id`` its answers carry (``TraceRequest.query_id``), set at creation.
    query_id: str | None = None
    #: ``pipeline.identities.trace_query_id``, set when the job's events are complete.
    trace_query_id: str | None = None

    @property
    def stages(self) -> tuple[str, ...]:
        return plan(self.request)

    @property
    def domains(self) -> tuple[Domain, ...]:
        """The events domains the job fetches (none when its plan has no events stage)."""
        return self.request.domains if EVENTS in self.stages else ()

    @property
    def analysis_domains(self) -> tuple[Domain, ...]:
        """The events domains the job's analysis reads (none for a job without one): upstream
        history, and materials backward or downstream rejects forward."""
        if AGGREGATION not in self.stages:
            return ()
        read = MSD_DOMAINS[self.request.direction()]
        return tuple(d for d in self.domains if d in read)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def next_stage(self, after: str) -> str | None:
        """The stage that follows ``after`` in this job's plan (``None``: it was the last)."""
        stages = self.stages
        at = stages.index(after)
        return stages[at + 1] if at + 1 < len(stages) else None

    def pending_stage(self) -> str | None:
        """The first stage of the plan not completed yet (``None``: all are)."""
        return next((s for s in self.stages if s not in self.completed), None)

    @property
    def current_stage(self) -> str | None:
        """The stage a status shows: a started job's first stage not completed (its events,
        while an analysis that began beside them runs or has ended), else the stage it last
        ran (``None`` for a job not started yet)."""
        if self.state == STARTED:
            return self.pending_stage() or self.stage
        return self.stage

    def elapsed_seconds(self, now: float | None = None) -> float:
        end = self.finished_at or (now if now is not None else time.time())
        return round(max(0.0, end - self.created_at), 1)

    # ---- storage ---------------------------------------------------------------------------
    def to_hash(self) -> dict[str, str]:
        """The fields written when the job is created."""
        return {
            "id": self.id,
            "request": orjson.dumps(self.request.as_dict()).decode(),
            "fingerprint": self.fingerprint,
            "state": self.state,
            "queue": self.queue,
            "created_at": repr(self.created_at),
            "updated_at": repr(self.created_at),
            "cid_count": str(self.cid_count),
            "seed_count": str(self.seed_count),
            "query_id": self.query_id or "",
        }

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> Job:
        data = {k.decode(): v.decode() for k, v in raw.items() if k != b"request"}
        request = stored_request(raw[b"request"])
        completed = [s for s in STAGES if f"done:{s}" in data]
        return cls(
            id=data["id"],
            request=request,
            state=data["state"],
            stage=data.get("stage") or None,
            completed=completed,
            queue=data.get("queue") or QUEUE,
            created_at=float(data["created_at"]),
            started_at=_float(data.get("started_at")),
            finished_at=_float(data.get("finished_at")),
            cid_count=int(data.get("cid_count") or 0),
            seed_count=int(data.get("seed_count") or 0),
            error=orjson.loads(data["error"]) if data.get("error") else None,
            fingerprint=data.get("fingerprint", ""),
            query_id=data.get("query_id") or None,
            trace_query_id=data.get("trace_query_id") or None,
        )


#: The request's id lists, which are its bulk (114K lots: 2 MB of JSON).
ID_LISTS = ("container_ids", "seed_container_ids")


def stored_request(stored: bytes) -> TraceRequest:
    """The request a job stored (``to_hash``), read back on every status call, page and message.

    Its id lists were validated (trimmed, de-duplicated) when the job was made, so they are taken
    as stored and not validated again: that was nearly all of a status call's cost, linear in
    the trace (114K lots: 26 of 28 ms; 500K: 275 ms). The model's rules still see whether each
    list is empty."""
    data = orjson.loads(stored)
    lists = {name: data[name] for name in ID_LISTS if data.get(name)}
    request = TraceRequest.from_dict({**data, **{name: ["-"] for name in lists}})
    return request.model_copy(update={name: tuple(ids) for name, ids in lists.items()})


def _float(text: str | None) -> float | None:
    return float(text) if text else None
