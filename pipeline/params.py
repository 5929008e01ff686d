"""The ``params`` object every stage is given, as one typed model, and the rules it must meet.

The dashboard sends one ``params`` object unchanged to seed-resolve, lineage and events: seeds by
name (``resolve_type`` + ``values``), or for the mid-section-defect analysis a detection window
(``station``, ``start_date``, ``end_date``) or the containers named that were detected at the
stations (``mode: "container"``); the analysis's masks (``loss_reasons``, ``pj_types``,
``packages``: read-time masks, never part of the seeds) and the lineage ``direction``.
``TraceParams`` states its shape once: it validates the input, the OpenAPI document is generated
from it, and the stages read its typed fields.

The rules that need more than one field or a setting (a resolve type the profile knows, GD values,
a window within ``TRACE_MSD_MAX_DAYS``, a wildcard's prefix) are functions here, raising
``InvalidInput`` with the path of the field at fault (``params.values``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from pipeline import domains
from pipeline.domains import Direction, ResolveType
from pipeline.errors import InvalidInput
from pipeline.rows import clean_values
from pipeline.workcenters import DEFAULT_STATION, GROUP_NAMES, group_order

#: A seed value with this character is a pattern (``GA2310*``), matched with LIKE.
WILDCARD = "*"
#: The wildcards of container mode: the dashboard turns the user's ``*`` into ``%``.
CONTAINER_WILDCARDS = "*%"
#: How a mid-section-defect request names its seeds (``TraceParams.seed_mode``).
DATE_RANGE, CONTAINER, NAMES = "date_range", "container", "names"
SeedMode = TypeAliasType("SeedMode", Literal["container", "date_range"])
#: The resolve types of container mode (the dashboard's six).
CONTAINER_TYPES = (
    "lot_id",
    "work_order",
    "wafer_lot",
    "serial_number",
    "gd_work_order",
    "gd_lot_id",
)
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_ISO_DATE = re.compile(ISO_DATE)
#: The analysis's read-time masks: never part of the seeds, nor of their identity.
MASKS = ("loss_reasons", "pj_types", "packages")
#: Hex digits of a seed request's ``cache_key`` after ``seed-``.
SEED_KEY_HEX = 16
#: What a ``cache_key`` looks like (the answer's schema).
SEED_KEY = f"^seed-[0-9a-f]{{{SEED_KEY_HEX}}}$"
#: Resolve types whose values must carry this prefix (a clear error beats a silent "not found").
REQUIRED_PREFIX = {"gd_work_order": "GD", "gd_lot_id": "GD"}


def _blank_is_none(value: Any) -> Any:
    """An empty string means "not given" (forms send ``""`` for an unset choice)."""
    return None if isinstance(value, str) and not value.strip() else value


def _cleaned(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(clean_values(values))


def _names(value: Any) -> Any:
    """A list of names, or one comma-separated string of them (the dashboard sends both)."""
    if value is None:
        return ()
    return value.split(",") if isinstance(value, str) else value


def _iso_date(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise PydanticCustomError("iso_date", "must be a date as YYYY-MM-DD")
    return value.strip()


def _station(name: str) -> str:
    if name not in GROUP_NAMES:
        raise PydanticCustomError(
            "station", "unknown workcenter group; known: {known}", {"known": ", ".join(GROUP_NAMES)}
        )
    return name


def _split_stations(value: Any) -> Any:
    """Station names from one comma-joined string (each trimmed, blanks dropped: what the
    dashboard sends) or a JSON list of exact names; ``None``: none (the default station)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    return value


def _in_process_order(names: tuple[str, ...]) -> tuple[str, ...]:
    """Each group once, in process order: the canonical order of a station list."""
    return tuple(sorted(set(names), key=group_order))


