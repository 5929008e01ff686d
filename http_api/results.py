"""A finished job's result as the contract's documents, rendered as bytes while they are read.

* events jobs (and whole traces): per domain a page of rows (``offset``/``limit``), the
  aggregation, ``quality_meta`` and the partial-failure fields;
* seed-resolve and lineage jobs: the stage's document, rebuilt from its parts.

The reading is ``ResultReader``'s (``pipeline.engine.results``); this module only writes bytes.
Before the first byte every piece of the result is checked to exist (``refuse_damaged``: a piece
gone is a 410 ``JOB_RESULT_DAMAGED``, a job gone a 404 ``JOB_RESULT_EXPIRED``); a chunk that
disappears or fails its checksum afterwards aborts the response (the client sees a broken body,
never a short result that looks whole) and marks the job, so the next request is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from http_api import render
from http_api.services import Services
from pipeline.engine.documents import QualityMeta
from pipeline.engine.job import Job
from pipeline.engine.pages import Page
from pipeline.engine.results import ResultGone, ResultReader
from pipeline.errors import ResultDamaged, ResultExpired
from pipeline.request import LINEAGE, SEED_RESOLVE

PARTIAL_FAILURE = "EVENTS_PARTIAL_FAILURE"


def expired(job_id: str) -> ResultExpired:
    return ResultExpired(f"the result of job {job_id} is gone (expired, released or evicted)")


@contextmanager
def expired_when_gone(job_id: str) -> Iterator[None]:
    """``ResultGone`` inside as the 404 ``expired`` (for reads before the first byte)."""
    try:
        yield
    except ResultGone:
        raise expired(job_id) from None


def refuse_damaged(services: Services, job: Job) -> None:
    """Raise ``ResultDamaged`` (410) when a piece of the finished ``job``'s result is gone (one
    ``EXISTS`` per 500 chunks) or was found failing its checksum earlier; the job is marked, so
    an equal request starts a new one. Run before the first byte of any answer that carries the
    result: the July client ignores a stream's ``error`` line and trusts every 200. The
    analysis's row tables (detail, heads, export) are not looked at: these answers do not carry
    them; the detail page and the export check them (``http_api.resources.msd_detail``)."""
    problem = services.runtime.registry.flaw(job, detail=False)
    reason = problem.reason if problem is not None and problem.damaged else None
    if reason is not None:
        raise ResultDamaged(
            f"the result of job {job.id} is damaged ({reason}); submit the request again: "
            "it starts a new job",
            meta={"job_id": job.id},
        )


def result_document(
    services: Services,
    job: Job,
    domain: str | None,
    offset: int,
    limit: int,
    *,
    rows: bool = True,
) -> Iterator[bytes]:
    """The success envelope of ``job``'s result (see the module docstring); call
    ``refuse_damaged`` first. ``rows=False``: events without pages (``results: {}``, the old
    backend's answer to an analysis whose rows its page never reads)."""
    reader = services.results
    kind = job.request.job_kind
    if kind == SEED_RESOLVE:
        return render.envelope(seed_document(reader, job))
    if kind == LINEAGE:
        return render.envelope(lineage_document(reader, job))
    return render.envelope(events_document(reader, job, domain, offset, limit, rows=rows))


# ---- events -----------------------------------------------------------------------------------
def events_document(
    reader: ResultReader,
    job: Job,
    domain: str | None,
    offset: int,
    limit: int,
    *,
    rows: bool = True,
) -> Iterator[bytes]:
    failed = reader.failed_domains(job.id)
    query, quality = reader.quality(job)
    wanted = [d for d in job.domains if domain is None or d == domain] if rows else []
    with expired_when_gone(job.id):
        pages: dict[str, Page | None] = {
            name: None if name in failed else reader.page(job.id, name, offset, limit)
            for name in wanted
        }
        aggregation = reader.aggregation(job)
    fields: list[tuple[str, Any]] = [
        ("stage", "events"),
        ("job_id", job.id),
        ("query_id", job.query_id),
        ("trace_query_id", job.trace_query_id),
        (
            "results",
            render.obj(
                (name, domain_page(reader, job, name, pages[name], quality[name]))
                for name in wanted
            ),
        ),
        # stored as JSON: spliced in as it is, never decoded here
        ("aggregation", iter([aggregation]) if aggregation is not None else None),
        ("quality_meta", query),
        ("domain_quality_meta", quality),
    ]
    if failed:
        fields += [
            ("error", "one or more domains failed"),
            ("code", PARTIAL_FAILURE),
            ("failed_domains", failed),
        ]
    return render.obj(fields)


def domain_page(
    reader: ResultReader, job: Job, domain: str, page: Page | None, quality: QualityMeta
) -> Iterator[bytes]:
    if page is None:  # a failed domain: no rows
        return render.obj(
            [("count", 0), ("total", 0), ("offset", 0), ("quality_meta", quality), ("data", [])]
        )
    return render.obj(
        [
            ("count", page.count),
            ("total", page.total),
            ("offset", page.offset),
            ("quality_meta", quality),
            ("data", render.array(_page_rows(reader, job, domain, page))),
        ]
    )


def _page_rows(reader: ResultReader, job: Job, domain: str, page: Page) -> Iterator[bytes]:
    columns = reader.columns(job.id, domain)
    for rows in reader.page_chunks(domain, page):
        yield render.dumps(render.row_objects(columns, rows))


# ---- seed-resolve and lineage -----------------------------------------------------------------
def seed_document(reader: ResultReader, job: Job) -> Iterator[bytes]:
    with expired_when_gone(job.id):
        summary = reader.seed_summary(job.id)

    def seeds() -> Iterator[bytes]:
        for rows in reader.seed_chunks(job.id):
            yield render.dumps(
                [{"container_id": c, "container_name": n, "lot_id": lot} for c, n, lot in rows]
            )

    def cids() -> Iterator[bytes]:
        for rows in reader.seed_chunks(job.id):
            yield render.dumps([row[0] for row in rows])

    return render.obj(
        [
            ("stage", "seed-resolve"),
            ("seeds", render.array(seeds())),
            ("seed_count", summary.seed_count),
            ("cache_key", job.request.params.seed_key(job.request.profile)),
            ("seed_container_ids", render.array(cids())),
            ("not_found", summary.not_found),
            ("job_id", job.id),
        ]
    )


def lineage_document(reader: ResultReader, job: Job) -> Iterator[bytes]:
    """The lineage document of the contract, one stored part at a time, with ``job_id`` (an
    events request may name it as ``lineage_job_id``) and ``query_id`` (the July client sends
    it back as ``lineage_query_id``)."""
    with expired_when_gone(job.id):
        summary = reader.lineage_summary(job.id)

    def mapping(key: str) -> Iterator[bytes]:
        yield b"{"
        first = True
        for rows in reader.lineage_chunks(job.id, key):
            piece = render.dumps(dict(rows))[1:-1]
            if piece:
                yield piece if first else b"," + piece
                first = False
        yield b"}"

    def listing(key: str) -> Iterator[bytes]:
        return render.array(
            render.dumps([row[0] for row in rows]) for rows in reader.lineage_chunks(job.id, key)
        )

    fields: list[tuple[str, Any]] = list(summary.scalars.items())
    fields += [(k, mapping(k)) for k in summary.maps]
    fields += [(k, listing(k)) for k in summary.lists]
    fields += [("job_id", job.id), ("query_id", job.query_id)]
    return render.obj(fields)
