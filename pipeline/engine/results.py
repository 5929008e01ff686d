"""Reading a job's result back from its checkpoints, for whoever serves it (the API's result pages
and its NDJSON stream), without holding more than one chunk of rows at a time.

* seed-resolve and lineage jobs: the stage's summary blob and the rows of its parts, chunk by
  chunk;
* events domains: a page of rows found through the page index (``PageIndex``: a page deep in a
  huge domain costs what the first one does), or every chunk of the domain in manifest order,
  following a running job as its batches are committed;
* the aggregation (JSON bytes, stored encoded), each domain's ``quality_meta``, the failed
  domains.

What cannot be read is raised as one of four errors, for the caller to answer as it must:
``ResultGone`` (the job or a piece of its result expired or was released), ``JobLost`` (the job
vanished before its TTL could end: ``pipeline.engine.job_ids``), ``ResultIncomplete`` (a chunk is
lost or damaged, or a batch the job counted was never committed) and ``JobEnded`` (a followed job
failed or was cancelled). Redis errors propagate as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from pipeline.engine import job_ids, parts
from pipeline.engine.documents import QualityMeta
from pipeline.engine.job import ACTIVE, AGGREGATION, EVENTS, FINISHED, Job
from pipeline.engine.manifest import Entry
from pipeline.engine.pages import Located, Page, PageIndex
from pipeline.engine.quality import domain_quality, job_quality
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore, ChunkLost
from pipeline.errors import JobLost, ResultExpired, TraceError

#: Seconds between looks at a followed job's state and manifests.
FOLLOW_POLL_SECONDS = 0.25
#: How long a followed job rides out Redis unreachable (a restart, a failover) before the
#: reader gives up with the error: seconds.
FOLLOW_OUTAGE_SECONDS = 15.0

T = TypeVar("T")

#: The rows of one chunk, in the part's column order.
Rows = list[tuple[Any, ...]]


class ResultGone(ResultExpired):
    """The job, or a piece of its result it cannot do without, is no longer in Redis (its TTL
    ran out, it was released or evicted)."""


class ResultIncomplete(ChunkLost):
    """The result cannot be read whole: a committed chunk is gone or fails its checksum, or a
    batch the job counted is not in the manifest and never will be (the job finished, or is
    not followed). ``ChunkLost`` as a reader of the result sees it: ``domain`` is the events
    domain (for a seed-resolve or lineage document: the part's name after its stage, e.g.
    ``seeds``), ``batch`` the input batch."""

    def __init__(self, domain: str, batch: int, why: str) -> None:
        TraceError.__init__(self, f"the result is incomplete: {why}")
        self.part, self.key = domain, ""
        self.domain, self.batch = domain, batch

    @classmethod
    def from_chunk_lost(cls, error: ChunkLost) -> ResultIncomplete:
        return cls(parts.name_in_stage(error.part), error.batch, error.message)


class JobEnded(TraceError):
    """The job will not finish for this reader: it failed or was cancelled while followed (or,
    not followed, it has not finished). An instance's ``code`` is ``JOB_`` and the state
    (``JOB_FAILED``)."""

    code = "JOB_ENDED"

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.code = f"JOB_{state.upper()}"  # type: ignore[misc]  # per instance: the state
        self.state = state


@dataclass(frozen=True)
class SeedSummary:
    """What seed-resolve stored besides the seeds themselves."""

    seed_count: int
    not_found: list[str]


@dataclass(frozen=True)
class LineageSummary:
    """The lineage document without its big fields: ``scalars`` (the plain fields, in stored
    order) and the keys of the fields stored as parts (``ResultReader.lineage_chunks``):
    ``maps`` (rows of key, value) and ``lists`` (rows of value)."""

    scalars: dict[str, Any]
    maps: list[str]
    lists: list[str]


class ResultReader:
    """Reads the results of ``store``'s jobs (see the module docstring). ``max_rows_per_domain``
    is the row guard the jobs ran with (``TRACE_MAX_ROWS_PER_DOMAIN``), which ``quality_meta``
    names; ``poll_seconds`` the pause between looks at a followed job."""

    def __init__(
        self,
        store: CheckpointStore,
        registry: JobRegistry,
        max_rows_per_domain: int,
        *,
        poll_seconds: float = FOLLOW_POLL_SECONDS,
        outage_seconds: float = FOLLOW_OUTAGE_SECONDS,
    ) -> None:
        self.store = store
        self.registry = registry
        self.max_rows_per_domain = max_rows_per_domain
        self.poll_seconds = poll_seconds
        self.outage_seconds = outage_seconds
        self.pages = PageIndex(store)

    # ---- the job ---------------------------------------------------------------------------
    def failed_domains(self, job_id: str) -> list[str]:
        """The events domains that failed, sorted."""
        return sorted(self.registry.domain_states(job_id))

    def domain_quality(self, job: Job) -> dict[str, QualityMeta]:
        """``quality_meta`` per events domain of ``job`` (``quality.domain_quality``)."""
        return domain_quality(job, self.registry, self.max_rows_per_domain)

    def quality(self, job: Job) -> tuple[QualityMeta, dict[str, QualityMeta]]:
        """``(quality_meta, domain_quality_meta)`` of ``job`` (``quality.job_quality``)."""
        return job_quality(job, self.registry, self.max_rows_per_domain)

    def wait_finished(self, job_id: str, *, follow: bool) -> Job:
        """The job once finished: at once unless ``follow``, else polling while it runs.

        Raises ``ResultGone`` when the job is gone and ``JobEnded`` when it failed, was
        cancelled, or (not following) is not finished.
        """
        while True:
            load = self.registry.load
            job = self._riding_out(load, job_id) if follow else load(job_id)
            if job is None:
                raise self._gone(job_id)
            if job.state == FINISHED:
                return job
            if job.state not in ACTIVE or not follow:
                raise JobEnded(job.state, f"the job is {job.state}")
            time.sleep(self.poll_seconds)

    # ---- seed-resolve and lineage documents ------------------------------------------------
    def seed_summary(self, job_id: str) -> SeedSummary:
        """Raises ``ResultGone`` when the summary is gone."""
        summary = self.store.get_blob(job_id, "seed-resolve")
        if summary is None:
            raise ResultGone("the seed-resolve summary is gone")
        return SeedSummary(summary["seed_count"], summary["not_found"])

    def seed_chunks(self, job_id: str) -> Iterator[Rows]:
        """The seed lots, chunk by chunk: rows of (container_id, container_name, lot_id).
        Raises ``ResultIncomplete`` at a lost chunk."""
        return self._read(job_id, parts.SEEDS)

    def lineage_summary(self, job_id: str) -> LineageSummary:
        """Raises ``ResultGone`` when the summary is gone."""
        summary = self.store.get_blob(job_id, "lineage")
        if summary is None:
            raise ResultGone("the lineage summary is gone")
        # ``direction`` is the stage's own note (how to read the maps), not a document field
        scalars = {k: v for k, v in summary.items() if k not in ("maps", "lists", "direction")}
        return LineageSummary(scalars, summary.get("maps", []), summary.get("lists", []))

    def lineage_chunks(self, job_id: str, key: str) -> Iterator[Rows]:
        """The rows of the lineage document's field ``key``, chunk by chunk. Raises
        ``ResultIncomplete`` at a lost chunk."""
        return self._read(job_id, parts.lineage(key))

    def _read(self, job_id: str, part: str) -> Iterator[Rows]:
        try:
            for batch in self.store.read(job_id, part):
                yield batch.rows
        except ChunkLost as lost:
            self.found_damaged(job_id, lost.message)
            raise ResultIncomplete.from_chunk_lost(lost) from lost

    def found_damaged(self, job_id: str, reason: str) -> None:
        """A reader found a piece of the job's result gone or damaged: the job is marked, so an
        equal request never joins it again (``JobRegistry.mark_damaged``)."""
        self.registry.mark_damaged(job_id, reason)

    # ---- events: pages and the aggregation -------------------------------------------------
    def page(self, job_id: str, domain: str, offset: int, limit: int) -> Page:
        """The chunks holding rows ``offset`` .. ``offset + limit`` of a finished domain
        (``limit`` 0: to the end), every one of them checked to exist (one round trip), so a
        caller can refuse an expired result before it sends anything.

        Raises ``ResultGone`` when a chunk of the page is gone.
        """
        return self.part_page(job_id, parts.events(domain), offset, limit)

    def part_page(self, job_id: str, part: str, offset: int, limit: int) -> Page:
        """``page`` of any finished part (the analysis's detail rows too); its page index is
        built on first use."""
        page = self.pages.page(job_id, part, offset, limit)
        if page.chunks:
            pipe = self.store.redis.pipeline(transaction=False)
            for located in page.chunks:
                pipe.exists(located.ref.key)
            if not all(pipe.execute()):
                self.found_damaged(job_id, f"a chunk of {part} is gone")
                raise ResultGone(f"a chunk of {part} is gone")
        return page

    def part_rows_at(
        self, job_id: str, part: str, offsets: Iterable[int]
    ) -> dict[int, tuple[Any, ...]]:
        """The rows at ``offsets`` of any finished part, each chunk holding one read once (one
        round trip to find them, one to read them). Raises ``ResultGone`` when one is gone,
        fails its checksum, or the part holds no such row (it lost batches)."""
        wanted = set(offsets)
        located = self.pages.locate(job_id, part, wanted)
        by_chunk: dict[int, list[int]] = {}
        for offset, where in located.items():
            by_chunk.setdefault(where.number, []).append(offset)
        spans = [(located[found[0]], min(found), max(found) + 1) for found in by_chunk.values()]
        try:
            read = self.store.read_chunk_ranges(
                part, [(w.batch, w.ref, low - w.start, high - w.start) for w, low, high in spans]
            )
        except ChunkLost as lost:
            self.found_damaged(job_id, lost.message)
            raise ResultGone(lost.message) from lost
        rows = {
            offset: row
            for (_, low, _), chunk in zip(spans, read, strict=True)
            for offset, row in enumerate(chunk, low)
            if offset in wanted
        }
        if len(rows) < len(wanted):
            reason = f"{part} holds no row {min(wanted - rows.keys())}"
            self.found_damaged(job_id, reason)
            raise ResultGone(reason)
        return rows

    def page_chunks(self, domain: str, page: Page) -> Iterator[Rows]:
        """The rows of ``page``, one chunk's slice at a time (only those rows are decoded).
        Raises ``ResultIncomplete`` for a chunk lost or damaged since ``page`` checked it."""
        return self.part_chunks(parts.events(domain), page)

    def part_chunks(self, part: str, page: Page) -> Iterator[Rows]:
        """``page_chunks`` of any part."""
        for located, low, high in page.slices():
            try:
                yield self.store.read_chunk_range(part, located.batch, located.ref, low, high)
            except ChunkLost as lost:
                raise ResultIncomplete.from_chunk_lost(lost) from lost

    def columns(self, job_id: str, domain: str) -> tuple[str, ...]:
        """The column names of the domain's rows (empty before its first chunk)."""
        return self.store.columns(job_id, parts.events(domain))

    def aggregation(self, job: Job) -> bytes | None:
        """The analysis as stored JSON bytes (sent on as they are, never decoded here);
        ``None`` when the job does not aggregate or its aggregation has not run yet.

        Raises ``ResultGone`` when the aggregation ran and its result is gone.
        """
        if not job.request.aggregates:
            return None
        document = self.store.get_json(job.id, "aggregation")
        if document is None and AGGREGATION in job.completed:
            raise ResultGone("the aggregation is gone")
        return document

    # ---- events: a whole domain, as it is committed ----------------------------------------
    def chunks(self, job_id: str, domain: str, *, follow: bool) -> Iterator[Located]:
        """Every chunk of ``domain`` in manifest order (input batch, then chunk), numbered from
        0 (``Located.number``); nothing for a failed domain. With ``follow`` it waits for
        batches not committed yet while the job runs.

        Raises ``ResultIncomplete`` for a batch that will not come (the job finished without
        it, or is not followed), ``JobEnded`` when the job fails or is cancelled while
        followed and ``ResultGone`` when it is gone.
        """
        if not follow:  # nothing changes any more: the states, totals and manifest read once
            yield from self._finished_chunks(job_id, domain)
            return
        number = batch = start = 0
        while True:
            found = self._riding_out(self._next_entry, job_id, domain, batch)
            if found is None:
                return
            entry = found[0]
            if entry is None:
                self._riding_out(self._wait_for_batch, job_id, domain, batch, follow)
                continue
            for ref in entry.chunks:
                yield Located(number, entry.batch, start, ref)
                number += 1
                start += ref.rows
            batch += 1

    def _next_entry(self, job_id: str, domain: str, batch: int) -> tuple[Entry | None] | None:
        """``(entry,)`` of ``batch`` of a followed domain (``(None,)``: not committed yet), or
        ``None`` when the domain has no more: it failed, or every batch was read."""
        if domain in self.registry.domain_states(job_id):
            return None  # a failed domain has no rows (the failed domains say why)
        part = parts.events(domain)
        total = self.registry.progress(job_id).get(parts.total(part))
        if total is not None and batch >= total:
            return None
        return (None if total is None else self.store.entry(job_id, part, batch),)

    def _riding_out(self, read: Callable[..., T], *args: Any) -> T:
        """``read(*args)``, asked again every ``poll_seconds`` while Redis cannot be reached,
        for at most ``outage_seconds``: a job followed across a Redis restart is then found as
        it is (a restart without persistence lost it: ``JobLost``), not ended by the outage.
        Past that, the connection error is raised (the stream's ``SERVICE_UNAVAILABLE``)."""
        deadline: float | None = None
        while True:
            try:
                return read(*args)
            except (redis.ConnectionError, redis.TimeoutError):
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.outage_seconds
                if now >= deadline:
                    raise
                time.sleep(self.poll_seconds)

    def _finished_chunks(self, job_id: str, domain: str) -> Iterator[Located]:
        """``chunks`` of a job not followed: three reads of Redis for the whole domain."""
        if domain in self.registry.domain_states(job_id):
            return
        part = parts.events(domain)
        total = self.registry.progress(job_id).get(parts.total(part))
        manifest = self.store.manifest(job_id, part)
        number = start = 0
        for batch in range(total if total is not None else 0):
            entry = manifest.get(batch)
            if entry is None:
                self._wait_for_batch(job_id, domain, batch, follow=False)  # raises
                continue
            for ref in entry.chunks:
                yield Located(number, entry.batch, start, ref)
                number += 1
                start += ref.rows
        if total is None:
            self._wait_for_batch(job_id, domain, 0, follow=False)  # raises: totals never set

    def _wait_for_batch(self, job_id: str, domain: str, batch: int, follow: bool) -> None:
        """Pause before looking for ``batch`` again: only while following a live job."""
        state = self.registry.state(job_id)
        if state is None:
            raise self._gone(job_id)
        if state == FINISHED or not follow:
            raise ResultIncomplete(domain, batch, f"{domain} batch {batch} is not in the manifest")
        if state not in ACTIVE:
            raise JobEnded(state, f"the job {state} while it was streamed")
        time.sleep(self.poll_seconds)

    def after_outage(self, job_id: str) -> TraceError | None:
        """Why a followed stream that met Redis unreachable in any read ends: once Redis answers
        again (within ``outage_seconds``), ``JobLost`` (or ``ResultGone``) when the job is no
        longer there, a restart without persistence; ``None`` when it is. Raises the
        connection error when Redis stays away."""
        job = self._riding_out(self.registry.load, job_id)
        return self._gone(job_id) if job is None else None

    def _gone(self, job_id: str) -> TraceError:
        """Why the job is no longer there: ``JobLost`` when its id says it cannot have expired
        yet, else ``ResultGone``."""
        if job_ids.lost(job_id, self.registry.ttl):
            return JobLost.of(job_id)
        return ResultGone("the job is gone (expired or purged)")

    def chunk_rows(self, domain: str, chunk: Located) -> Rows:
        """The rows of one chunk of ``chunks``. Raises ``ResultIncomplete`` when it is lost or
        fails its checksum."""
        try:
            return self.store.read_chunk(parts.events(domain), chunk.batch, chunk.ref)
        except ChunkLost as lost:
            raise ResultIncomplete.from_chunk_lost(lost) from lost

    def rows(self, job_id: str, domain: str) -> int:
        """The rows committed for ``domain`` so far (0 for a failed domain)."""
        if domain in self.registry.domain_states(job_id):
            return 0
        return self.registry.progress(job_id).get(parts.rows(parts.events(domain)), 0)

    def final_rows(self, job_id: str, domain: str) -> int | None:
        """The domain's rows once the events stage completed; ``None`` while it still runs
        (0 at once for a failed domain)."""
        if domain in self.registry.domain_states(job_id):
            return 0
        job = self.registry.load(job_id)
        if job is not None and EVENTS in job.completed:
            return self.rows(job_id, domain)
        return None
