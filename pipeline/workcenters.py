"""Workcenter groups: the process order of the factory and how a workcenter name maps to a group.

This table is the only definition. The Python lookup (``group_of``) and the SQL predicate that picks
a station's rows (``station_filter``) are both generated from it, so they cannot drift apart (the
old system kept a copy of the mapping in a SQL ``CASE`` and the two disagreed).

A name maps to the first group, in process order, that one of its patterns matches as a
case-insensitive substring, unless one of that group's exclusions matches first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pipeline.errors import InvalidInput

#: Sort position of a workcenter that maps to no group.
UNKNOWN_ORDER = 999
#: The usual detection station of the mid-section-defect analysis.
DEFAULT_STATION = "測試"


@dataclass(frozen=True)
class WorkcenterGroup:
    name: str
    order: int
    patterns: tuple[str, ...]
    excludes: tuple[str, ...] = ()


GROUPS: tuple[WorkcenterGroup, ...] = (
    WorkcenterGroup("切割", 0, ("切割",), excludes=("元件切割", "PKG_SAW")),
    WorkcenterGroup("焊接_DB", 1, ("焊接_DB",)),
    WorkcenterGroup("焊接_WB", 2, ("焊接_WB",)),
    WorkcenterGroup("焊接_DW", 3, ("焊接_DW",)),
    WorkcenterGroup("成型", 4, ("成型",)),
    WorkcenterGroup("去膠", 5, ("去膠",)),
    WorkcenterGroup("水吹砂", 6, ("水吹砂",)),
    WorkcenterGroup("電鍍", 7, ("掛鍍", "滾鍍", "條鍍", "電鍍", "補鍍", "TOTAI", "BANDL")),
    WorkcenterGroup("移印", 8, ("移印",)),
    WorkcenterGroup("切彎腳", 9, ("切彎腳",)),
    WorkcenterGroup("元件切割", 10, ("元件切割", "PKG_SAW")),
    WorkcenterGroup("測試", 11, ("TMTT", "測試")),
)
GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPS)
_BY_NAME = {g.name: g for g in GROUPS}


@lru_cache(maxsize=8192)
def group_of(workcenter_name: str | None) -> str | None:
    """The group a workcenter belongs to, or ``None`` when no group claims it."""
    if not workcenter_name:
        return None
    upper = workcenter_name.upper()
    for group in GROUPS:
        if any(x.upper() in upper for x in group.excludes):
            continue
        if any(p.upper() in upper for p in group.patterns):
            return group.name
    return None


def group_order(group_name: str | None) -> int:
    """Process position of a group (0 first); ``UNKNOWN_ORDER`` for an unknown group."""
    group = _BY_NAME.get(group_name or "")
    return group.order if group else UNKNOWN_ORDER


def require_group(name: str, *, field: str = "station") -> WorkcenterGroup:
    """The group called ``name``; ``InvalidInput`` naming the known groups otherwise."""
    group = _BY_NAME.get((name or "").strip())
    if group is None:
        raise InvalidInput(
            f"unknown {field} {name!r}; known workcenter groups: {', '.join(GROUP_NAMES)}",
            field=field,
        )
    return group


def station_filter(column: str, *groups: WorkcenterGroup) -> tuple[str, dict[str, str]]:
    """A SQL predicate true for rows whose ``column`` maps to one of ``groups`` (at least one),
    and its bind values.

    ``column`` is a vetted identifier from our own SQL (never input); the patterns travel as
    ``:name`` binds. Unlike ``group_of`` this does not look at earlier groups' claims; that is the
    same thing as long as no name is claimed by two groups, which the table's exclusions ensure
    (``切割`` excludes ``元件切割``) and a test checks.
    """
    if not groups:
        raise ValueError("station_filter needs at least one group")
    binds: dict[str, str] = {}

    def likes(prefix: str, patterns: tuple[str, ...]) -> str:
        terms = []
        for i, pattern in enumerate(patterns):
            binds[f"{prefix}{i}"] = "%" + like_escape(pattern.upper()) + "%"
            terms.append(f"UPPER({column}) LIKE :{prefix}{i} ESCAPE '\\'")
        return "(" + " OR ".join(terms) + ")"

    predicates = []
    for g, group in enumerate(groups):
        predicate = likes(f"wc{g}_in_", group.patterns)
        if group.excludes:
            predicate += " AND NOT " + likes(f"wc{g}_ex_", group.excludes)
        predicates.append(f"({predicate})")
    return "(" + " OR ".join(predicates) + ")", binds


def like_escape(text: str) -> str:
    """Escape LIKE's wildcards so ``text`` matches literally (with ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
