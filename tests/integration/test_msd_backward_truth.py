"""The backward mid-section-defect analysis tells the truth: on the demo warehouse, every KPI, chart
and attribution row equals an independent computation written here in SQL against the warehouse
tables (a recursive CTE for the genealogy, the route's groups written out by hand), never the
production queries or code.

The rules computed (``../shared/reference/dashboard-contract.md`` §4): a detection lot's input is
the original load of its latest session at the station, the largest track-in of that session
(MSD-10); every genealogy x events link counts once per (dimension, lot) before summing (MSD-11).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.demo.info import read_truth
from pipeline.runner import TraceRequest, run_trace
from pipeline.sources.sqlite import SqliteSource
from tests.integration.test_events import GROUP, ORDER
from tests.integration.test_lineage import EDGES

PARAMS = {"station": "測試", "start_date": "2026-05-01", "end_date": "2026-08-31"}
#: The window's end, exclusive (the dashboard's end date is the last day counted).
END = "2026-09-01"
TOP = 10  # items a chart lists before 其他 (TRACE_PARETO_TOP_N's default)
SIX = "COALESCE(REJECTQTY,0) + COALESCE(STANDBYQTY,0) + COALESCE(QTYTOPROCESS,0) + " + (
    "COALESCE(INPROCESSQTY,0) + COALESCE(PROCESSEDQTY,0) + COALESCE(DEFECTQTY,0)"
)

#: The truth, in SQL over temp tables: ``route`` (workcenter, group, order), ``det`` (the
#: detection lots), ``rej`` (their rejects per reason), ``fam`` (each detection lot and its
#: ancestors, itself included).
DETECTION = f"""
CREATE TEMP TABLE det AS
WITH rows_at AS (
    SELECT h.* FROM DW_MES_LOTWIPHISTORY h
    JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID AND c.OBJECTTYPE = 'LOT'
    JOIN route r ON r.workcenter = h.WORKCENTERNAME AND r.grp = '測試'
    WHERE h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP >= :start
      AND h.TRACKINTIMESTAMP < :end
), latest AS (
    SELECT CONTAINERID, MAX(TRACKINTIMESTAMP) AS ts FROM rows_at GROUP BY CONTAINERID
)
SELECT l.CONTAINERID AS cid, l.ts,
       (SELECT MAX(TRACKINQTY) FROM rows_at a
        WHERE a.CONTAINERID = l.CONTAINERID AND a.TRACKINTIMESTAMP = l.ts) AS input,
       (SELECT COUNT(DISTINCT EQUIPMENTID) FROM rows_at a
        WHERE a.CONTAINERID = l.CONTAINERID AND a.TRACKINTIMESTAMP = l.ts) AS machines,
       (SELECT EQUIPMENTNAME FROM rows_at a
        WHERE a.CONTAINERID = l.CONTAINERID AND a.TRACKINTIMESTAMP = l.ts) AS equipment,
       (SELECT SPECNAME FROM rows_at a
        WHERE a.CONTAINERID = l.CONTAINERID AND a.TRACKINTIMESTAMP = l.ts) AS workflow
FROM latest l;
CREATE TEMP TABLE rej AS
SELECT r.CONTAINERID AS cid, COALESCE(r.LOSSREASONNAME, '(未填寫)') AS reason,
       SUM({SIX}) AS qty
FROM DW_MES_LOTREJECTHISTORY r JOIN route w ON w.workcenter = r.WORKCENTERNAME AND w.grp = '測試'
WHERE r.CONTAINERID IN (SELECT cid FROM det) AND r.TXNDATE >= :start AND r.TXNDATE < :end
GROUP BY 1, 2 HAVING SUM({SIX}) <> 0;
CREATE TEMP TABLE defect AS
SELECT d.cid, d.input, COALESCE((SELECT SUM(qty) FROM rej WHERE rej.cid = d.cid), 0) AS qty
FROM det d;
CREATE TEMP TABLE edges AS {EDGES};
CREATE TEMP TABLE walk AS
WITH RECURSIVE w(seed, cid, depth) AS (
    SELECT cid, cid, 0 FROM det
    UNION
    SELECT w.seed, e.parent, w.depth + 1 FROM w JOIN edges e ON e.child = w.cid WHERE w.depth < 20
)
SELECT seed, cid, MIN(depth) AS dist FROM w GROUP BY seed, cid;
CREATE TEMP TABLE fam AS SELECT DISTINCT seed, cid FROM walk;
CREATE INDEX temp.fam_cid ON fam (cid);
"""
#: Per upstream machine, the detection lots whose family used it: each lot once (MSD-11).
MACHINES = """
SELECT m.grp, m.name, m.id, COUNT(*) AS lots, SUM(f.input) AS input, SUM(f.qty) AS qty
FROM (SELECT DISTINCT r.grp, h.EQUIPMENTNAME AS name, h.EQUIPMENTID AS id, fam.seed
      FROM DW_MES_LOTWIPHISTORY h JOIN fam ON fam.cid = h.CONTAINERID
      JOIN route r ON r.workcenter = h.WORKCENTERNAME
      WHERE h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP IS NOT NULL AND r.ord < :before) m
