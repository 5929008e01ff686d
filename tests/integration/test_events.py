"""Events: every domain's rows and columns against an independent computation on the same file.

The expectations join a temp table of ids (not IN lists) and derive the contract's columns in
plain Python, so they share nothing with the SQL files or the stage code but the data.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from pipeline.domains import DOMAINS
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch
from pipeline.sources.base import Source
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.events import SPECS, fetch_events, finite_floats
from tests.unit.test_workcenters import EXPECTED as EXPECTED_GROUPS

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
# The demo route's workcenters and their groups, written out by hand (not derived from the code).
GROUP = {name: group for name, group in EXPECTED_GROUPS.items() if group}
ORDER = {
    "切割": 0,
    "焊接_DB": 1,
    "焊接_WB": 2,
    "焊接_DW": 3,
    "成型": 4,
    "去膠": 5,
    "水吹砂": 6,
    "電鍍": 7,
    "移印": 8,
    "切彎腳": 9,
    "元件切割": 10,
    "測試": 11,
}

COLUMNS = {
    "history": (
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
        "CONTAINERNAME",
        "PJ_TYPE",
        "PJ_BOP",
        "WAFER_LOT_ID",
        "PRODUCTLINENAME",
    ),
    "materials": (
        "CONTAINERID",
        "CONTAINERNAME",
        "MATERIALPARTNAME",
        "MATERIALLOTNAME",
        "MATERIALDESCRIPTION",
        "QTYCONSUMED",
        "WORKCENTERNAME",
        "SPECNAME",
        "EQUIPMENTNAME",
        "TXNDATE",
    ),
    "rejects": (
        "CONTAINERID",
        "CONTAINERNAME",
        "WORKCENTERNAME",
        "PRODUCTLINENAME",
        "PJ_FUNCTION",
        "PJ_TYPE",
        "PRODUCTNAME",
        "SPECNAME",
        "LOSSREASONNAME",
        "EQUIPMENTNAME",
        "REJECTCOMMENT",
        "REJECT_QTY",
        "STANDBY_QTY",
        "QTYTOPROCESS_QTY",
        "INPROCESS_QTY",
        "PROCESSED_QTY",
        "REJECT_TOTAL_QTY",
        "DEFECT_QTY",
        "TXN_TIME",
        "TXNDATE",
        "TXN_DAY",
        "WORKCENTER_GROUP",
        "WORKCENTERSEQUENCE_GROUP",
    ),
    "holds": (
        "CONTAINERID",
        "CONTAINERNAME",
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
        "HOLD_STATUS",
        "HOLD_HOURS",
    ),
    "jobs": (
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
        "CONTAINERID",
    ),
    "upstream_history": (
        "CONTAINERID",
        "WORKCENTERNAME",
        "EQUIPMENTID",
        "EQUIPMENTNAME",
        "SPECNAME",
        "TRACKINTIMESTAMP",
        "TRACKINQTY",
        "WORKCENTER_GROUP",
    ),
    "downstream_rejects": (
        "CONTAINERID",
        "WORKCENTERNAME",
        "LOSSREASONNAME",
        "EQUIPMENTNAME",
        "REJECT_TOTAL_QTY",
        "TXNDATE",
        "WORKCENTER_GROUP",
    ),
}
TIME_COLUMNS = {
    "TRACKINTIMESTAMP",
    "TRACKOUTTIMESTAMP",
    "TXNDATE",
    "TXN_TIME",
    "TXN_DAY",
    "HOLDTXNDATE",
    "RELEASETXNDATE",
    "CREATEDATE",
    "COMPLETEDATE",
}


@pytest.fixture(scope="module")
def cids(warehouse: Path) -> list[str]:
    """1,200 lots (more than one IN list) and two ids that match nothing."""
    with sqlite3.connect(warehouse) as conn:
        lots = [
            r[0]
            for r in conn.execute(
                "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' ORDER BY 1"
            )
        ]
    return [*random.Random(3).sample(lots, 1200), "ffffffffffffffff", "x'); --"]


def _rows(db: sqlite3.Connection, cids: list[str], sql: str) -> list[dict[str, Any]]:
    db.execute("DROP TABLE IF EXISTS temp.ids")
    db.execute("CREATE TEMP TABLE ids (cid TEXT PRIMARY KEY)")
    db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", [(c,) for c in cids])
    cursor = db.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _na(value: Any, placeholder: str = "(NA)") -> Any:
    return placeholder if value is None else value


def _hours(start: str, end: str) -> float:
    fmt = "%Y-%m-%d %H:%M:%S"
    return round(
        (dt.datetime.strptime(end, fmt) - dt.datetime.strptime(start, fmt)).total_seconds() / 3600,
        2,
    )


def expect_history(db, cids):
    return [
        {
            **{k: r[k] for k in COLUMNS["history"][:11]},
            "CONTAINERNAME": r["NAME"],
            "PJ_TYPE": r["PJ_TYPE"],
            "PJ_BOP": r["PJ_BOP"],
            "WAFER_LOT_ID": r["FIRSTNAME"],
            "PRODUCTLINENAME": r["PRODUCTLINENAME"],
        }
        for r in _rows(
            db,
            cids,
            """
            SELECT h.*, c.CONTAINERNAME AS NAME, c.PJ_TYPE, c.PJ_BOP, c.FIRSTNAME,
                   c.PRODUCTLINENAME
            FROM DW_MES_LOTWIPHISTORY h JOIN ids ON ids.cid = h.CONTAINERID
            LEFT JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID""",
        )
        if r["EQUIPMENTID"] is not None and r["TRACKINTIMESTAMP"] is not None
    ]


def expect_materials(db, cids):
    return [
        {
            "CONTAINERID": r["CONTAINERID"],
            "CONTAINERNAME": r["NAME"],
            "MATERIALPARTNAME": r["MATERIALPARTNAME"],
            "MATERIALLOTNAME": r["MATERIALLOTNAME"],
            "MATERIALDESCRIPTION": r["DESCRIPTION"],
            "QTYCONSUMED": r["QTYCONSUMED"],
            "WORKCENTERNAME": r["WORKCENTERNAME"],
            "SPECNAME": r["SPECNAME"],
            "EQUIPMENTNAME": r["EQUIPMENTNAME"],
            "TXNDATE": r["TXNDATE"],
        }
        for r in _rows(
            db,
            cids,
            """
            SELECT m.*, c.CONTAINERNAME AS NAME FROM DW_MES_LOTMATERIALSHISTORY m
            JOIN ids ON ids.cid = m.CONTAINERID
            LEFT JOIN DW_MES_CONTAINER c ON c.CONTAINERID = m.CONTAINERID""",
        )
    ]


def _qty(r: dict, column: str) -> int:
    return r[column] or 0


def expect_rejects(db, cids):
    out = []
    for r in _rows(
        db,
        cids,
        """
            SELECT r.*, c.CONTAINERNAME AS NAME, c.PRODUCTLINENAME, c.PJ_FUNCTION, c.PJ_TYPE,
                   c.PRODUCTNAME
            FROM DW_MES_LOTREJECTHISTORY r JOIN ids ON ids.cid = r.CONTAINERID
            LEFT JOIN DW_MES_CONTAINER c ON c.CONTAINERID = r.CONTAINERID""",
    ):
        five = sum(
            _qty(r, c)
            for c in ("REJECTQTY", "STANDBYQTY", "QTYTOPROCESS", "INPROCESSQTY", "PROCESSEDQTY")
        )
        group = GROUP.get(r["WORKCENTERNAME"])
        out.append(
            {
                "CONTAINERID": r["CONTAINERID"],
                "CONTAINERNAME": r["NAME"] or r["CONTAINERID"],
                "WORKCENTERNAME": _na(r["WORKCENTERNAME"]),
                "PRODUCTLINENAME": _na(r["PRODUCTLINENAME"]),
                "PJ_FUNCTION": _na(r["PJ_FUNCTION"]),
                "PJ_TYPE": _na(r["PJ_TYPE"]),
                "PRODUCTNAME": _na(r["PRODUCTNAME"]),
                "SPECNAME": r["SPECNAME"],
                "LOSSREASONNAME": _na(r["LOSSREASONNAME"], "(未填寫)"),
                "EQUIPMENTNAME": _na(r["EQUIPMENTNAME"]),
                "REJECTCOMMENT": r["REJECTCOMMENT"],
                "REJECT_QTY": _qty(r, "REJECTQTY"),
                "STANDBY_QTY": _qty(r, "STANDBYQTY"),
                "QTYTOPROCESS_QTY": _qty(r, "QTYTOPROCESS"),
                "INPROCESS_QTY": _qty(r, "INPROCESSQTY"),
                "PROCESSED_QTY": _qty(r, "PROCESSEDQTY"),
                "REJECT_TOTAL_QTY": five,
                "DEFECT_QTY": _qty(r, "DEFECTQTY"),
                "TXN_TIME": r["TXNDATE"],
                "TXNDATE": r["TXNDATE"],
                "TXN_DAY": r["TXNDATE"][:10] + " 00:00:00",
                "WORKCENTER_GROUP": group,
                "WORKCENTERSEQUENCE_GROUP": ORDER.get(group, 999),
            }
        )
    return out


def expect_holds(db, cids):
    out = []
    for r in _rows(
        db,
        cids,
        """
            SELECT h.*, c.CONTAINERNAME AS NAME FROM DW_MES_HOLDRELEASEHISTORY h
            JOIN ids ON ids.cid = h.CONTAINERID
            LEFT JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID""",
    ):
        released = r["RELEASETXNDATE"]
        row = {k: r[k] for k in COLUMNS["holds"][:12] if k != "CONTAINERNAME"}
        row["CONTAINERNAME"] = r["NAME"]
        row["HOLD_STATUS"] = "RELEASED" if released else "HOLD"
        # compared apart, within rounding; an open hold counts to now (moves during the test)
        row["HOLD_HOURS"] = _hours(r["HOLDTXNDATE"], released) if released else "open"
        out.append(row)
    return out


def expect_jobs(db, cids):
    wanted = set(cids)
    out = []
    for r in _rows(db, cids, "SELECT * FROM DW_MES_JOB"):
        for cid in dict.fromkeys(c.strip() for c in r["CONTAINERIDS"].split(",")):
            if cid in wanted:
                out.append({**r, "CONTAINERID": cid})
    return out


def expect_upstream_history(db, cids):
    latest: dict[tuple, dict] = {}
    for r in expect_history(db, cids):
        key = (r["CONTAINERID"], r["WORKCENTERNAME"], r["EQUIPMENTNAME"])
        rank = (r["TRACKINTIMESTAMP"], r["TRACKOUTTIMESTAMP"] or "", _reverse(r["SPECNAME"]))
        if key not in latest or rank > latest[key][0]:
            latest[key] = (rank, r)
    return [
        {
            "CONTAINERID": r["CONTAINERID"],
            "WORKCENTERNAME": r["WORKCENTERNAME"],
            "EQUIPMENTID": r["EQUIPMENTID"],
            "EQUIPMENTNAME": r["EQUIPMENTNAME"],
            "SPECNAME": r["SPECNAME"],
            "TRACKINTIMESTAMP": r["TRACKINTIMESTAMP"],
            "TRACKINQTY": r["TRACKINQTY"] or 0,
            "WORKCENTER_GROUP": GROUP.get(r["WORKCENTERNAME"]),
        }
        for _, r in latest.values()
    ]


def _reverse(text: str) -> tuple[int, ...]:
    """A key that sorts ``text`` descending (the SQL breaks ties by SPECNAME ascending)."""
    return tuple(-ord(ch) for ch in text)


def expect_downstream_rejects(db, cids):
    return [
        {
            "CONTAINERID": r["CONTAINERID"],
            "WORKCENTERNAME": r["WORKCENTERNAME"],
            "LOSSREASONNAME": r["LOSSREASONNAME"],
            "EQUIPMENTNAME": r["EQUIPMENTNAME"],
            "REJECT_TOTAL_QTY": r["REJECT_TOTAL_QTY"] + r["DEFECT_QTY"],
            "TXNDATE": r["TXNDATE"],
            "WORKCENTER_GROUP": r["WORKCENTER_GROUP"],
        }
        for r in expect_rejects(db, cids)
    ]


EXPECT: dict[str, Callable[[sqlite3.Connection, list[str]], list[dict]]] = {
    "history": expect_history,
    "materials": expect_materials,
    "rejects": expect_rejects,
    "holds": expect_holds,
    "jobs": expect_jobs,
    "upstream_history": expect_upstream_history,
    "downstream_rejects": expect_downstream_rejects,
}


def _collect(batches: Iterable[RowBatch], domain: str) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        assert batch.columns == COLUMNS[domain]
        rows.extend(batch.dicts())
    return rows


def _key(row: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in row.items()))


@pytest.mark.parametrize("domain", list(COLUMNS))
def test_each_domain_returns_exactly_the_rows_of_direct_sql(
    sqlite_source: SqliteSource, db: sqlite3.Connection, cids: list[str], domain: str
) -> None:
    # Given 1,200 lots and two unknown ids; When the domain is fetched
    got = _collect(fetch_events(sqlite_source, domain, cids), domain)
    expected = EXPECT[domain](db, cids)
    # Then it has rows, the contract's columns, and the same rows as the direct computation
    assert len(got) == len(expected) > 0
    if domain == "holds":
        _compare_hold_hours(got, expected)
    assert Counter(map(_key, got)) == Counter(map(_key, expected))


def _compare_hold_hours(got: list[dict], expected: list[dict]) -> None:
    """HOLD_HOURS to the release, or to now for an open hold; within rounding (0.01 h)."""
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    want = {(r["CONTAINERID"], r["HOLDTXNDATE"]): r.pop("HOLD_HOURS") for r in expected}
    for row in got:
        hours = row.pop("HOLD_HOURS")
        target = want[(row["CONTAINERID"], row["HOLDTXNDATE"])]
        if target == "open":
            target = _hours(row["HOLDTXNDATE"], now)
        assert abs(hours - target) <= 0.06 if row["HOLD_STATUS"] == "HOLD" else 0.0101


@pytest.mark.parametrize("domain", list(COLUMNS))
def test_rows_use_the_contract_formats(source: Source, cids: list[str], domain: str) -> None:
    for batch in fetch_events(source, domain, cids):
        assert all(c == c.upper() for c in batch.columns)
        for row in batch.dicts():
            for column, value in row.items():
                if column in TIME_COLUMNS and value is not None:
                    assert TIMESTAMP.match(value), (column, value)
                if isinstance(value, float):
                    assert math.isfinite(value), (column, value)
                assert type(value).__name__ not in {"Decimal", "datetime", "date"}


def test_rows_stream_in_batches_no_larger_than_the_fetch_size(
    warehouse: Path, cids: list[str]
) -> None:
    with SqliteSource(warehouse, fetch_rows=500, in_list_size=97) as source:
        sizes = [len(b) for b in fetch_events(source, "history", cids)]
        assert source.queries["events/history"] == -(-len(cids) // 97)
    assert max(sizes) <= 500 and len(sizes) > 20


def test_the_in_list_size_does_not_change_the_rows(warehouse: Path, cids: list[str]) -> None:
    results = []
    for size in (1000, 97):
        with SqliteSource(warehouse, in_list_size=size) as source:
            results.append(
                Counter(
                    map(
                        _key,
                        _collect(
                            fetch_events(source, "upstream_history", cids), "upstream_history"
                        ),
                    )
                )
            )
    assert results[0] == results[1]


def test_jobs_match_whole_ids_the_same_way_for_few_and_many_lots(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a few lots named by jobs
    ids = list(
        dict.fromkeys(
            c
            for (text,) in db.execute("SELECT CONTAINERIDS FROM DW_MES_JOB LIMIT 10")
            for c in text.split(",")
        )
    )[:30]
    # When matched in SQL (probe) and by one pass (scan)
    probe = _collect(fetch_events(sqlite_source, "jobs", ids, jobs_probe_max=100), "jobs")
    scan = _collect(fetch_events(sqlite_source, "jobs", ids, jobs_probe_max=0), "jobs")
    # Then both give one row per (job, lot), as direct matching does
    assert (
        Counter(map(_key, probe))
        == Counter(map(_key, scan))
        == Counter(map(_key, expect_jobs(db, ids)))
    )

    # and both list the jobs newest first
    def order(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(r["CREATEDATE"], r["JOBID"]) for r in rows]

    assert order(probe) == order(scan)
    by_job = sorted(order(scan), key=lambda k: k[1])
    assert order(scan) == sorted(by_job, key=lambda k: k[0], reverse=True)  # stable: JOBID asc
    # and a prefix of an id matches nothing (no substring matching)
    assert list(fetch_events(sqlite_source, "jobs", [ids[0][:8]])) == []


def test_non_finite_floats_become_null() -> None:
    batch = RowBatch(("A", "Q"), [("x", 1.5), ("y", float("nan")), ("z", float("inf"))])
    assert finite_floats(batch, "Q").rows == [("x", 1.5), ("y", None), ("z", None)]
    assert finite_floats(RowBatch(("Q",), [(2.0,)]), "Q").rows == [(2.0,)]


def test_unknown_domains_and_empty_id_lists_are_refused_at_the_call(source: Source) -> None:
    with pytest.raises(InvalidInput, match="unsupported domains: wafers"):
        fetch_events(source, "wafers", ["a"])
    with pytest.raises(InvalidInput, match="container_ids is empty"):
        fetch_events(source, "history", [])


def test_every_domain_of_the_contract_can_be_fetched() -> None:
    assert set(SPECS) == set(DOMAINS) == set(COLUMNS)


def test_ids_with_quotes_and_semicolons_are_plain_values(source: Source) -> None:
    hostile = ["'; DROP TABLE DW_MES_LOTWIPHISTORY; --", "a' OR '1'='1", "%", "_"]
    for domain in COLUMNS:
        assert list(fetch_events(source, domain, hostile, jobs_probe_max=100)) == []
    assert list(fetch_events(source, "jobs", hostile, jobs_probe_max=0)) == []
