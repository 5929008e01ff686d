"""Whether a finished job's result is whole: before an equal request is given that job instead
of a new one (``JobRegistry.submit``, within ``TRACE_RESULT_REUSE_SECONDS``), and before the
first byte of any answer that carries the result (result pages, streams, the analysis's detail
rows): the July client trusts every 200. The result pages and the stream, which carry the
events and the analysis document but none of the analysis's row tables (its detail rows, their
heads, its export), check those without the tables (``detail=False``): the tables' pieces are
about half of an analysis's chunk keys (at 10K CIDs 123 of 244, 117 of them the lot record's
heads), and the detail page and the export, which do carry them, check everything.

Whole means: no events domain failed, every input batch of every domain is committed, every
result part's manifest still holds every batch committed to it (a manifest gone would read as
an empty part: a short answer that looks whole), and every chunk those manifests name still
exists, as do the summary and analysis documents. All of that is asked in one pipelined round
trip (one ``EXISTS`` per 500 chunks). The chunk keys of a finished job are read from its
manifests once and kept (``ResultKeys``): they change only through a retry, which finishes
the job again. Checksums are not read here: a chunk that fails its checksum is found by the
reader that decodes it, which marks the job damaged (``JobRegistry.mark_damaged``) like this
check does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.engine import codec, keys, parts
from pipeline.engine.job import FINISHED, LINEAGE, SEED_RESOLVE, Job
from pipeline.engine.manifest import Entry
from pipeline.engine.store import KEY_BATCH, CheckpointStore

#: Chunk keys ``ResultKeys`` keeps per process over all jobs (~150 bytes each: ~15 MB at
#: most; a 1M-CID trace has ~10,000, a 114K one ~1,300).
KEPT_CHUNK_KEYS = 100_000


@dataclass(frozen=True)
class Flaw:
    """Why a finished job's result may not be reused: ``damaged`` when a piece of it is gone
    (the job is then marked, never to be reused), else it is only incomplete (failed domains)."""

    reason: str
    damaged: bool


class ResultKeys:
    """The chunk keys of finished jobs' result parts, kept between checks (least recently used
    dropped past ``limit`` keys). A finished job's manifests change only by a commit, which
    counts in the part's ``done``, or by a retry, which finishes the job again (a new
    ``finished_at``): keys read once serve while both are the same. Thread-safe."""

    def __init__(self, limit: int = KEPT_CHUNK_KEYS) -> None:
        self.limit = limit
        #: (job id, finishing, parts) -> (the parts' committed counts, their chunk keys)
        self._kept: OrderedDict[
            tuple[str, float | None, tuple[str, ...]], tuple[tuple[int, ...], list[str]]
        ] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def jobs(self) -> list[str]:
        """The ids of the jobs whose keys are kept, least recently used first."""
        with self._lock:
            return list(dict.fromkeys(job_id for job_id, _, _ in self._kept))

    def of(
        self, store: CheckpointStore, job: Job, result: list[str], counters: Mapping[str, int]
    ) -> list[str]:
        """The chunk keys the manifests of the ``result`` parts name, in part order (kept per
        set of parts: the detail page's and the result pages' sets are both kept)."""
        done = tuple(counters.get(parts.done(part), 0) for part in result)
        key = (job.id, job.finished_at, tuple(result))
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == done:
                self._kept.move_to_end(key)
                return kept[1]
        names = chunk_keys(store, job.id, result)
        if job.state != FINISHED or len(names) > self.limit:
            return names
        with self._lock:
            if (old := self._kept.pop(key, None)) is not None:
                self._size -= len(old[1])
            self._kept[key] = (done, names)
            self._size += len(names)
            while self._size > self.limit:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._size -= len(dropped)
        return names


def chunk_keys(store: CheckpointStore, job_id: str, result: list[str]) -> list[str]:
    """The chunk keys the manifests of the ``result`` parts name (one round trip)."""
    pipe = store.redis.pipeline(transaction=False)
    for part in result:
        pipe.hvals(keys.manifest(job_id, part))
    return [
        name
        for entries in pipe.execute()
        for data in entries
        for name in Entry.chunk_keys(codec.as_bytes(data))
    ]


#: The analysis's row tables: carried by the detail page and the export, not by the result
#: pages and the stream.
ANALYSIS_TABLES = (
    parts.AGGREGATION_DETAIL,
    parts.AGGREGATION_HEADS,
    parts.AGGREGATION_RECORD_HEADS,
    parts.AGGREGATION_EXPORT,
)


def result_parts(
    store: CheckpointStore, job: Job, *, detail: bool = True
) -> tuple[list[str], list[str]]:
    """The parts of the job's result and the keys of its documents (summaries, analysis);
    ``detail=False``: without the analysis's row tables (``ANALYSIS_TABLES``)."""
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
        found += ANALYSIS_TABLES if detail else ()
        documents.append(keys.json_doc(job.id, "aggregation"))
    return found, documents


