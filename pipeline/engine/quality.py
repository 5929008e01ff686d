"""What a job's rows are worth: the contract's ``quality_meta``, per events domain and for the
whole query, computed from the registry and the manifests whenever it is asked for.

``complete`` is said only when every input batch of the domain is committed (before the events
stage knows its batches, a domain is ``partial``: in progress, or never fetched): a domain that
failed (``failed``), or whose job ended without every batch (``partial``), names the lots it is
missing in ``failed_ranges`` (first and last CID of each run of uncommitted input batches, and
how many lots). An analysis computed without a failed domain makes the query ``partial`` and
says so in its reasons. Reading it costs two small hashes, plus, only for a domain missing
batches once its job ended, that domain's manifest keys and two lot-list batches per range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from pipeline import domains as vocabulary
from pipeline.engine import parts
from pipeline.engine.documents import FailedRange, QualityMeta
from pipeline.engine.job import AGGREGATION, EVENTS, Job
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore, ChunkLost

#: ``quality_meta.status`` values (the contract's).
COMPLETE: Final = "complete"
PARTIAL: Final = "partial"
TRUNCATED: Final = "truncated"
FAILED: Final = "failed"

Status = Literal["complete", "partial", "truncated", "failed"]


def domain_quality(
    job: Job,
    registry: JobRegistry,
    max_rows: int,
    *,
    failed: Mapping[str, Mapping[str, Any]] | None = None,
    counters: Mapping[str, int] | None = None,
) -> dict[str, QualityMeta]:
    """``quality_meta`` of each events domain of ``job``: failed (with the error and the lots
    not fetched), partial (batches missing: still running, or lost), truncated by the row guard
    (with ``max_rows``), or complete. ``failed`` and ``counters`` are the job's domain states
    and progress counters when the caller has read them already."""
    failed = registry.domain_states(job.id) if failed is None else failed
    counters = registry.progress(job.id) if counters is None else counters
    quality: dict[str, QualityMeta] = {}
    for domain in job.domains:
        part = parts.events(domain)
        total = counters.get(parts.total(part))
        done = counters.get(parts.done(part), 0)
        missing = total - done if total is not None and done < total else 0
        meta: QualityMeta = {
            "status": COMPLETE,
            "scope": "domain",
            "domain": domain,
            "reasons": [],
            "observed_rows": counters.get(parts.rows(part), 0),
        }
        if domain in failed:
            meta["status"], meta["observed_rows"] = FAILED, 0
            meta["reasons"].append(f"{failed[domain]['code']}: {failed[domain]['message']}")
            if done:
                meta["reasons"].append(
                    f"{done} of {total} input batches were fetched; none is served until a "
                    "retry fetches the rest"
                )
        elif total is None and EVENTS not in job.completed:  # its lots are not known yet
            meta["status"] = PARTIAL
            meta["reasons"].append(
                "in progress: the lots to fetch are not known yet"
                if job.active
                else f"not fetched: the job ended ({job.state}) before its events stage"
            )
        elif missing and job.active:
            meta["status"] = PARTIAL
            meta["reasons"].append(f"in progress: {done} of {total} input batches committed")
        elif missing:
            meta["status"] = PARTIAL
            meta["reasons"].append(f"{missing} of {total} input batches are not committed")
        elif counters.get(parts.truncated(part), 0):
            meta["status"], meta["max_rows"] = TRUNCATED, max_rows
            meta["reasons"].append(f"row guard: kept the first {max_rows:,} rows")
        if missing and not job.active:
            ranges = missing_ranges(
                registry.store, job.id, part, total or 0, counters.get(parts.span(part), 1)
            )
            if ranges is not None:
                meta["failed_ranges"] = ranges
            else:
                meta["reasons"].append("the missing lots cannot be named: the lot list is gone")
        quality[domain] = meta
    return quality


def query_quality(domains: dict[str, QualityMeta], job: Job | None = None) -> QualityMeta:
    """The job-wide ``quality_meta`` over its domains' (worst status wins; all failed: failed).
    Given the ``job``, an analysis that ran without the rows of a failed or partial domain it
    reads makes the query partial and is named in the reasons."""
    statuses = [m["status"] for m in domains.values()]
    status: Status
    if statuses and all(s == FAILED for s in statuses):
        status = FAILED
    elif FAILED in statuses or PARTIAL in statuses:
        status = PARTIAL
    elif TRUNCATED in statuses:
        status = TRUNCATED
    else:
        status = COMPLETE
    reasons = [f"{d}: {r}" for d, m in domains.items() for r in m["reasons"]]
    if job is not None and AGGREGATION in job.completed:
        used = vocabulary.MSD_DOMAINS[job.request.direction()]
        short = [d for d in used if d in domains and domains[d]["status"] in (FAILED, PARTIAL)]
        if short:
            reasons.append(f"aggregation: computed without the rows of {', '.join(short)}")
            status = PARTIAL if status != FAILED else status
    return {
        "status": status,
        "scope": "query",
        "reasons": reasons,
        "observed_rows": sum(m["observed_rows"] for m in domains.values()),
    }


def job_quality(
    job: Job,
    registry: JobRegistry,
    max_rows: int,
    *,
    failed: Mapping[str, Mapping[str, Any]] | None = None,
    counters: Mapping[str, int] | None = None,
) -> tuple[QualityMeta, dict[str, QualityMeta]]:
    """``(quality_meta, domain_quality_meta)`` of ``job`` (``domain_quality``'s arguments)."""
    domains = domain_quality(job, registry, max_rows, failed=failed, counters=counters)
    return query_quality(domains, job), domains


def missing_ranges(
    store: CheckpointStore, job_id: str, part: str, total: int, span: int
) -> list[FailedRange] | None:
    """The lots of the input batches of ``part`` not committed, as runs of consecutive batches:
    first and last CID and the number of lots of each (``None`` when the lot list is gone)."""
    committed = store.finished(job_id, part)
    runs: list[list[int]] = []
    for batch in range(total):
        if batch in committed:
            continue
        if runs and runs[-1][1] == batch - 1:
            runs[-1][1] = batch
        else:
            runs.append([batch, batch])
    lots = store.manifest(job_id, parts.CIDS)
    ranges: list[FailedRange] = []
    try:
        for first, last in runs:
            numbers = [n for n in range(first * span, (last + 1) * span) if n in lots]
            if not numbers:
                return None
            head = store.read_batch(job_id, parts.CIDS, numbers[0])
            tail = store.read_batch(job_id, parts.CIDS, numbers[-1])
            count = sum(lots[n].rows for n in numbers)
            ranges.append({"start": head[0][0], "end": tail[-1][0], "lots": count})
    except (ChunkLost, KeyError, IndexError):
        return None
    return ranges
