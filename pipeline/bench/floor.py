"""The floor of each stage (issue 20): the bare cost of the reads it cannot do without, on the
same data as the runs, measured once per size after them. A stage can be no faster than its
floor, a trace no faster than the four floors added up; "end to end / floor" says how far above
that the service runs.

- **seed-resolve** and **lineage**: the warehouse queries the stage ran in the last run, as the
  workers' probe recorded them (``query_log``: name, binds and fragments as the stage handed
  them to ``Source.query``, so the same SQL, the same IN lists, the same binds), replayed through
  a ``SqliteSource`` with the workers' ``fetch_rows`` and ``in_list_size``, in the order they ran,
  the rows only counted (``fetchmany``). The replay runs on a warm pool (``warm_pool``: spawned
  processes, warehouse open before the clock), each recording process's queries on a process of
  its own, concurrently, and the log is read before the clock starts. What the stage did with
  the rows (its graph, its checkpoints) is not in it; nor is a query the stage read back from its
  own checkpoints (none reaches the probe).
- **events**: the bare scan of each domain's query (``limits.scan_domains``), its wall seconds
  added up over the domains.
- **aggregation**: its own warehouse queries (the detection lots' rejects, the machines'
  families...), replayed like seed-resolve's, plus its input read back from Redis, bare
  (``CheckpointStore.read``: manifest, GET, checksum, decompress, decode, one thread as the
  stage runs): the seeds and the detection lots seed-resolve recorded (which the aggregation
  reuses instead of asking again), the lineage maps it folds and the events domains the
  analysis reads (``MsdAggregator.uses``), nothing done with the rows.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline import domains
from pipeline.bench import query_log
from pipeline.bench.model import FloorFigures
from pipeline.bench.warm_pool import source, warm_pool
from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.job import AGGREGATION, EVENTS
from pipeline.engine.store import CheckpointStore
from pipeline.stages.msd.folding import MsdAggregator

#: (reads, rows, wall seconds) of one stage's floor.
StageFloor = tuple[int, int, float]


def replay_stages(
    db: Path, sealed: Path, *, processes: int, settings: Settings, repeats: int = 3
) -> dict[str, StageFloor]:
    """Per recorded stage (``query_log.RECORDED_STAGES``) that ran a query: the queries, rows
    and wall seconds of their bare replay (the median of ``repeats``). The queries of each
    process that ran them are one task, timed inside it; tasks of a stage run at once, so the
    stage's seconds are its slowest task's. A query that fails now raises (``SourceError``)."""
    logged = query_log.read(sealed)
    found: dict[str, StageFloor] = {}
    with warm_pool(db, processes, settings) as pool:
        for stage in query_log.RECORDED_STAGES:
            pids = sorted({query.pid for query in logged if query.stage == stage})
            if not pids:
                continue
            tasks = [(str(sealed), stage, pid) for pid in pids]
            walls, reads, rows = [], 0, 0
            for _ in range(max(1, repeats)):
                done = list(pool.map(_replay, tasks))
                walls.append(max(seconds for _, _, seconds in done))
                reads = sum(n for n, _, _ in done)
                rows = sum(n for _, n, _ in done)
            found[stage] = (reads, rows, statistics.median(walls))
    return found


def _replay(task: tuple[str, str, int]) -> StageFloor:
    """Queries, rows and seconds of one process's queries of a stage, replayed in order (the
    log read before the clock starts)."""
    sealed, stage, pid = task
    queries = [q for q in query_log.read(Path(sealed), pid) if q.stage == stage]
    warehouse = source()
    rows = 0
    started = time.perf_counter()
    for query in queries:
        for batch in warehouse.query(query.name, query.binds, fragments=query.fragments):
            rows += len(batch.rows)
    return len(queries), rows, time.perf_counter() - started


def aggregation_parts(store: CheckpointStore, job_id: str) -> list[str]:
    """The stored parts a trace's first analysis reads, in the order it reads them: the seeds,
    seed-resolve's recorded queries (the detection lots; their merge for a window read in date
    ranges), the lineage map of its direction and
    the seeds' roots, then each events domain ``MsdAggregator.uses``."""
    lineage = store.get_blob(job_id, "lineage") or {}
    direction = str(lineage.get("direction") or domains.BACKWARD)
    related = "ancestors" if direction == domains.BACKWARD else "descendants"
    with MsdAggregator(direction=direction) as aggregator:
        folded = [domain for domain in domains.DOMAINS if aggregator.uses(domain)]
    # a window read in date ranges: the analysis reads their merge, not the ranges
    merged = bool(store.finished(job_id, parts.DETECTION_LOTS))
    return [
        parts.SEEDS,
        parts.DETECTION_LOTS if merged else parts.SEED_QUERIES,
        parts.lineage(related),
        parts.lineage("seed_roots"),
        *(parts.events(domain) for domain in folded),
    ]


def read_aggregation_input(store: CheckpointStore, job_id: str, *, repeats: int = 3) -> StageFloor:
    """Chunks, rows and wall seconds (the median of ``repeats``) of reading back every row of
    ``aggregation_parts`` in one thread, the rows only counted. ``ChunkLost`` when the job's
    keys are gone."""
    names = aggregation_parts(store, job_id)
    walls, chunks, rows = [], 0, 0
    for _ in range(max(1, repeats)):
        chunks = rows = 0
        started = time.perf_counter()
        for part in names:
            for batch in store.read(job_id, part):
                chunks += 1
                rows += len(batch.rows)
        walls.append(time.perf_counter() - started)
    return chunks, rows, statistics.median(walls)


def measure_floor(
    db: Path,
    store: CheckpointStore,
    job_id: str,
    sealed: Path | None,
    *,
    scan_rows: Mapping[str, int],
    scan_seconds: Mapping[str, float],
    processes: int,
    settings: Settings,
    repeats: int = 3,
) -> FloorFigures:
    """The four stages' floors for the finished job ``job_id`` (its keys still stored; its
    seed-resolve, lineage and aggregation queries in ``sealed``, ``None``: not recorded, those
    floors left out, the aggregation's its store read alone), the events stage's taken from
    the limits' scan (``scan_rows``/``scan_seconds`` per domain, measured on the same lots)."""
    floor = FloorFigures(seconds={}, reads={}, rows={})
    if sealed is not None:
        for stage, (reads, rows, seconds) in replay_stages(
            db, sealed, processes=processes, settings=settings, repeats=repeats
        ).items():
            _put(floor, stage, reads, rows, seconds)
    if scan_seconds:
        floor.seconds[EVENTS] = sum(scan_seconds.values())
        floor.rows[EVENTS] = sum(scan_rows.values())
    chunks, rows, seconds = read_aggregation_input(store, job_id, repeats=repeats)
    queries, queried, replayed = (
        floor.reads.get(AGGREGATION, 0),
        floor.rows.get(AGGREGATION, 0),
        floor.seconds.get(AGGREGATION, 0.0),
    )
    _put(floor, AGGREGATION, queries + chunks, queried + rows, replayed + seconds)
    return floor


def _put(floor: FloorFigures, stage: str, reads: int, rows: int, seconds: float) -> None:
    floor.seconds[stage], floor.reads[stage], floor.rows[stage] = seconds, reads, rows