#: Names typed by a user: trimmed, blanks and repeats dropped, order kept.
Names = Annotated[tuple[str, ...], AfterValidator(_cleaned)]
#: Names given as a list or as one comma-separated string.
NameList = Annotated[
    tuple[str, ...],
    BeforeValidator(_names, json_schema_input_type=list[str] | str | None),
    AfterValidator(_cleaned),
]
IsoDate = Annotated[
    dt.date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": ISO_DATE}),
]
Station = TypeAliasType(
    "Station",
    Annotated[
        str,
        AfterValidator(_station),
        WithJsonSchema(
            {
                "type": "string",
                "enum": list(GROUP_NAMES),
                "description": "A workcenter group (the detection station).",
            }
        ),
    ],
)
NoneIfBlank = BeforeValidator(_blank_is_none)
#: Python's whitespace (``str.strip``), spelled out: a JSON Schema's ``\s`` differs from it.
WHITESPACE = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0"
    r"\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_STATION_ITEM = (
    f"[{WHITESPACE}]*(?:(?:{'|'.join(re.escape(n) for n in GROUP_NAMES)})[{WHITESPACE}]*)?"
)
#: The comma-joined form: group names, each with whitespace around it or none, blanks allowed.
STATION_LIST = f"^{_STATION_ITEM}(?:,{_STATION_ITEM})*$"
#: Detection stations: a comma-joined string or a list of names (``TraceParams.stations``).
Stations = Annotated[
    tuple[Station, ...],
    BeforeValidator(
        _split_stations,
        json_schema_input_type=list[Station]
        | Annotated[str, StringConstraints(pattern=STATION_LIST)]
        | None,
    ),
    AfterValidator(_in_process_order),
]
#: A blank string, which a choice takes as "not given" (documented so: the fuzzer holds the
#: document to what validation accepts).
Blank = Annotated[str, StringConstraints(pattern=f"^[{WHITESPACE}]*$")]


def none_if_blank(kind: Any) -> BeforeValidator:
    """``NoneIfBlank`` whose documented input is ``kind``, a blank string or null."""
    return BeforeValidator(_blank_is_none, json_schema_input_type=kind | Blank | None)


class TraceParams(BaseModel):
    """What to trace from (seeds by name, or a mid-section-defect detection window) and how (the
    analysis's masks, the lineage direction). Unknown keys are ignored: the dashboard adds some
    of its own (`mode`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mode: Annotated[SeedMode | None, none_if_blank(SeedMode)] = Field(
        None,
        description="mid_section_defect: `container` (the containers `values` name that were "
        "detected at `station`, any day; `%` or `*` is a wildcard) or `date_range` (the "
        "detection lots between the dates; the default without `resolve_type`).",
    )
    resolve_type: Annotated[ResolveType | None, none_if_blank(ResolveType)] = Field(
        None,
        validation_alias=AliasChoices("resolve_type", "input_type"),
        description="What `values` are (valid types depend on the profile). mid_section_defect "
        "without it: the detection lots of `station` between the dates.",
    )
    values: Names | None = Field(
        None,
        description="Names to resolve; `*` makes a value a pattern, after at least "
        "TRACE_RESOLVE_MIN_PREFIX characters; gd_* values start with GD. Blanks and repeats "
        "are dropped.",
    )
    station: Stations = Field(
        (),
        description="The detection stations (workcenter groups), comma-joined or a list "
        f"(default {DEFAULT_STATION}): order and repeats do not matter.",
    )
    start_date: IsoDate | None = Field(None, description="First day of the window (inclusive).")
    end_date: IsoDate | None = Field(
        None,
        description="Last day (inclusive), not before start_date; end_date - start_date at "
        "most TRACE_MSD_MAX_DAYS (730) days.",
    )
    loss_reasons: NameList = Field(
        (), description="Loss reasons counted as defects (default: all); a list or a,b,c."
    )
    pj_types: NameList = Field((), description="Detection lots of these PJ types only.")
    packages: NameList = Field((), description="Detection lots of these packages only.")
    direction: Annotated[Direction | None, none_if_blank(Direction)] = Field(
        None, description="Lineage direction; default forward for query_tool, else backward."
    )

    def direction_for(self, profile: str) -> str:
        """The lineage direction, defaulting by profile."""
        return self.direction or domains.DEFAULT_DIRECTION[profile]

    def seed_mode(self, profile: str) -> str:
        """How the seeds are named: ``date_range`` (a mid-section-defect detection window),
        ``container`` (mid_section_defect: names, kept when detected at the stations) or
        ``names`` (every other profile; and mid_section_defect with a ``resolve_type`` and no
        ``mode``, as the February clients send it)."""
        if profile != domains.MID_SECTION_DEFECT:
            return NAMES
        if self.mode == CONTAINER:
            return CONTAINER
        if self.mode == DATE_RANGE or self.resolve_type is None:
            return DATE_RANGE
        return NAMES

    def detects(self, profile: str) -> bool:
        """Whether the seeds are a mid-section-defect detection window (no names to look up)."""
        return self.seed_mode(profile) == DATE_RANGE

    def wildcards(self, profile: str) -> str:
        """The characters that make a value a pattern: ``*``, and ``%`` in container mode."""
        return CONTAINER_WILDCARDS if self.seed_mode(profile) == CONTAINER else WILDCARD

    @property
    def stations(self) -> tuple[str, ...]:
        """The detection stations: validated group names, each once, in process order (the
        canonical order); the default station when none is given."""
        return self.station or (DEFAULT_STATION,)

    def canonical(self) -> dict[str, Any]:
        """The params as JSON values, values sorted, stations in process order and the default
        station left out: equal for requests that ask the same."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        if "values" in data:
            data["values"] = sorted(data["values"])
        if self.stations == (DEFAULT_STATION,):
            data.pop("station", None)
        return data

    def seed_key(self, profile: str) -> str:
        """The seed-resolve answer's ``cache_key``: an opaque, deterministic id of the seed
        request (``profile`` and the canonical params without the read-time masks, so the
        stations in any order and any mask give the same key), ``seed-`` + 16 hex digits."""
        params = {k: v for k, v in self.canonical().items() if k not in MASKS}
        canonical = orjson.dumps(
            {"profile": profile, "params": params}, option=orjson.OPT_SORT_KEYS
        )
        return "seed-" + hashlib.sha256(canonical).hexdigest()[:SEED_KEY_HEX]


