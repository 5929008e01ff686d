"""The mid-section-defect result, read from an aggregator's scratch database: the contract's
aggregation object (``result``) and its detail table (``detail_rows``).

Everything that grows with the trace is grouped, ranked and counted by SQL in the scratch
database and read back a row at a time. The machines each detection lot is credited with (tens
per lot: millions of pairs in a big trace) are read once, in detail order, one row per lot
(``group_concat``), and the per-machine figures of the attribution are added up in that same
pass (``MachineCredit``), so the pairs are never grouped in SQL or held in Python. Python holds
chart items (top N), the machines (the factory's few hundred) and the output itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson

from pipeline.engine.codec import to_json
from pipeline.rows import batched
from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.machines import MachineCredit
from pipeline.stages.msd.pareto import (
    UNKNOWN,
    Tally,
    joined,
    pareto,
    ranked_pareto,
    rate,
    reason_pareto,
)
from pipeline.workcenters import group_order

NO_RECORDS_HINT = "所選容器在此偵測站無記錄"
#: A detection lot in detail order: its position, the columns the detail table starts from,
#: its defects and (backward) the machines its family used, as "3,17,3,42" (repeats possible).
_LOTS = """
SELECT d.pos, l.name, l.pj_type, l.package, l.workflow, l.equipment, l.input_qty, l.runcard,
       l.related_count, l.root, l.defect_qty,
       (SELECT group_concat(c.machine) FROM owners o JOIN cid_machines c ON c.cid = o.cid
        WHERE o.idx = l.idx){materials}
FROM detail_order d JOIN lots l ON l.idx = d.idx
ORDER BY d.pos
"""
#: ... and, for the detail table, the distinct materials its family used, as JSON pairs.
_MATERIALS = """,
       (SELECT json_group_array(json_array(mt.part, mt.lot))
        FROM (SELECT DISTINCT c.material FROM owners o JOIN cid_materials c ON c.cid = o.cid
              WHERE o.idx = l.idx) u JOIN materials mt ON mt.idx = u.material)"""
_SELECTED_REJECTS = "FROM rejects WHERE qty <> 0 AND selected(reason)"
_SUMS = "COUNT(*), SUM(l.input_qty), SUM(l.defect_qty)"


def material_key(part: str, lot: str) -> str:
    """``part (lot)``, or ``part`` when the material lot is unknown."""
    return f"{part} ({lot})" if lot else part


def machine_credit(fold: Fold) -> MachineCredit:
    """What each machine is credited with (backward): from the detail pass when it ran to its
    end, else from a pass over the detection lots that only adds up their machines (when the
    result is asked for before, or without, the detail rows); kept on the fold."""
    if fold.memo.credit is None:
        credit = MachineCredit(fold.machines)
        for row in fold.db.rows(_LOTS.format(materials="")):
            _credit(credit, row)
        fold.memo.credit = credit
    return fold.memo.credit


def machine_ids(fold: Fold) -> list[str]:
    """Equipment ids in the attribution (look their families up before ``result``)."""
    if not fold.backward:
        return []
    lots = machine_credit(fold).lots
    return sorted({m.equipment_id for i, m in enumerate(fold.machines) if lots[i]} - {""})


def _credit(credit: MachineCredit, row: tuple[Any, ...]) -> list[int]:
    """Credit the lot of a ``_LOTS`` row; its distinct machine indices."""
    _pos, _name, pj, package, workflow, equipment, qty, _rc, _rel, _root, defects, used = row[:12]
    machines = list({int(m) for m in used.split(",")}) if used else []
    if machines:
        credit.add(machines, qty, defects, (workflow, package, pj, equipment))
    return machines


def result(fold: Fold, families: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The aggregation object of the contract (``kpi``, ``charts``, ``attribution``, ...);
    ``families``: ``RESOURCEFAMILYNAME`` per equipment id (``machine_families``). Asked for
    after ``detail_rows`` ran to its end, it reuses that pass's machine figures."""
    return _analysis(fold, families or {}, encoded=False)


def result_json(fold: Fold, families: Mapping[str, str] | None = None) -> bytes:
    """``result`` as JSON bytes, its longest list (one entry per material lot) encoded while
    it is read, never held as objects."""
    return to_json(_analysis(fold, families or {}, encoded=True))


