"""The NDJSON stream of a job, in the contract's order, one ``records`` line per stored chunk.

The API process holds one chunk at a time. Each domain's chunks are read in manifest order
(input batch, then chunk), numbered from 0: that number is the line's ``batch`` and the cursor a
client resumes from (``from=domain:batch``). With ``follow`` the stream starts while the job is
still running and sends chunks as their batches are committed, ending with ``complete`` when the
job finishes. A chunk that is gone or fails its checksum, or a job that fails or is cancelled
while followed, ends the stream with an ``error`` line: never ``complete`` after a short result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from http_api import render
from http_api.results import lineage_document, seed_document
from http_api.services import Services
from pipeline.engine import metrics, parts
from pipeline.engine.job import ACTIVE, FINISHED, Job
from pipeline.engine.status import domain_quality, query_quality
from pipeline.engine.store import ChunkLost, ChunkRef
from pipeline.request import LINEAGE, SEED_RESOLVE

log = logging.getLogger(__name__)

#: Seconds between looks at a followed job's manifests.
FOLLOW_POLL_SECONDS = 0.25


class StreamEnded(Exception):
    """The stream cannot go on: sent as an ``error`` line."""

    def __init__(self, code: str, message: str, **where: Any) -> None:
        super().__init__(message)
        self.line = {"type": "error", "code": code, "message": message, **where}


@dataclass(frozen=True)
class Cursor:
    """Where a resumed stream starts: the first ``records`` line it sends."""

    domain: str
    batch: int

    @classmethod
    def parse(cls, text: str, job: Job) -> Cursor:
        domain, _, number = text.partition(":")
        if domain not in job.domains or not number.isdigit():
            raise ValueError(
                f"from must be domain:batch with a domain of this job "
                f"({', '.join(job.domains)}), got {text!r}"
            )
        return cls(domain, int(number))


class JobStream:
    """The lines of one stream (iterate it; see the module docstring)."""

    def __init__(
        self, services: Services, job: Job, *, follow: bool = False, cursor: Cursor | None = None
    ) -> None:
        self.services = services
        self.job = job
        self.follow = follow
        self.cursor = cursor
        runtime = services.runtime
        self.store, self.registry = runtime.store, runtime.registry
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self._lines():
                self.sent += len(piece)
                yield piece
        except StreamEnded as ended:
            yield render.line(ended.line)
        except ChunkLost as lost:
            domain = parts.name_in_stage(lost.part)
            yield render.line(
                {
                    "type": "error",
                    "code": lost.code,
                    "message": f"the result is incomplete: {lost.message}",
                    "domain": domain,
                    "batch": lost.batch,
                }
            )
        except redis.RedisError as error:
            log.warning("stream of job %s: Redis failed: %s", self.job.id, error)
            yield render.line(
                {"type": "error", "code": "SERVICE_UNAVAILABLE", "message": "Redis unavailable"}
            )
        finally:
            metrics.count(self.services.redis, "stream_bytes", self.sent)

    # ---- the lines -------------------------------------------------------------------------
    def _lines(self) -> Iterator[bytes]:
        job = self.job
        yield render.line(
            {
                "type": "meta",
                "job_id": job.id,
                "profile": job.request.profile,
                "domains": list(job.domains),
                "follow": self.follow,
            }
        )
        kind = job.request.job_kind
        if kind in (SEED_RESOLVE, LINEAGE):
            self._wait_finished()
            document = seed_document if kind == SEED_RESOLVE else lineage_document
            yield b'{"type":"result","stage":' + render.dumps(kind) + b',"data":'
            yield from document(self.services, job)
            yield b"}\n"
            yield render.line({"type": "complete", "total_records": 0})
            return
        total_records = 0
        started = self.cursor is None
        for domain in job.domains:
            if not started and domain != self.cursor.domain:  # type: ignore[union-attr]
                total_records += self._rows_of(domain)
                continue
            skip = 0 if started else self.cursor.batch  # type: ignore[union-attr]
            started = True
            count = 0
            for piece, rows in self._domain(domain, skip):
                count += rows
                yield piece
            total_records += count
        job = self._wait_finished()
        if job.request.aggregates:
            aggregation = self.store.get_json(job.id, "aggregation")
            if aggregation is None:
                raise StreamEnded("JOB_RESULT_EXPIRED", "the aggregation is gone")
            yield b'{"type":"aggregation","data":' + aggregation + b"}\n"
        failed = sorted(self.registry.domain_states(job.id))
        if failed:
            yield render.line(
                {"type": "warning", "code": "EVENTS_PARTIAL_FAILURE", "failed_domains": failed}
            )
        quality = self._quality()
        yield render.line(
            {
                "type": "quality_meta",
                "quality_meta": query_quality(quality),
                "domain_quality_meta": quality,
            }
        )
        yield render.line({"type": "complete", "total_records": total_records})

    def _domain(self, domain: str, skip: int) -> Iterator[tuple[bytes, int]]:
        """``domain_start``, its ``records`` lines from chunk ``skip`` on, ``domain_end``."""
        part = parts.events(domain)
        total = self._total_rows(domain)
        yield (
            render.line(
                {
                    "type": "domain_start",
                    "domain": domain,
                    "total": total,
                    "quality_meta": self._quality().get(domain),
                }
            ),
            0,
        )
        columns: tuple[str, ...] = ()
        count = 0
        for number, batch, ref in self._chunks(domain):
            count += ref.rows
            if number < skip:
                continue
            rows = self.store.read_chunk(part, batch, ref)
            if not columns:
                columns = self.store.columns(self.job.id, part)
            yield (
                render.line(
                    {
                        "type": "records",
                        "domain": domain,
                        "batch": number,
                        "count": len(rows),
                        "data": render.row_objects(columns, rows),
                    }
                ),
                0,
            )
        yield render.line({"type": "domain_end", "domain": domain, "count": count}), count

    def _chunks(self, domain: str) -> Iterator[tuple[int, int, ChunkRef]]:
        """Every chunk of ``domain`` in order, waiting for batches while following."""
        part = parts.events(domain)
        number = batch = 0
        while True:
            if domain in self.registry.domain_states(self.job.id):
                return  # a failed domain has no rows (the warning line says so)
            total = self.registry.progress(self.job.id).get(parts.total(part))
            if total is not None and batch >= total:
                return
            entry = None if total is None else self.store.entry(self.job.id, part, batch)
            if entry is None:
                self._pause(domain, batch)
                continue
            for ref in entry.chunks:
                yield number, entry.batch, ref
                number += 1
            batch += 1

    def _pause(self, domain: str, batch: int) -> None:
        """Wait for a batch that is not committed yet (only while following a live job)."""
        state = self.registry.state(self.job.id)
        if state is None:
            raise StreamEnded("JOB_RESULT_EXPIRED", "the job is gone (expired or purged)")
        if state == FINISHED or not self.follow:
            raise StreamEnded(
                "CHUNK_LOST",
                f"the result is incomplete: {domain} batch {batch} is not in the manifest",
                domain=domain,
                batch=batch,
            )
        if state not in ACTIVE:
            raise StreamEnded("JOB_" + state.upper(), f"the job {state} while it was streamed")
        time.sleep(FOLLOW_POLL_SECONDS)

    def _wait_finished(self) -> Job:
        """The job once finished (it already is unless following)."""
        while True:
            job = self.registry.load(self.job.id)
            if job is None:
                raise StreamEnded("JOB_RESULT_EXPIRED", "the job is gone (expired or purged)")
            if job.state == FINISHED:
                self.job = job
                return job
            if job.state not in ACTIVE or not self.follow:
                raise StreamEnded("JOB_" + job.state.upper(), f"the job is {job.state}")
            time.sleep(FOLLOW_POLL_SECONDS)

    def _total_rows(self, domain: str) -> int | None:
        """The domain's rows, or ``None`` while it is still being fetched (following)."""
        if domain in self.registry.domain_states(self.job.id):
            return 0
        job = self.registry.load(self.job.id)
        if job is not None and "events" in job.completed:
            return self._rows_of(domain)
        return None

    def _rows_of(self, domain: str) -> int:
        if domain in self.registry.domain_states(self.job.id):
            return 0
        return self.registry.progress(self.job.id).get(parts.rows(parts.events(domain)), 0)

    def _quality(self) -> dict[str, dict[str, Any]]:
        settings = self.services.settings
        return domain_quality(self.job, self.registry, settings.max_rows_per_domain)
