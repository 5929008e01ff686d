"""A job as an operator follows it (``GET /api/ops/jobs/{job_id}``): its stages in order, each
with its state, start and end, seconds, batches, rows and the batches that needed more than one
start; events per domain with its quality; the error with its code and stage; the job's quality
(``verdict``); and the TTL of its keys.

Times are epoch seconds (floats); durations are seconds with three decimals. Reading it costs
the job hash, its counters, domain states and attempts, one ``HGETALL`` per checkpointed part
(``CheckpointStore.part_summaries``) and one ``TTL`` per key of the job (pipelined): an operator's
page, not something to poll many times a second for a 100K-lot job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import Field
from typing_extensions import TypedDict

from pipeline.engine import codec, keys, parts
from pipeline.engine.documents import Count, JobError, QualityMeta, ServiceState, Stage
from pipeline.engine.job import CANCELLED, EVENTS, FAILED, FINISHED, QUEUED, Job
from pipeline.engine.manifest import KeyTtls
from pipeline.engine.quality import domain_quality, query_quality
from pipeline.engine.registry import JobRegistry

#: A stage's (or an events domain's) state in the timeline.
StepState = Literal["pending", "queued", "running", "finished", "failed", "cancelled"]
#: Batches listed per stage or domain in ``retried_batches`` at most (the worst first).
MAX_RETRIED_LISTED = 50

Seconds = Annotated[float | None, Field(description="Seconds (3 decimals); null: not started.")]
Epoch = Annotated[float | None, Field(description="Epoch seconds; null: not yet.")]


class BatchAttempts(TypedDict):
    """A batch started more than once, or whose worker reported an error."""

    batch: Count
    starts: Annotated[Count, Field(description="Times a worker started it.")]
    errors: Annotated[Count, Field(description="Starts that ended in a reported error.")]


class Work(TypedDict):
    """Batch starts and reported errors of a stage or domain, and its batches started more
    than once or with an error (the most starts first, at most ``MAX_RETRIED_LISTED``)."""

    batch_starts: Count
    batch_errors: Count
    retried_batches: list[BatchAttempts]


class DomainStep(Work):
    """One events domain: its batches, rows, worker seconds and quality."""

    domain: str
    state: StepState
    batches_done: Count
    batches_total: Count | None
    rows: Count
    seconds: Annotated[float, Field(description="Worker seconds its batches took, summed.")]
    quality: QualityMeta


class StageStep(Work):
    """One stage of the job's plan."""

    stage: Stage
    state: StepState
    started_at: Epoch
    finished_at: Epoch
    seconds: Seconds
    runs: Annotated[
        Count,
        Field(
            description="Messages that ran the stage (events: one per domain and batch group); "
            "retries and resumes add to it."
        ),
    ]
    batches_done: Count
    batches_total: Count | None
    rows: Count
    domains: NotRequired[list[DomainStep]]


class KeyTtl(TypedDict):
    key: str
    exists: bool
    ttl_seconds: Annotated[int | None, Field(description="null: gone, or without a TTL.")]


class JobKeys(TypedDict):
    """The TTLs of the job's keys: over all of them, and of each named one (chunks left out)."""

    count: Count
    min_ttl_seconds: int | None
    max_ttl_seconds: int | None
    gone: Annotated[Count, Field(description="Registered, but expired or evicted.")]
    without_ttl: Annotated[Count, Field(description="Would never expire: a bug if not 0.")]
    named: list[KeyTtl]


class Timeline(TypedDict):
    """A job's stages, error, quality and keys."""

    job_id: str
    kind: str
    profile: str
    state: ServiceState
    queue: str
    cids: Count
    created_at: float
    started_at: Epoch
    finished_at: Epoch
    elapsed_seconds: float
    stage: Stage | None
    stages: list[StageStep]
    error: JobError | None
    failed_domains: list[str]
    quality: QualityMeta
    keys: JobKeys


