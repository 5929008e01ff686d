"""Jobs in Redis: creation with dedupe, state changes, indexes, liveness; the job's counters
and claims are ``pipeline.engine.job_counters`` (a part of the registry, in a module of its own).

State changes are compare-and-set (a Lua script), so a cancel racing a finish leaves one answer.
The indexes ``recent``, ``running`` and ``failed`` are sorted sets scored by time; entries older
than the job TTL are trimmed when jobs are created.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import redis

from pipeline.config import DEFAULT_RESULT_REUSE_SECONDS
from pipeline.engine import analyses, codec, integrity, keys, lifecycle, parts
from pipeline.engine.job import (
    ACTIVE,
    AGGREGATION,
    CANCELLED,
    EVENTS,
    FAILED,
    FINISHED,
    LINEAGE,
    QUEUE,
    QUEUED,
    STAGES,
    STARTED,
    Job,
)
from pipeline.engine.job_counters import JobCounters
from pipeline.engine.job_ids import new_job_id
from pipeline.engine.store import CheckpointStore
from pipeline.request import TraceRequest

# Set fields of a job hash only when its state is one of a comma-separated list.
# KEYS[1] job hash; ARGV[1] allowed states; ARGV[2..] field, value, field, value...
_SET_IF_STATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if allowed == state then
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    return 1
  end
end
return 0
"""

# Set a field of an existing hash unless it is set (HSETNX would create a missing hash).
_MARK_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""


