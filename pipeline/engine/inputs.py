"""What a job is given before its first stage runs, written as the parts its stages read.

A lineage job's seed lots go where seed-resolve would have put them. An events job's lots go
where lineage would have put them; a mid-section-defect one also needs its detection lots and
their lineage, which come with the request (the dashboard's ``seed_container_ids`` and
``lineage`` map) or from the checkpoints of an earlier job (``lineage_job_id``), copied part by
part, one chunk at a time; with neither, the detection lots go where seed-resolve would have put
them, and the job's own lineage stage finds the rest.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipeline import domains
from pipeline.engine import parts
from pipeline.engine.job import Job
from pipeline.engine.steps.lineage_step import MAP_COLUMNS
from pipeline.engine.steps.seed_step import SEED_COLUMNS
from pipeline.engine.store import CheckpointStore, ChunkLost
from pipeline.errors import InvalidInput
from pipeline.request import EVENTS, LINEAGE
from pipeline.rows import clean_values

log = logging.getLogger(__name__)


def lineage_maps(lineage: Mapping[str, Any], direction: str) -> dict[str, Mapping[str, Any]]:
    """The parts of a dashboard's inline lineage the aggregation needs: ``seed_roots`` and the
    related lots of each seed (backward: ``ancestors``; forward: ``descendants``, walked from
    ``children_map`` as the dashboard does). Raises ``InvalidInput`` for a malformed map."""
    maps: dict[str, Mapping[str, Any]] = {}
    for key in ("ancestors", "children_map", "seed_roots", "descendants"):
        value = lineage.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise InvalidInput(f"lineage.{key} must be an object", field="lineage")
    if lineage.get("seed_roots"):
        maps["seed_roots"] = lineage["seed_roots"]
    related = parts.RELATED[direction]
    if lineage.get(related):
        maps[related] = lineage[related]
    elif direction == domains.FORWARD and lineage.get("children_map"):
        maps[related] = _Descendants(lineage["children_map"])
    for key, value in maps.items():
        if key != "seed_roots" and not isinstance(value, _Descendants):
            for lots in value.values():
                if isinstance(lots, str) or not isinstance(lots, list):
                    raise InvalidInput(f"lineage.{key} values must be lists", field="lineage")
    return maps


class _Descendants(Mapping[str, list[str]]):
    """Every lot below a parent in ``children_map``, computed per parent when asked for."""

    def __init__(self, children: Mapping[str, Any]) -> None:
        self.children = children

    def __getitem__(self, parent: str) -> list[str]:
        found: dict[str, None] = {}
        todo = deque(self.children.get(parent) or ())
        while todo:
            child = todo.popleft()
            if child in found or child == parent:
                continue
            found[child] = None
            todo.extend(self.children.get(child) or ())
        return list(found)

    def __iter__(self) -> Iterator[str]:
        return iter(self.children)

    def __len__(self) -> int:
        return len(self.children)


def seeds_of(request_seeds: Iterable[str], maps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The detection lots: those given, else the keys of the lineage map (the old rule)."""
    seeds = clean_values(request_seeds)
    if seeds:
        return seeds
    related = maps.get("ancestors") or maps.get("descendants") or {}
    return clean_values(related.keys())


def write_inputs(
    store: CheckpointStore,
    job: Job,
    *,
    batch_size: int,
    in_list_size: int,
    lineage: Mapping[str, Any] | None = None,
) -> int:
    """Write what ``job``'s first stage reads; returns the number of lots its events stage
    will read (0 for jobs that find them later). ``lineage`` is an inline lineage map."""
    request = job.request
    kind = request.job_kind
    if kind == LINEAGE:
        _write_seeds(store, job.id, request.container_ids, batch_size)
        return 0
    if kind != EVENTS:
        return 0
    if request.expands_lineage:  # its own lineage stage finds the lots from the seeds
        _write_seeds(store, job.id, request.seeds, batch_size)
        return 0
    count = len(request.container_ids)
    source_job = request.lineage_job_id
    # A re-analysis reads its trace's chunks in place (its events are linked already); other
    # jobs copy what they take from an earlier job, so purging that job leaves them whole.
    take = store.link_part if request.events_of else store.copy_part
    if request.container_ids:
        store.write_rows(
            job.id,
            parts.CIDS,
            ("CONTAINERID",),
            ((c,) for c in request.container_ids),
            in_list_size,
        )
    elif source_job:
        count = take(source_job, job.id, parts.CIDS)
    if not request.aggregates:
        return count
    direction = request.direction()
    if source_job:
        if request.seed_container_ids:
            _write_seeds(store, job.id, request.seed_container_ids, batch_size)
        else:
            take(source_job, job.id, parts.SEEDS)
        for key in ("seed_roots", parts.RELATED[direction]):
            take(source_job, job.id, parts.lineage(key))
        if request.events_of:  # the same trace's committed events and analysis queries,
            # read in place; the queries its own prior analyses ran too: an analysis from a
            # lot record asks none, and one after it may need to fold the events
            for domain in job.domains:
                store.link_part(request.events_of, job.id, parts.events(domain))
            store.link_part(
                request.events_of,
                job.id,
                parts.AGGREGATION_QUERIES,
                into=parts.PRIOR_QUERIES,
                then=(parts.PRIOR_QUERIES,),
            )
            _link_lot_record(store, request.events_of, job.id)
        return count
    maps = lineage_maps(lineage or {}, direction)
    _write_seeds(store, job.id, seeds_of(request.seed_container_ids, maps), batch_size)
    for key, value in maps.items():
        store.write_rows(job.id, parts.lineage(key), MAP_COLUMNS, value.items(), batch_size)
    return count


def _write_seeds(store: CheckpointStore, job_id: str, cids: Iterable[str], size: int) -> None:
    store.write_rows(job_id, parts.SEEDS, SEED_COLUMNS, ((c, None, None) for c in cids), size)


def _link_lot_record(store: CheckpointStore, from_job: str, to_job: str) -> None:
    """The trace's lot record, when its analysis kept one (its blob is written last, so with
    the blob the rows were all there): its heads and rows linked, and the blob copied last;
    unless the record or its heads lost batches since (evicted): then the analysis folds the
    events instead, as without a record."""
    meta = store.get_blob(from_job, parts.LOT_RECORD_META)
    if meta is None:
        return
    try:
        store.link_part(from_job, to_job, parts.AGGREGATION_RECORD_HEADS)
        store.link_part(from_job, to_job, parts.AGGREGATION_LOT_RECORD)
    except ChunkLost as lost:
        store.drop_part(to_job, parts.AGGREGATION_RECORD_HEADS)  # both or neither
        log.warning("job %s: the lot record of job %s: %s; not read", to_job, from_job, lost)
        return
    store.put_blob(to_job, parts.LOT_RECORD_META, meta)