def verdict(
    job: Job,
    registry: JobRegistry,
    max_rows: int,
    counters: Mapping[str, int],
    states: Mapping[str, Mapping[str, Any]],
    domains: dict[str, QualityMeta] | None = None,
) -> QualityMeta:
    """The job's quality: over its events domains (``query_quality``: complete, partial,
    truncated or failed, with the reasons), else from its state: failed (with the error),
    cancelled (failed), finished (complete). A job still queued or started is never complete
    (``partial``, "in progress"): its rows may all be in while its analysis is still to come."""
    meta: QualityMeta
    if job.domains:
        if domains is None:
            domains = domain_quality(job, registry, max_rows, failed=states, counters=counters)
        meta = query_quality(domains, job)
        if job.active and meta["status"] in ("complete", "truncated"):
            meta["status"] = "partial"
            meta["reasons"].append(f"in progress ({job.state})")
        return meta
    rows = sum(v for k, v in counters.items() if k.endswith(":rows"))
    meta = {"status": "complete", "scope": "query", "reasons": [], "observed_rows": rows}
    if job.state == FAILED and job.error:
        meta["status"] = "failed"
        meta["reasons"].append(f"{job.error.get('code')}: {job.error.get('message')}")
    elif job.state == CANCELLED:
        meta["status"] = "failed"
        meta["reasons"].append("the job was cancelled")
    elif job.state != FINISHED:
        meta["status"] = "partial"
        meta["reasons"].append(f"in progress ({job.state})")
    return meta


def timeline(job: Job, registry: JobRegistry, max_rows: int, now: float | None = None) -> Timeline:
    """The operator's view of ``job`` (see the module docstring). Raises ``redis.RedisError``
    when Redis is away."""
    now = time.time() if now is None else now
    client = registry.redis
    job_id = job.id
    stamps = _stamps(registry, job)
    counters, states = registry.progress(job_id), registry.domain_states(job_id)
    attempts = _attempts(client.hgetall(keys.attempts(job_id)))
    summaries = registry.store.part_summaries(job_id)
    domains = domain_quality(job, registry, max_rows, failed=states, counters=counters)
    stages: list[StageStep] = []
    for stage in job.stages:
        began, done = stamps.get(f"began:{stage}"), stamps.get(f"done:{stage}")
        state = _stage_state(job, stage, began)
        end = done if done is not None else job.finished_at if state != "running" else None
        work = _work(attempts, [p for p in attempts if p.partition(":")[0] == stage])
        step: StageStep = {
            "stage": cast(Stage, stage),
            "state": state,
            "started_at": began,
            "finished_at": end if began is not None else None,
            "seconds": _seconds(began, end, now) if state != "pending" else None,
            "runs": counters.get(parts.runs(stage), 0),
            "batches_done": counters.get(parts.done(parts.queries(stage)), 0),
            "batches_total": None,  # a sequence of queries, found on the way
            "rows": counters.get(parts.rows(parts.queries(stage)), 0),
            **work,
        }
        if stage == EVENTS:  # summed over its domains (each listed with its own retried batches)
            listed = [
                _domain(d, state, counters, attempts, summaries, domains[d], states)
                for d in job.domains
            ]
            totals = [d["batches_total"] for d in listed]
            step["batches_done"] = sum(d["batches_done"] for d in listed)
            step["batches_total"] = None if None in totals else sum(t or 0 for t in totals)
            step["rows"] = sum(d["rows"] for d in listed)
            step["batch_starts"] = sum(d["batch_starts"] for d in listed)
            step["batch_errors"] = sum(d["batch_errors"] for d in listed)
            step["retried_batches"] = []  # batch numbers are per domain: listed there
            step["domains"] = listed
        stages.append(step)
    return {
        "job_id": job_id,
        "kind": job.request.job_kind,
        "profile": job.request.profile,
        "state": cast(ServiceState, job.state),
        "queue": job.queue,
        "cids": job.cid_count,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "elapsed_seconds": job.elapsed_seconds(now),
        "stage": cast(Stage | None, job.current_stage),
        "stages": stages,
        "error": cast(JobError | None, job.error),
        "failed_domains": sorted(d for d in job.domains if d in states),
        "quality": verdict(job, registry, max_rows, counters, states, domains),
        "keys": job_keys(registry, job, list(summaries)),
    }


def _stamps(registry: JobRegistry, job: Job) -> dict[str, float]:
    """The job hash's ``began:{stage}`` and ``done:{stage}`` times (epoch seconds)."""
    names = [f"{what}:{stage}" for stage in job.stages for what in ("began", "done")]
    values = registry.redis.hmget(keys.job(job.id), names)
    return {n: float(v) for n, v in zip(names, values, strict=True) if v}


