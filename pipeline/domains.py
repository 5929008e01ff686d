"""Profiles and event domains of the dashboard's contract, and their validation."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.errors import InvalidInput, InvalidProfile

QUERY_TOOL = "query_tool"
QUERY_TOOL_REVERSE = "query_tool_reverse"
MID_SECTION_DEFECT = "mid_section_defect"
PROFILES: tuple[str, ...] = (QUERY_TOOL, QUERY_TOOL_REVERSE, MID_SECTION_DEFECT)

HISTORY = "history"
MATERIALS = "materials"
REJECTS = "rejects"
HOLDS = "holds"
JOBS = "jobs"
UPSTREAM_HISTORY = "upstream_history"
DOWNSTREAM_REJECTS = "downstream_rejects"
DOMAINS: tuple[str, ...] = (
    HISTORY,
    MATERIALS,
    REJECTS,
    HOLDS,
    JOBS,
    UPSTREAM_HISTORY,
    DOWNSTREAM_REJECTS,
)

BACKWARD = "backward"
FORWARD = "forward"
DIRECTIONS: tuple[str, ...] = (BACKWARD, FORWARD)

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


def validate_profile(profile: object) -> str:
    """The profile itself, or ``InvalidProfile`` naming the valid ones."""
    if profile not in PROFILES:
        raise InvalidProfile(
            f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}", field="profile"
        )
    return str(profile)


def validate_domains(domains: object) -> tuple[str, ...]:
    """Requested domains, de-duplicated in request order; ``InvalidInput`` names unknown ones."""
    if isinstance(domains, str) or not isinstance(domains, Iterable):
        raise InvalidInput("domains must be a list of domain names", field="domains")
    names = list(domains)
    if not all(isinstance(d, str) for d in names):
        raise InvalidInput("domains must be a list of domain names", field="domains")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise InvalidInput("domains is empty", field="domains")
    unknown = [d for d in wanted if d not in DOMAINS]
    if unknown:
        raise InvalidInput("unsupported domains: " + ", ".join(map(str, unknown)), field="domains")
    return tuple(wanted)


def validate_direction(direction: object, profile: str) -> str:
    """The lineage direction, defaulting by profile."""
    if direction is None or direction == "":
        return DEFAULT_DIRECTION[profile]
    if direction not in DIRECTIONS:
        raise InvalidInput(
            f"direction must be backward or forward, got {direction!r}", field="direction"
        )
    return str(direction)
