"""The NDJSON stream of a job, in the contract's order, one ``records`` line per stored chunk.

The API process holds one chunk at a time; with ``records=0`` it sends no rows at all, only each
domain's start and end (an analysis's page reads the aggregation, never the rows: a 114K-lot
trace's 4.5M rows would fill a browser tab). Each domain's chunks are read in manifest order
(input batch, then chunk), numbered from 0: that number is the line's ``batch`` and the cursor a
client resumes from (``from=domain:batch``). With ``follow`` the stream starts while the job is
still running and sends chunks as their batches are committed, ending with ``complete`` when the
job finishes. A chunk that is gone or fails its checksum, or a job that fails, is cancelled or
is lost (``JOB_LOST``: its keys vanished before its TTL, e.g. a Redis restart without
persistence) while followed, ends the stream with an ``error`` line: never ``complete`` after a
short result, and never a wait without end.

The reading (and the waiting, when following) is ``ResultReader``'s; this module writes lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from http_api import render
from http_api.results import lineage_document, seed_document
from http_api.services import Services
from pipeline.engine import metrics
from pipeline.engine.job import Job
from pipeline.engine.results import JobEnded, ResultGone, ResultIncomplete
from pipeline.errors import JobLost
from pipeline.request import LINEAGE, SEED_RESOLVE

log = logging.getLogger(__name__)


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


def records_line(
    domain: str, number: int, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> bytes:
    """The ``records`` line of one stored chunk: its number in the domain and its rows as
    objects."""
    return render.line(
        {
            "type": "records",
            "domain": domain,
            "batch": number,
            "count": len(rows),
            "data": render.row_objects(columns, rows),
        }
    )


def error_line(code: str, message: str, **where: Any) -> bytes:
    """The ``error`` line that ends a stream."""
    return render.line({"type": "error", "code": code, "message": message, **where})


class JobStream:
    """The lines of one stream (iterate it; see the module docstring)."""

    def __init__(
        self,
        services: Services,
        job: Job,
        *,
        follow: bool = False,
        cursor: Cursor | None = None,
        records: bool = True,
    ) -> None:
        self.services = services
        self.reader = services.results
        self.job = job
        self.follow = follow
        self.cursor = cursor
        self.records = records  # False: no records lines (row counts only)
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self._lines():
                self.sent += len(piece)
                yield piece
        except ResultIncomplete as gap:
            self.reader.found_damaged(self.job.id, gap.message)
            yield error_line(gap.code, gap.message, domain=gap.domain, batch=gap.batch)
        except (ResultGone, JobEnded, JobLost) as ended:
            yield error_line(ended.code, ended.message)
        except redis.RedisError as error:
            log.warning("stream of job %s: Redis failed: %s", self.job.id, error)
            yield self._outage_line(error)
        finally:
            metrics.count(self.services.redis, "stream_bytes", self.sent)

    def _outage_line(self, error: redis.RedisError) -> bytes:
        """The last line of a stream that met Redis unreachable. Following, the reads that wait
        for batches ride the outage out, the others fail at once: the job is then looked for
        once Redis answers again, so a job a restart without persistence lost ends the stream
        as ``JOB_LOST`` whichever read met the restart, and one still there as
        ``SERVICE_UNAVAILABLE`` (resume it from the last ``records`` line's batch)."""
        if self.follow and isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            try:
                gone = self.reader.after_outage(self.job.id)
            except redis.RedisError:
                gone = None
            if gone is not None:
                return error_line(gone.code, gone.message)
        return error_line("SERVICE_UNAVAILABLE", "Redis unavailable")

    # ---- the lines -------------------------------------------------------------------------
    def _lines(self) -> Iterator[bytes]:
        job, reader = self.job, self.reader
        yield render.line(
            {
                "type": "meta",
                "job_id": job.id,
                "profile": job.request.profile,
                "domains": list(job.domains),
                "query_id": job.query_id,
                # known once the events are complete (a followed stream may start before)
                "trace_query_id": job.trace_query_id,
                "follow": self.follow,
            }
        )
        kind = job.request.job_kind
        if kind in (SEED_RESOLVE, LINEAGE):
            self.job = reader.wait_finished(job.id, follow=self.follow)
            document = seed_document if kind == SEED_RESOLVE else lineage_document
            yield b'{"type":"result","stage":' + render.dumps(kind) + b',"data":'
            yield from document(reader, job)
            yield b"}\n"
            yield render.line({"type": "complete", "total_records": 0})
            return
        total_records = 0
        started = self.cursor is None
        for domain in job.domains:
            if not started and domain != self.cursor.domain:  # type: ignore[union-attr]
                total_records += reader.rows(job.id, domain)
                continue
            skip = 0 if started else self.cursor.batch  # type: ignore[union-attr]
            started = True
            count = 0
            for piece, rows in self._domain(domain, skip):
                count += rows
                yield piece
            total_records += count
        job = self.job = reader.wait_finished(job.id, follow=self.follow)
        aggregation = reader.aggregation(job)
        if aggregation is not None:
            yield b'{"type":"aggregation","data":' + aggregation + b"}\n"
        failed = reader.failed_domains(job.id)
        if failed:
            yield render.line(
                {"type": "warning", "code": "EVENTS_PARTIAL_FAILURE", "failed_domains": failed}
            )
        query, quality = reader.quality(job)
        yield render.line(
            {"type": "quality_meta", "quality_meta": query, "domain_quality_meta": quality}
        )
        yield render.line({"type": "complete", "total_records": total_records})

    def _domain(self, domain: str, skip: int) -> Iterator[tuple[bytes, int]]:
        """``domain_start``, its ``records`` lines from chunk ``skip`` on, ``domain_end``; each
        line with the rows it closes (only ``domain_end`` counts: all of the domain's rows)."""
        reader, job_id = self.reader, self.job.id
        yield (
            render.line(
                {
                    "type": "domain_start",
                    "domain": domain,
                    "total": reader.final_rows(job_id, domain),
                    "quality_meta": reader.domain_quality(self.job).get(domain),
                }
            ),
            0,
        )
        columns: tuple[str, ...] = ()
        count = 0
        for chunk in reader.chunks(job_id, domain, follow=self.follow):
            count += chunk.ref.rows
            if chunk.number < skip or not self.records:
                continue
            rows = reader.chunk_rows(domain, chunk)
            if not columns:
                columns = reader.columns(job_id, domain)
            yield records_line(domain, chunk.number, columns, rows), 0
        yield render.line({"type": "domain_end", "domain": domain, "count": count}), count