def _stage_state(job: Job, stage: str, began: float | None) -> StepState:
    if stage in job.completed:
        return "finished"
    here = job.stage == stage or (job.active and began is not None)  # two may run at once
    if not here and not (job.error and job.error.get("stage") == stage):
        return "pending"
    if job.state == FAILED:
        return "failed"
    if job.state == CANCELLED:
        return "cancelled"
    return "queued" if job.state == QUEUED else "running"


def _seconds(began: float | None, end: float | None, now: float) -> float | None:
    if began is None:
        return None
    return round(max(0.0, (end if end is not None else now) - began), 3)


def _attempts(raw: Mapping[Any, Any]) -> dict[str, dict[int, list[int]]]:
    """The attempts hash (``{part}:{batch}`` starts, ``{part}:{batch}:ended`` reported errors)
    as part -> batch -> [starts, errors]."""
    found: dict[str, dict[int, list[int]]] = {}
    for name, value in raw.items():
        tag = codec.as_text(name)
        errors = tag.endswith(":ended")
        part, _, batch = tag.removesuffix(":ended").rpartition(":")
        if not batch.isdigit():
            continue
        counts = found.setdefault(part, {}).setdefault(int(batch), [0, 0])
        counts[1 if errors else 0] += int(value)
    return found


def _work(attempts: dict[str, dict[int, list[int]]], part_names: list[str]) -> Work:
    """Starts, reported errors and the retried batches of the parts named."""
    batches = [(b, c) for p in part_names for b, c in attempts.get(p, {}).items()]
    retried: list[BatchAttempts] = sorted(
        ({"batch": b, "starts": c[0], "errors": c[1]} for b, c in batches if c[0] > 1 or c[1]),
        key=lambda a: (-a["starts"], -a["errors"], a["batch"]),
    )
    return {
        "batch_starts": sum(c[0] for _, c in batches),
        "batch_errors": sum(c[1] for _, c in batches),
        "retried_batches": retried[:MAX_RETRIED_LISTED],
    }


def _domain(
    domain: str,
    stage_state: StepState,
    counters: Mapping[str, int],
    attempts: dict[str, dict[int, list[int]]],
    summaries: Mapping[str, Any],
    quality: QualityMeta,
    states: Mapping[str, Mapping[str, Any]],
) -> DomainStep:
    part = parts.events(domain)
    done, total = counters.get(parts.done(part), 0), counters.get(parts.total(part))
    state: StepState = stage_state
    if domain in states:
        state = "failed"
    elif total is not None and done >= total:
        state = "finished"
    summary = summaries.get(part)
    return {
        "domain": domain,
        "state": state,
        "batches_done": done,
        "batches_total": total,
        "rows": counters.get(parts.rows(part), 0),
        "seconds": summary.seconds if summary is not None else 0.0,
        **_work(attempts, [part]),
        "quality": quality,
    }


def job_keys(registry: JobRegistry, job: Job, part_names: list[str]) -> JobKeys:
    """The TTL summary of every key of the job (``CheckpointStore.key_ttls``) and the TTL of
    each named key (hash, key set, counters, manifests, columns, page indexes, documents) that
    exists or is registered; chunks are only counted."""
    ttls: KeyTtls = registry.store.key_ttls(job.id)
    job_id = job.id
    names = [keys.job(job_id), keys.job_keys(job_id)]
    names += [f(job_id) for f in (keys.progress, keys.attempts, keys.queries, keys.domains)]
    for part in part_names:
        names += [keys.manifest(job_id, part), keys.columns(job_id, part)]
    names += [keys.page_index(job_id, parts.events(d)) for d in job.domains]
    names += [keys.json_doc(job_id, "aggregation")]
    pipe = registry.redis.pipeline(transaction=False)
    for name in names:
        pipe.ttl(name)
    pipe.smismember(keys.job_keys(job_id), names)
    *found, registered = pipe.execute()
    named: list[KeyTtl] = []
    for index, (name, ttl) in enumerate(zip(names, found, strict=True)):
        if int(ttl) == -2 and not (index < 2 or registered[index]):
            continue  # never written: not a key of this job
        named.append(
            {"key": name, "exists": int(ttl) != -2, "ttl_seconds": int(ttl) if ttl >= 0 else None}
        )
    return {
        "count": ttls.keys,
        "min_ttl_seconds": ttls.min_seconds,
        "max_ttl_seconds": ttls.max_seconds,
        "gone": ttls.gone,
        "without_ttl": ttls.without_ttl,
        "named": named,
    }