def _analysis(fold: Fold, families: Mapping[str, str], *, encoded: bool) -> dict[str, Any]:
    """``result``; ``encoded``: ``material_attribution`` (one entry per material lot: thousands
    in a big trace) comes as JSON already (``orjson.Fragment``), encoded while it is read."""
    db = fold.db
    lots = fold.lot_count()
    available = [
        r for (r,) in db.execute("SELECT DISTINCT reason FROM rejects WHERE qty > 0 ORDER BY 1")
    ]
    common: dict[str, Any] = {
        "direction": fold.direction,
        "station": fold.station,
        "available_loss_reasons": available,
        "genealogy_status": "ready" if fold.lineage_given or not lots else "error",
        "daily_trend": _daily_trend(fold) if fold.date_mode else [],
    }
    if not lots and not fold.date_mode:
        common["container_mode_hint"] = NO_RECORDS_HINT
    if fold.backward:
        return {**common, **_backward(fold, families, encoded)}
    return {**common, **_forward(fold)}


def _tallies(fold: Fold, sql: str) -> Iterator[tuple[Any, ...]]:
    """Rows of ``(key..., lots, input, defects)`` as ``(key..., Tally)``."""
    for *key, count, input_qty, defect_qty in fold.db.rows(sql):
        yield (*key, Tally(input_qty, defect_qty, count))


def _attribution(fold: Fold, families: Mapping[str, str]) -> list[dict[str, Any]]:
    credit = machine_credit(fold)
    attribution: list[dict[str, Any]] = []
    for index, m in enumerate(fold.machines):
        if not credit.lots[index]:
            continue  # seen only on lots no detection lot owns
        defects, inputs = credit.defects[index], credit.inputs[index]
        profiles = credit.profiles(index)
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
    return attribution


def _backward(fold: Fold, families: Mapping[str, str], encoded: bool) -> dict[str, Any]:
    attribution = _attribution(fold, families)
    credit = machine_credit(fold)
    materials = (
        {
            "MATERIAL_KEY": key,
            "DETECTION_LOT_COUNT": count,
            "INPUT_QTY": input_qty,
            "DEFECT_QTY": defect_qty,
            "DEFECT_RATE": rate(defect_qty, input_qty),
        }
        for key, count, input_qty, defect_qty in fold.db.rows(
            "SELECT key, lots, input, defects FROM material_totals "
            "ORDER BY rate(defects, input) DESC, key"
        )
    )
    roots = _tallies(
        fold,
        f"SELECT COALESCE(NULLIF(l.root, ''), l.name) AS r, {_SUMS} FROM lots l "
        "GROUP BY r ORDER BY SUM(l.defect_qty) DESC, r",
    )
    kpi = _detection_kpi(fold)
    kpi["affected_machine_count"] = sum(1 for r in attribution if r["DEFECT_QTY"] > 0)
    top_n = fold.top_n
    return {
        "kpi": kpi,
        "charts": {
            "by_station": pareto(credit.by_group(), None),
            "by_machine": pareto(credit.by_name(), top_n),
            "by_detection_machine": pareto(_detection_machines(fold), top_n),
            "by_material": ranked_pareto(
                _tallies(
                    fold,
                    "SELECT key, lots, input, defects FROM material_totals "
                    "ORDER BY defects DESC, key",
                ),
                top_n,
            ),
            "by_wafer_root": ranked_pareto(roots, top_n),
            "by_loss_reason": reason_pareto(_reason_totals(fold), kpi["total_input"], None),
        },
        "attribution": attribution,
        "material_attribution": encoded_array(materials) if encoded else list(materials),
        "detail_total_count": int(
            fold.db.value(
                "SELECT COALESCE(SUM(MAX(n, 1)), 0) FROM (SELECT (SELECT COUNT(*) "
                f"{_SELECTED_REJECTS} AND idx = l.idx) AS n FROM lots l)"
            )
        ),
    }


def encoded_array(items: Iterable[Any], chunk: int = 1000) -> Any:
    """A JSON array of ``items`` as an ``orjson.Fragment``: encoded ``chunk`` items at a time,
    so only the bytes are held, never all the items."""
    out = bytearray(b"[")
    for part in batched(items, chunk):
        if len(out) > 1:
            out += b","
        out += to_json(part)[1:-1]
    out += b"]"
    return orjson.Fragment(bytes(out))


def _forward(fold: Fold) -> dict[str, Any]:
    db = fold.db
    station_lots = dict(db.execute("SELECT grp, COUNT(*) FROM station_lots GROUP BY grp"))
    machine_lots = dict(db.execute("SELECT machine, COUNT(*) FROM machine_lots GROUP BY machine"))
    stations = {
        group: Tally(
            fold.downstream.station_input.get(group, 0),
            fold.downstream.station_reject.get(group, 0),
            station_lots.get(group, 0),
        )
        for group in set(fold.downstream.station_input) | set(fold.downstream.station_reject)
    }
    machines = {
        name: Tally(
            fold.downstream.machine_input.get(name, 0),
            fold.downstream.machine_reject.get(name, 0),
            machine_lots.get(name, 0),
        )
        for name in set(fold.downstream.machine_input) | set(fold.downstream.machine_reject)
    }
    total_input = sum(fold.downstream.station_input.values())
    total_reject = sum(fold.downstream.station_reject.values())
    detection = _detection_kpi(fold)
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
            "by_downstream_machine": pareto(machines, fold.top_n),
            "by_downstream_loss_reason": [
                {
                    "name": r["name"],
                    "defect_qty": r["defect_qty"],
                    "cumulative_pct": r["cumulative_pct"],
                }
                for r in reason_pareto(fold.downstream.reason_reject, total_input, fold.top_n)
            ],
            "by_detection_machine": pareto(_detection_machines(fold), fold.top_n),
        },
        "attribution": [],
        "detail_total_count": int(db.value("SELECT COUNT(*) FROM lots WHERE defect_qty > 0")),
    }


