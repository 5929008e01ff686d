"""Stage 1, seed resolve: what the user typed -> the CONTAINERIDs of LOT containers.

Resolve types (per profile, as in the dashboard's contract):

- ``lot_id`` (lot name), ``work_order`` (GA/GC work orders), ``wafer_lot`` (FIRSTNAME);
- ``serial_number`` (finished serial, else lot name, else wafer lot), ``gd_work_order``,
  ``gd_lot_id`` (rework lots: GD prefix);
- ``container_id`` (raw CONTAINERIDs, any profile);
- mid-section defect: the lots that tracked in at a detection station in a date range
  (``resolve_detection_seeds``).

Values are trimmed, de-duplicated and sent as binds (exact values in IN lists of <= 1000; a value
with ``*`` is a wildcard pattern and gets one LIKE query). Inputs that match nothing come back in
``not_found``; they are not errors.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import domains
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch, clean_values
from pipeline.sources.base import Source
from pipeline.workcenters import DEFAULT_STATION, like_escape, require_group, station_filter

CONTAINER_ID = "container_id"
QUERY_TOOL_TYPES = ("lot_id", "work_order", "wafer_lot")
REVERSE_TYPES = ("serial_number", "gd_work_order", "gd_lot_id")
RESOLVE_TYPES: dict[str, tuple[str, ...]] = {
    domains.QUERY_TOOL: (*QUERY_TOOL_TYPES, CONTAINER_ID),
    domains.QUERY_TOOL_REVERSE: (*REVERSE_TYPES, CONTAINER_ID),
    domains.MID_SECTION_DEFECT: (*QUERY_TOOL_TYPES, *REVERSE_TYPES, CONTAINER_ID),
}
WILDCARD = "*"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    CONTAINER_ID: (Pass("c.CONTAINERID"),),
}
#: Types whose inputs must carry the prefix (a clear error beats a silent "not found").
REQUIRED_PREFIX = {"gd_work_order": "GD", "gd_lot_id": "GD"}


@dataclass(frozen=True)
class Seed:
    """A resolved lot. ``lot_id`` and ``container_name`` are both the lot name (contract)."""

    container_id: str
    container_name: str
    lot_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            "container_id": self.container_id,
            "container_name": self.container_name,
            "lot_id": self.lot_id,
        }


@dataclass
class SeedResolution:
    """Seeds in input order (one per CID), the inputs that matched nothing, and per-input counts."""

    seeds: list[Seed]
    not_found: list[str]
    matches: dict[str, int] = field(default_factory=dict)

    @property
    def container_ids(self) -> list[str]:
        return [s.container_id for s in self.seeds]

    def payload(self) -> dict[str, Any]:
        """The contract's ``seed-resolve`` data."""
        return {
            "stage": "seed-resolve",
            "seeds": [s.as_dict() for s in self.seeds],
            "seed_count": len(self.seeds),
            "seed_container_ids": self.container_ids,
            "not_found": list(self.not_found),
        }


def resolve(
    source: Source,
    profile: str,
    params: Mapping[str, Any],
    *,
    min_prefix: int = 2,
    max_days: int = 730,
) -> SeedResolution:
    """Resolve a seed-resolve request's ``params`` for ``profile`` (the contract's dispatch).

    mid_section_defect without ``resolve_type`` resolves detection lots by station and date range.
    """
    profile = domains.validate_profile(profile)
    if not isinstance(params, Mapping):
        raise InvalidInput("params must be an object", field="params")
    if is_detection(profile, params):
        return SeedResolution(list(detection_seeds(source, params, max_days=max_days)), [])
    resolve_type = params.get("resolve_type") or params.get("input_type")
    _check_type(profile, resolve_type)
    return resolve_seeds(source, str(resolve_type), params.get("values"), min_prefix=min_prefix)


def is_detection(profile: str, params: Mapping[str, Any]) -> bool:
    """Whether a request's seeds are a mid-section-defect detection scope (a station and a
    date range) rather than values to look up."""
    resolve_type = params.get("resolve_type") or params.get("input_type")
    return domains.validate_profile(profile) == domains.MID_SECTION_DEFECT and not resolve_type


