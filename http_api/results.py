"""A finished job's result read from its checkpoints, as the contract's documents, streamed.

* events jobs (and whole traces): per domain a page of rows (``offset``/``limit``, found through
  the page index: a page near the end of a huge domain costs what the first one does), the
  aggregation, ``quality_meta`` and the partial-failure fields;
* seed-resolve and lineage jobs: the stage's document, rebuilt from its parts.

Every chunk a page needs is checked to exist before the first byte is sent, so an expired result
is a clean 404; a chunk that disappears or fails its checksum afterwards aborts the response (the
client sees a broken body, never a short result that looks whole).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon

from http_api import render
from http_api.errors import ApiError
from http_api.services import Services
from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.job import Job
from pipeline.engine.pages import Page
from pipeline.engine.status import domain_quality, query_quality
from pipeline.request import LINEAGE, SEED_RESOLVE

PARTIAL_FAILURE = "EVENTS_PARTIAL_FAILURE"


def expired(job_id: str) -> ApiError:
    return ApiError(
        falcon.HTTP_404,
        "JOB_RESULT_EXPIRED",
        f"the result of job {job_id} is gone (expired, released or evicted)",
    )


def result_document(
    services: Services, job: Job, domain: str | None, offset: int, limit: int
) -> Iterator[bytes]:
    """The success envelope of ``job``'s result (see the module docstring)."""
    kind = job.request.job_kind
    if kind == SEED_RESOLVE:
        return render.envelope(seed_document(services, job))
    if kind == LINEAGE:
        return render.envelope(lineage_document(services, job))
    return render.envelope(events_document(services, job, domain, offset, limit))


# ---- events -----------------------------------------------------------------------------------
def events_document(
    services: Services, job: Job, domain: str | None, offset: int, limit: int
) -> Iterator[bytes]:
    runtime, settings = services.runtime, services.settings
    registry, store = runtime.registry, runtime.store
    failed = registry.domain_states(job.id)
    quality = domain_quality(job, registry, settings.max_rows_per_domain)
    wanted = [d for d in job.domains if domain is None or d == domain]
    pages: dict[str, Page | None] = {}
    for name in wanted:
        page = (
            None
            if name in failed
            else services.pages.page(job.id, parts.events(name), offset, limit)
        )
        if page is not None and not chunks_exist(services, page):
            raise expired(job.id)
        pages[name] = page
    aggregation = store.get_json(job.id, "aggregation") if job.request.aggregates else None
    if job.request.aggregates and aggregation is None and "aggregation" in job.completed:
        raise expired(job.id)
    fields: list[tuple[str, Any]] = [
        ("stage", "events"),
        ("job_id", job.id),
        (
            "results",
            render.obj(
                (name, domain_page(services, job, name, pages[name], quality[name]))
                for name in wanted
            ),
        ),
        # stored as JSON: spliced in as it is, never decoded here
        ("aggregation", iter([aggregation]) if aggregation is not None else None),
        ("quality_meta", query_quality(quality)),
        ("domain_quality_meta", quality),
    ]
    if failed:
        fields += [
            ("error", "one or more domains failed"),
            ("code", PARTIAL_FAILURE),
            ("failed_domains", sorted(failed)),
        ]
    return render.obj(fields)


def domain_page(
    services: Services, job: Job, domain: str, page: Page | None, quality: dict[str, Any]
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
            ("data", render.array(_page_rows(services, job, domain, page))),
        ]
    )


def _page_rows(services: Services, job: Job, domain: str, page: Page) -> Iterator[bytes]:
    store = services.runtime.store
    part = parts.events(domain)
    columns = store.columns(job.id, part)
    for located, low, high in page.slices():
        rows = store.read_chunk_range(part, located.batch, located.ref, low, high)
        yield render.dumps(render.row_objects(columns, rows))


def chunks_exist(services: Services, page: Page) -> bool:
    """Whether every chunk of ``page`` is still in Redis (one pipelined round trip)."""
    if not page.chunks:
        return True
    pipe = services.redis.pipeline(transaction=False)
    for located in page.chunks:
        pipe.exists(located.ref.key)
    return all(pipe.execute())


def check_domain(name: str | None) -> str | None:
    """``domain`` of a result request: a domain of the contract, or ``None`` for all."""
    if name is None or name == "":
        return None
    if name not in domains.DOMAINS:
        raise ApiError(
            falcon.HTTP_400,
            "INVALID_PARAMS",
            f"unknown domain {name!r}; expected one of {', '.join(domains.DOMAINS)}",
        )
    return name


# ---- seed-resolve and lineage -----------------------------------------------------------------
def seed_document(services: Services, job: Job) -> Iterator[bytes]:
    store = services.runtime.store
    summary = store.get_blob(job.id, "seed-resolve")
    if summary is None:
        raise expired(job.id)

    def seeds() -> Iterator[bytes]:
        for batch in store.read(job.id, parts.SEEDS):
            yield render.dumps(
                [
                    {"container_id": c, "container_name": n, "lot_id": lot}
                    for c, n, lot in batch.rows
                ]
            )

    def cids() -> Iterator[bytes]:
        for batch in store.read(job.id, parts.SEEDS):
            yield render.dumps([row[0] for row in batch.rows])

    return render.obj(
        [
            ("stage", "seed-resolve"),
            ("seeds", render.array(seeds())),
            ("seed_count", summary["seed_count"]),
            ("seed_container_ids", render.array(cids())),
            ("not_found", summary["not_found"]),
            ("job_id", job.id),
        ]
    )


def lineage_document(services: Services, job: Job) -> Iterator[bytes]:
    """The lineage document of the contract, one stored part at a time (``job_id`` added: an
    events request may name it as ``lineage_job_id``)."""
    store = services.runtime.store
    summary = store.get_blob(job.id, "lineage")
    if summary is None:
        raise expired(job.id)
    maps = summary.get("maps", [])
    lists = summary.get("lists", [])
    scalars = {k: v for k, v in summary.items() if k not in ("maps", "lists", "direction")}

    def mapping(key: str) -> Iterator[bytes]:
        yield b"{"
        first = True
        for batch in store.read(job.id, parts.lineage(key)):
            piece = render.dumps(dict(batch.rows))[1:-1]
            if piece:
                yield piece if first else b"," + piece
                first = False
        yield b"}"

    def listing(key: str) -> Iterator[bytes]:
        return render.array(
            render.dumps([row[0] for row in batch.rows])
            for batch in store.read(job.id, parts.lineage(key))
        )

    fields: list[tuple[str, Any]] = list(scalars.items())
    fields += [(k, mapping(k)) for k in maps]
    fields += [(k, listing(k)) for k in lists]
    fields.append(("job_id", job.id))
    return render.obj(fields)
