"""A job's counters and claims in Redis: its progress counters (``pipeline.engine.parts`` names
them), the starts of its batches and messages against the attempt limit, the source queries it
issued, its failed events domains, and the claims that let exactly one caller hand a step on.
Every key is registered with the job's store (released with the job). A part of
``JobRegistry``, which the engine calls for all of them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis

from pipeline.engine import keys, parts
from pipeline.engine.store import CheckpointStore


class JobCounters:
    """The counters and claims of ``JobRegistry`` (its ``redis`` client and ``store``)."""

    redis: redis.Redis
    store: CheckpointStore

    @property
    def ttl(self) -> int:
        return self.store.ttl

    def set_totals(
        self, job_id: str, totals: dict[str, int], spans: dict[str, int] | None = None
    ) -> None:
        """Set the ``parts.total`` counters (input batches per part) and the ``parts.span``
        ones (lot-list batches per input batch)."""
        if not totals:
            return
        counters: dict[str, int] = {parts.total(p): n for p, n in totals.items()}
        counters.update({parts.span(p): n for p, n in (spans or {}).items()})
        self.set_progress(job_id, counters)

    def set_progress(self, job_id: str, counters: Mapping[str, int], *, once: bool = False) -> None:
        """Set counters of the job's progress hash (``pipeline.engine.parts`` names them);
        ``once``: only those not set yet."""
        pipe = self.redis.pipeline(transaction=False)
        fields: dict[Any, int] = dict(counters)
        if once:
            for name, value in fields.items():
                pipe.hsetnx(keys.progress(job_id), name, value)
        else:
            pipe.hset(keys.progress(job_id), mapping=fields)
        self.store.register(pipe, job_id, keys.progress(job_id))
        pipe.execute()

    def add_attempt(
        self, job_id: str, tag: str, *, committed: int | None = None
    ) -> tuple[int, int]:
        """Count one more start of batch (or message) ``tag``; returns its starts so far and how
        many of them ended with an error their worker reported (``end_attempt``). With
        ``committed`` (the batches its stage has committed, as this start finds them): when
        they grew since its previous start, the runs in between made progress, and their
        deaths are no longer held against it (counted as ended)."""
        key = keys.attempts(job_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(key, tag, 1)
        pipe.hget(key, f"{tag}:ended")
        if committed is not None:
            pipe.hget(key, f"{tag}:committed")
            pipe.hset(key, f"{tag}:committed", committed)
        self.store.register(pipe, job_id, key)
        answers = pipe.execute()
        starts, ended = int(answers[0]), int(answers[1] or 0)
        earlier = answers[2] if committed is not None else None
        if earlier is not None and int(earlier) != committed and ended < starts - 1:
            ended = starts - 1
            self.redis.hset(key, f"{tag}:ended", ended)
        return starts, ended

    def end_attempt(self, job_id: str, tag: str) -> None:
        """A start of ``tag`` ended and its worker lived to say so (a batch: with an error it
        reported; a message: in any way), so it is not counted as a death."""
        self._count(keys.attempts(job_id), job_id, f"{tag}:ended")

    def add_query(self, job_id: str, tag: str) -> int:
        """Count one source query issued for batch ``tag``."""
        return self._count(keys.queries(job_id), job_id, tag)

    def _count(self, key: str, job_id: str, tag: str) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(key, tag, 1)
        self.store.register(pipe, job_id, key)
        return int(pipe.execute()[0])

    def mark_domain(self, job_id: str, domain: str, status: str, code: str, message: str) -> bool:
        """Record that ``domain`` ended ``failed`` (first reason kept). True if this call did."""
        value = orjson.dumps({"status": status, "code": code, "message": message})
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(keys.domains(job_id), domain, value)
        self.store.register(pipe, job_id, keys.domains(job_id))
        return bool(pipe.execute()[0])

    def claim(self, job_id: str, step: str, *, hold_seconds: float | None = None) -> bool:
        """True for the first caller only: that caller dispatches ``step`` (the claim holds
        when it was made: ``claimed_at``). With ``hold_seconds`` the claim lapses that long
        after it was made (then the next caller is the first again): it is not one of the
        job's keys, whose TTL every stage boundary renews; else it lasts as long as the job."""
        key = keys.claim(job_id, step)
        if hold_seconds is not None:
            hold_ms = max(1, round(hold_seconds * 1000))
            return bool(self.redis.set(key, repr(time.time()), nx=True, px=hold_ms))
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key, repr(time.time()), nx=True, ex=self.ttl)
        self.store.register(pipe, job_id, key)
        return bool(pipe.execute()[0])

    def release_claim(self, job_id: str, step: str) -> None:
        """Give ``step``'s claim back (its holder failed before doing it: a retry may claim it)."""
        self.redis.delete(keys.claim(job_id, step))

    def claimed_at(self, job_id: str, step: str) -> float | None:
        """When ``step`` was claimed (epoch seconds; ``None``: not claimed)."""
        value = self.redis.get(keys.claim(job_id, step))
        try:
            return float(value) if value else None
        except ValueError:  # claimed before claims held their time: treat as long ago
            return 0.0