def detection_seeds(
    source: Source, params: Mapping[str, Any], *, max_days: int = 730
) -> Iterator[Seed]:
    """The seeds of a detection scope (``resolve_detection_seeds``) as they stream from the
    warehouse, in lot-name order (sorted there), never collected: a date range may hold
    hundreds of thousands of lots. Raises ``InvalidInput`` for bad params before any query."""
    return resolve_detection_seeds(
        source,
        station=params.get("station") or DEFAULT_STATION,
        start_date=params.get("start_date"),
        end_date=params.get("end_date"),
        pj_types=params.get("pj_types"),
        packages=params.get("packages"),
        max_days=max_days,
    )


def resolve_seeds(
    source: Source, resolve_type: str, values: object, *, min_prefix: int = 2
) -> SeedResolution:
    """Resolve ``values`` of one resolve type; ``InvalidInput`` for a bad type or bad values."""
    passes, inputs = _checked_inputs(resolve_type, values, min_prefix)
    found: dict[str, dict[str, str]] = {}  # input -> {cid: name}, kept in the first pass hit
    remaining = list(inputs)
    for lookup in passes:
        if not remaining:
            break
        for value, cid, name in _run_pass(source, lookup, remaining):
            found.setdefault(value, {})[cid] = name
        remaining = [v for v in remaining if v not in found]
    return _assemble(inputs, found)


def check_request(
    profile: str, params: Mapping[str, Any], *, min_prefix: int = 2, max_days: int = 730
) -> None:
    """Every check ``resolve`` makes before its first query, without a source: raises
    ``InvalidInput``/``InvalidProfile`` naming the problem (the API refuses bad input at once)."""
    profile = domains.validate_profile(profile)
    if not isinstance(params, Mapping):
        raise InvalidInput("params must be an object", field="params")
    resolve_type = params.get("resolve_type") or params.get("input_type")
    if profile == domains.MID_SECTION_DEFECT and not resolve_type:
        detection_scope(
            params.get("station") or DEFAULT_STATION,
            params.get("start_date"),
            params.get("end_date"),
            max_days=max_days,
        )
        _optional_set(params.get("pj_types"), "pj_types")
        _optional_set(params.get("packages"), "packages")
        return
    _check_type(profile, resolve_type)
    _checked_inputs(str(resolve_type), params.get("values"), min_prefix)


def _check_type(profile: str, resolve_type: object) -> None:
    allowed = RESOLVE_TYPES[profile]
    if resolve_type not in allowed:
        raise InvalidInput(
            f"resolve_type {resolve_type!r} is not valid for {profile}; "
            f"expected one of {', '.join(allowed)}",
            field="resolve_type",
        )


def _checked_inputs(
    resolve_type: str, values: object, min_prefix: int
) -> tuple[Sequence[Pass], list[str]]:
    passes = PASSES.get(resolve_type)
    if passes is None:
        raise InvalidInput(
            f"unknown resolve_type {resolve_type!r}; expected one of {', '.join(PASSES)}",
            field="resolve_type",
        )
    inputs = _clean_inputs(values)
    required = REQUIRED_PREFIX.get(resolve_type)
    for value in inputs:
        if required and not value.upper().startswith(required):
            raise InvalidInput(
                f"{resolve_type} values must start with {required}: {value!r}", field="values"
            )
        if resolve_type == "work_order" and value.upper().startswith("GD"):
            raise InvalidInput(
                f"GD work orders are rework orders; use gd_work_order: {value!r}", field="values"
            )
        literal = value.split(WILDCARD, 1)[0]
        if WILDCARD in value and len(literal) < min_prefix:
            raise InvalidInput(
                f"a wildcard value needs at least {min_prefix} characters before '*': {value!r}",
                field="values",
            )
    return passes, inputs


def _clean_inputs(values: object) -> list[str]:
    if values is None:
        raise InvalidInput("values is missing", field="values")
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput("values must be a list of strings", field="values")
    cleaned = clean_values(values)
    if not cleaned:
        raise InvalidInput("values is empty", field="values")
    return cleaned


def _run_pass(
    source: Source, lookup: Pass, inputs: Sequence[str]
) -> Iterator[tuple[str, str, str]]:
    """``(input, cid, name)`` for every match of ``inputs`` in one pass."""
    exact: dict[str, str] = {}  # compared value -> input
    patterns: list[str] = []
    for value in inputs:
        compared = value.upper() if lookup.upper else value
        if lookup.prefixes and not compared.startswith(lookup.prefixes):
            continue
        if WILDCARD in compared:
            patterns.append(value)
        else:
            exact.setdefault(compared, value)
    fragments = {"column": lookup.column}
    if exact:
        batches = source.query_in(lookup.queries[0], "values", list(exact), fragments=fragments)
        for cid, name, matched in _rows(batches):
            if matched in exact:
                yield exact[matched], cid, name
    for value in patterns:
        compared = value.upper() if lookup.upper else value
        pattern = "%".join(like_escape(part) for part in compared.split(WILDCARD))
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


