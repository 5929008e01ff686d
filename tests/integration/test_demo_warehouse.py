"""The demo warehouse is deterministic, realistic in shape, and indexed for the trace."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pipeline.demo.generator import MIN_LOTS, generate
from pipeline.demo.info import read_info, read_truth
from pipeline.demo.writer import COLUMNS
from pipeline.errors import InvalidInput
from pipeline.workcenters import group_of
from tests.conftest import WAREHOUSE_LOTS, WAREHOUSE_SEED

# mes-domain.md: the tables and columns the trace reads.
REQUIRED_COLUMNS = {
    "DW_MES_CONTAINER": {
        "CONTAINERID",
        "CONTAINERNAME",
        "OBJECTTYPE",
        "SPLITFROMID",
        "FIRSTNAME",
        "PJ_WORKORDER",
        "PRODUCTNAME",
        "PRODUCTLINENAME",
        "PJ_TYPE",
        "PJ_FUNCTION",
        "PJ_BOP",
    },
    "DW_MES_PJ_COMBINEDASSYLOTS": {"CONTAINERID", "CONTAINERNAME", "LOTID", "FINISHEDNAME"},
    "DW_MES_LOTWIPHISTORY": {
        "CONTAINERID",
        "WORKCENTERNAME",
        "EQUIPMENTID",
        "EQUIPMENTNAME",
        "SPECNAME",
        "TRACKINTIMESTAMP",
        "TRACKOUTTIMESTAMP",
        "TRACKINQTY",
        "TRACKOUTQTY",
        "FINISHEDRUNCARD",
        "PJ_WORKORDER",
    },
    "DW_MES_LOTMATERIALSHISTORY": {
        "CONTAINERID",
        "MATERIALPARTNAME",
        "MATERIALLOTNAME",
        "DESCRIPTION",
        "QTYCONSUMED",
        "WORKCENTERNAME",
        "SPECNAME",
        "EQUIPMENTNAME",
        "TXNDATE",
    },
    "DW_MES_LOTREJECTHISTORY": {
        "CONTAINERID",
        "WORKCENTERNAME",
        "SPECNAME",
        "EQUIPMENTNAME",
        "LOSSREASONNAME",
        "REJECTCOMMENT",
        "REJECTQTY",
        "STANDBYQTY",
        "QTYTOPROCESS",
        "INPROCESSQTY",
        "PROCESSEDQTY",
        "DEFECTQTY",
        "TXNDATE",
    },
    "DW_MES_HOLDRELEASEHISTORY": {
        "CONTAINERID",
        "WORKCENTERNAME",
        "HOLDTXNDATE",
        "HOLDEMP",
        "HOLDEMPDEPTNAME",
        "HOLDREASONNAME",
        "HOLDCOMMENTS",
        "RELEASETXNDATE",
        "RELEASEEMP",
        "RELEASECOMMENTS",
        "NCRID",
    },
    "DW_MES_JOB": {
        "JOBID",
        "RESOURCEID",
        "RESOURCENAME",
        "JOBSTATUS",
        "JOBMODELNAME",
        "JOBORDERNAME",
        "CREATEDATE",
        "COMPLETEDATE",
        "CAUSECODENAME",
        "REPAIRCODENAME",
        "SYMPTOMCODENAME",
        "CONTAINERIDS",
        "CONTAINERNAMES",
    },
}


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in sorted(COLUMNS):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def test_the_tables_have_the_columns_of_the_data_model(db: sqlite3.Connection) -> None:
    for table, required in REQUIRED_COLUMNS.items():
        present = {r[1] for r in db.execute("SELECT * FROM pragma_table_info(?)", (table,))}
        assert required <= present, (table, required - present)


def test_every_id_column_of_the_trace_is_indexed(db: sqlite3.Connection) -> None:
    indexed = {
        (table, column)
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        for (index,) in db.execute("SELECT name FROM pragma_index_list(?)", (table,))
        for (column,) in db.execute("SELECT name FROM pragma_index_info(?)", (index,))
    }
    for table, columns in COLUMNS.items():
        for column in columns:
            if column in {"CONTAINERID", "SPLITFROMID", "LOTID"} and table.startswith("DW_"):
                assert (table, column) in indexed, (table, column)


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path, warehouse: Path) -> None:
    again = tmp_path / "again.db"
    generate(again, lots=WAREHOUSE_LOTS, seed=WAREHOUSE_SEED)
    other = tmp_path / "other.db"
    generate(other, lots=WAREHOUSE_LOTS, seed=WAREHOUSE_SEED + 1)
    assert _digest(again) == _digest(warehouse)
    assert _digest(other) != _digest(warehouse)


def test_the_lot_count_is_exact_and_recorded(db: sqlite3.Connection, warehouse: Path) -> None:
    # (wafer containers are LOTs too, but not lots of the count: their name is their wafer lot)
    (lots,) = db.execute(
        "SELECT COUNT(*) FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
        "AND CONTAINERNAME IS NOT FIRSTNAME"
    ).fetchone()
    assert lots == WAREHOUSE_LOTS
    assert read_info(warehouse)["lots"] == str(WAREHOUSE_LOTS)
    (ids,) = db.execute("SELECT COUNT(DISTINCT CONTAINERID) FROM DW_MES_CONTAINER").fetchone()
    (rows,) = db.execute("SELECT COUNT(*) FROM DW_MES_CONTAINER").fetchone()
    assert ids == rows, "container ids are unique"


def test_lots_split_over_several_levels_and_merge(db: sqlite3.Connection) -> None:
    (depth,) = db.execute("""
        WITH RECURSIVE d(cid, depth) AS (
            SELECT CONTAINERID, 0 FROM DW_MES_CONTAINER WHERE SPLITFROMID IS NULL
            UNION ALL
            SELECT c.CONTAINERID, d.depth + 1 FROM DW_MES_CONTAINER c
            JOIN d ON c.SPLITFROMID = d.cid WHERE d.depth < 10)
        SELECT MAX(depth) FROM d""").fetchone()
    assert depth >= 3
    (merged, sources) = db.execute(
        "SELECT COUNT(DISTINCT LOTID), COUNT(*) FROM DW_MES_PJ_COMBINEDASSYLOTS"
    ).fetchone()
    assert merged > 10 and sources >= 2 * merged
    (gd,) = db.execute(
        "SELECT COUNT(*) FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GD%'"
    ).fetchone()
    assert gd > 0


def test_wafer_lots_are_containers_and_rework_lots_name_their_source(
    db: sqlite3.Connection,
) -> None:
    # Every lot's wafer lot (FIRSTNAME) is a LOT container of that name: the wafer the query
    # tool's tree starts at (its own FIRSTNAME is itself)
    (orphans,) = db.execute("""
        SELECT COUNT(*) FROM DW_MES_CONTAINER c WHERE c.OBJECTTYPE = 'LOT' AND NOT EXISTS (
            SELECT 1 FROM DW_MES_CONTAINER w
            WHERE w.CONTAINERNAME = c.FIRSTNAME AND w.OBJECTTYPE = 'LOT')""").fetchone()
    assert orphans == 0
    (wafers,) = db.execute(
        "SELECT COUNT(*) FROM DW_MES_CONTAINER WHERE CONTAINERNAME = FIRSTNAME"
    ).fetchone()
    assert wafers > 10
    # and every GD rework lot names the lot it was reworked from (ORIGINALCONTAINERID)
    (rework, sourced) = db.execute("""
        SELECT COUNT(*), COUNT(s.CONTAINERID) FROM DW_MES_CONTAINER g
        LEFT JOIN DW_MES_CONTAINER s ON s.CONTAINERID = g.ORIGINALCONTAINERID
        WHERE g.MFGORDERNAME LIKE 'GD%'""").fetchone()
    assert rework > 5 and sourced == rework


def test_lots_walk_the_groups_in_process_order_with_tens_of_steps(db: sqlite3.Connection) -> None:
    (avg_rows,) = db.execute("""
        SELECT AVG(n) FROM (SELECT COUNT(*) n FROM DW_MES_LOTWIPHISTORY GROUP BY CONTAINERID)
    """).fetchone()
    assert avg_rows >= 15
    names = [r[0] for r in db.execute("SELECT DISTINCT WORKCENTERNAME FROM DW_MES_LOTWIPHISTORY")]
    assert all(group_of(n) for n in names)
    # a root lot's history follows the route's group order
    (cid,) = db.execute("""
        SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE SPLITFROMID IS NULL AND OBJECTTYPE='LOT'
        AND MFGORDERNAME IS NOT NULL ORDER BY CONTAINERID LIMIT 1""").fetchone()
    order = [
        group_of(r[0])
        for r in db.execute(
            "SELECT WORKCENTERNAME FROM DW_MES_LOTWIPHISTORY WHERE CONTAINERID = ? "
            "ORDER BY TRACKINTIMESTAMP",
            (cid,),
        )
    ]
    from pipeline.workcenters import group_order

    assert order and [group_order(g) for g in order] == sorted(group_order(g) for g in order)


def test_events_of_every_kind_exist(db: sqlite3.Connection) -> None:
    (open_holds,) = db.execute(
        "SELECT COUNT(*) FROM DW_MES_HOLDRELEASEHISTORY WHERE RELEASETXNDATE IS NULL"
    ).fetchone()
    assert open_holds > 0
    (reasons,) = db.execute(
        "SELECT COUNT(DISTINCT LOSSREASONNAME) FROM DW_MES_LOTREJECTHISTORY"
    ).fetchone()
    assert reasons >= 5
    (materials,) = db.execute("SELECT COUNT(*) FROM DW_MES_LOTMATERIALSHISTORY").fetchone()
    assert materials > 0


def test_jobs_list_lots_that_exist(db: sqlite3.Connection) -> None:
    lots = {r[0] for r in db.execute("SELECT CONTAINERID FROM DW_MES_CONTAINER")}
    listed = [
        cid
        for (ids,) in db.execute("SELECT CONTAINERIDS FROM DW_MES_JOB")
        for cid in ids.split(",")
    ]
    assert listed and set(listed) <= lots


def test_the_planted_truth_is_recorded(warehouse: Path) -> None:
    truth = read_truth(warehouse)
    kinds = [t["KIND"] for t in truth]
    assert kinds.count("bad_machine") == 3
    assert kinds.count("split_cycle") == 3 and kinds.count("merge_cycle") == 2


def test_too_small_a_warehouse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"at least {MIN_LOTS}"):
        generate(tmp_path / "tiny.db", lots=MIN_LOTS - 1, seed=1)
    assert not (tmp_path / "tiny.db").exists()