class JobRegistry(JobCounters):
    """Creates, reads and moves jobs; owns every job field but the checkpoints."""

    def __init__(
        self,
        client: redis.Redis,
        store: CheckpointStore,
        *,
        max_events: int = lifecycle.DEFAULT_MAX_EVENTS,
        reuse_seconds: float = DEFAULT_RESULT_REUSE_SECONDS,
    ) -> None:
        self.redis = client
        self.store = store
        self.max_events = max_events
        self.reuse_seconds = reuse_seconds
        self._set_if_state = client.register_script(_SET_IF_STATE)
        self._mark_once = client.register_script(_MARK_ONCE)
        #: the chunk keys of finished results, kept between checks (``flaw``)
        self.result_keys = integrity.ResultKeys()

    def announce(
        self, event: str, job_id: str, *, level: int = logging.INFO, **fields: Any
    ) -> None:
        """Record a lifecycle event of the job (log line, event stream, counter)."""
        lifecycle.record(
            self.redis, event, job_id, max_events=self.max_events, level=level, **fields
        )

    # ---- creation --------------------------------------------------------------------------
    def submit(
        self, request: TraceRequest, *, fresh: bool = False, queue: str = QUEUE
    ) -> tuple[Job, bool]:
        """The job for ``request``: an existing queued or started one for the same request, or
        one that finished at most ``reuse_seconds`` ago (unless ``fresh``), or a new queued one.
        Returns the job and whether it is new."""
        fingerprint = request.fingerprint()
        dedupe_key = keys.dedupe(fingerprint)
        query_id = request.query_id()  # a digest of the seeds: once, outside the transaction
        outcome: dict[str, Any] = {}

        def attempt(pipe: Any) -> None:
            if not fresh:
                existing = pipe.get(dedupe_key)
                job = self.load(codec.as_text(existing)) if existing else None
                if job is not None and self._reusable(job):
                    outcome.update(job=job, created=False)
                    pipe.multi()
                    return
            now = time.time()
            job = Job(
                id=new_job_id(now),  # creation time + 96 random bits
                request=request,
                queue=queue,
                created_at=now,
                fingerprint=fingerprint,
                cid_count=len(request.container_ids),
                query_id=query_id,
            )
            pipe.multi()
            pipe.hset(keys.job(job.id), mapping=job.to_hash())
            pipe.expire(keys.job(job.id), self.ttl)
            pipe.set(dedupe_key, job.id, ex=self.ttl)
            if request.job_kind == LINEAGE and query_id:  # named by its query_id later
                pipe.set(keys.lineage_query(query_id), job.id, ex=self.ttl)
            pipe.zadd(keys.RECENT, {job.id: now})
            pipe.zadd(keys.RUNNING, {job.id: now})
            for index in (keys.RECENT, keys.FAILED):
                pipe.zremrangebyscore(index, "-inf", now - self.ttl)
            outcome.update(job=job, created=True)

        self.redis.transaction(attempt, dedupe_key)
        return outcome["job"], outcome["created"]

    def _reusable(self, job: Job) -> bool:
        """Queued or started, or finished within ``reuse_seconds`` with a whole result (a job
        found damaged is marked so, and never reused)."""
        if job.state in ACTIVE:
            return True
        ended = job.finished_at or 0.0
        if job.state != FINISHED or time.time() - ended > self.reuse_seconds:
            return False
        return self.flaw(job) is None

    def flaw(self, job: Job, *, detail: bool = True) -> integrity.Flaw | None:
        """What keeps the finished ``job``'s result from being whole (``integrity.flaw``;
        ``None``: it is whole; ``detail=False``: without the analysis's row tables, for an
        answer that does not carry them). A piece found gone marks the job damaged; a job
        marked damaged before (a chunk failing its checksum) is damaged for that reason."""
        reason = self.damaged(job.id)
        if reason is not None:
            return integrity.Flaw(reason, damaged=True)
        problem = integrity.flaw(
            self.store,
            job,
            self.domain_states(job.id),
            self.progress(job.id),
            self.result_keys,
            detail=detail,
        )
        if problem is not None and problem.damaged:
            self.mark_damaged(job.id, problem.reason)
        return problem

    def stored_lineage(self, query_id: str) -> Job | None:
        """The finished lineage job of ``query_id`` whose result is whole (``None``: unknown,
        expired, not finished, or damaged: the caller walks the lineage again)."""
        return self._whole_finished(keys.lineage_query(query_id), LINEAGE)

    def stored_trace(self, trace_query_id: str) -> Job | None:
        """The latest finished job of ``trace_query_id`` whose events are whole (no domain
        failed, nothing gone) and whose inputs another analysis takes are all there
        (``parts.trace_inputs``): another analysis of the same trace may read them in place.
        ``None``: unknown, expired, or not whole."""
        job = self._whole_finished(keys.trace_query(trace_query_id), EVENTS)
        if job is None or job.trace_query_id != trace_query_id:
            return None
        taken = parts.trace_inputs(job.request.direction())
        if integrity.manifests_short(self.store, job.id, taken, self.progress(job.id)):
            return None  # its result stands, but another analysis cannot take its inputs
        return job

    def _whole_finished(self, index: str, stage: str) -> Job | None:
        """The job an index key names, when it finished ``stage`` and its result is whole."""
        found = self.redis.get(index)
        job = self.load(codec.as_text(found)) if found else None
        if job is None or job.state != FINISHED or stage not in job.completed:
            return None
        return job if self.flaw(job) is None else None

    def mark_damaged(self, job_id: str, reason: str) -> None:
        """The job's result was found damaged (a piece of it gone, or failing its checksum):
        it is never reused for an equal request again. Recorded once, with the first reason."""
        if int(self._mark_once(keys=[keys.job(job_id)], args=["damaged", reason])) == 1:
            self.announce(lifecycle.DAMAGED, job_id, level=logging.WARNING, reason=reason)

    def damaged(self, job_id: str) -> str | None:
        """Why the job's result was found damaged (``None``: it was not)."""
        value = self.redis.hget(keys.job(job_id), "damaged")
        return codec.as_text(value) if value else None

    # ---- reading ---------------------------------------------------------------------------
    def load(self, job_id: str) -> Job | None:
        """The job, or ``None`` when unknown or expired."""
        return job_from_hash(self.redis.hgetall(keys.job(job_id)))

    def load_with_progress(
        self, job_id: str
    ) -> tuple[Job | None, dict[str, int], dict[str, dict[str, Any]]]:
        """The job (``None``: unknown or expired), its ``progress`` and its ``domain_states``,
        in one round trip: what the status document reads (the dashboard polls it)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.job(job_id))
        pipe.hgetall(keys.progress(job_id))
        pipe.hgetall(keys.domains(job_id))
        raw, counters, states = pipe.execute()
        return job_from_hash(raw), counters_from(counters), domain_states_from(states)

    def state(self, job_id: str) -> str | None:
        return self.field(job_id, "state")

    def field(self, job_id: str, name: str) -> str | None:
        """One field of the job's hash (``None``: unset, or no such job)."""
        value = self.redis.hget(keys.job(job_id), name)
        return codec.as_text(value) if value else None

    def progress(self, job_id: str) -> dict[str, int]:
        """The job's counters by field name (see ``pipeline.engine.parts``: ``done``, ``total``,
        ``rows``, ``truncated`` per part, ``runs`` per stage)."""
        return counters_from(self.redis.hgetall(keys.progress(job_id)))

    def queries(self, job_id: str) -> dict[str, int]:
        """Source queries issued per batch (``{part}:{batch}``)."""
        raw = self.redis.hgetall(keys.queries(job_id))
        return {codec.as_text(k): int(v) for k, v in raw.items()}

    def domain_states(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Per events domain that did not simply complete: its status, code and message."""
        return domain_states_from(self.redis.hgetall(keys.domains(job_id)))

    def ids(self, index: str, *, limit: int = 100) -> list[str]:
        """Job ids of an index (``keys.RECENT``/``RUNNING``/``FAILED``), newest first."""
        return [codec.as_text(m) for m in self.redis.zrevrange(index, 0, limit - 1)]

    # ---- state changes ---------------------------------------------------------------------
    def _set(self, job_id: str, allowed: Iterable[str], **values: Any) -> bool:
        values["updated_at"] = repr(time.time())
        flat: list[Any] = []
        for name, value in values.items():
            flat += [name, value]
        result = self._set_if_state(keys=[keys.job(job_id)], args=[",".join(allowed), *flat])
        return int(result) == 1

    def update(self, job_id: str, **values: Any) -> bool:
        """Set plain fields (``cid_count``, ``queue``...) of an active job."""
        return self._set(job_id, ACTIVE, **{k: str(v) for k, v in values.items()})

    def start_stage(self, job_id: str, stage: str) -> bool:
        """The job is now running ``stage`` (False: it is no longer active)."""
        now = time.time()
        if not self._set(job_id, ACTIVE, state=STARTED, stage=stage):
            return False
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(keys.job(job_id), "started_at", repr(now))
        pipe.hsetnx(keys.job(job_id), f"began:{stage}", repr(now))  # [1]: 1 the first time
        pipe.hset(keys.job(job_id), "revivals", 0)  # it moves: a later stall is news again
        pipe.hincrby(keys.progress(job_id), parts.runs(stage), 1)
        self.store.register(pipe, job_id, keys.progress(job_id))
        pipe.zadd(keys.RUNNING, {job_id: now})
        first = pipe.execute()[1]
        if first:
            self.announce(lifecycle.STAGE_STARTED, job_id, stage=stage)
        return True

    def complete_stage(self, job_id: str, stage: str) -> bool:
        """Record ``stage`` as completed; True only for the first call (False for a job that
        is gone: its hash is never recreated)."""
        marked = self._mark_once(keys=[keys.job(job_id)], args=[f"done:{stage}", repr(time.time())])
        return int(marked) == 1

    def stage_began(self, job_id: str, stage: str) -> float | None:
        """When ``stage`` first started (for its duration)."""
        value = self.redis.hget(keys.job(job_id), f"began:{stage}")
        return float(value) if value else None

    def finish(self, job_id: str) -> bool:
        """started -> finished; every key of the job gets a fresh TTL; a job with a
        ``trace_query_id`` becomes the one that id names (``stored_trace``), and an analysis
        the one of its masks and window (``pipeline.engine.analyses``)."""
        if not self._set(job_id, (STARTED,), state=FINISHED, finished_at=repr(time.time())):
            return False
        job = self.load(job_id)
        if job is not None and job.trace_query_id:
            pipe = self.redis.pipeline(transaction=False)
            for key, value in analyses.index_writes(job).items():
                pipe.set(key, value, ex=self.ttl)
            pipe.execute()
        self._ended(job_id)
        self.announce(lifecycle.FINISHED, job_id)
        return True

    def fail(
        self, job_id: str, stage: str | None, code: str, message: str, *, bad_input: bool = False
    ) -> bool:
        """queued/started -> failed, with the stage, code and message in its status
        (``bad_input``: the request was at fault, not the service)."""
        error: dict[str, Any] = {"stage": stage, "code": code, "message": message}
        if bad_input:
            error["input"] = True
        error_text = orjson.dumps(error).decode()
        now = time.time()
        if not self._set(job_id, ACTIVE, state=FAILED, error=error_text, finished_at=repr(now)):
            return False
        self.redis.zadd(keys.FAILED, {job_id: now})
        self._ended(job_id)
        self.announce(
            lifecycle.FAILED, job_id, level=logging.ERROR, stage=stage, code=code, reason=message
        )
        return True

    def cancel(self, job_id: str) -> str | None:
        """queued/started -> cancelled; the job's checkpoints are released (its status stays
        readable until its TTL). Returns the state the job is in afterwards (``None``: unknown)."""
        if self._set(job_id, ACTIVE, state=CANCELLED, finished_at=repr(time.time())):
            self.redis.zrem(keys.RUNNING, job_id)
            self.store.release(job_id)
            self.redis.expire(keys.job(job_id), self.ttl)
            self.announce(lifecycle.CANCELLED, job_id)
        return self.state(job_id)

    def _ended(self, job_id: str) -> None:
        self.redis.zrem(keys.RUNNING, job_id)
        self.store.touch(job_id)
        job = self.load(job_id)
        if job is not None:  # keep a finished job's dedupe entry as long as the job itself
            dedupe_key = keys.dedupe(job.fingerprint)
            if self.redis.get(dedupe_key) == job.id.encode():
                self.redis.expire(dedupe_key, self.ttl)

    def reopen(self, job_id: str) -> bool:
        """failed (or finished with failed events domains) -> queued, keeping completed stages
        and committed batches (operator retry). A job with failed domains goes back to its
        events stage: the domains' uncommitted batches run again, and an analysis computed
        without them is dropped (it runs again once they are in; one that read none of them
        stands). Stages not completed start afresh (their start is announced again and timed
        from the retry, and their hand-over is claimed again: an analysis that failed beside
        the events is sent again). Every key of the job gets a fresh TTL and the job goes back
        to the top of the recent index, so a job retried late in its life can neither expire
        mid-run nor drop out of ``jobs list`` and ``purge``. False when the job is neither."""
        failed_domains = self.domain_states(job_id)
        allowed = (FAILED, FINISHED) if failed_domains else (FAILED,)
        if not self._set(job_id, allowed, state=QUEUED, error="", finished_at=""):
            return False
        if failed_domains:
            self._reopen_events(job_id, list(failed_domains))
        self.store.touch(job_id)
        fields = [codec.as_text(f) for f in self.redis.hkeys(keys.job(job_id))]
        done = {f.removeprefix("done:") for f in fields if f.startswith("done:")}
        pipe = self.redis.pipeline(transaction=False)
        for name in fields:
            if name.startswith("began:") and name.removeprefix("began:") not in done:
                pipe.hdel(keys.job(job_id), name)
        for stage in STAGES:  # handed over afresh (an analysis failed beside the events)
            if stage not in done:
                pipe.delete(keys.claim(job_id, stage))
        pipe.zrem(keys.FAILED, job_id)
        pipe.zadd(keys.RUNNING, {job_id: time.time()})
        pipe.zadd(keys.RECENT, {job_id: time.time()})
        pipe.delete(keys.attempts(job_id), keys.domains(job_id))
        pipe.execute()
        return True

    def _reopen_events(self, job_id: str, failed_domains: list[str]) -> None:
        """The events stage of the job is not complete any more, nor its analysis when it read
        one of the failed domains (an analysis that read none of them stands: it is whole)."""
        job = self.load(job_id)
        read = job.analysis_domains if job is not None else ()
        redone = any(domain in read for domain in failed_domains)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(keys.job(job_id), f"done:{EVENTS}", *([f"done:{AGGREGATION}"] if redone else []))
        if redone:
            pipe.unlink(
                keys.json_doc(job_id, "aggregation"), keys.blob(job_id, parts.LOT_RECORD_META)
            )
        for domain in failed_domains:  # indexed over the batches it had: built again at the end
            pipe.unlink(keys.page_index(job_id, parts.events(domain)))
        pipe.execute()
        if redone:
            for part in (*parts.ANALYSIS_OUTPUTS, parts.AGGREGATION_QUERIES):
                self.store.drop_part(job_id, part)

    # ---- liveness (the reaper) -------------------------------------------------------------
    def quiet_jobs(self, since: float) -> list[tuple[str, float]]:
        """Active jobs with no sign of life since ``since`` (epoch seconds), with when they
        were last seen."""
        found: list[Any] = self.redis.zrangebyscore(keys.RUNNING, "-inf", since, withscores=True)
        return [(codec.as_text(m), float(score)) for m, score in found]

    def seen(self, job_id: str) -> None:
        """Note a sign of life of an active job (work was sent for it)."""
        self.redis.zadd(keys.RUNNING, {job_id: time.time()}, xx=True)

    def last_seen(self, job_id: str) -> float | None:
        """When an active job last showed a sign of life (``None``: no longer active)."""
        score = self.redis.zscore(keys.RUNNING, job_id)
        return float(score) if score is not None else None

    def revivals(self, job_id: str) -> int:
        return int(self.redis.hget(keys.job(job_id), "revivals") or 0)

    def note_revival(self, job_id: str, now: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(keys.job(job_id), "revivals", 1)
        pipe.zadd(keys.RUNNING, {job_id: now}, xx=True)
        pipe.execute()

    def forget_running(self, job_id: str) -> None:
        self.redis.zrem(keys.RUNNING, job_id)


def job_from_hash(raw: Mapping[Any, Any]) -> Job | None:
    """A job from its hash as ``HGETALL`` read it (``None``: empty, i.e. unknown or expired)."""
    if not raw:
        return None
    return Job.from_hash({codec.as_bytes(k): codec.as_bytes(v) for k, v in raw.items()})


def counters_from(raw: Mapping[Any, Any]) -> dict[str, int]:
    """The progress counters from their hash as ``HGETALL`` read it."""
    return {codec.as_text(k): int(v) for k, v in raw.items()}


def domain_states_from(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    """The domain states from their hash as ``HGETALL`` read it."""
    return {codec.as_text(k): orjson.loads(codec.as_bytes(v)) for k, v in raw.items()}
