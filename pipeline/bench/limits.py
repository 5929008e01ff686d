"""The limits of the parts, measured on the same data as the runs: how fast the warehouse hands
over each domain's rows when nothing is done with them (a bare ``fetchmany`` scan of the very
query the events stage runs, on as many processes as the workers), and how fast stored chunks
become the stream's NDJSON (Redis GET + decompress + msgpack unpack + the stream's own encoding,
no HTTP, one thread like a stream). A run can be no faster than these; ``floor.py`` builds each
stage's floor on the scan."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline import domains as domain_names
from pipeline.bench.model import LimitFigures
from pipeline.bench.read_encode import read_encode_like_api
from pipeline.bench.warm_pool import source, warm_pool
from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.store import CheckpointStore
from pipeline.rows import RowBatch, batched, clean_values
from pipeline.sources.base import Source
from pipeline.stages.events import SPECS, lots_per_fetch


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
    db: Path,
    cids: Sequence[str],
    domains: Sequence[str],
    *,
    processes: int,
    settings: Settings,
    repeats: int = 3,
) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """Rows, wall seconds and process seconds (its tasks' seconds added up) per domain of a
    bare scan of each domain's events query over the lots ``cids``, spread over ``processes``
    processes as the workers spread the events stage: the same SQL, binds and IN batches
    (``source.query_in``), one task per ``TRACE_EVENTS_GROUP_BATCHES`` batches (the smallest
    events message: the pipeline's longer ones do not make the scan's tail longer, so the
    floor is not raised with them; ``jobs``: one per jobs batch), but the fetched rows are
    only counted. For ``jobs`` the rows are the scanned jobs, not the job-per-lot rows the
    pipeline derives from them. The processes are started and have their warehouse open
    before the clock starts. Each domain is scanned ``repeats`` times and its seconds are the
    medians (a single scan on this VM was seen 30 % off the next one)."""
    ids = clean_values(cids)
    rows: dict[str, int] = {}
    seconds: dict[str, float] = {}
    task_seconds: dict[str, float] = {}
    with warm_pool(db, processes, settings) as pool:
        for domain in domains:
            lots = settings.in_list_size * settings.events_group_batches
            if domain == domain_names.JOBS:
                lots = lots_per_fetch(domain, settings.in_list_size, settings.jobs_scan_lots)
            tasks = [(domain, group) for group in batched(ids, lots)]
            walls, spents = [], []
            for _ in range(max(1, repeats)):
                started = time.perf_counter()
                done = list(pool.map(_scan, tasks))
                walls.append(time.perf_counter() - started)
                spents.append(sum(spent for _, spent in done))
                rows[domain] = sum(count for count, _ in done)
            seconds[domain] = statistics.median(walls)
            task_seconds[domain] = statistics.median(spents)
    return rows, seconds, task_seconds


def _scan(task: tuple[str, list[str]]) -> tuple[int, float]:
    """Rows and seconds of one task's scan."""
    domain, ids = task
    warehouse = source()
    started = time.perf_counter()
    rows = sum(len(batch.rows) for batch in _domain_query(warehouse, domain, ids))
    return rows, time.perf_counter() - started


def measure_limits(
    db: Path,
    store: CheckpointStore,
    job_id: str,
    domains: Sequence[str],
    *,
    store_url: str,
    processes: int,
    settings: Settings,
    repeats: int = 3,
) -> LimitFigures:
    """Both limits for a finished job: the scan over the job's lots (its ``parts.CIDS``
    part), on as many processes as the workers have, and the read + encode of its stored rows
    (the store at ``store_url``) in one thread of a process with the API's allocator, as the
    API streams (``read_encode``; each the median of ``repeats``)."""
    cids = [row[0] for batch in store.read(job_id, parts.CIDS) for row in batch.rows]
    scan_rows, scan_seconds, task_seconds = scan_domains(
        db, cids, domains, processes=processes, settings=settings, repeats=repeats
    )
    encoded_rows, timings = read_encode_like_api(store_url, job_id, domains, repeats=repeats)
    encode_seconds = statistics.median(timings)
    return LimitFigures(scan_rows, scan_seconds, encoded_rows, encode_seconds, task_seconds)
