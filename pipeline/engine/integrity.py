"""Whether a finished job's result is whole, before an equal request is given that job instead
of a new one (``JobRegistry.submit``, within ``TRACE_RESULT_REUSE_SECONDS``).

Whole means: no events domain failed, every input batch of every domain is committed, and
every chunk the manifests of the result's parts name still exists (one ``EXISTS`` per 500
chunks: a 114K-CID trace is a few round trips), as do its summary and analysis documents.
Checksums are not read here: a chunk that fails its checksum is found by the reader that
decodes it, which marks the job damaged (``JobRegistry.mark_damaged``) like this check does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.engine import keys, parts
from pipeline.engine.job import LINEAGE, SEED_RESOLVE, Job
from pipeline.engine.store import KEY_BATCH, CheckpointStore


@dataclass(frozen=True)
class Flaw:
    """Why a finished job's result may not be reused: ``damaged`` when a piece of it is gone
    (the job is then marked, never to be reused), else it is only incomplete (failed domains)."""

    reason: str
    damaged: bool


def result_parts(store: CheckpointStore, job: Job) -> tuple[list[str], list[str]]:
    """The parts of the job's result and the keys of its documents (summaries, analysis)."""
    kind = job.request.job_kind
    if kind == SEED_RESOLVE:
        return [parts.SEEDS], [keys.blob(job.id, SEED_RESOLVE)]
    if kind == LINEAGE:
        summary = store.get_blob(job.id, LINEAGE) or {}
        names = [*summary.get("maps", []), *summary.get("lists", [])]
        # the lot list too: an events job of the dashboard's lineage_query_id copies it
        return [parts.CIDS, *(parts.lineage(n) for n in names)], [keys.blob(job.id, LINEAGE)]
    found = [parts.events(d) for d in job.domains]
    documents = []
    if job.request.aggregates:
        found += [parts.AGGREGATION_DETAIL, parts.AGGREGATION_EXPORT]
        documents.append(keys.json_doc(job.id, "aggregation"))
    return found, documents


def flaw(
    store: CheckpointStore,
    job: Job,
    failed_domains: Mapping[str, Any],
    counters: Mapping[str, int],
) -> Flaw | None:
    """What keeps the finished ``job``'s result from being whole (``None``: it is whole). A
    piece gone is found whether or not domains failed (a partial result may be damaged too);
    failed domains alone make it incomplete, not damaged."""
    for domain in job.domains:
        if domain in failed_domains:
            continue
        part = parts.events(domain)
        total, done = counters.get(parts.total(part)), counters.get(parts.done(part), 0)
        if total is None or done < total:
            return Flaw(f"{domain}: {done} of {total} input batches committed", damaged=True)
    result, documents = result_parts(store, job)
    names = list(documents)
    for part in result:
        names += [
            ref.key for entry in store.manifest(job.id, part).values() for ref in entry.chunks
        ]
    for start in range(0, len(names), KEY_BATCH):
        batch = names[start : start + KEY_BATCH]
        if store.redis.exists(*batch) < len(batch):
            pipe = store.redis.pipeline(transaction=False)
            for name in batch:
                pipe.exists(name)
            gone = [n for n, found in zip(batch, pipe.execute(), strict=True) if not found]
            return Flaw(f"{len(gone)} piece(s) of the result are gone, e.g. {gone[0]}", True)
    if failed_domains:
        return Flaw(f"failed domains: {', '.join(sorted(failed_domains))}", damaged=False)
    return None