JOIN defect f ON f.cid = m.seed
GROUP BY 1, 2, 3
"""
#: Per machine name (a chart bar), the detection lots whose family used any machine of it.
MACHINE_NAMES = """
SELECT m.name, COUNT(*), SUM(f.input), SUM(f.qty)
FROM (SELECT DISTINCT h.EQUIPMENTNAME AS name, fam.seed
      FROM DW_MES_LOTWIPHISTORY h JOIN fam ON fam.cid = h.CONTAINERID
      JOIN route r ON r.workcenter = h.WORKCENTERNAME
      WHERE h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP IS NOT NULL AND r.ord < :before) m
JOIN defect f ON f.cid = m.seed
GROUP BY 1
"""
#: Per material (part, lot), the detection lots whose family consumed it, and the part's text.
MATERIALS = """
SELECT m.part, m.lot, COUNT(*), SUM(f.input), SUM(f.qty),
       (SELECT MIN(DESCRIPTION) FROM DW_MES_LOTMATERIALSHISTORY WHERE MATERIALPARTNAME = m.part)
FROM (SELECT DISTINCT x.MATERIALPARTNAME AS part, COALESCE(x.MATERIALLOTNAME, '') AS lot, fam.seed
      FROM DW_MES_LOTMATERIALSHISTORY x JOIN fam ON fam.cid = x.CONTAINERID
      WHERE x.MATERIALPARTNAME IS NOT NULL AND x.MATERIALPARTNAME <> '') m
JOIN defect f ON f.cid = m.seed
GROUP BY 1, 2
"""
#: Per detection lot, its root: the farthest ancestor with no parent (ties: smallest id).
ROOTS = """
SELECT f.input, f.qty, COALESCE(NULLIF(c.CONTAINERNAME, ''), d.root)
FROM (SELECT det.cid, COALESCE((
          SELECT w.cid FROM walk w WHERE w.seed = det.cid
            AND NOT EXISTS (SELECT 1 FROM edges e WHERE e.child = w.cid)
          ORDER BY w.dist DESC, w.cid LIMIT 1), det.cid) AS root FROM det) d
JOIN defect f ON f.cid = d.cid LEFT JOIN DW_MES_CONTAINER c ON c.CONTAINERID = d.root
"""


def _pct(part: float, whole: float) -> float:
    return round(part / whole * 100, 4) if whole else 0.0


@pytest.fixture(scope="module")
def truth(warehouse: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the warehouse with the truth's temp tables made."""
    db = sqlite3.connect(f"file:{warehouse}?mode=ro", uri=True)
    db.execute("CREATE TEMP TABLE route (workcenter TEXT, grp TEXT, ord INTEGER)")
    db.executemany(
        "INSERT INTO route VALUES (?, ?, ?)", [(w, g, ORDER[g]) for w, g in GROUP.items()]
    )
    for statement in DETECTION.split(";"):
        if statement.strip():
            db.execute(statement, {"start": PARAMS["start_date"], "end": END})
    # (one machine per latest session, so the session's equipment is that lot's)
    assert db.execute("SELECT MAX(machines) FROM det").fetchone()[0] == 1
    yield db
    db.close()