# ---- the rules --------------------------------------------------------------------------------
def check_seeds(profile: str, params: TraceParams) -> None:
    """The seeds of a seed-resolve or a whole trace: names of a type the profile knows, or (the
    analysis) a detection window or containers of the six container types. Raises
    ``InvalidInput`` naming the field."""
    mode = params.seed_mode(profile)
    if mode == DATE_RANGE:
        check_window(params)
        return
    allowed = CONTAINER_TYPES if mode == CONTAINER else domains.RESOLVE_TYPES[profile]
    if params.resolve_type is None:
        raise InvalidInput(
            f"params.resolve_type is required for {profile}"
            f"{' in container mode' if mode == CONTAINER else ''}; expected one of "
            f"{', '.join(allowed)}",
            field="params.resolve_type",
        )
    if params.resolve_type not in allowed:
        raise InvalidInput(
            f"resolve_type {params.resolve_type!r} is not valid for {profile}"
            f"{' in container mode' if mode == CONTAINER else ''}; "
            f"expected one of {', '.join(allowed)}",
            field="params.resolve_type",
        )
    check_values(params.resolve_type, params.values)


def check_values(resolve_type: str, values: tuple[str, ...] | None) -> None:
    """Values to resolve: some, and of the form their type needs."""
    if values is None:
        raise InvalidInput("values is missing", field="params.values")
    if not values:
        raise InvalidInput("values is empty", field="params.values")
    required = REQUIRED_PREFIX.get(resolve_type)
    for value in values:
        if required and not value.upper().startswith(required):
            raise InvalidInput(
                f"{resolve_type} values must start with {required}: {value!r}",
                field="params.values",
            )
        if resolve_type == "work_order" and value.upper().startswith("GD"):
            raise InvalidInput(
                f"GD work orders are rework orders; use gd_work_order: {value!r}",
                field="params.values",
            )


def check_wildcards(values: Iterable[str], min_prefix: int, wildcards: str = WILDCARD) -> None:
    """Each pattern has at least ``min_prefix`` literal characters before its first wildcard
    (one of ``wildcards``; ``TRACE_RESOLVE_MIN_PREFIX``: a bare ``*`` would resolve every lot in
    the warehouse)."""
    for value in values:
        first = min((value.find(w) for w in wildcards if w in value), default=-1)
        if 0 <= first < min_prefix:
            shown = "' or '".join(wildcards)
            raise InvalidInput(
                f"a wildcard value needs at least {min_prefix} characters before '{shown}': "
                f"{value!r}",
                field="params.values",
            )


def check_window(params: TraceParams, max_days: int | None = None) -> None:
    """A detection window: both dates, start <= end, and end - start at most ``max_days`` days
    (``TRACE_MSD_MAX_DAYS``, the old system's rule: 2024-01-01 .. 2025-12-31 is 730 days;
    ``None``: no limit checked)."""
    for name in ("start_date", "end_date"):
        if getattr(params, name) is None:
            raise InvalidInput(f"params.{name} is required (YYYY-MM-DD)", field=f"params.{name}")
    start, end = params.start_date, params.end_date
    assert start is not None and end is not None
    if start > end:
        raise InvalidInput(
            f"params.start_date {start} is after end_date {end}", field="params.start_date"
        )
    if max_days is not None and (end - start).days > max_days:
        raise InvalidInput(
            f"params.end_date: the date range may span at most {max_days} days "
            f"(end_date - start_date is {(end - start).days})",
            field="params.end_date",
        )
