"""Stage 1, seed resolve: what the user typed -> the CONTAINERIDs of LOT containers.

Resolve types (per profile, ``pipeline.domains.RESOLVE_TYPES``):

- ``lot_id`` (lot name), ``work_order`` (GA/GC work orders), ``wafer_lot`` (FIRSTNAME);
- ``serial_number`` (finished serial, else lot name, else wafer lot), ``gd_work_order``,
  ``gd_lot_id`` (rework lots: GD prefix);
- ``container_id`` (raw CONTAINERIDs, any profile);
- mid-section defect: the lots that tracked in at one of the detection stations in a date range
  (``pipeline.stages.msd.scope.detection_seeds``), or in container mode the containers of the
  values (six types; ``%`` is a wildcard like ``*``) that were detected at one of the stations
  on any day (``resolve_detected``: none at all is ``NoDetectionRecords``, 404).

The params come checked (``pipeline.params``: a type the profile knows, values cleaned and of
their type's form). Values are sent as binds (exact values in IN lists of <= 1000; a value with
``*`` is a wildcard pattern and gets one LIKE query). Inputs that match nothing come back in
``not_found``; they are not errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.domains import RESOLVE_TYPE_NAMES
from pipeline.errors import NoDetectionRecords
from pipeline.params import CONTAINER, CONTAINER_WILDCARDS, WILDCARD, TraceParams
from pipeline.rows import RowBatch
from pipeline.sources.base import Source
from pipeline.stages.msd.scope import DetectionScope, detection_seeds
from pipeline.stages.seeds import Seed, SeedResolution
from pipeline.workcenters import like_escape

__all__ = ["PASSES", "Seed", "SeedResolution", "resolve", "resolve_seeds"]


@dataclass(frozen=True)
class Pass:
    """One lookup: a query pair (exact / wildcard) over one column, with its input rules."""

    column: str  # vetted identifier, spliced into seeds/*.sql
    queries: tuple[str, str] = ("seeds/containers_in", "seeds/containers_like")
    upper: bool = False  # compare upper-cased (work orders are stored upper case)
    prefixes: tuple[str, ...] = ()  # values must start with one of these to match anything


_NAME = Pass("c.CONTAINERNAME")
_WAFER = Pass("c.FIRSTNAME")
_SERIAL = Pass("m.FINISHEDNAME", queries=("seeds/serials_in", "seeds/serials_like"))
PASSES: dict[str, tuple[Pass, ...]] = {
    "lot_id": (_NAME,),
    "wafer_lot": (_WAFER,),
    "work_order": (Pass("c.MFGORDERNAME", upper=True, prefixes=("GA", "GC")),),
    "gd_work_order": (Pass("c.MFGORDERNAME", upper=True, prefixes=("GD",)),),
    "gd_lot_id": (Pass("c.CONTAINERNAME", upper=True, prefixes=("GD",)),),
    # A serial may also be typed as the lot name or the wafer lot: best match wins per input.
    "serial_number": (_SERIAL, _NAME, _WAFER),
    "container_id": (Pass("c.CONTAINERID"),),
}
assert set(PASSES) == set(RESOLVE_TYPE_NAMES), "a pass per resolve type of the contract"


def resolve(source: Source, profile: str, params: TraceParams) -> SeedResolution:
    """Resolve a seed-resolve request's checked ``params`` for ``profile`` (the contract's
    dispatch): names of a resolve type, or (mid_section_defect) the detection lots by station
    and date range, collected, or the named containers detected at the stations."""
    if params.detects(profile):
        return SeedResolution(list(detection_seeds(source, params)), [])
    assert params.resolve_type is not None and params.values is not None  # checked
    if params.seed_mode(profile) == CONTAINER:
        return resolve_detected(source, params)
    return resolve_seeds(source, params.resolve_type, params.values)


def resolve_seeds(
    source: Source, resolve_type: str, values: Sequence[str], wildcards: str = WILDCARD
) -> SeedResolution:
    """Resolve cleaned ``values`` of one resolve type, each pass looking up what the passes
    before it did not find; a value with one of ``wildcards`` is a pattern."""
    return _assemble(values, _lookup(source, resolve_type, values, wildcards))


def resolve_detected(source: Source, params: TraceParams) -> SeedResolution:
    """Container mode: the containers the checked ``params.values`` name (``%`` and ``*`` are
    wildcards) that tracked in at one of ``params.stations`` on any day. ``not_found``: the
    values that match nothing or whose containers never reached a station. Raises
    ``NoDetectionRecords`` when no container was detected at all."""
    assert params.resolve_type is not None and params.values is not None  # checked
    found = _lookup(source, params.resolve_type, params.values, CONTAINER_WILDCARDS)
    cids = tuple(dict.fromkeys(cid for hits in found.values() for cid in hits))
    detected: set[str] = set()
    if cids:
        for batch in DetectionScope(params.stations, container_ids=cids).lots_query(source):
            cid_at = batch.index("CONTAINERID")
            detected.update(row[cid_at] for row in batch.rows)
    kept = {v: {c: n for c, n in hits.items() if c in detected} for v, hits in found.items()}
    resolution = _assemble(params.values, kept)
    if not resolution.seeds:
        raise NoDetectionRecords(
            f"no container of the {params.resolve_type} values given was detected at "
            f"{', '.join(params.stations)} (none tracked in there, on any day): check the values "
            "or choose another detection station",
            field="params.values",
        )
    return resolution


def _lookup(
    source: Source, resolve_type: str, values: Sequence[str], wildcards: str
) -> dict[str, dict[str, str]]:
    """input -> {cid: name} of every input some pass matched (kept in the first pass hit)."""
    found: dict[str, dict[str, str]] = {}
    remaining = list(values)
    for lookup in PASSES[resolve_type]:
        if not remaining:
            break
        for value, cid, name in _run_pass(source, lookup, remaining, wildcards):
            found.setdefault(value, {})[cid] = name
        remaining = [v for v in remaining if v not in found]
    return found


def _run_pass(
    source: Source, lookup: Pass, inputs: Sequence[str], wildcards: str
) -> Iterator[tuple[str, str, str]]:
    """``(input, cid, name)`` for every match of ``inputs`` in one pass."""
    exact: dict[str, str] = {}  # compared value -> input
    patterns: list[str] = []
    for value in inputs:
        compared = value.upper() if lookup.upper else value
        if lookup.prefixes and not compared.startswith(lookup.prefixes):
            continue
        if any(w in compared for w in wildcards):
            patterns.append(value)
        else:
            exact.setdefault(compared, value)
    fragments = {"column": lookup.column}
    if exact:
        batches = source.query_in(lookup.queries[0], "values", list(exact), fragments=fragments)
        for cid, name, matched in _rows(batches):
            if matched in exact:
                yield exact[matched], cid, name
    split = re.compile("[" + re.escape(wildcards) + "]")
    for value in patterns:
        compared = value.upper() if lookup.upper else value
        pattern = "%".join(like_escape(part) for part in split.split(compared))
        batches = source.query(lookup.queries[1], {"pattern": pattern}, fragments=fragments)
        for cid, name, _ in _rows(batches):
            yield value, cid, name


def _rows(batches: Iterable[RowBatch]) -> Iterator[tuple[str, str, Any]]:
    for batch in batches:
        yield from batch.rows


def _assemble(inputs: Sequence[str], found: Mapping[str, Mapping[str, str]]) -> SeedResolution:
    seeds: list[Seed] = []
    seen: set[str] = set()
    matches: dict[str, int] = {}
    for value in inputs:
        hits = found.get(value, {})
        matches[value] = len(hits)
        for cid, name in sorted(hits.items(), key=lambda item: (item[1] or "", item[0])):
            if cid not in seen:
                seen.add(cid)
                label = name or value or cid
                seeds.append(Seed(cid, label, label))
    not_found = [v for v in inputs if not found.get(v)]
    return SeedResolution(seeds=seeds, not_found=not_found, matches=matches)
