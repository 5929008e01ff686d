"""The mid-section-defect aggregation: it finds the planted bad machines, and its numbers equal an
independent computation from raw rows (recursive-CTE lineage, Python group mapping)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from pipeline.config import Settings
from pipeline.demo.generator import generate
from pipeline.demo.info import read_truth
from pipeline.domains import MSD_DOMAINS
from pipeline.params import TraceParams
from pipeline.rows import RowBatch
from pipeline.runner import TraceRequest, run_trace
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.events import fetch_events
from pipeline.stages.lineage import trace_lineage
from pipeline.stages.lineage_document import payload
from pipeline.stages.msd.detail import EXPORT_COLUMNS, sorted_details
from pipeline.stages.msd.detection import prepare_aggregator, recorded_aggregator
from pipeline.stages.msd.families import machine_families
from pipeline.stages.msd.folding import DETECTION_COLUMNS, MsdAggregator
from pipeline.stages.msd.lot_record import LotRecordMeta, record_meta
from pipeline.stages.msd.machines import Machine
from pipeline.stages.msd.result import result, result_json
from pipeline.stages.msd.scope import detection_seeds
from tests.integration.test_events import GROUP, ORDER
from tests.integration.test_lineage import expected_relatives

WINDOW = {"start_date": "2026-05-01", "end_date": "2026-08-31"}
SIX = ("REJECTQTY", "STANDBYQTY", "QTYTOPROCESS", "INPROCESSQTY", "PROCESSEDQTY", "DEFECTQTY")


def _trace(warehouse: Path, tmp_path: Path, **params: Any) -> dict[str, Any]:
    request = TraceRequest(
        profile="mid_section_defect", params={"station": "測試", **WINDOW, **params}
    )
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), tmp_path)
    assert summary.aggregation is not None
    return summary.aggregation


@pytest.fixture(scope="module")
def backward(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _trace(warehouse, tmp_path_factory.mktemp("msd"))


def _planted(warehouse: Path) -> set[str]:
    return {t["EQUIPMENTID"] for t in read_truth(warehouse) if t["KIND"] == "bad_machine"}


def _worst(aggregation: dict[str, Any], n: int = 3) -> set[str]:
    """The ``n`` machines of the attribution with the highest defect rate."""
    ranked = sorted(aggregation["attribution"], key=lambda r: -r["DEFECT_RATE"])
    return {r["EQUIPMENT_ID"] for r in ranked[:n]}


def test_the_planted_bad_machines_rank_first(backward: dict, warehouse: Path) -> None:
    assert _worst(backward) == _planted(warehouse)


@pytest.mark.parametrize("seed", [101, 202])
def test_the_planted_bad_machines_rank_first_in_other_warehouses(tmp_path: Path, seed: int) -> None:
    warehouse = tmp_path / "w.db"
    generate(warehouse, lots=1500, seed=seed)
    aggregation = _trace(warehouse, tmp_path)
    assert _worst(aggregation) == _planted(warehouse)


def _detection(
    db: sqlite3.Connection, start: str, end: str, stations: Iterable[str] = ("測試",)
) -> dict[str, dict[str, Any]]:
    """Detection lots computed from raw rows: latest track-in at a workcenter of one of the
    stations (Python's group mapping), the largest qty of that session (MSD-10); their rejects
    there."""
    workcenters = [name for name, group in GROUP.items() if group in set(stations)]
    marks = ", ".join("?" * len(workcenters))
    lots: dict[str, dict[str, Any]] = {}
    latest: dict[str, str] = {}
    for cid, stamp, qty in db.execute(
        "SELECT h.CONTAINERID, h.TRACKINTIMESTAMP, h.TRACKINQTY "
        "FROM DW_MES_LOTWIPHISTORY h JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID "
        "WHERE c.OBJECTTYPE = 'LOT' AND h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP >= ? "
        f"AND h.TRACKINTIMESTAMP < ? AND h.WORKCENTERNAME IN ({marks})",
        (start, end, *workcenters),
    ):
        lot = lots.setdefault(cid, {"input": 0, "defect": 0, "reasons": defaultdict(int)})
        if stamp > latest.get(cid, ""):
            latest[cid], lot["input"] = stamp, qty or 0
        elif stamp == latest[cid]:
            lot["input"] = max(lot["input"], qty or 0)
    for cid, reason, *qty in db.execute(
        f"SELECT CONTAINERID, LOSSREASONNAME, {', '.join(SIX)} FROM DW_MES_LOTREJECTHISTORY "
        f"WHERE WORKCENTERNAME IN ({marks}) AND TXNDATE >= ? AND TXNDATE < ?",
        (*workcenters, start, end),
    ):
        if cid in lots:
            total = sum(q or 0 for q in qty)
            lots[cid]["defect"] += total
            lots[cid]["reasons"][reason or "(未填寫)"] += total
    return lots


def _expected_attribution(
    db: sqlite3.Connection, lots: dict[str, dict[str, Any]], before: int
) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    """Per machine of a group before order ``before``: the detection lots whose family (the lot
    and its ancestors, recursive CTE) used it, their input and their defects."""
    ancestors = expected_relatives(db, sorted(lots), "backward")
    owner: dict[str, set[str]] = defaultdict(set)
    for cid in lots:
        for member in {cid, *ancestors[cid]}:
            owner[member].add(cid)
    linked: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for cid, workcenter, eq_id, eq_name in db.execute(
        "SELECT CONTAINERID, WORKCENTERNAME, EQUIPMENTID, EQUIPMENTNAME FROM DW_MES_LOTWIPHISTORY "
        "WHERE EQUIPMENTID IS NOT NULL AND TRACKINTIMESTAMP IS NOT NULL"
    ):
        group = GROUP[workcenter]
        if ORDER[group] < before:
            for lot in owner.get(cid, ()):
                linked[(group, eq_name, eq_id)].add(lot)
    return {
        key: (
            len(members),
            sum(lots[m]["input"] for m in members),
            sum(lots[m]["defect"] for m in members),
        )
        for key, members in linked.items()
    }


def _attribution(aggregation: dict[str, Any]) -> dict[tuple[str, str, str], tuple[int, int, int]]:
    return {
        (r["WORKCENTER_GROUP"], r["EQUIPMENT_NAME"], r["EQUIPMENT_ID"]): (
            r["DETECTION_LOT_COUNT"],
            r["INPUT_QTY"],
            r["DEFECT_QTY"],
        )
        for r in aggregation["attribution"]
    }


def _assert_kpi(aggregation: dict[str, Any], lots: dict[str, dict[str, Any]]) -> None:
    kpi = aggregation["kpi"]
    assert kpi["lot_count"] == len(lots)
    assert kpi["total_input"] == sum(lot["input"] for lot in lots.values())
    assert kpi["total_defect_qty"] == sum(lot["defect"] for lot in lots.values())
    assert kpi["defective_lot_count"] == sum(1 for lot in lots.values() if lot["defect"])


def test_every_machine_of_the_attribution_matches_a_direct_computation(
    backward: dict, db: sqlite3.Connection
) -> None:
    # Given the detection lots, their ancestors (recursive CTE) and their raw history
    lots = _detection(db, "2026-05-01", "2026-09-01")
    # Then the aggregation reports the same lots, input and defects for every machine
    assert _attribution(backward) == _expected_attribution(db, lots, ORDER["測試"])
    _assert_kpi(backward, lots)


def test_several_stations_detect_at_any_of_them_and_credit_only_groups_before_the_first(
    warehouse: Path, tmp_path: Path, db: sqlite3.Connection
) -> None:
    # Given two detection stations, named in the wrong order
    aggregation = _trace(warehouse, tmp_path, station="測試,成型")
    # Then the detection lots are those tracked in at either station in the window
    lots = _detection(db, "2026-05-01", "2026-09-01", ("成型", "測試"))
    assert len(lots) > len(_detection(db, "2026-05-01", "2026-09-01"))
    _assert_kpi(aggregation, lots)
    # And only machines of groups before the earlier station (成型) are credited
    assert _attribution(aggregation) == _expected_attribution(db, lots, ORDER["成型"])
    assert {i["name"] for i in aggregation["charts"]["by_station"]} <= {
        g for g, order in ORDER.items() if order < ORDER["成型"]
    }
    assert aggregation["station"] == "成型,測試"


def test_forward_with_several_stations_looks_only_after_the_last(
    warehouse: Path, tmp_path: Path
) -> None:
    # Given two detection stations early in the route, traced forward
    aggregation = _trace(warehouse, tmp_path, station="去膠,成型", direction="forward")
    reached = {i["name"] for i in aggregation["charts"]["by_downstream_station"]}
    # Then only stations after the later one (去膠) count as downstream
    assert reached and all(ORDER[g] > ORDER["去膠"] for g in reached)
    alone = _trace(warehouse, tmp_path / "alone", station="成型", direction="forward")
    assert "去膠" in {i["name"] for i in alone["charts"]["by_downstream_station"]}


def test_a_pj_type_mask_keeps_only_those_detection_lots(
    backward: dict, warehouse: Path, tmp_path: Path, db: sqlite3.Connection
) -> None:
    # Given a PJ type of some detection lots (padded: the mask compares trimmed values)
    lots = _detection(db, "2026-05-01", "2026-09-01")
    types = dict(db.execute("SELECT CONTAINERID, TRIM(PJ_TYPE) FROM DW_MES_CONTAINER"))
    pj_type = sorted({types[cid] for cid in lots})[0]
    masked = {cid: lot for cid, lot in lots.items() if types[cid] == pj_type}
    assert 0 < len(masked) < len(lots)
    # When the analysis is asked with that mask
    aggregation = _trace(warehouse, tmp_path, pj_types=[f" {pj_type} "])
    # Then its figures are those of the lots of that type, computed from raw rows
    _assert_kpi(aggregation, masked)
    assert _attribution(aggregation) == _expected_attribution(db, masked, ORDER["測試"])
    # And a package mask works the same way, on PRODUCTLINENAME
    packages = dict(db.execute("SELECT CONTAINERID, TRIM(PRODUCTLINENAME) FROM DW_MES_CONTAINER"))
    package = sorted({packages[cid] for cid in masked})[0]
    both = _trace(warehouse, tmp_path / "both", pj_types=[pj_type], packages=[package])
    _assert_kpi(both, {c: lot for c, lot in masked.items() if packages[c] == package})


def test_the_output_has_the_contract_fields(backward: dict) -> None:
    assert set(backward) >= {
        "kpi",
        "charts",
        "daily_trend",
        "available_loss_reasons",
        "genealogy_status",
        "detail_total_count",
        "attribution",
    }
    assert backward["genealogy_status"] == "ready"
    assert set(backward["kpi"]) == {
        "total_input",
        "lot_count",
        "defective_lot_count",
        "total_defect_qty",
        "total_defect_rate",
        "top_loss_reason",
        "affected_machine_count",
    }
    row = backward["attribution"][0]
    assert set(row) >= {
        "WORKCENTER_GROUP",
        "EQUIPMENT_NAME",
        "EQUIPMENT_ID",
        "RESOURCEFAMILYNAME",
        "DETECTION_LOT_COUNT",
        "INPUT_QTY",
        "DEFECT_QTY",
        "DEFECT_RATE",
    }
    assert row["RESOURCEFAMILYNAME"] != "(未知)"
    assert row["DEFECT_RATE"] == round(row["DEFECT_QTY"] / row["INPUT_QTY"] * 100, 4)
    defects = [r["DEFECT_QTY"] for r in backward["attribution"]]
    assert defects == sorted(defects, reverse=True)
    charts = backward["charts"]
    for name in (
        "by_station",
        "by_machine",
        "by_detection_machine",
        "by_material",
        "by_wafer_root",
        "by_loss_reason",
    ):
        assert charts[name], name
        assert charts[name][-1]["cumulative_pct"] == 100.0
    assert len(charts["by_machine"]) <= 11
    assert set(charts["by_machine"][0]) == {
        "name",
        "input_qty",
        "defect_qty",
        "defect_rate",
        "lot_count",
        "cumulative_pct",
    }
    assert {i["name"] for i in charts["by_station"]} <= set(ORDER) - {"測試"}


def test_the_daily_trend_adds_up_to_the_kpi(backward: dict) -> None:
    trend = backward["daily_trend"]
    assert [d["date"] for d in trend] == sorted(d["date"] for d in trend)
    assert all(len(d["date"]) == 10 for d in trend)
    assert sum(d["input_qty"] for d in trend) == backward["kpi"]["total_input"]
    assert sum(d["defect_qty"] for d in trend) == backward["kpi"]["total_defect_qty"]


def test_a_loss_reason_filter_counts_only_those_defects(
    backward: dict, warehouse: Path, tmp_path: Path, db: sqlite3.Connection
) -> None:
    reason = backward["kpi"]["top_loss_reason"]
    filtered = _trace(warehouse, tmp_path, loss_reasons=[reason])
    lots = _detection(db, "2026-05-01", "2026-09-01")
    assert filtered["kpi"]["total_defect_qty"] == sum(
        lot["reasons"][reason] for lot in lots.values()
    )
    assert filtered["kpi"]["lot_count"] == backward["kpi"]["lot_count"]
    assert filtered["available_loss_reasons"] == backward["available_loss_reasons"]
    assert [i["name"] for i in filtered["charts"]["by_loss_reason"]] == [reason]


def test_a_batch_seen_twice_changes_nothing(warehouse: Path) -> None:
    # A lot counts once per machine, so folding the same rows again must not move any number;
    # the aggregator keeps (lot, its machines) facts, never the rows: the same after the repeat.
    cids = _some_lots(warehouse)
    with SqliteSource(warehouse) as source:

        def fresh() -> tuple[MsdAggregator, list[RowBatch]]:
            agg = MsdAggregator(stations=("測試",))
            agg.add_detection_lots(
                _detection_batch(
                    (cid, cid, "T", "P", "W", None, "TS-01", 1000, "2026-06-01 00:00:00")
                    for cid in cids
                )
            )
            agg.set_lineage([])
            return agg, list(fetch_events(source, "upstream_history", cids))

        once, batches = fresh()
        for batch in batches:
            once.add_events("upstream_history", batch)
        twice, _ = fresh()
        for batch in batches + batches:
            twice.add_events("upstream_history", batch)
    assert result(once.finish()) == result(twice.finish())
    facts = "SELECT COUNT(*) FROM (SELECT DISTINCT cid, machines FROM cid_machines)"
    assert once.db.value(facts) == twice.db.value(facts) < sum(len(b) for b in batches)


def _detection_batch(rows: Iterable[tuple[Any, ...]]) -> RowBatch:
    return RowBatch(DETECTION_COLUMNS, list(rows))


def _some_lots(warehouse: Path) -> list[str]:
    with sqlite3.connect(warehouse) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' LIMIT 200"
            )
        ]


def test_detail_rows_list_each_lot_and_loss_reason(
    backward: dict, tmp_path: Path, warehouse: Path
) -> None:
    out = tmp_path / "detail"
    request = TraceRequest(profile="mid_section_defect", params={"station": "測試", **WINDOW})
    with SqliteSource(warehouse) as source:
        run_trace(source, request, Settings(), out)
    rows = [orjson.loads(line) for line in (out / "detail.ndjson").read_bytes().splitlines()]
    assert len(rows) == backward["detail_total_count"]
    assert len({r["CONTAINERNAME"] for r in rows}) == backward["kpi"]["lot_count"]
    machine = rows[0]["UPSTREAM_MACHINES"][0]
    assert set(machine) == {"station", "machine"}
    assert all(ORDER[m["station"]] < ORDER["測試"] for r in rows for m in r["UPSTREAM_MACHINES"])
    clean = [r for r in rows if r["DEFECT_QTY"] == 0]
    assert all(r["LOSS_REASON"] == "" for r in clean)


def test_forward_reports_reject_rates_of_the_stations_after_detection(
    warehouse: Path, tmp_path: Path, db: sqlite3.Connection
) -> None:
    # Given the lots molded (成型) in June, traced forward
    request = TraceRequest(
        profile="mid_section_defect",
        params={
            "station": "成型",
            "direction": "forward",
            "start_date": "2026-06-01",
            "end_date": "2026-06-30",
        },
    )
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), tmp_path)
    aggregation = summary.aggregation
    assert aggregation is not None and aggregation["attribution"] == []
    # Then each downstream station's rejects are those of the defect lots and their descendants
    seeds = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT h.CONTAINERID FROM DW_MES_LOTWIPHISTORY h "
            "WHERE h.WORKCENTERNAME = '成型' AND h.EQUIPMENTID IS NOT NULL "
            "AND h.TRACKINTIMESTAMP >= '2026-06-01' "
            "AND h.TRACKINTIMESTAMP < '2026-07-01'"
        )
    ]
    # (the defect lots: rejected at molding in June; they and their descendants are followed)
    total = " + ".join(f"COALESCE({c}, 0)" for c in SIX)
    defective = sorted(
        cid
        for (cid,) in db.execute(
            "SELECT CONTAINERID FROM DW_MES_LOTREJECTHISTORY WHERE WORKCENTERNAME = '成型' "
            "AND TXNDATE >= '2026-06-01' AND TXNDATE < '2026-07-01' "
            f"GROUP BY CONTAINERID HAVING SUM({total}) > 0"
        )
        if cid in set(seeds)
    )
    family = set(defective) | {
        c for d in expected_relatives(db, defective, "forward").values() for c in d
    }
    rejects: dict[str, int] = defaultdict(int)
    for cid, workcenter, *qty in db.execute(
        f"SELECT CONTAINERID, WORKCENTERNAME, {', '.join(SIX)} FROM DW_MES_LOTREJECTHISTORY"
    ):
        if cid in family and ORDER[GROUP[workcenter]] > ORDER["成型"]:
            rejects[GROUP[workcenter]] += sum(q or 0 for q in qty)
    stations = {i["name"]: i["defect_qty"] for i in aggregation["charts"]["by_downstream_station"]}
    assert stations == dict(rejects) and stations
    assert aggregation["kpi"]["downstream_total_reject"] == sum(rejects.values())
    assert aggregation["kpi"]["detection_lot_count"] == len(seeds)
    # And every station and machine counts the distinct lots that reached it
    station_lots: dict[str, set[str]] = defaultdict(set)
    machine_lots: dict[str, set[str]] = defaultdict(set)
    for cid, workcenter, machine in db.execute(
        "SELECT CONTAINERID, WORKCENTERNAME, EQUIPMENTNAME FROM DW_MES_LOTWIPHISTORY "
        "WHERE EQUIPMENTID IS NOT NULL AND TRACKINTIMESTAMP IS NOT NULL"
    ):
        if cid in family and ORDER[GROUP[workcenter]] > ORDER["成型"]:
            station_lots[GROUP[workcenter]].add(cid)
            machine_lots[machine].add(cid)
    charts = aggregation["charts"]
    assert {i["name"]: i["lot_count"] for i in charts["by_downstream_station"]} == {
        g: len(c) for g, c in station_lots.items()
    }
    named = [i for i in charts["by_downstream_machine"] if i["name"] != "其他"]
    assert named and all(i["lot_count"] == len(machine_lots[i["name"]]) for i in named)


def test_a_date_range_without_detection_lots_gives_zeroed_kpis(
    warehouse: Path, tmp_path: Path
) -> None:
    # Given a window before the factory's first day: the detection station saw no lot
    request = TraceRequest(
        profile="mid_section_defect",
        params={"station": "測試", "start_date": "2001-01-01", "end_date": "2001-01-31"},
    )
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), tmp_path)
    # Then the analysis answers with an empty result, not an error
    aggregation = summary.aggregation
    assert aggregation is not None
    assert aggregation["kpi"]["lot_count"] == 0 and aggregation["kpi"]["total_defect_rate"] == 0
    assert aggregation["attribution"] == [] and aggregation["daily_trend"] == []
    assert summary.seed_count == 0 and set(summary.rows.values()) == {0}
    assert (tmp_path / "aggregation.json").exists()


def test_without_lineage_the_status_says_error() -> None:
    agg = MsdAggregator(stations=("測試",))
    agg.add_detection_lots(
        _detection_batch([("a", "A", None, None, None, None, None, 10, "2026-06-01 10:00:00")])
    )
    agg.set_lineage(None)
    analysis = result(agg.finish())
    assert analysis["genealogy_status"] == "error"
    assert "no lineage" in analysis["genealogy_error"]


def test_inputs_out_of_order_are_refused() -> None:
    agg = MsdAggregator(stations=("測試",))
    with pytest.raises(RuntimeError, match="before"):
        agg.add_events("upstream_history", RowBatch(("CONTAINERID",), []))
    agg.set_lineage([])
    with pytest.raises(RuntimeError, match="after"):
        agg.add_detection_lots(_detection_batch([]))
    # Once finished, the fold is frozen: the same fold again, and no more events
    fold = agg.finish()
    assert agg.finish() is fold
    with pytest.raises(RuntimeError, match="finished"):
        agg.add_events("upstream_history", RowBatch(("CONTAINERID",), [("a",)]))


def test_container_mode_without_detection_rows_says_so() -> None:
    agg = MsdAggregator(stations=("測試",), date_mode=False)
    agg.set_lineage([])
    analysis = result(agg.finish())
    assert analysis["daily_trend"] == [] and analysis["container_mode_hint"]
    assert analysis["kpi"]["lot_count"] == 0 and analysis["attribution"] == []


def test_machine_families_come_from_the_resource_table(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    expected = dict(
        db.execute("SELECT RESOURCEID, RESOURCEFAMILYNAME FROM DW_MES_RESOURCE LIMIT 5").fetchall()
    )
    assert machine_families(sqlite_source, [*expected, "no-such-machine"]) == expected


def test_a_warehouse_without_the_resource_table_gives_unknown_families(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a warehouse that lacks DW_MES_RESOURCE (outside the trace's data model)
    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).close()
    with SqliteSource(bare) as source, caplog.at_level("WARNING"):
        # Then families read as unknown and the reason is logged, not raised
        assert machine_families(source, ["EQ-1"]) == {}
    assert "DW_MES_RESOURCE" in caplog.text


def _folded(source: SqliteSource, direction: str = "backward", **masks: Any) -> MsdAggregator:
    """An aggregator of the WINDOW trace (under ``masks``), every event batch folded (nothing
    asked of it yet)."""
    params = TraceParams.model_validate({"station": "測試", **WINDOW, **masks})
    seeds = [s.container_id for s in detection_seeds(source, params)]
    with trace_lineage(source, seeds, direction) as graph:
        document = payload(graph)
        cids = list(graph.all_cids())
    agg = prepare_aggregator(source, params, seeds, direction, Settings())
    related = document["ancestors" if direction == "backward" else "descendants"]
    agg.set_lineage(related.items(), document.get("seed_roots"))
    for domain in MSD_DOMAINS[direction]:
        for batch in fetch_events(source, domain, cids):
            agg.add_events(domain, batch)
    return agg


def test_the_result_is_the_same_before_or_after_the_detail_rows_and_as_stored_json(
    sqlite_source: SqliteSource,
) -> None:
    # Given two aggregators of the same trace
    with _folded(sqlite_source) as first, _folded(sqlite_source) as second:
        # When one is asked for its result first and the other after its detail rows (whose
        # pass credits the machines), and the second also as the JSON the engine stores
        first_fold, second_fold = first.finish(), second.finish()
        before = result(first_fold)
        with sorted_details(first_fold) as table:
            rows_first = list(table.rows())
        with sorted_details(second_fold) as table:
            rows_second = list(table.rows())
        after = result(second_fold)
        stored = orjson.loads(result_json(second_fold))
    # Then every figure agrees, and the stored JSON is the result
    assert before == after == stored
    assert rows_first == rows_second and rows_first
    assert before["materials_attribution"] and before["attribution"]


def test_container_mode_analyses_the_containers_detected_and_ignores_the_type_masks(
    warehouse: Path, tmp_path: Path, db: sqlite3.Connection
) -> None:
    # Given a work order resolved in container mode (its lots detected at test, any day)
    (order,) = db.execute(
        "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GA%' "
        "GROUP BY MFGORDERNAME ORDER BY COUNT(*) DESC LIMIT 1"
    ).fetchone()
    params = {"mode": "container", "resolve_type": "work_order", "values": [order]}
    request = TraceRequest(profile="mid_section_defect", params=params)
    with SqliteSource(warehouse) as source:
        summary = run_trace(source, request, Settings(), tmp_path / "plain")
        # (the dashboard hides the type masks in container mode, but may still send them)
        masked = TraceRequest(
            profile="mid_section_defect", params={**params, "pj_types": ["NO-SUCH-TYPE"]}
        )
        stale = run_trace(source, masked, Settings(), tmp_path / "stale")
    # Then the analysis covers exactly those seeds, and the masks change nothing
    assert summary.aggregation is not None and summary.seed_count > 0
    assert summary.aggregation["kpi"]["lot_count"] == summary.seed_count
    assert summary.aggregation["daily_trend"] == []
    assert stale.aggregation == summary.aggregation


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_the_export_cells_are_each_detail_rows_fields_in_the_tables_order(
    sqlite_source: SqliteSource, direction: str
) -> None:
    # Given a trace folded afresh, and (backward) the same trace under a loss-reason mask read
    # from its lot record, whose clean rows are written by one SQL statement
    keys = [key for _, key in EXPORT_COLUMNS[direction]]
    tables = []
    with _folded(sqlite_source, direction) as first:
        fold = first.finish()
        with sorted_details(fold) as table:
            tables.append(([orjson.loads(r) for r in table.json_rows()], list(table.cells())))
            if direction == "backward":
                record, heads = list(table.lot_record()), list(table.heads())
                meta = record_meta(fold)
    if direction == "backward":
        reasons = sorted({reason for row in record for reason, _ in row[13]})
        params = TraceParams.model_validate(
            {"station": "測試", **WINDOW, "loss_reasons": reasons[:1]}
        )
        with (
            recorded_aggregator(params, iter(record), meta, Settings()) as again,
            sorted_details(again.finish()) as table,
        ):
            rows = [orjson.loads(r) for r in table.json_rows(heads)]
            tables.append((rows, list(table.cells())))
    for rows, cells in tables:
        # Then the export has a row per detail row, in the same order, each the row's fields
        # in the export's columns (empty for none)
        assert rows and len(cells) == len(rows)
        for row, cell in zip(rows, cells, strict=True):
            assert list(cell) == ["" if row.get(k) is None else row[k] for k in keys], row


def test_a_lot_record_gives_the_same_detail_rows_and_result_under_any_mask(
    sqlite_source: SqliteSource,
) -> None:
    # Given a trace folded from its detection rows, lineage and events, and its lot record as
    # the engine keeps it (the rows through msgpack, the meta's blob)
    with _folded(sqlite_source) as first:
        fold = first.finish()
        with sorted_details(fold) as table:
            record = msgpack.unpackb(msgpack.packb(list(table.lot_record())))
            heads = list(table.heads())
        blob = record_meta(fold).to_blob()
    meta = LotRecordMeta.from_blob(msgpack.unpackb(msgpack.packb(blob)))
    assert meta is not None and record
    reasons = sorted({reason for row in record for reason, _ in row[13]})
    some_type = next(row[2] for row in record if row[2])
    for masks in ({}, {"loss_reasons": reasons[:1]}, {"pj_types": [some_type]}):
        # When the same trace is analysed under a mask from its record alone (no source)
        with _folded(sqlite_source, **masks) as fresh:
            expected = fresh.finish()
            with sorted_details(expected) as table:
                rows, cells = list(table.json_rows()), list(table.cells())
            figures = result(expected)
            params = TraceParams.model_validate({"station": "測試", **WINDOW, **masks})
            with recorded_aggregator(params, iter(record), meta, Settings()) as second:
                again = second.finish()
                # Then every lot's detail head is the recorded one, not built again (below)
                assert again.recorded
                # (and, with every lot kept, the machines' recorded credit but the defects)
                assert (again.credit_base is not None) == ("pj_types" not in masks)
                # And the detail rows (their heads the record's), the export cells and the
                # result are those of the same analysis folded afresh, byte for byte
                with sorted_details(again) as table:
                    assert not list(table.heads())
                    assert list(table.json_rows(heads)) == rows and rows, masks
                    assert list(table.cells()) == cells, masks
                assert result(again) == figures, masks


def test_a_lot_record_of_an_earlier_version_is_not_read() -> None:
    # Given the meta of a record written by an earlier release (without a version, or another)
    current = LotRecordMeta((Machine("切割", "M-1", "EQ-1"),), {}, True, {}, (), (), ()).to_blob()
    assert LotRecordMeta.from_blob(current) is not None
    for blob in ({k: v for k, v in current.items() if k != "version"}, {**current, "version": 1}):
        # Then it is not taken (the analysis reads the detection rows, lineage and events)
        assert LotRecordMeta.from_blob(blob) is None


def test_an_error_while_the_detail_rows_are_read_is_reported_as_itself(
    sqlite_source: SqliteSource,
) -> None:
    # Given the detail rows of a fold being read (a cursor on them open), as the engine stores
    # them when Dramatiq's time limit interrupts the message
    class Interrupted(Exception):
        pass

    with _folded(sqlite_source) as aggregator:
        fold = aggregator.finish()
        # When the reading is interrupted
        with pytest.raises(Interrupted), sorted_details(fold) as table:
            rows = table.stored_rows()
            next(rows)
            raise Interrupted
        # Then that error is what the caller sees: dropping the tables under the open cursor
        # failed ("database table is locked") and hid it, so an analysis over its time limit
        # was retried as an internal error rather than as TIME_LIMIT_EXCEEDED
