"""Jobs as an operator lists them (``GET /api/ops/jobs``): newest first, filtered by state,
profile and age, one line each with its stage, lots, rows, elapsed time and quality.

The candidates come from the narrowest index: ``running`` for queued and started jobs,
``failed`` for failed ones, ``recent`` (every job younger than the job TTL) otherwise. A first
pass reads two small fields of each candidate (state, creation time) to filter and order them;
only the jobs that may be listed are then read whole (their request holds the profile, and for a
big trace megabytes of lot ids), with their counters and domain states, until ``limit`` lines.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, cast

from pydantic import Field
from typing_extensions import TypedDict

from pipeline.engine import codec, keys, parts
from pipeline.engine.documents import Count, JobError, ServiceState, Stage
from pipeline.engine.job import ACTIVE, EVENTS, FAILED, Job
from pipeline.engine.registry import JobRegistry, counters_from, domain_states_from, job_from_hash
from pipeline.engine.timeline import verdict

#: ``limit``'s default and largest value (lines).
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Candidates read per pipelined round trip.
PAGE = 100


class JobLine(TypedDict):
    """One job of the operator's list."""

    job_id: str
    kind: Annotated[str, Field(description="`trace`, `seed-resolve`, `lineage` or `events`.")]
    profile: str
    state: ServiceState
    stage: Annotated[Stage | None, Field(description="The current (or last) stage.")]
    cids: Annotated[Count, Field(description="Lots of the trace (known after lineage).")]
    rows: Annotated[
        Count, Field(description="Rows of its events domains (else of its stage's queries).")
    ]
    created_at: Annotated[float, Field(description="Epoch seconds.")]
    elapsed_seconds: Annotated[float, Field(description="To its end, or to now; one decimal.")]
    quality: Annotated[
        str,
        Field(description="`complete`, `partial` (also: still running), `truncated`, `failed`."),
    ]
    queue: str
    error: JobError | None


def list_jobs(
    registry: JobRegistry,
    max_rows: int,
    *,
    state: str | None = None,
    profile: str | None = None,
    max_age_seconds: float | None = None,
    limit: int = DEFAULT_LIMIT,
    now: float | None = None,
) -> list[JobLine]:
    """Up to ``limit`` jobs, newest (by creation) first: in ``state``, of ``profile``, created
    at most ``max_age_seconds`` ago (each filter optional). Expired jobs (index entries whose
    hash is gone) are left out. Raises ``redis.RedisError`` when Redis is away."""
    now = time.time() if now is None else now
    client = registry.redis
    oldest = now - max_age_seconds if max_age_seconds is not None else None
    index = keys.RUNNING if state in ACTIVE else keys.FAILED if state == FAILED else keys.RECENT
    low = oldest if oldest is not None and index == keys.RECENT else "-inf"
    ids = [codec.as_text(m) for m in client.zrevrangebyscore(index, "+inf", low)]
    candidates: list[tuple[float, str]] = []
    for start in range(0, len(ids), PAGE):
        page = ids[start : start + PAGE]
        pipe = client.pipeline(transaction=False)
        for job_id in page:
            pipe.hmget(keys.job(job_id), "state", "created_at")
        for job_id, (found, created) in zip(page, pipe.execute(), strict=True):
            if found is None or created is None or (state and codec.as_text(found) != state):
                continue
            if oldest is None or float(created) >= oldest:
                candidates.append((float(created), job_id))
    candidates.sort(reverse=True)
    lines: list[JobLine] = []
    for start in range(0, len(candidates), PAGE):
        if len(lines) >= limit:
            break
        lines += _lines(registry, max_rows, [j for _, j in candidates[start : start + PAGE]], now)
        if profile is not None:
            lines = [line for line in lines if line["profile"] == profile]
    return lines[:limit]


def _lines(registry: JobRegistry, max_rows: int, ids: list[str], now: float) -> list[JobLine]:
    """The lines of ``ids`` (one pipelined round trip: hash, counters, domain states each)."""
    pipe = registry.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.job(job_id))
        pipe.hgetall(keys.progress(job_id))
        pipe.hgetall(keys.domains(job_id))
    found: list[Any] = pipe.execute()
    lines: list[JobLine] = []
    for at in range(0, len(found), 3):
        job = job_from_hash(found[at])
        if job is None:
            continue  # expired since the first pass
        counters, states = counters_from(found[at + 1]), domain_states_from(found[at + 2])
        lines.append(job_line(job, registry, max_rows, counters, states, now))
    return lines


def job_line(
    job: Job,
    registry: JobRegistry,
    max_rows: int,
    counters: dict[str, int],
    states: dict[str, dict[str, Any]],
    now: float,
) -> JobLine:
    """One line of the list (``verdict`` gives its quality)."""
    if EVENTS in job.stages:
        rows = sum(counters.get(parts.rows(parts.events(d)), 0) for d in job.domains)
    else:
        rows = sum(counters.get(parts.rows(parts.queries(s)), 0) for s in job.stages)
    return {
        "job_id": job.id,
        "kind": job.request.job_kind,
        "profile": job.request.profile,
        "state": cast(ServiceState, job.state),
        "stage": cast(Stage | None, job.current_stage),
        "cids": job.cid_count,
        "rows": rows,
        "created_at": job.created_at,
        "elapsed_seconds": job.elapsed_seconds(now),
        "quality": verdict(job, registry, max_rows, counters, states)["status"],
        "queue": job.queue,
        "error": cast(JobError | None, job.error),
    }
