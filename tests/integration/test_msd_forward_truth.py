"""The forward mid-section-defect analysis against the demo warehouse: every KPI, the
amplification, the detection loss reasons, the front x downstream reason matrix and the detail
rows equal a computation written here in SQL and plain Python straight from the warehouse tables
(not the production queries); and the planted forward effect (a front reason whose lots reject
more downstream) shows in the amplification and tops the matrix."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.demo.factory import FORWARD_DOWNSTREAM_REASON, FORWARD_FRONT_REASON
from pipeline.demo.info import read_truth
from pipeline.runner import TraceRequest, run_trace
from pipeline.sources.sqlite import SqliteSource
from tests.integration.test_events import GROUP, ORDER
from tests.integration.test_lineage import expected_relatives

STATION = "成型"
START, END, END_EXCLUSIVE = "2026-05-01", "2026-08-31", "2026-09-01"
SIX = "COALESCE(REJECTQTY,0)+COALESCE(STANDBYQTY,0)+COALESCE(QTYTOPROCESS,0)+COALESCE(INPROCESSQTY,0)+COALESCE(PROCESSEDQTY,0)+COALESCE(DEFECTQTY,0)"  # noqa: E501
TOP = 10
OTHER = "其他"
#: The molding reason that is not planted (the demo factory's other loss reason at 成型).
OTHER_MOLDING_REASON = "溢膠"


def _run(warehouse: Path, out: Path, **params: Any) -> tuple[dict[str, Any], list[dict]]:
    request = TraceRequest(
        profile="mid_section_defect",
        params={
            "station": STATION,
            "direction": "forward",
            "start_date": START,
            "end_date": END,
            **params,
        },
    )
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), out)
    assert summary.aggregation is not None
    rows = [orjson.loads(line) for line in (out / "detail.ndjson").open("rb")]
    return summary.aggregation, rows


class Truth:
    """The forward analysis of ``STATION`` in the window, computed from the warehouse."""

    def __init__(self, db: sqlite3.Connection, reasons: set[str] | None = None) -> None:
        station_wcs = [wc for wc, g in GROUP.items() if g == STATION]
        marks = ",".join("?" * len(station_wcs))
        # Detection lots: a track-in with equipment at the station in the window; input is the
        # largest track-in of the lot's latest session there (MSD-10: same track-in time).
        self.input = dict(
            db.execute(
                f"WITH rows_at AS (SELECT h.CONTAINERID, h.TRACKINTIMESTAMP AS ts, "
                f"COALESCE(h.TRACKINQTY, 0) AS qty FROM DW_MES_LOTWIPHISTORY h "
                f"JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID "
                f"AND c.OBJECTTYPE = 'LOT' WHERE h.WORKCENTERNAME IN ({marks}) "
                f"AND h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP >= ? "
                f"AND h.TRACKINTIMESTAMP < ?), latest AS (SELECT CONTAINERID, MAX(ts) AS ts "
                f"FROM rows_at GROUP BY CONTAINERID) "
                f"SELECT l.CONTAINERID, MAX(r.qty) FROM latest l JOIN rows_at r "
                f"ON r.CONTAINERID = l.CONTAINERID AND r.ts = l.ts GROUP BY l.CONTAINERID",
                (*station_wcs, START, END_EXCLUSIVE),
            )
        )
        # Their rejects at the station in the window, per reason (those asked for).
        self.front: dict[str, dict[str, int]] = defaultdict(dict)
        for cid, reason, qty in db.execute(
            f"SELECT CONTAINERID, COALESCE(LOSSREASONNAME, '(未填寫)'), SUM({SIX}) "
            f"FROM DW_MES_LOTREJECTHISTORY WHERE WORKCENTERNAME IN ({marks}) "
            f"AND TXNDATE >= ? AND TXNDATE < ? GROUP BY 1, 2",
            (*station_wcs, START, END_EXCLUSIVE),
        ):
            if cid in self.input and qty > 0 and (reasons is None or reason in reasons):
                self.front[cid][reason] = qty
        self.seeds = sorted(self.front)
        self.family = {
            seed: {seed} | relatives
            for seed, relatives in expected_relatives(db, self.seeds, "forward").items()
        }
        lots = set().union(*self.family.values()) if self.family else set()
        # Downstream: groups after the station; history is each lot's latest track-in per
        # (workcenter, machine), as the analysis's history domain gives it.
        self.down_input: dict[str, int] = defaultdict(int)  # per lot
        self.down_groups: dict[str, set[str]] = defaultdict(set)  # per lot
        for cid, wc, qty in db.execute(
            "SELECT CONTAINERID, WORKCENTERNAME, TRACKINQTY FROM (SELECT h.*, ROW_NUMBER() "
            "OVER (PARTITION BY CONTAINERID, WORKCENTERNAME, EQUIPMENTNAME ORDER BY "
            "TRACKINTIMESTAMP DESC, TRACKOUTTIMESTAMP DESC NULLS LAST, SPECNAME) AS rn "
            "FROM DW_MES_LOTWIPHISTORY h WHERE EQUIPMENTID IS NOT NULL "
            "AND TRACKINTIMESTAMP IS NOT NULL) WHERE rn = 1"
        ):
            if cid in lots and ORDER.get(GROUP.get(wc, ""), 99) > ORDER[STATION]:
                self.down_input[cid] += qty or 0
                self.down_groups[cid].add(GROUP[wc])
        self.down_rejects: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for cid, wc, reason, qty in db.execute(
            f"SELECT CONTAINERID, WORKCENTERNAME, COALESCE(LOSSREASONNAME, '(未填寫)'), {SIX} "
            "FROM DW_MES_LOTREJECTHISTORY"
        ):
            if cid in lots and ORDER.get(GROUP.get(wc, ""), 99) > ORDER[STATION]:
                self.down_rejects[cid].append((GROUP[wc], reason, qty))
                self.down_groups[cid].add(GROUP[wc])
        self.lots = lots
        self.names = {
            cid: name or cid
            for cid, name in db.execute("SELECT CONTAINERID, CONTAINERNAME FROM DW_MES_CONTAINER")
            if cid in self.front
        }

    def kpi(self) -> dict[str, Any]:
        reject = sum(q for rows in self.down_rejects.values() for _g, _r, q in rows)
        given = sum(self.down_input.values())
        return {
            "detection_lot_count": len(self.input),
            "detection_defect_qty": sum(sum(r.values()) for r in self.front.values()),
            "tracked_lot_count": len(self.input),
            "downstream_stations_reached": len(set().union(*self.down_groups.values())),
            "downstream_total_reject": reject,
            "downstream_reject_rate": round(reject / given * 100, 4) if given else 0.0,
        }

    def amplification(self) -> float | None:
        # The same cohort on both sides: the defect lots (their input, their defects) and what
        # they and their descendants met downstream.
        defects = sum(sum(r.values()) for r in self.front.values())
        seed_input = sum(self.input[s] for s in self.seeds)
        if not defects or not seed_input:
            return None
        given = sum(self.down_input.values())
        reject = sum(q for rows in self.down_rejects.values() for _g, _r, q in rows)
        return round((reject / given if given else 0.0) / (defects / seed_input), 6)

    def by_detection_loss_reason(self) -> list[dict[str, Any]]:
        qty: dict[str, int] = defaultdict(int)
        lots: dict[str, set[str]] = defaultdict(set)
        for cid, reasons in self.front.items():
            for reason, q in reasons.items():
                qty[reason] += q
                lots[reason].add(cid)
        ranked = sorted(qty, key=lambda r: (-qty[r], r))

        def item(name: str, q: int, members: set[str]) -> dict[str, Any]:
            given = sum(self.input[c] for c in members)
            return {
                "loss_reason": name,
                "reject_qty": q,
                "input_qty": given,
                "lot_count": len(members),
                "reject_rate": round(q / given, 6) if given else 0.0,
            }

        items = [item(r, qty[r], lots[r]) for r in ranked[:TOP]]
        if ranked[TOP:]:
            rest = set().union(*(lots[r] for r in ranked[TOP:]))
            items.append(item(OTHER, sum(qty[r] for r in ranked[TOP:]), rest))
        return items

    def matrix(self) -> dict[str, Any]:
        fronts: dict[str, set[str]] = defaultdict(set)  # lot -> reasons of the seeds owning it
        for seed, family in self.family.items():
            for cid in family:
                fronts[cid] |= set(self.front[seed])
        cells: dict[tuple[str, str], int] = defaultdict(int)
        for cid, rows in self.down_rejects.items():
            for _group, reason, q in rows:
                if q > 0:
                    for front in fronts[cid]:
                        cells[(front, reason)] += q
        rows_total: dict[str, int] = defaultdict(int)
        cols_total: dict[str, int] = defaultdict(int)
        for (r, c), q in cells.items():
            rows_total[r] += q
            cols_total[c] += q
        row_names = sorted(rows_total, key=lambda r: (-rows_total[r], r))
        col_names = sorted(cols_total, key=lambda c: (-cols_total[c], c))

        def bucket(names: list[str]) -> dict[str, str]:
            return {n: (n if i < TOP else OTHER) for i, n in enumerate(names)}

        row_of, col_of = bucket(row_names), bucket(col_names)
        shown_rows = list(dict.fromkeys(row_of[n] for n in row_names))
        shown_cols = list(dict.fromkeys(col_of[n] for n in col_names))
        grid = [[0] * len(shown_cols) for _ in shown_rows]
        for (r, c), q in cells.items():
            grid[shown_rows.index(row_of[r])][shown_cols.index(col_of[c])] += q
        return {
            "rows": [{"name": n, "total": sum(grid[i])} for i, n in enumerate(shown_rows)],
            "cols": [
                {"name": n, "total": sum(row[j] for row in grid)} for j, n in enumerate(shown_cols)
            ],
            "cells": grid,
            "row_pct": [
                [round(v / sum(row) * 100, 2) if sum(row) else 0.0 for v in row] for row in grid
            ],
        }

    def detail(self) -> dict[str, dict[str, Any]]:
        out = {}
        for seed in self.seeds:
            groups: dict[str, int] = {}
            for cid in self.family[seed]:
                for g in self.down_groups.get(cid, ()):
                    groups.setdefault(g, 0)
                for g, _reason, q in self.down_rejects.get(cid, ()):
                    groups[g] += q
            reject = sum(groups.values())
            front = self.front[seed]
            out[seed] = {
                "DETECTION_LOSS_REASON": min(front, key=lambda r: (-front[r], r)),
                "TRACKINQTY": self.input[seed],
                "DEFECT_QTY": sum(front.values()),
                "DOWNSTREAM_STATIONS_REACHED": len(groups),
                "DOWNSTREAM_TOTAL_REJECT": reject,
                "DOWNSTREAM_REJECT_RATE": round(reject / self.input[seed] * 100, 4)
                if self.input[seed]
                else 0.0,
            }
        return out


@pytest.fixture(scope="module")
def conn(warehouse: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(warehouse.as_uri() + "?mode=ro", uri=True)) as db:
        yield db


@pytest.fixture(scope="module")
def truth(conn: sqlite3.Connection) -> Truth:
    return Truth(conn)


@pytest.fixture(scope="module")
def forward(
    warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[dict]]:
    return _run(warehouse, tmp_path_factory.mktemp("forward"))


def test_the_forward_kpis_equal_a_direct_computation(forward: tuple, truth: Truth) -> None:
    # Given the lots molded in the window, traced forward
    aggregation, _rows = forward
    # Then every KPI is what the warehouse says of the defect lots and their descendants
    assert truth.seeds and truth.lots > set(truth.seeds)
    assert aggregation["kpi"] == truth.kpi()


def test_the_amplification_compares_the_same_cohort(forward: tuple, truth: Truth) -> None:
    aggregation, _rows = forward
    assert aggregation["amplification"] == truth.amplification()


def test_the_detection_loss_reasons_equal_a_direct_computation(
    forward: tuple, truth: Truth
) -> None:
    aggregation, _rows = forward
    assert aggregation["by_detection_loss_reason"] == truth.by_detection_loss_reason()
    assert all(0 <= i["reject_rate"] <= 1 for i in aggregation["by_detection_loss_reason"])


def test_the_reason_matrix_equals_a_direct_computation(forward: tuple, truth: Truth) -> None:
    aggregation, _rows = forward
    assert aggregation["by_front_downstream_reason_matrix"] == truth.matrix()


def test_detail_rows_re_key_descendants_to_their_defect_lot(forward: tuple, truth: Truth) -> None:
    # Given the forward detail table
    _aggregation, rows = forward
    expected = truth.detail()
    # Then it lists the defect lots only, each with what its whole family met downstream
    assert len(rows) == len(expected)
    assert set(rows[0]) >= {
        "CONTAINERNAME",
        "DETECTION_EQUIPMENTNAME",
        "DETECTION_LOSS_REASON",
        "TRACKINQTY",
        "DEFECT_QTY",
        "DOWNSTREAM_STATIONS_REACHED",
        "DOWNSTREAM_TOTAL_REJECT",
        "DOWNSTREAM_REJECT_RATE",
        "PJ_TYPE",
        "PRODUCTLINENAME",
        "WORKFLOW",
        "WORST_DOWNSTREAM_STATION",
    }
    by_name = {r["CONTAINERNAME"]: r for r in rows}
    assert len(by_name) == len(rows)
    got = {cid: {k: by_name[truth.names[cid]][k] for k in want} for cid, want in expected.items()}
    assert got == expected


def test_a_loss_reason_mask_narrows_the_cohort_as_a_direct_computation_says(
    warehouse: Path, tmp_path: Path, conn: sqlite3.Connection
) -> None:
    # Given only the planted front reason counted as a defect
    aggregation, _rows = _run(warehouse, tmp_path, loss_reasons=[FORWARD_FRONT_REASON])
    truth = Truth(conn, {FORWARD_FRONT_REASON})
    # Then the cohort is the lots with that reason, and every figure follows
    assert aggregation["kpi"] == truth.kpi()
    assert aggregation["amplification"] == truth.amplification()
    assert aggregation["by_front_downstream_reason_matrix"] == truth.matrix()


def test_the_planted_forward_effect_shows_in_the_amplification_and_the_matrix(
    forward: tuple, warehouse: Path, tmp_path: Path
) -> None:
    # Given the warehouse's planted forward defect
    planted = [t for t in read_truth(warehouse) if t["KIND"] == "forward_defect"]
    assert [t["WORKCENTER_GROUP"] for t in planted] == [STATION]
    aggregation, _rows = forward
    # Then the defect lots reject more downstream than they did at detection
    assert aggregation["amplification"] > 1
    # And more so the lots with the planted reason than those with the other molding reason
    planted_only, _ = _run(warehouse, tmp_path / "planted", loss_reasons=[FORWARD_FRONT_REASON])
    other_only, _ = _run(warehouse, tmp_path / "other", loss_reasons=[OTHER_MOLDING_REASON])
    assert planted_only["amplification"] > 1.3 * other_only["amplification"]
    # And the planted pair of reasons ranks first in the matrix
    matrix = aggregation["by_front_downstream_reason_matrix"]
    assert matrix["rows"][0]["name"] == FORWARD_FRONT_REASON
    assert matrix["cols"][0]["name"] == FORWARD_DOWNSTREAM_REASON
    assert matrix["cells"][0][0] == max(max(row) for row in matrix["cells"])


def test_nothing_downstream_is_a_real_zero_and_no_defect_is_undefined(
    warehouse: Path, tmp_path: Path
) -> None:
    # Given the last station of the route (nothing comes after it), traced forward
    aggregation, _rows = _run(warehouse, tmp_path / "last", station="測試")
    # Then the defect lots amplified nothing: a real 0.0, and an empty matrix
    assert aggregation["kpi"]["detection_defect_qty"] > 0
    assert aggregation["amplification"] == 0.0
    assert aggregation["kpi"]["downstream_stations_reached"] == 0
    empty = {"rows": [], "cols": [], "cells": [], "row_pct": []}
    assert aggregation["by_front_downstream_reason_matrix"] == empty
    # And with no defect at detection (a reason no lot has), the ratio is undefined
    aggregation, rows = _run(warehouse, tmp_path / "none", loss_reasons=["no such reason"])
    assert aggregation["amplification"] is None and rows == []
    assert aggregation["by_detection_loss_reason"] == []
    assert aggregation["by_front_downstream_reason_matrix"] == empty
