"""What a job looks like from outside: the contract's status document (with the query's
``quality_meta``, ``pipeline.engine.quality``).

It is computed from the registry and the manifests on demand (a few small Redis reads), so
they are always as current as the checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

from pipeline.engine import job as job_states
from pipeline.engine import parts
from pipeline.engine.documents import (
    JobError,
    JobState,
    JobStatus,
    Progress,
    ServiceState,
    Stage,
    StageProgress,
)
from pipeline.engine.job import EVENTS, Job
from pipeline.engine.quality import job_quality
from pipeline.engine.registry import JobRegistry

#: The ``error`` of a cancelled job, as the dashboard sees it (status ``failed``).
CANCELLED_ERROR = "the job was cancelled"


def contract_state(state: str) -> JobState:
    """A job state as the dashboard understands it: ``cancelled`` is ``failed`` (it ended
    without a result); the real state is in the status document's ``state``."""
    return cast(JobState, job_states.FAILED if state == job_states.CANCELLED else state)


def stage_progress(
    job: Job, registry: JobRegistry, counters: Mapping[str, int] | None = None
) -> dict[str, StageProgress]:
    """Per stage of the job's plan: input batches done (and total, where known), rows written
    (``counters``: the job's progress counters, when already read).

    Events is summed over its domains and also given per domain (``domains``).
    """
    counters = registry.progress(job.id) if counters is None else counters
    stages: dict[str, StageProgress] = {}
    for stage in job.stages:
        if stage == EVENTS:
            per_domain: dict[str, Progress] = {
                d: {
                    "batches_done": counters.get(parts.done(parts.events(d)), 0),
                    "batches_total": counters.get(parts.total(parts.events(d))),
                    "rows": counters.get(parts.rows(parts.events(d)), 0),
                }
                for d in job.domains
            }
            totals = [p["batches_total"] for p in per_domain.values()]
            known = [n for n in totals if n is not None]
            stages[stage] = {
                "batches_done": sum(p["batches_done"] for p in per_domain.values()),
                "batches_total": sum(known) if len(known) == len(totals) else None,
                "rows": sum(p["rows"] for p in per_domain.values()),
                "domains": per_domain,
            }
        else:
            queries = parts.queries(stage)
            stages[stage] = {
                "batches_done": counters.get(parts.done(queries), 0),
                "batches_total": None,  # a sequence of queries whose length is found on the way
                "rows": counters.get(parts.rows(queries), 0),
            }
        stages[stage]["runs"] = counters.get(parts.runs(stage), 0)
        stages[stage]["completed"] = stage in job.completed
    return stages


def progress_text(job: Job, stages: dict[str, StageProgress]) -> str:
    """One line for the dashboard's spinner, e.g. ``events: 37/112 batches, 412,000 rows``."""
    if not job.active:
        return job.state
    stage = job.current_stage or job.pending_stage()
    if stage is None:
        return job.state
    info = stages.get(stage)
    if info is None:
        return f"{stage}: 0 batches, 0 rows"
    total, done = info["batches_total"], info["batches_done"]
    batches = f"{done}/{total}" if total is not None else str(done)
    return f"{stage}: {batches} batches, {info['rows']:,} rows"


def job_status(
    job: Job,
    registry: JobRegistry,
    max_rows: int,
    now: float | None = None,
    *,
    counters: Mapping[str, int] | None = None,
    states: Mapping[str, Mapping[str, Any]] | None = None,
) -> JobStatus:
    """The contract's job status document, plus ``state`` (ours: ``cancelled`` too, which the
    contract's ``status`` shows as ``failed``), ``queue``, ``stages`` (progress per stage),
    ``failed_domains``, ``error_detail`` (stage, code, message) and ``quality_meta`` (the
    query's; ``max_rows`` is the row guard it names). ``domains`` are the events domains the
    job fetches (none for a seed-resolve or lineage job). ``counters`` and ``states``: the
    job's progress counters and domain states when already read (``load_with_progress``)."""
    # each read once: this document is polled
    counters = registry.progress(job.id) if counters is None else counters
    states = registry.domain_states(job.id) if states is None else states
    stages = stage_progress(job, registry, counters)
    failed = sorted(d for d in job.domains if d in states)
    error = job.error["message"] if job.error else None
    if job.state == job_states.CANCELLED:
        error = CANCELLED_ERROR
    return {
        "job_id": job.id,
        "status": contract_state(job.state),
        "state": cast(ServiceState, job.state),
        "profile": job.request.profile,
        "cid_count": job.cid_count,
        "domains": list(job.domains),
        "progress": progress_text(job, stages),
        "created_at": int(job.created_at),
        "elapsed_seconds": job.elapsed_seconds(now if now is not None else time.time()),
        "error": error,
        "stage": cast(Stage | None, job.current_stage),
        "completed_stages": cast(list[Stage], list(job.completed)),
        "queue": job.queue,
        "stages": stages,
        "failed_domains": failed,
        "error_detail": cast(JobError | None, job.error),
        "query_id": job.query_id,
        "trace_query_id": job.trace_query_id,
        "quality_meta": (
            job_quality(job, registry, max_rows, failed=states, counters=counters)[0]
            if job.domains
            else None
        ),
    }
