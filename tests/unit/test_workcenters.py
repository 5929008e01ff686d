"""Workcenter groups: one table drives both the Python lookup and the SQL station predicate."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.demo import factory
from pipeline.errors import InvalidInput
from pipeline.workcenters import (
    GROUPS,
    UNKNOWN_ORDER,
    group_of,
    group_order,
    like_escape,
    require_group,
    station_filter,
)

# Written out by hand (not derived from the table) so the test is independent of it.
EXPECTED = {
    "切割": "切割",
    "晶圓切割": "切割",
    "元件切割": "元件切割",
    "PKG_SAW-2": "元件切割",
    "焊接_DB": "焊接_DB",
    "焊接_WB": "焊接_WB",
    "焊接_DW": "焊接_DW",
    "成型": "成型",
    "去膠": "去膠",
    "水吹砂": "水吹砂",
    "電鍍": "電鍍",
    "滾鍍": "電鍍",
    "掛鍍線": "電鍍",
    "totai-1": "電鍍",
    "移印": "移印",
    "切彎腳": "切彎腳",
    "TMTT": "測試",
    "tmtt-2": "測試",
    "測試": "測試",
    "倉庫": None,
    "": None,
}


@pytest.mark.parametrize(("name", "group"), sorted(EXPECTED.items()))
def test_names_map_to_groups_by_case_insensitive_substring(name: str, group: str | None) -> None:
    assert group_of(name) == group


def test_groups_are_in_process_order_and_unknown_sorts_last() -> None:
    assert [g.order for g in GROUPS] == sorted(g.order for g in GROUPS)
    assert group_order("切割") < group_order("成型") < group_order("測試")
    assert group_order(None) == group_order("no such group") == UNKNOWN_ORDER


def test_every_workcenter_of_the_demo_route_has_a_group() -> None:
    assert all(group_of(step.workcenter) for step in factory.ROUTE)


def test_no_name_is_claimed_by_two_groups() -> None:
    # Given every pattern of every group as a candidate name
    candidates = {p for g in GROUPS for p in (*g.patterns, *g.excludes)}
    for name in candidates:
        claims = [
            g.name
            for g in GROUPS
            if any(p.upper() in name.upper() for p in g.patterns)
            and not any(x.upper() in name.upper() for x in g.excludes)
        ]
        # Then at most one group claims it (so the SQL predicate agrees with group_of)
        assert len(claims) <= 1, (name, claims)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_the_sql_station_filter_selects_exactly_the_names_of_its_group(group) -> None:
    # Given a table of workcenter names
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA case_sensitive_like = ON")
    conn.execute("CREATE TABLE h (WORKCENTERNAME TEXT)")
    names = [*sorted(n for n in EXPECTED if n), "焊接XDB", "50%", "a_b"]
    conn.executemany("INSERT INTO h VALUES (?)", [(n,) for n in names])
    # When the group's predicate filters it
    predicate, binds = station_filter("h.WORKCENTERNAME", group)
    got = {r[0] for r in conn.execute(f"SELECT WORKCENTERNAME FROM h WHERE {predicate}", binds)}
    # Then it keeps exactly the names group_of maps there ('_' is no wildcard: 焊接XDB is out)
    assert got == {n for n in names if group_of(n) == group.name}


def test_like_escape_makes_wildcards_literal() -> None:
    assert like_escape("a_b%c\\d") == "a\\_b\\%c\\\\d"


def test_unknown_station_names_the_known_groups() -> None:
    with pytest.raises(InvalidInput, match="known workcenter groups: 切割, 焊接_DB"):
        require_group("TEST'; DROP TABLE x; --")


def test_the_filter_of_several_groups_selects_the_names_of_any_of_them() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE h (WORKCENTERNAME TEXT)")
    conn.executemany("INSERT INTO h VALUES (?)", [(n,) for n in EXPECTED if n])
    groups = [require_group("切割"), require_group("測試")]
    predicate, binds = station_filter("h.WORKCENTERNAME", *groups)
    got = {r[0] for r in conn.execute(f"SELECT WORKCENTERNAME FROM h WHERE {predicate}", binds)}
    # 元件切割 stays out: the exclusions of 切割 hold inside the OR
    assert got == {n for n in EXPECTED if group_of(n) in ("切割", "測試")}
    assert "元件切割" not in got and "TMTT" in got