# ---- mid-section defect: detection lots ---------------------------------------------------


@dataclass(frozen=True)
class DetectionScope:
    """Which detection rows a mid-section-defect trace looks at: a station and either a date
    window (``start_date`` <= track-in < ``end_date``, end exclusive) or a list of lots."""

    station: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None  # exclusive
    container_ids: tuple[str, ...] = ()

    def lots_query(self, source: Source) -> Iterator[RowBatch]:
        """Detection lots (one row per lot) in this scope."""
        group = require_group(self.station)
        predicate, binds = station_filter("h.WORKCENTERNAME", group)
        if self.container_ids:
            return source.query_in(
                "msd/detection_lots",
                "cids",
                self.container_ids,
                binds,
                fragments={"station_filter": predicate, "scope": "h.CONTAINERID IN (:cids)"},
            )
        return source.query(
            "msd/detection_lots",
            {**binds, "start_date": self.start_date, "end_date": self.end_date},
            fragments={
                "station_filter": predicate,
                "scope": "h.TRACKINTIMESTAMP >= :start_date AND h.TRACKINTIMESTAMP < :end_date",
            },
        )

    def rejects_query(self, source: Source, cids: Iterable[str]) -> Iterator[RowBatch]:
        """Rejects of ``cids`` at the station (per lot and loss reason), within the window."""
        group = require_group(self.station)
        predicate, station_binds = station_filter("r.WORKCENTERNAME", group)
        binds: dict[str, Any] = dict(station_binds)
        window = ""
        if not self.container_ids:
            window = " AND r.TXNDATE >= :start_date AND r.TXNDATE < :end_date"
            binds.update(start_date=self.start_date, end_date=self.end_date)
        return source.query_in(
            "msd/detection_rejects",
            "cids",
            cids,
            binds,
            fragments={"station_filter": predicate, "window": window},
        )


def detection_scope(
    station: object, start_date: object, end_date: object, *, max_days: int = 730
) -> DetectionScope:
    """Validate a station and an inclusive ``YYYY-MM-DD`` date range into a ``DetectionScope``."""
    group = require_group(str(station or DEFAULT_STATION))
    start = _parse_date(start_date, "start_date")
    end = _parse_date(end_date, "end_date")
    if start > end:
        raise InvalidInput("start_date is after end_date", field="start_date")
    if (end - start).days + 1 > max_days:
        raise InvalidInput(f"the date range may span at most {max_days} days", field="end_date")
    return DetectionScope(group.name, start, end + dt.timedelta(days=1))


def resolve_detection_seeds(
    source: Source,
    *,
    station: object,
    start_date: object,
    end_date: object,
    pj_types: object = None,
    packages: object = None,
    max_days: int = 730,
) -> Iterator[Seed]:
    """The lots that tracked in at ``station`` between the dates (inclusive), as seeds in
    lot-name order (``msd/detection_lots`` sorts them), streamed. Checks the params at once.

    ``pj_types`` / ``packages`` (lists) keep only lots of those types / packages.
    """
    scope = detection_scope(station, start_date, end_date, max_days=max_days)
    keep_types = _optional_set(pj_types, "pj_types")
    keep_packages = _optional_set(packages, "packages")
    return _detection_seeds(source, scope, keep_types, keep_packages)


def _detection_seeds(
    source: Source, scope: DetectionScope, keep_types: set[str], keep_packages: set[str]
) -> Iterator[Seed]:
    for batch in scope.lots_query(source):
        cid_at, name_at = batch.index("CONTAINERID"), batch.index("CONTAINERNAME")
        type_at, package_at = batch.index("PJ_TYPE"), batch.index("PRODUCTLINENAME")
        for row in batch.rows:
            if keep_types and row[type_at] not in keep_types:
                continue
            if keep_packages and row[package_at] not in keep_packages:
                continue
            name = row[name_at] or row[cid_at]
            yield Seed(row[cid_at], name, name)


def _parse_date(value: object, name: str) -> dt.date:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required (YYYY-MM-DD)", field=name)
    text = value.strip()
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be YYYY-MM-DD, got {value!r}", field=name) from None


def _optional_set(values: object, name: str) -> set[str]:
    if values is None or values == "":
        return set()
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, Iterable):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    return set(clean_values(values))
