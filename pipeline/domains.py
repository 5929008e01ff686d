"""The contract's vocabulary: profiles, event domains, lineage directions, resolve types.

Each is a ``Literal`` type, stated once here: the request models (``pipeline.request``) validate
with it, the OpenAPI document lists its values as a named schema, and the tuples below are its
values for code that iterates them.
"""

from __future__ import annotations

from typing import Literal, get_args

from typing_extensions import TypeAliasType

Profile = TypeAliasType(
    "Profile", Literal["query_tool", "query_tool_reverse", "mid_section_defect"]
)
Domain = TypeAliasType(
    "Domain",
    Literal[
        "history",
        "materials",
        "rejects",
        "holds",
        "jobs",
        "upstream_history",
        "downstream_rejects",
    ],
)
Direction = TypeAliasType("Direction", Literal["backward", "forward"])
ResolveType = TypeAliasType(
    "ResolveType",
    Literal[
        "lot_id",
        "work_order",
        "wafer_lot",
        "serial_number",
        "gd_work_order",
        "gd_lot_id",
        "container_id",
    ],
)

PROFILES: tuple[str, ...] = get_args(Profile.__value__)
DOMAINS: tuple[str, ...] = get_args(Domain.__value__)
DIRECTIONS: tuple[str, ...] = get_args(Direction.__value__)
RESOLVE_TYPE_NAMES: tuple[str, ...] = get_args(ResolveType.__value__)

QUERY_TOOL = "query_tool"
QUERY_TOOL_REVERSE = "query_tool_reverse"
MID_SECTION_DEFECT = "mid_section_defect"

HISTORY = "history"
MATERIALS = "materials"
REJECTS = "rejects"
HOLDS = "holds"
JOBS = "jobs"
UPSTREAM_HISTORY = "upstream_history"
DOWNSTREAM_REJECTS = "downstream_rejects"

BACKWARD = "backward"
FORWARD = "forward"

#: The domain sets the dashboard asks for.
QUERY_TOOL_DOMAINS = (HISTORY, MATERIALS, REJECTS, HOLDS, JOBS)
MSD_DOMAINS = {
    BACKWARD: (UPSTREAM_HISTORY, MATERIALS),
    FORWARD: (UPSTREAM_HISTORY, DOWNSTREAM_REJECTS),
}

#: Lineage direction when a request names none.
DEFAULT_DIRECTION = {
    QUERY_TOOL: FORWARD,
    QUERY_TOOL_REVERSE: BACKWARD,
    MID_SECTION_DEFECT: BACKWARD,
}

#: The profiles whose lineage is drawn as a tree (the query tool's): their graphs also link each
#: lot to its wafer lot's container and each GD rework lot to the lot it reworks.
TREE_PROFILES = (QUERY_TOOL, QUERY_TOOL_REVERSE)

#: What a seed value may be, per profile: query_tool names lots, work orders and wafer lots;
#: query_tool_reverse serials and GD (rework) orders and lots; the analysis any of them; every
#: profile raw container ids.
_QUERY_TOOL_TYPES = ("lot_id", "work_order", "wafer_lot")
_REVERSE_TYPES = ("serial_number", "gd_work_order", "gd_lot_id")
RESOLVE_TYPES: dict[str, tuple[str, ...]] = {
    QUERY_TOOL: (*_QUERY_TOOL_TYPES, "container_id"),
    QUERY_TOOL_REVERSE: (*_REVERSE_TYPES, "container_id"),
    MID_SECTION_DEFECT: (*_QUERY_TOOL_TYPES, *_REVERSE_TYPES, "container_id"),
}


def default_domains(profile: str, direction: str) -> tuple[str, ...]:
    """The domains the dashboard asks for when a request names none."""
    if profile == MID_SECTION_DEFECT:
        return MSD_DOMAINS[direction]
    return QUERY_TOOL_DOMAINS