@pytest.fixture(scope="module")
def analysis(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The backward analysis as the runner produces it, and its detail rows."""
    out = tmp_path_factory.mktemp("truth")
    request = TraceRequest(profile="mid_section_defect", params=PARAMS)
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), out)
    assert summary.aggregation is not None
    details = [orjson.loads(line) for line in (out / "detail.ndjson").read_bytes().splitlines()]
    return {**summary.aggregation, "_detail": details}


def _one(db: sqlite3.Connection, sql: str) -> tuple[Any, ...]:
    return tuple(db.execute(sql).fetchone())


def _chart(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A chart's bars before 其他, as (name, lots, input, defects)."""
    return [
        (i["name"], i["lot_count"], i["input_qty"], i["defect_qty"])
        for i in items
        if i["name"] != "其他"
    ]


def _ranked(rows: list[tuple[Any, ...]], top: int = TOP) -> list[tuple[Any, ...]]:
    """(name, lots, input, defects) rows as a chart ranks them: defects desc, then name."""
    return sorted(rows, key=lambda r: (-r[3], r[0]))[:top]


def test_the_kpis_equal_a_direct_computation(analysis: dict, truth: sqlite3.Connection) -> None:
    # Given the detection lots (their latest session's largest track-in) and their rejects
    lots, total_input, total_defect, defective = _one(
        truth, "SELECT COUNT(*), SUM(input), SUM(qty), SUM(qty > 0) FROM defect"
    )
    (top_reason,) = _one(
        truth, "SELECT reason FROM rej GROUP BY reason ORDER BY SUM(qty) DESC, reason LIMIT 1"
    )
    (affected,) = _one(
        truth,
        f"SELECT COUNT(DISTINCT id) FROM ({MACHINES.replace(':before', str(ORDER['測試']))}) "
        "WHERE qty > 0",
    )
    # Then every KPI is the same
    assert analysis["kpi"] == {
        "total_input": total_input,
        "lot_count": lots,
        "total_defect_qty": total_defect,
        "total_defect_rate": _pct(total_defect, total_input),
        "top_loss_reason": top_reason,
        "affected_machine_count": affected,
        "defective_lot_count": defective,
    }
    assert analysis["genealogy_status"] == "ready"


def test_the_detection_input_is_the_latest_sessions_largest_track_in(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    # Given lots whose track-in shrank between two sessions at the station
    (shrunk,) = _one(
        truth,
        "SELECT COUNT(*) FROM det d WHERE d.input < (SELECT MAX(h.TRACKINQTY) "
        "FROM DW_MES_LOTWIPHISTORY h JOIN route r ON r.workcenter = h.WORKCENTERNAME "
        "AND r.grp = '測試' WHERE h.CONTAINERID = d.cid AND h.EQUIPMENTID IS NOT NULL "
        f"AND h.TRACKINTIMESTAMP >= '{PARAMS['start_date']}' AND h.TRACKINTIMESTAMP < '{END}')",
    )
    assert shrunk > 0  # (else the rule is not exercised by this warehouse)
    # Then each detail row's input is that lot's latest session's load (MSD-10)
    inputs = dict(
        truth.execute(
            "SELECT c.CONTAINERNAME, d.input FROM det d JOIN "
            "DW_MES_CONTAINER c ON c.CONTAINERID = d.cid"
        )
    )
    assert {r["CONTAINERNAME"]: r["INPUT_QTY"] for r in analysis["_detail"]} == inputs


def test_a_partial_track_out_does_not_shrink_the_sessions_input(
    warehouse: Path, tmp_path: Path
) -> None:
    # Given a detection lot whose latest session at the station was tracked out in two parts,
    # the second part recording only what remained at its start (a later track-out)
    copy = tmp_path / "partial.db"
    shutil.copy(warehouse, copy)
    with sqlite3.connect(copy) as db:
        cid, name, stamp, qty = db.execute(
            "SELECT h.CONTAINERID, c.CONTAINERNAME, h.TRACKINTIMESTAMP, h.TRACKINQTY "
            "FROM DW_MES_LOTWIPHISTORY h JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID "
            "WHERE h.WORKCENTERNAME = '測試' AND h.EQUIPMENTID IS NOT NULL "
            "AND h.TRACKINTIMESTAMP >= ? AND h.TRACKINTIMESTAMP < ? AND h.TRACKINQTY > 100 "
            "ORDER BY h.TRACKINTIMESTAMP DESC LIMIT 1",
            (PARAMS["start_date"], END),
        ).fetchone()
        db.execute(
            "INSERT INTO DW_MES_LOTWIPHISTORY SELECT CONTAINERID, WORKCENTERNAME, EQUIPMENTID, "
            "EQUIPMENTNAME, SPECNAME, TRACKINTIMESTAMP, '2099-01-01 00:00:00', TRACKINQTY - 100, "
            "TRACKINQTY - 100, FINISHEDRUNCARD, PJ_WORKORDER FROM DW_MES_LOTWIPHISTORY "
            "WHERE CONTAINERID = ? AND TRACKINTIMESTAMP = ? AND WORKCENTERNAME = '測試'",
            (cid, stamp),
        )
    # When the analysis runs
    request = TraceRequest(profile="mid_section_defect", params=PARAMS)
    with SqliteSource(copy) as source:
        run_trace(source, request, Settings(), tmp_path / "out")
    details = (tmp_path / "out" / "detail.ndjson").read_bytes().splitlines()
    inputs = {r["INPUT_QTY"] for r in map(orjson.loads, details) if r["CONTAINERID"] == cid}
    # Then its input is the session's original load, not the last part's (MSD-10)
    assert inputs == {qty}, name


def test_the_daily_trend_equals_a_direct_computation(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    days = truth.execute(
        "SELECT substr(d.ts, 1, 10) AS day, SUM(f.input), SUM(f.qty) FROM det d "
        "JOIN defect f ON f.cid = d.cid GROUP BY day ORDER BY day"
    ).fetchall()
    assert [
        (t["date"], t["input_qty"], t["defect_qty"], t["defect_rate"])
        for t in analysis["daily_trend"]
    ] == [(day, i, q, _pct(q, i)) for day, i, q in days]


def test_the_attribution_equals_a_direct_computation_and_no_machine_exceeds_the_cohort(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    # Given every upstream machine with the detection lots whose family used it, each once
    expected = {
        (grp, name, eid): (lots, input_qty, qty, _pct(qty, input_qty))
        for grp, name, eid, lots, input_qty, qty in truth.execute(
            MACHINES, {"before": ORDER["測試"]}
        )
    }
    rows = analysis["attribution"]
    # Then the attribution has exactly those rows and figures
    assert {
        (r["WORKCENTER_GROUP"], r["EQUIPMENT_NAME"], r["EQUIPMENT_ID"]): (
            r["DETECTION_LOT_COUNT"],
            r["INPUT_QTY"],
            r["DEFECT_QTY"],
            r["DEFECT_RATE"],
        )
        for r in rows
    } == expected
    # And it is sorted by defects, most first
    assert [r["DEFECT_QTY"] for r in rows] == sorted((r["DEFECT_QTY"] for r in rows), reverse=True)
    # And no machine is credited with more than the cohort's defects (MSD-11)
    total = analysis["kpi"]["total_defect_qty"]
    assert max(r["DEFECT_QTY"] for r in rows) <= total
    assert all(r["DETECTION_LOT_COUNT"] <= analysis["kpi"]["lot_count"] for r in rows)
    # And the machine families come from the resource table
    families = dict(truth.execute("SELECT RESOURCEID, RESOURCEFAMILYNAME FROM DW_MES_RESOURCE"))
    assert all(r["RESOURCEFAMILYNAME"] == families.get(r["EQUIPMENT_ID"], "(未知)") for r in rows)


def test_the_planted_bad_machines_rank_first_by_defect_rate(
    analysis: dict, warehouse: Path
) -> None:
    planted = {t["EQUIPMENTID"] for t in read_truth(warehouse) if t["KIND"] == "bad_machine"}
    by_rate = sorted(analysis["attribution"], key=lambda r: -r["DEFECT_RATE"])
    assert {r["EQUIPMENT_ID"] for r in by_rate[: len(planted)]} == planted


def test_the_materials_attribution_equals_a_direct_computation(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    expected = {
        (f"{part} ({lot})" if lot else part, part, lot, desc or ""): (lots, input_qty, qty)
        for part, lot, lots, input_qty, qty, desc in truth.execute(MATERIALS)
    }
    rows = analysis["materials_attribution"]
    assert {
        (
            r["MATERIAL_KEY"],
            r["MATERIAL_PART_NAME"],
            r["MATERIAL_LOT_NAME"],
            r["MATERIAL_PART_DESC"],
        ): (r["DETECTION_LOT_COUNT"], r["INPUT_QTY"], r["DEFECT_QTY"])
        for r in rows
    } == expected
    assert all(r["MATERIAL_PART_DESC"] for r in rows)  # (the demo describes every part)
    assert [r["DEFECT_QTY"] for r in rows] == sorted((r["DEFECT_QTY"] for r in rows), reverse=True)
    assert max(r["DEFECT_QTY"] for r in rows) <= analysis["kpi"]["total_defect_qty"]


def test_the_machine_and_material_charts_equal_a_direct_computation(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    charts = analysis["charts"]
    names = truth.execute(MACHINE_NAMES, {"before": ORDER["測試"]}).fetchall()
    assert _chart(charts["by_machine"]) == _ranked(names)
    materials = [
        (f"{part} ({lot})" if lot else part, lots, i, q)
        for part, lot, lots, i, q, _desc in truth.execute(MATERIALS)
    ]
    assert _chart(charts["by_material"]) == _ranked(materials)
    total = analysis["kpi"]["total_defect_qty"]
    assert all(i["defect_qty"] <= total for i in charts["by_machine"] + charts["by_material"])


def test_the_detection_charts_equal_a_direct_computation(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    charts = analysis["charts"]
    # by workflow and by detection machine: the detection lots grouped by their own columns
    for chart, column in (("by_workflow", "workflow"), ("by_detection_machine", "equipment")):
        rows = truth.execute(
            f"SELECT d.{column}, COUNT(*), SUM(f.input), SUM(f.qty) FROM det d "
            f"JOIN defect f ON f.cid = d.cid WHERE d.{column} IS NOT NULL GROUP BY 1"
        ).fetchall()
        assert _chart(charts[chart]) == _ranked(rows), chart
    assert "(未知)" not in {i["name"] for i in charts["by_detection_machine"]}
    # by wafer root: the name of each lot's farthest parentless ancestor
    roots: dict[str, list[float]] = {}
    for input_qty, qty, root in truth.execute(ROOTS):
        totals = roots.setdefault(root, [0, 0, 0])
        totals[0] += 1
        totals[1] += input_qty
        totals[2] += qty
    assert _chart(charts["by_wafer_root"]) == _ranked(
        [(name, lots, i, q) for name, (lots, i, q) in roots.items()]
    )


def test_the_loss_reason_chart_equals_a_direct_computation(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    (total_input,) = _one(truth, "SELECT SUM(input) FROM det")
    rows = truth.execute(
        "SELECT reason, SUM(qty), COUNT(DISTINCT cid) FROM rej GROUP BY reason "
        "ORDER BY SUM(qty) DESC, reason"
    ).fetchall()
    running, total, expected = 0, sum(q for _r, q, _n in rows), []
    for reason, qty, lots in rows:
        running += qty
        expected.append(
            {
                "name": reason,
                "defect_qty": qty,
                "lot_count": lots,
                "defect_rate": _pct(qty, total_input),
                "cumulative_pct": round(running / total * 100, 2),
            }
        )
    assert analysis["charts"]["by_loss_reason"] == expected


def test_pareto_items_carry_the_contract_fields_and_rounding(analysis: dict) -> None:
    for name in (
        "by_machine",
        "by_material",
        "by_wafer_root",
        "by_workflow",
        "by_detection_machine",
    ):
        items = analysis["charts"][name]
        assert items, name
        for item in items:
            assert set(item) >= {
                "name",
                "defect_qty",
                "input_qty",
                "defect_rate",
                "lot_count",
                "cumulative_pct",
            }
            assert item["defect_rate"] == _pct(item["defect_qty"], item["input_qty"])
        assert items[-1]["cumulative_pct"] == 100.0


def test_the_detail_rows_carry_the_contract_fields(
    analysis: dict, truth: sqlite3.Connection
) -> None:
    rows = analysis["_detail"]
    (lots,) = _one(truth, "SELECT COUNT(*) FROM det")
    (with_reasons,) = _one(truth, "SELECT COUNT(*) FROM det d LEFT JOIN rej r ON r.cid = d.cid")
    # one row per (lot, loss reason), one for a lot without defects
    assert len(rows) == with_reasons == analysis["detail_total_count"] > lots
    assert {r["CONTAINERID"] for r in rows} == {
        cid for (cid,) in truth.execute("SELECT cid FROM det")
    }
    fields = {
        "CONTAINERNAME",
        "PJ_TYPE",
        "PRODUCTLINENAME",
        "WORKFLOW",
        "DETECTION_EQUIPMENTNAME",
        "INPUT_QTY",
        "LOSS_REASON",
        "DEFECT_QTY",
        "DEFECT_RATE",
        "ANCESTOR_COUNT",
        "UPSTREAM_MACHINE_COUNT",
        "UPSTREAM_MACHINES",
        "CONTAINERID",
        "FINISHEDRUNCARD",
        "UPSTREAM_MATERIALS",
        "WAFER_ROOT",
    }
    assert all(set(r) >= fields for r in rows)
    rejects = {
        (cid, reason): qty for cid, reason, qty in truth.execute("SELECT cid, reason, qty FROM rej")
    }
    # worst rate first; a lot's rows of one rate in the order of their loss reasons
    ties = 0
    for before, after in pairwise(rows):
        assert before["DEFECT_RATE"] >= after["DEFECT_RATE"]
        if (before["CONTAINERID"], before["DEFECT_RATE"]) == (
            after["CONTAINERID"],
            after["DEFECT_RATE"],
        ):
            assert before["LOSS_REASON"] < after["LOSS_REASON"]
            ties += 1
    assert ties  # (the window has such lots)
    for r in rows:
        assert r["DEFECT_QTY"] == rejects.get((r["CONTAINERID"], r["LOSS_REASON"]), 0)
        assert r["DEFECT_RATE"] == _pct(r["DEFECT_QTY"], r["INPUT_QTY"])
        assert r["UPSTREAM_MACHINE_COUNT"] == len(r["UPSTREAM_MACHINES"])
        assert all(set(m) == {"station", "machine"} for m in r["UPSTREAM_MACHINES"])
        assert all(set(m) == {"part", "lot"} for m in r["UPSTREAM_MATERIALS"])


def test_a_loss_reason_mask_counts_only_those_defects_and_keeps_every_lot(
    warehouse: Path, tmp_path: Path, truth: sqlite3.Connection
) -> None:
    # Given the two loss reasons with the fewest defects
    reasons = [
        r for (r,) in truth.execute("SELECT reason FROM rej GROUP BY reason ORDER BY SUM(qty), 1")
    ][:2]
    marks = ", ".join("?" * len(reasons))
    truth.execute("DROP TABLE IF EXISTS temp.masked")
    truth.execute(
        "CREATE TEMP TABLE masked AS SELECT d.cid, d.input, COALESCE((SELECT SUM(qty) FROM rej "
        f"WHERE rej.cid = d.cid AND rej.reason IN ({marks})), 0) AS qty FROM det d",
        reasons,
    )
    # When the analysis is asked with that mask
    request = TraceRequest(profile="mid_section_defect", params={**PARAMS, "loss_reasons": reasons})
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), tmp_path)
    assert summary.aggregation is not None
    kpi, rows = summary.aggregation["kpi"], summary.aggregation["attribution"]
    # Then every detection lot and its input still count, and only those defects do
    lots, total_input, total_defect, defective = _one(
        truth, "SELECT COUNT(*), SUM(input), SUM(qty), SUM(qty > 0) FROM masked"
    )
    assert (kpi["lot_count"], kpi["total_input"]) == (lots, total_input)
    assert (kpi["total_defect_qty"], kpi["defective_lot_count"]) == (total_defect, defective)
    assert 0 < total_defect < _one(truth, "SELECT SUM(qty) FROM defect")[0]
    assert kpi["top_loss_reason"] in reasons
    # And the machines are credited with those defects only, as the direct computation says
    expected = {
        (grp, name, eid): (count, input_qty, qty)
        for grp, name, eid, count, input_qty, qty in truth.execute(
            MACHINES.replace("JOIN defect f", "JOIN masked f"), {"before": ORDER["測試"]}
        )
    }
    assert {
        (r["WORKCENTER_GROUP"], r["EQUIPMENT_NAME"], r["EQUIPMENT_ID"]): (
            r["DETECTION_LOT_COUNT"],
            r["INPUT_QTY"],
            r["DEFECT_QTY"],
        )
        for r in rows
    } == expected
    assert {i["name"] for i in summary.aggregation["charts"]["by_loss_reason"]} <= set(reasons)
