"""Helpers of the engine tests (importable by worker plugins too)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.domains import TREE_PROFILES
from pipeline.engine import parts
from pipeline.engine.detail_rows import detail_page
from pipeline.engine.job import Job
from pipeline.engine.messages import MessageKey
from pipeline.engine.results import ResultReader
from pipeline.engine.runtime import Runtime
from pipeline.engine.store import CheckpointStore
from pipeline.request import TraceRequest
from pipeline.runner import cid_groups
from pipeline.sources.base import Source
from pipeline.stages import seed_resolve
from pipeline.stages.events import fetch_events
from pipeline.stages.lineage import trace_lineage


@dataclass
class InlineDispatcher:
    """Keeps sent messages in a list; ``run_all`` runs them in this process, in order."""

    sent: list[tuple[str, MessageKey, bool, str]] = field(default_factory=list)

    def __call__(self, job: Job, messages: Sequence[MessageKey], *, resumed: bool = False) -> None:
        self.sent.extend((job.id, key, resumed, job.queue) for key in messages)

    def run_all(self, runtime: Runtime, limit: int = 10_000) -> int:
        ran = 0
        while self.sent and ran < limit:
            job_id, key, resumed, _queue = self.sent.pop(0)
            runtime.handle(job_id, key, resumed=resumed)
            ran += 1
        return ran


def direct_rows(source: Source, request: TraceRequest, settings: Settings) -> dict[str, list[Any]]:
    """Every domain's rows computed by calling the stage functions directly, in the order the
    engine stores them (lots in batches of ``in_list_size``; ``jobs`` in one pass)."""
    if request.from_cids:
        cids = list(request.container_ids)
    else:
        seeds = seed_resolve.resolve(source, request.profile, request.params)
        with trace_lineage(
            source,
            seeds.container_ids,
            request.direction(),
            max_depth=settings.lineage_max_depth,
            semantic=request.profile in TREE_PROFILES,
        ) as lineage:
            cids = list(lineage.all_cids())
    rows: dict[str, list[Any]] = {}
    for domain in request.domains:
        groups = cid_groups(domain, cids, settings)
        rows[domain] = [
            stable(batch.columns, row)
            for group in groups
            for batch in fetch_events(source, domain, group, jobs_probe_max=settings.jobs_probe_max)
            for row in batch.rows
        ]
    return rows


def stable(columns: Sequence[str], row: Sequence[Any]) -> tuple[Any, ...]:
    """``row`` without what depends on the clock: an open hold's ``HOLD_HOURS`` counts up to
    now, so two reads a minute apart differ there and nowhere else."""
    if "HOLD_HOURS" in columns and row[columns.index("HOLD_STATUS")] == "HOLD":
        at = columns.index("HOLD_HOURS")
        return (*row[:at], None, *row[at + 1 :])
    return tuple(row)


def job_rows(store: CheckpointStore, job_id: str, domains: Sequence[str]) -> dict[str, list[Any]]:
    """Every committed row of each domain of a job, in batch order."""
    return {
        d: [
            stable(batch.columns, row)
            for batch in store.read(job_id, parts.events(d))
            for row in batch.rows
        ]
        for d in domains
    }


def detail_rows(runtime: Runtime, job_id: str) -> list[bytes]:
    """Every row of the job's stored detail table, as the detail page reads it (its JSON)."""
    reader = ResultReader(runtime.store, runtime.registry, runtime.settings.max_rows_per_domain)
    return detail_page(reader, job_id, 0, 0)[1]


def job_digest(store: CheckpointStore, job_id: str, domains: Sequence[str]) -> str:
    """One hash over a job's rows (per domain, in order) and its aggregation result."""
    digest = hashlib.sha256()
    for domain, rows in job_rows(store, job_id, domains).items():
        digest.update(domain.encode())
        digest.update(orjson.dumps([list(r) for r in rows]))
    stored = store.get_json(job_id, "aggregation")
    aggregation = orjson.loads(stored) if stored is not None else None
    digest.update(orjson.dumps(aggregation, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_ended(runtime: Runtime, job_id: str, timeout: float = 60) -> Job:
    """The job once it is no longer queued or started."""

    def ended() -> Job | None:
        job = runtime.registry.load(job_id)
        return job if job is not None and not job.active else None

    try:
        return wait_for(ended, timeout=timeout, what=f"job {job_id} to end")
    except AssertionError as timeout_error:
        job = runtime.registry.load(job_id)
        detail = (job.state, job.stage, job.completed) if job else "gone"
        progress = runtime.registry.progress(job_id)
        raise AssertionError(f"{timeout_error}: {detail}, progress {progress}") from None
