"""The query tool's lineage trees (dashboard-contract.md §3): forward roots are the tops of the
tree, nodes are typed WAFER/GC/GA/GD/LOT/UNKNOWN, wafer_origin and gd_rework_source edges link
wafers and rework lots, and a backward answer always carries ``parent_map``. Expectations come
from direct SQL on the same warehouse."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from pipeline import domains
from pipeline.request import TraceRequest
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.lineage import trace_lineage
from pipeline.stages.lineage_document import payload
from tests.support.warehouse import rework

NODE_TYPES = {"WAFER", "GC", "GA", "GD", "LOT", "UNKNOWN"}


def tree(source: SqliteSource, seeds: list[str], profile: str) -> dict[str, Any]:
    """The lineage document the query tool gets for ``seeds`` (direction by profile)."""
    direction = domains.DEFAULT_DIRECTION[profile]
    return payload(trace_lineage(source, seeds, direction, semantic=True))


def pairs(data: dict[str, Any], edge_type: str) -> set[tuple[str, str]]:
    return {(e["from_cid"], e["to_cid"]) for e in data["edges"] if e["edge_type"] == edge_type}


def test_the_query_tool_goes_forward_and_its_reverse_backward_when_no_params_are_sent() -> None:
    # Given the query tool's lineage bodies: only a profile and container ids
    for profile, direction in (("query_tool", "forward"), ("query_tool_reverse", "backward")):
        body = {"profile": profile, "container_ids": ["a"], "kind": "lineage"}
        # Then the direction is the profile's
        assert TraceRequest.from_dict(body).direction() == direction


def test_forward_roots_are_the_tops_of_the_tree_wafers_included(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a lot that was reworked as a GD lot, and its wafer container
    gd, lot, wafer = rework(db)
    # When the query tool asks for its forward tree
    data = tree(sqlite_source, [lot], "query_tool")
    children = data["children_map"]
    incoming = {child for kids in children.values() for child in kids}
    # Then the roots are exactly the nodes nothing in children_map points to: the wafer, not
    # the seed
    assert data["roots"] == sorted(set(data["nodes"]) - incoming)
    assert wafer in data["roots"] and lot not in data["roots"]
    # And the wafer is a WAFER node, the rework lot a GD node, every type of the contract's list
    types = {node["node_type"] for node in data["nodes"].values()}
    assert data["nodes"][wafer]["node_type"] == "WAFER"
    assert data["nodes"][gd]["node_type"] == "GD"
    assert types <= NODE_TYPES and {"WAFER", "GD"} <= types
    # And the semantic edges are both typed edges and children_map links
    assert (wafer, lot) in pairs(data, "wafer_origin")
    assert (lot, gd) in pairs(data, "gd_rework_source")
    assert lot in children[wafer] and gd in children[lot]
    # And merges stay out of children_map
    in_map = {(p, c) for p, kids in children.items() for c in kids}
    assert not (pairs(data, "merge_source") - pairs(data, "split_from")) & in_map
    assert data["total_nodes"] == len(data["nodes"])


def test_every_wafer_origin_edge_starts_at_the_container_named_by_the_lots_wafer_lot(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    _gd, lot, _wafer = rework(db)
    data = tree(sqlite_source, [lot], "query_tool")
    wafers = dict(
        db.execute(
            "SELECT CONTAINERNAME, CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT'"
        ).fetchall()
    )
    expected = {
        (wafers[node["wafer_lot"]], cid)
        for cid, node in data["nodes"].items()
        if node["wafer_lot"] in wafers and wafers[node["wafer_lot"]] != cid
    }
    assert pairs(data, "wafer_origin") == expected and expected


def test_a_reverse_tree_draws_wafer_and_rework_parents_from_parent_map(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a GD rework lot
    gd, lot, wafer = rework(db)
    # When the reverse query tool asks for its backward tree
    data = tree(sqlite_source, [gd], "query_tool_reverse")
    # Then parent_map names the lot it was reworked from and its wafer
    assert {lot, wafer} <= set(data["parent_map"][gd])
    assert (lot, gd) in pairs(data, "gd_rework_source")
    assert (wafer, gd) in pairs(data, "wafer_origin")
    # And the roots are the seeds; the wafer is an ancestor, and the seed's root
    assert data["roots"] == [gd]
    assert wafer in data["ancestors"][gd]
    wafer_name = data["nodes"][wafer]["container_name"]
    assert data["seed_roots"] == {gd: wafer_name}
    assert data["nodes"][wafer]["node_type"] == "WAFER"
    # And every typed edge is a link of parent_map (child -> parents)
    links = {(p, c) for c, parents in data["parent_map"].items() for p in parents}
    assert {(e["from_cid"], e["to_cid"]) for e in data["edges"]} == links


@pytest.mark.parametrize("semantic", [True, False])
def test_a_backward_answer_always_has_parent_map_even_when_empty(
    sqlite_source: SqliteSource, semantic: bool
) -> None:
    # Given a lot the warehouse does not know: it has no parents
    graph = trace_lineage(sqlite_source, ["ffffffffffffffff"], "backward", semantic=semantic)
    data = payload(graph)
    # Then the reverse tree still finds its map, empty
    assert data["parent_map"] == {}
    assert data["roots"] == ["ffffffffffffffff"]


def test_the_analysis_lineage_links_no_wafers(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given the same rework lot traced for the analysis (no semantic links)
    gd, lot, wafer = rework(db)
    data = payload(trace_lineage(sqlite_source, [gd], "backward"))
    # Then its genealogy is splits and merges only: no wafer node, no semantic edge
    assert wafer not in data["nodes"]
    assert {e["edge_type"] for e in data["edges"]} <= {"split_from", "merge_source"}
    assert lot in data["parent_map"][gd]