def manifests_short(
    store: CheckpointStore, job_id: str, names: Iterable[str], counters: Mapping[str, int]
) -> str | None:
    """The first of the parts ``names`` whose manifest holds fewer batches than its committed
    count (evicted), said as a reason; ``None`` when each holds them all (one round trip)."""
    names = list(names)
    pipe = store.redis.pipeline(transaction=False)
    for part in names:
        pipe.hlen(keys.manifest(job_id, part))
    return _short(names, pipe.execute(), counters)


def _short(names: Sequence[str], held: Sequence[int], counters: Mapping[str, int]) -> str | None:
    """The first part whose manifest holds (``held``) fewer batches than it committed."""
    for part, count in zip(names, held, strict=False):
        done = counters.get(parts.done(part), 0)
        if count < done:
            return f"the manifest of {part} is gone ({count} of {done} batches)"
    return None


def flaw(
    store: CheckpointStore,
    job: Job,
    failed_domains: Mapping[str, Any],
    counters: Mapping[str, int],
    kept: ResultKeys | None = None,
    *,
    detail: bool = True,
) -> Flaw | None:
    """What keeps the finished ``job``'s result from being whole (``None``: it is whole). A
    piece gone is found whether or not domains failed (a partial result may be damaged too);
    failed domains alone make it incomplete, not damaged. ``kept``: chunk keys read before;
    ``detail=False``: the analysis's row tables are not looked at (``result_parts``)."""
    for domain in job.domains:
        if domain in failed_domains:
            continue
        part = parts.events(domain)
        total, done = counters.get(parts.total(part)), counters.get(parts.done(part), 0)
        if total is None or done < total:
            return Flaw(f"{domain}: {done} of {total} input batches committed", damaged=True)
    result, documents = result_parts(store, job, detail=detail)
    chunks = kept.of(store, job, result, counters) if kept else chunk_keys(store, job.id, result)
    names = [*documents, *chunks]
    batches = [names[start : start + KEY_BATCH] for start in range(0, len(names), KEY_BATCH)]
    pipe = store.redis.pipeline(transaction=False)
    for part in result:
        pipe.hlen(keys.manifest(job.id, part))
    for batch in batches:
        pipe.exists(*batch)
    answers = pipe.execute()
    short = _short(result, answers, counters)
    if short is not None:
        return Flaw(short, damaged=True)
    for batch, found in zip(batches, answers[len(result) :], strict=True):
        if found < len(batch):
            pipe = store.redis.pipeline(transaction=False)
            for name in batch:
                pipe.exists(name)
            gone = [n for n, there in zip(batch, pipe.execute(), strict=True) if not there]
            return Flaw(f"{len(gone)} piece(s) of the result are gone, e.g. {gone[0]}", True)
    if failed_domains:
        return Flaw(f"failed domains: {', '.join(sorted(failed_domains))}", damaged=False)
    return None