def _detection_kpi(fold: Fold) -> dict[str, Any]:
    total_input, lots, defective, total_defect = fold.db.execute(
        "SELECT COALESCE(SUM(input_qty), 0), COUNT(*), COALESCE(SUM(defect_qty > 0), 0), "
        "COALESCE(SUM(defect_qty), 0) FROM lots"
    ).fetchone()
    reasons = _reason_totals(fold)
    top = min(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0] if reasons else None
    return {
        "total_input": total_input,
        "lot_count": lots,
        "defective_lot_count": defective,
        "total_defect_qty": total_defect,
        "total_defect_rate": rate(total_defect, total_input),
        "top_loss_reason": top,
    }


def _reason_totals(fold: Fold) -> dict[str, float]:
    return dict(fold.db.execute(f"SELECT reason, SUM(qty) {_SELECTED_REJECTS} GROUP BY reason"))


def _detection_machines(fold: Fold) -> dict[str, Tally]:
    """Lots per detection machine (a lot tested on several counts for each)."""
    tallies: dict[str, Tally] = {}
    rows = _tallies(fold, f"SELECT l.equipment, {_SUMS} FROM lots l GROUP BY l.equipment")
    for equipment, t in rows:
        for name in (equipment or UNKNOWN).split(","):
            total = tallies.setdefault(name.strip() or UNKNOWN, Tally())
            total.input_qty += t.input_qty
            total.defect_qty += t.defect_qty
            total.lot_count += t.lot_count
    return tallies


def _daily_trend(fold: Fold) -> list[dict[str, Any]]:
    days = _tallies(
        fold,
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


def detail_rows(fold: Fold) -> Iterator[dict[str, Any]]:
    """The detail table, one lot at a time, worst defect rate first: backward, one row per lot
    and loss reason (a clean lot gets one row with no reason); forward, one row per lot with
    defects. Backward it credits the machines on the way, and when read to its end keeps that
    credit on the fold, so ``result`` needs no pass of its own afterwards."""
    if not fold.backward:
        yield from _forward_details(fold, fold.db.rows(_LOTS.format(materials="")))
        return
    credit = MachineCredit(fold.machines)
    yield from _backward_details(fold, credit)
    fold.memo.credit = credit


def _backward_details(fold: Fold, credit: MachineCredit) -> Iterator[dict[str, Any]]:
    """The lots (with what their families used) and their rejects are read as two streams in
    detail order and merged here: one query each, whatever the number of lots."""
    db = fold.db
    lots = db.rows(_LOTS.format(materials=_MATERIALS))
    rejects_of = _by_position(
        db.rows(
            "SELECT d.pos, r.reason, r.qty FROM detail_order d JOIN rejects r ON r.idx = d.idx "
            "WHERE r.qty <> 0 AND selected(r.reason) ORDER BY d.pos, r.reason"
        )
    )
    # Machines are the factory's few hundred: one entry each, shared by every row naming it.
    machine_entries = [{"station": m.group, "machine": m.name} for m in fold.machines]
    machine_order = [(group_order(m.group), m.name) for m in fold.machines]
    for row in lots:
        pos, name, pj, package, workflow, equipment, qty, runcard, related, root, *_, mats = row
        materials = sorted(map(tuple, orjson.loads(mats)))
        used = sorted(_credit(credit, row), key=machine_order.__getitem__)
        upstream = {
            **_base(name, pj, package, workflow, equipment, qty),
            "FINISHEDRUNCARD": runcard,
            "ANCESTOR_COUNT": related,
            "UPSTREAM_MACHINES": [machine_entries[m] for m in used],
            "UPSTREAM_MACHINE_COUNT": len(used),
            "UPSTREAM_MATERIALS": [{"part": p, "lot": m} for p, m in materials],
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


def _forward_details(fold: Fold, lots: Iterator[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    downstream_of = _by_position(
        fold.db.rows("SELECT pos, grp, qty FROM pos_downstream ORDER BY pos")
    )
    for pos, name, pj, package, workflow, equipment, qty, *_, defects, _m in lots:
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
