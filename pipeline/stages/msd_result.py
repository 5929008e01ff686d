"""The mid-section-defect result, read from an aggregator's scratch database: the contract's
aggregation object (``result``) and its detail table (``detail_rows``).

Everything that grows with the trace is grouped, ranked and counted by SQL in the scratch
database and read back a row at a time; Python holds chart items (top N), the machines of the
attribution and the materials of ``material_attribution``, which are the output itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from pipeline.stages.pareto import (
    UNKNOWN,
    Tally,
    joined,
    pareto,
    ranked_pareto,
    rate,
    reason_pareto,
)
from pipeline.workcenters import group_order

if TYPE_CHECKING:
    from pipeline.stages.aggregation import MsdAggregator

NO_RECORDS_HINT = "所選容器在此偵測站無記錄"
#: Columns of a lot the detail table starts from, in its order.
_LOT = "idx, name, pj_type, package, workflow, equipment, input_qty, runcard, related_count, root"
#: Lots in detail order: worst defect rate first, then by name.
_DETAIL_ORDER = "ORDER BY rate(defect_qty, input_qty) DESC, name, idx"
_SELECTED_REJECTS = "FROM rejects WHERE qty <> 0 AND selected(reason)"


def material_key(part: str, lot: str) -> str:
    """``part (lot)``, or ``part`` when the material lot is unknown."""
    return f"{part} ({lot})" if lot else part


def result(agg: MsdAggregator, families: Mapping[str, str]) -> dict[str, Any]:
    """The aggregation object of the contract (``kpi``, ``charts``, ``attribution``, ...)."""
    db = agg.db
    lots = agg.lot_count()
    available = [
        r for (r,) in db.execute("SELECT DISTINCT reason FROM rejects WHERE qty > 0 ORDER BY 1")
    ]
    common: dict[str, Any] = {
        "direction": agg.direction,
        "station": agg.station,
        "available_loss_reasons": available,
        "genealogy_status": "ready" if agg.lineage_given or not lots else "error",
        "daily_trend": _daily_trend(agg) if agg.date_mode else [],
    }
    if not lots and not agg.date_mode:
        common["container_mode_hint"] = NO_RECORDS_HINT
    if agg.backward:
        return {**common, **_backward(agg, families)}
    return {**common, **_forward(agg)}


def _tallies(agg: MsdAggregator, sql: str) -> Iterator[tuple[Any, ...]]:
    """Rows of ``(key..., lots, input, defects)`` as ``(key..., Tally)``."""
    for *key, count, input_qty, defect_qty in agg.db.rows(sql):
        yield (*key, Tally(input_qty, defect_qty, count))


_SUMS = "COUNT(*), SUM(l.input_qty), SUM(l.defect_qty)"


@dataclass
class _MachineCredit:
    """What the backward attribution learns in one pass over the detection lots: per machine
    (by index) its lots, input and defects, and the distinct (workflow, package, PJ type,
    detection machine) of its lots; per group and per machine name, the lots that used it."""

    lots: list[int]
    inputs: list[float]
    defects: list[float]
    profiles: list[set[tuple[Any, ...]]]
    by_group: dict[str, Tally]
    by_name: dict[str, Tally]


def _credit_machines(agg: MsdAggregator) -> _MachineCredit:
    """One pass over the lots with their machines (``group_concat`` per lot, in lot order:
    no sort), so the work in Python is per lot and machine, never a GROUP BY over millions of
    lot-machine pairs per chart. (The hot loop keeps everything in locals and flat lists.)"""
    machines = agg.machines
    n = len(machines)
    lots = [0] * n
    inputs: list[float] = [0] * n
    defects: list[float] = [0] * n
    profiles: list[set[tuple[Any, ...]]] = [set() for _ in range(n)]
    group_names = sorted({m.group for m in machines})
    names = sorted({m.name for m in machines})
    group_of = [group_names.index(m.group) for m in machines]
    name_of = [names.index(m.name) for m in machines]
    per_group = [[0, 0, 0] for _ in group_names]  # lots, input, defects
    per_name = [[0, 0, 0] for _ in names]
    rows = agg.db.rows(
        "SELECT l.input_qty, l.defect_qty, l.workflow, l.package, l.pj_type, l.equipment, g.ms "
        "FROM (SELECT idx, group_concat(machine) AS ms FROM lot_machines GROUP BY idx) g "
        "JOIN lots l ON l.idx = g.idx"
    )
    for input_qty, defect_qty, workflow, package, pj_type, equipment, used in rows:
        profile = (workflow, package, pj_type, equipment)
        indices = [int(m) for m in used.split(",")]
        for m in indices:
            lots[m] += 1
            inputs[m] += input_qty
            defects[m] += defect_qty
            profiles[m].add(profile)
        for totals in [per_group[g] for g in {group_of[m] for m in indices}] + [
            per_name[k] for k in {name_of[m] for m in indices}
        ]:
            totals[0] += 1
            totals[1] += input_qty
            totals[2] += defect_qty
    return _MachineCredit(
        lots,
        inputs,
        defects,
        profiles,
        {g: Tally(i, d, c) for g, (c, i, d) in zip(group_names, per_group, strict=True) if c},
        {k: Tally(i, d, c) for k, (c, i, d) in zip(names, per_name, strict=True) if c},
    )


def _backward(agg: MsdAggregator, families: Mapping[str, str]) -> dict[str, Any]:
    credit = _credit_machines(agg)
    attribution: list[dict[str, Any]] = []
    for index, m in enumerate(agg.machines):
        if not credit.lots[index]:
            continue
        defects, inputs = credit.defects[index], credit.inputs[index]
        profiles = credit.profiles[index]
        attribution.append(
            {
                "WORKCENTER_GROUP": m.group,
                "EQUIPMENT_NAME": m.name,
                "EQUIPMENT_ID": m.equipment_id,
                "RESOURCEFAMILYNAME": families.get(m.equipment_id) or UNKNOWN,
                "DETECTION_LOT_COUNT": credit.lots[index],
                "INPUT_QTY": inputs,
                "DEFECT_QTY": defects,
                "DEFECT_RATE": rate(defects, inputs),
                "WORKFLOW": joined(p[0] for p in profiles),
                "PRODUCTLINENAME": joined(p[1] for p in profiles),
                "PJ_TYPE": joined(p[2] for p in profiles),
                "DETECTION_EQUIPMENTNAME": joined(p[3] for p in profiles),
            }
        )
    attribution.sort(
        key=lambda r: (
            -r["DEFECT_RATE"],
            -r["DEFECT_QTY"],
            r["EQUIPMENT_NAME"],
            r["WORKCENTER_GROUP"],
            r["EQUIPMENT_ID"],
        )
    )
    by_group, by_machine = credit.by_group, credit.by_name
    by_material: dict[str, Tally] = {}
    materials = _tallies(
        agg,
        f"SELECT mt.part, mt.lot, {_SUMS} FROM lot_materials lm JOIN lots l ON l.idx = lm.idx "
        "JOIN materials mt ON mt.idx = lm.material GROUP BY lm.material",
    )
    for part, lot, t in materials:
        total = by_material.setdefault(material_key(part, lot), Tally())
        total.input_qty += t.input_qty
        total.defect_qty += t.defect_qty
        total.lot_count += t.lot_count
    material_rows: list[dict[str, Any]] = [
        {
            "MATERIAL_KEY": key,
            "DETECTION_LOT_COUNT": t.lot_count,
            "INPUT_QTY": t.input_qty,
            "DEFECT_QTY": t.defect_qty,
            "DEFECT_RATE": rate(t.defect_qty, t.input_qty),
        }
        for key, t in by_material.items()
    ]
    material_rows.sort(key=lambda r: (-r["DEFECT_RATE"], r["MATERIAL_KEY"]))
    roots = _tallies(
        agg,
        f"SELECT COALESCE(NULLIF(l.root, ''), l.name) AS r, {_SUMS} FROM lots l "
        "GROUP BY r ORDER BY SUM(l.defect_qty) DESC, r",
    )
    kpi = _detection_kpi(agg)
    kpi["affected_machine_count"] = sum(1 for r in attribution if r["DEFECT_QTY"] > 0)
    top_n = agg.top_n
    return {
        "kpi": kpi,
        "charts": {
            "by_station": pareto(by_group, None),
            "by_machine": pareto(by_machine, top_n),
            "by_detection_machine": pareto(_detection_machines(agg), top_n),
            "by_material": pareto(by_material, top_n),
            "by_wafer_root": ranked_pareto(roots, top_n),
            "by_loss_reason": reason_pareto(_reason_totals(agg), kpi["total_input"], None),
        },
        "attribution": attribution,
        "material_attribution": material_rows,
        "detail_total_count": int(
            agg.db.value(
                "SELECT COALESCE(SUM(MAX(n, 1)), 0) FROM (SELECT (SELECT COUNT(*) "
                f"{_SELECTED_REJECTS} AND idx = l.idx) AS n FROM lots l)"
            )
        ),
    }


def _forward(agg: MsdAggregator) -> dict[str, Any]:
    db = agg.db
    station_lots = dict(db.execute("SELECT grp, COUNT(*) FROM station_lots GROUP BY grp"))
    machine_lots = dict(db.execute("SELECT machine, COUNT(*) FROM machine_lots GROUP BY machine"))
    stations = {
        group: Tally(
            agg.station_input.get(group, 0),
            agg.station_reject.get(group, 0),
            station_lots.get(group, 0),
        )
        for group in set(agg.station_input) | set(agg.station_reject)
    }
    machines = {
        name: Tally(
            agg.machine_input.get(name, 0),
            agg.machine_reject.get(name, 0),
            machine_lots.get(name, 0),
        )
        for name in set(agg.machine_input) | set(agg.machine_reject)
    }
    total_input = sum(agg.station_input.values())
    total_reject = sum(agg.station_reject.values())
    detection = _detection_kpi(agg)
    kpi = {
        "detection_lot_count": detection["lot_count"],
        "detection_defect_qty": detection["total_defect_qty"],
        "tracked_lot_count": detection["lot_count"],
        "downstream_stations_reached": len(station_lots),
        "downstream_total_reject": total_reject,
        "downstream_reject_rate": rate(total_reject, total_input),
    }
    return {
        "kpi": kpi,
        "charts": {
            "by_downstream_station": pareto(stations, None),
            "by_downstream_machine": pareto(machines, agg.top_n),
            "by_downstream_loss_reason": [
                {
                    "name": r["name"],
                    "defect_qty": r["defect_qty"],
                    "cumulative_pct": r["cumulative_pct"],
                }
                for r in reason_pareto(agg.reason_reject, total_input, agg.top_n)
            ],
            "by_detection_machine": pareto(_detection_machines(agg), agg.top_n),
        },
        "attribution": [],
        "detail_total_count": int(db.value("SELECT COUNT(*) FROM lots WHERE defect_qty > 0")),
    }


def _detection_kpi(agg: MsdAggregator) -> dict[str, Any]:
    total_input, lots, defective, total_defect = agg.db.execute(
        "SELECT COALESCE(SUM(input_qty), 0), COUNT(*), COALESCE(SUM(defect_qty > 0), 0), "
        "COALESCE(SUM(defect_qty), 0) FROM lots"
    ).fetchone()
    reasons = _reason_totals(agg)
    top = min(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0] if reasons else None
    return {
        "total_input": total_input,
        "lot_count": lots,
        "defective_lot_count": defective,
        "total_defect_qty": total_defect,
        "total_defect_rate": rate(total_defect, total_input),
        "top_loss_reason": top,
    }


def _reason_totals(agg: MsdAggregator) -> dict[str, float]:
    return dict(agg.db.execute(f"SELECT reason, SUM(qty) {_SELECTED_REJECTS} GROUP BY reason"))


def _detection_machines(agg: MsdAggregator) -> dict[str, Tally]:
    """Lots per detection machine (a lot tested on several counts for each)."""
    tallies: dict[str, Tally] = {}
    rows = _tallies(agg, f"SELECT l.equipment, {_SUMS} FROM lots l GROUP BY l.equipment")
    for equipment, t in rows:
        for name in (equipment or UNKNOWN).split(","):
            total = tallies.setdefault(name.strip() or UNKNOWN, Tally())
            total.input_qty += t.input_qty
            total.defect_qty += t.defect_qty
            total.lot_count += t.lot_count
    return tallies


def _daily_trend(agg: MsdAggregator) -> list[dict[str, Any]]:
    days = _tallies(
        agg,
        f"SELECT substr(l.trackin, 1, 10) AS day, {_SUMS} FROM lots l "
        "WHERE l.trackin IS NOT NULL AND l.trackin <> '' GROUP BY day ORDER BY day",
    )
    return [
        {
            "date": day,
            "input_qty": t.input_qty,
            "defect_qty": t.defect_qty,
            "defect_rate": rate(t.defect_qty, t.input_qty),
            "lot_count": t.lot_count,
        }
        for day, t in days
    ]


def detail_rows(agg: MsdAggregator) -> Iterator[dict[str, Any]]:
    """The detail table, one lot at a time, worst defect rate first: backward, one row per lot
    and loss reason (a clean lot gets one row with no reason); forward, one row per lot with
    defects.

    The detail order is written to the scratch database once; the lots, their machines,
    materials and rejects are then read as streams in that order and merged here, so each is
    one query, whatever the number of lots."""
    db = agg.db
    db.execute("DELETE FROM detail_order")
    db.execute(
        "INSERT INTO detail_order (idx) SELECT idx FROM lots "
        + ("" if agg.backward else "WHERE defect_qty > 0 ")
        + _DETAIL_ORDER
    )
    lots = db.rows(
        f"SELECT d.pos, {_LOT}, defect_qty FROM detail_order d JOIN lots USING (idx) ORDER BY d.pos"
    )
    if not agg.backward:
        yield from _forward_details(agg, lots)
        return
    machines_of = _by_position(
        db.rows(
            "SELECT d.pos, lm.machine FROM detail_order d "
            "JOIN lot_machines lm ON lm.idx = d.idx ORDER BY d.pos"
        )
    )
    materials_of = _by_position(
        db.rows(
            "SELECT d.pos, mt.part, mt.lot FROM detail_order d "
            "JOIN lot_materials lm ON lm.idx = d.idx JOIN materials mt ON mt.idx = lm.material "
            "ORDER BY d.pos"
        )
    )
    rejects_of = _by_position(
        db.rows(
            "SELECT d.pos, r.reason, r.qty FROM detail_order d JOIN rejects r ON r.idx = d.idx "
            "WHERE r.qty <> 0 AND selected(r.reason) ORDER BY d.pos, r.reason"
        )
    )
    # Machines are the factory's few hundred: one entry each, shared by every row naming it.
    machine_entries = [{"station": m.group, "machine": m.name} for m in agg.machines]
    machine_order = [(group_order(m.group), m.name) for m in agg.machines]
    for pos, _idx, name, pj, package, workflow, equipment, qty, runcard, related, root, _d in lots:
        used = sorted((m for (m,) in machines_of(pos)), key=machine_order.__getitem__)
        upstream = {
            **_base(name, pj, package, workflow, equipment, qty),
            "FINISHEDRUNCARD": runcard,
            "ANCESTOR_COUNT": related,
            "UPSTREAM_MACHINES": [machine_entries[m] for m in used],
            "UPSTREAM_MACHINE_COUNT": len(used),
            "UPSTREAM_MATERIALS": [{"part": p, "lot": m} for p, m in sorted(materials_of(pos))],
            "WAFER_ROOT": root,
        }
        for reason, defects in rejects_of(pos) or [("", 0)]:
            yield {
                **upstream,
                "LOSS_REASON": reason,
                "DEFECT_QTY": defects,
                "DEFECT_RATE": rate(defects, qty),
            }


def _by_position(rows: Iterator[tuple[Any, ...]]) -> Callable[[int], list[tuple[Any, ...]]]:
    """A reader of rows whose first column is an increasing position: ``at(pos)`` returns the
    rest of the rows at ``pos`` (``[]`` for none); positions are asked for in increasing order."""
    groups = groupby(rows, key=itemgetter(0))
    current = next(groups, None)

    def at(pos: int) -> list[tuple[Any, ...]]:
        nonlocal current
        while current is not None and current[0] < pos:
            current = next(groups, None)
        if current is None or current[0] != pos:
            return []
        found = [row[1:] for row in current[1]]
        current = next(groups, None)
        return found

    return at


def _forward_details(
    agg: MsdAggregator, lots: Iterator[tuple[Any, ...]]
) -> Iterator[dict[str, Any]]:
    downstream_of = _by_position(
        agg.db.rows(
            "SELECT d.pos, s.grp, s.qty FROM detail_order d JOIN downstream s ON s.idx = d.idx "
            "ORDER BY d.pos"
        )
    )
    for pos, _idx, name, pj, package, workflow, equipment, qty, *_, defects in lots:
        down = dict(downstream_of(pos))
        rejects = sum(down.values())
        worst = (
            min(down.items(), key=lambda kv: (-kv[1], group_order(kv[0])))[0] if rejects else None
        )
        yield {
            **_base(name, pj, package, workflow, equipment, qty),
            "DEFECT_QTY": defects,
            "DOWNSTREAM_STATIONS": len(down),
            "DOWNSTREAM_REJECTS": rejects,
            "DOWNSTREAM_REJECT_RATE": rate(rejects, qty),
            "WORST_DOWNSTREAM": worst,
        }


def _base(
    name: str, pj: Any, package: Any, workflow: Any, equipment: Any, qty: Any
) -> dict[str, Any]:
    return {
        "CONTAINERNAME": name,
        "PJ_TYPE": pj,
        "PRODUCTLINENAME": package,
        "WORKFLOW": workflow,
        "DETECTION_EQUIPMENTNAME": equipment,
        "INPUT_QTY": qty,
    }
