"""The limits of the parts, measured on the same data as the runs: how fast the warehouse hands
over each domain's rows when nothing is done with them (a bare ``fetchmany`` scan of the very
query the events stage runs), and how fast stored chunks become the stream's NDJSON (Redis GET +
msgpack unpack + the stream's own encoding, no HTTP). A run can be no faster than these."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from http_api import render
from pipeline import domains as domain_names
from pipeline.bench.model import LimitFigures
from pipeline.engine.flow import CIDS_PART, events_part
from pipeline.rows import RowBatch, clean_values
from pipeline.sources.base import Source
from pipeline.stages.events import SPECS
from pipeline.store import CheckpointStore


def _domain_query(source: Source, domain: str, ids: list[str]) -> Iterator[RowBatch]:
    """The batches of the SQL the events stage runs for ``domain`` (``fetch_events`` without
    its derived columns, float guard and, for ``jobs``, the matching of lots in Python)."""
    query = SPECS[domain].query
    if domain == domain_names.JOBS:
        # Many lots: one pass over every job that lists any lot (jobs_scan, no binds). The
        # benchmark's sizes are far above jobs_probe_max, below which jobs_probe would run.
        return source.query(query)
    return source.query_in(query, "cids", ids)


def scan_domains(
    source: Source, cids: Sequence[str], domains: Sequence[str]
) -> tuple[dict[str, int], dict[str, float]]:
    """Rows and wall seconds per domain of a bare scan of each domain's events query over the
    lots ``cids``: the same SQL, binds and IN batches (``source.query_in``) as ``fetch_events``,
    but the fetched batches are only counted. For ``jobs`` the rows are the scanned jobs, not
    the job-per-lot rows the pipeline derives from them."""
    ids = clean_values(cids)
    rows: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for domain in domains:
        count = 0
        started = time.perf_counter()
        for batch in _domain_query(source, domain, ids):
            count += len(batch.rows)
        seconds[domain] = time.perf_counter() - started
        rows[domain] = count
    return rows, seconds


def read_encode(store: CheckpointStore, job_id: str, domains: Sequence[str]) -> tuple[int, float]:
    """Rows and wall seconds to turn every committed chunk of the domains' parts (manifest
    order) into the stream's ``records`` lines: one GET + checksum + msgpack unpack per chunk
    (``read_chunk``) and the encoding ``http_api.stream`` uses (``render.line`` of the rows as
    objects). The bytes are dropped; no HTTP."""
    rows = 0
    started = time.perf_counter()
    for domain in domains:
        part = events_part(domain)
        columns = store.columns(job_id, part)
        number = 0
        for entry in store.manifest(job_id, part).values():
            for ref in entry.chunks:
                chunk = store.read_chunk(part, entry.batch, ref)
                render.line(
                    {
                        "type": "records",
                        "domain": domain,
                        "batch": number,
                        "count": len(chunk),
                        "data": render.row_objects(columns, chunk),
                    }
                )
                rows += len(chunk)
                number += 1
    return rows, time.perf_counter() - started


def measure_limits(
    source: Source, store: CheckpointStore, job_id: str, domains: Sequence[str]
) -> LimitFigures:
    """Both limits for a finished job: the scan over the job's lots (its ``lineage:cids``
    part, ``CONTAINERID`` in the first column) and the read + encode of its stored rows."""
    cids = [row[0] for batch in store.read(job_id, CIDS_PART) for row in batch.rows]
    scan_rows, scan_seconds = scan_domains(source, cids, domains)
    encoded_rows, encode_seconds = read_encode(store, job_id, domains)
    return LimitFigures(scan_rows, scan_seconds, encoded_rows, encode_seconds)
