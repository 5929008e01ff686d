"""Lineage against an independent computation: a recursive CTE over the same warehouse file."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from pipeline.demo.info import read_truth
from pipeline.errors import InvalidInput
from pipeline.sources.base import Source
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.lineage import trace_lineage
from pipeline.stages.lineage_document import payload

# Every relation, as (child, parent): split parent, and merge source -> combined lot.
EDGES = """
    SELECT CONTAINERID AS child, SPLITFROMID AS parent FROM DW_MES_CONTAINER
    WHERE SPLITFROMID IS NOT NULL AND SPLITFROMID <> CONTAINERID
    UNION
    SELECT LOTID, CONTAINERID FROM DW_MES_PJ_COMBINEDASSYLOTS WHERE LOTID <> CONTAINERID
"""


def expected_relatives(
    db: sqlite3.Connection, seeds: list[str], direction: str, max_depth: int = 20
) -> dict[str, set[str]]:
    """Per seed, every node reachable within ``max_depth`` hops (the seed itself excluded)."""
    db.execute("DROP TABLE IF EXISTS temp.edges")
    db.execute(f"CREATE TEMP TABLE edges AS {EDGES}")
    db.execute("CREATE INDEX temp.edges_child ON edges(child)")
    db.execute("CREATE INDEX temp.edges_parent ON edges(parent)")
    db.execute("DROP TABLE IF EXISTS temp.seeds")
    db.execute("CREATE TEMP TABLE seeds (cid TEXT)")
    db.executemany("INSERT INTO seeds VALUES (?)", [(s,) for s in seeds])
    near, far = ("child", "parent") if direction == "backward" else ("parent", "child")
    rows = db.execute(
        f"""
        WITH RECURSIVE walk(seed, cid, depth) AS (
            SELECT cid, cid, 0 FROM seeds
            UNION
            SELECT w.seed, e.{far}, w.depth + 1
            FROM walk w JOIN edges e ON e.{near} = w.cid
            WHERE w.depth < ?
        )
        SELECT DISTINCT seed, cid FROM walk WHERE cid <> seed
    """,
        (max_depth,),
    )
    result: dict[str, set[str]] = {s: set() for s in seeds}
    for seed, cid in rows:
        result[seed].add(cid)
    return result


@pytest.fixture(scope="module")
def seeds(warehouse: Path) -> list[str]:
    """Hundreds of seeds: random lots, every combined lot and merge source, the planted cycles."""
    with sqlite3.connect(warehouse) as conn:
        lots = [
            r[0]
            for r in conn.execute(
                "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' "
                "ORDER BY CONTAINERID"
            )
        ]
        merged = [
            r[0]
            for r in conn.execute(
                "SELECT LOTID FROM DW_MES_PJ_COMBINEDASSYLOTS UNION "
                "SELECT CONTAINERID FROM DW_MES_PJ_COMBINEDASSYLOTS"
            )
        ]
    cycles = [t["CONTAINERID"] for t in read_truth(warehouse) if t["CONTAINERID"]]
    chosen = random.Random(5).sample(lots, 300) + sorted(merged)[:200] + cycles
    return list(dict.fromkeys(chosen))


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_relatives_match_a_recursive_cte_for_hundreds_of_seeds(
    sqlite_source: SqliteSource, db: sqlite3.Connection, seeds: list[str], direction: str
) -> None:
    # Given hundreds of seeds, including merges and the planted cycles
    assert len(seeds) > 400
    # When the lineage stage walks them
    graph = trace_lineage(sqlite_source, seeds, direction)
    # Then every seed's relatives equal the recursive CTE's, exactly
    expected = expected_relatives(db, seeds, direction)
    mismatched = [s for s in seeds if set(graph.related(s)) != expected[s]]
    assert not mismatched, mismatched[:5]
    assert any(expected[s] for s in seeds)
    document = payload(graph)
    key = "ancestors" if direction == "backward" else "descendants"
    assert {s: set(v) for s, v in document[key].items()} == expected


def test_a_small_depth_limit_is_honoured(
    sqlite_source: SqliteSource, db: sqlite3.Connection, seeds: list[str]
) -> None:
    graph = trace_lineage(sqlite_source, seeds, "backward", max_depth=1)
    expected = expected_relatives(db, seeds, "backward", max_depth=1)
    assert {s: set(graph.related(s)) for s in seeds} == expected


def test_cycles_terminate_and_keep_their_edges(
    sqlite_source: SqliteSource, warehouse: Path
) -> None:
    # Given the planted split cycle A<-B, B<-A, C<-A
    a, b, c = (t["CONTAINERID"] for t in read_truth(warehouse) if t["KIND"] == "split_cycle")
    # When tracing from C backward
    data = payload(trace_lineage(sqlite_source, [c], "backward"))
    # Then the cycle is walked once, and both edges of the cycle are kept
    assert data["ancestors"][c] == sorted([a, b])
    assert {(e["from_cid"], e["to_cid"]) for e in data["edges"]} == {(a, c), (b, a), (a, b)}


def test_merge_cycles_terminate(sqlite_source: SqliteSource, warehouse: Path) -> None:
    x, y = (t["CONTAINERID"] for t in read_truth(warehouse) if t["KIND"] == "merge_cycle")
    backward = payload(trace_lineage(sqlite_source, [y], "backward"))
    assert backward["ancestors"][y] == [x]
    assert backward["merge_edges"] == {y: [x]}
    forward = payload(trace_lineage(sqlite_source, [x], "forward"))
    assert forward["descendants"][x] == [y]


def test_backward_payload_has_the_contract_shape(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a combined lot (merge sources) that came from split lots
    target = db.execute(
        "SELECT LOTID FROM DW_MES_PJ_COMBINEDASSYLOTS GROUP BY LOTID "
        "HAVING COUNT(*) >= 2 ORDER BY LOTID LIMIT 1"
    ).fetchone()[0]
    data = payload(trace_lineage(sqlite_source, [target], "backward"))
    assert set(data) >= {
        "stage",
        "ancestors",
        "merges",
        "total_nodes",
        "total_ancestor_count",
        "roots",
        "seed_roots",
        "names",
        "parent_map",
        "merge_edges",
        "nodes",
        "edges",
    }
    assert data["stage"] == "lineage" and data["merges"] == {} and data["roots"] == [target]
    assert data["total_ancestor_count"] == len(data["ancestors"][target])
    assert data["total_nodes"] == len(data["nodes"]) == 1 + data["total_ancestor_count"]
    sources = {
        r[0]
        for r in db.execute(
            "SELECT CONTAINERID FROM DW_MES_PJ_COMBINEDASSYLOTS WHERE LOTID = ?", (target,)
        )
    }
    assert set(data["merge_edges"][target]) == sources
    assert set(data["parent_map"][target]) >= sources
    node = data["nodes"][target]
    assert set(node) == {
        "container_id",
        "container_name",
        "mfgorder_name",
        "wafer_lot",
        "node_type",
    }
    assert node["node_type"] == "GC"
    types = {e["edge_type"] for e in data["edges"]}
    assert "merge_source" in types and "split_from" in types
    root = data["seed_roots"][target]
    assert root in data["names"].values() and root.endswith("-A00-001")


def test_forward_payload_has_the_contract_shape(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    root = db.execute(
        "SELECT SPLITFROMID FROM DW_MES_CONTAINER WHERE SPLITFROMID IS NOT NULL "
        "GROUP BY SPLITFROMID ORDER BY COUNT(*) DESC LIMIT 1"
    ).fetchone()[0]
    data = payload(trace_lineage(sqlite_source, [root], "forward"))
    assert set(data) >= {
        "stage",
        "roots",
        "children_map",
        "leaf_serials",
        "names",
        "total_nodes",
        "nodes",
        "edges",
    }
    assert root in data["roots"]
    children = {
        r[0]
        for r in db.execute(
            "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE SPLITFROMID = ?", (root,)
        )
    }
    assert set(data["children_map"][root]) == children
    # merges go to edges only, never into children_map
    merge_edges = {
        (e["from_cid"], e["to_cid"]) for e in data["edges"] if e["edge_type"] == "merge_source"
    }
    in_map = {(p, c) for p, cs in data["children_map"].items() for c in cs}
    assert not merge_edges & in_map


def test_leaf_serials_name_the_finished_products(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    source_lot, target, serial = db.execute(
        "SELECT CONTAINERID, LOTID, FINISHEDNAME FROM DW_MES_PJ_COMBINEDASSYLOTS "
        "ORDER BY CONTAINERID LIMIT 1"
    ).fetchone()
    data = payload(trace_lineage(sqlite_source, [source_lot], "forward"))
    assert serial in data["leaf_serials"][target]


def test_lookups_are_batched_by_frontier_not_by_lot(warehouse: Path, seeds: list[str]) -> None:
    with SqliteSource(warehouse, in_list_size=1000) as source:
        graph = trace_lineage(source, seeds, "backward")
        # one container and one merge lookup per level (every level here is < 1000 lots)
        levels = source.queries["lineage/containers"]
        assert source.queries["lineage/merge_sources"] == levels
        assert 2 <= levels <= graph.max_depth + 1
        assert levels * 2 < graph.node_count() / 50


def test_unknown_ids_become_unknown_nodes_and_quotes_stay_values(source: Source) -> None:
    weird = "x'); DROP TABLE DW_MES_CONTAINER; --"
    data = payload(trace_lineage(source, [weird, "ffffffffffffffff"], "backward"))
    assert data["ancestors"] == {weird: [], "ffffffffffffffff": []}
    assert data["nodes"][weird]["node_type"] == "UNKNOWN"
    assert list(source.query("lineage/containers", {"cids": ["ffffffffffffffff"]})) == []


def test_no_seeds_or_a_bad_direction_are_refused(source: Source) -> None:
    with pytest.raises(InvalidInput, match="container_ids is empty"):
        trace_lineage(source, ["", "  "], "backward")
    with pytest.raises(InvalidInput, match="direction must be"):
        trace_lineage(source, ["a"], "sideways")
