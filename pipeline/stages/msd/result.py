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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.engine.codec import to_json
from pipeline.rows import batched
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

if TYPE_CHECKING:
    from pipeline.stages.msd.folding import Machine, MsdAggregator

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


class MachineCredit:
    """What the backward attribution adds up per machine (by index) over the detection lots:
    their number, input and defects; which (workflow, package, PJ type, detection machine)
    profiles used each; and per group and per machine name, the lots that used any of its
    machines. Fed one lot at a time (``add``), with that lot's distinct machines."""

    def __init__(self, machines: Sequence[Machine]) -> None:
        n = len(machines)
        self.machines = machines
        self.lots = [0] * n
        self.inputs: list[float] = [0] * n
        self.defects: list[float] = [0] * n
        self._groups = sorted({m.group for m in machines})
        self._names = sorted({m.name for m in machines})
        self._group_of = [self._groups.index(m.group) for m in machines]
        self._name_of = [self._names.index(m.name) for m in machines]
        self._per_group: list[list[float]] = [[0, 0, 0] for _ in self._groups]  # lots, in, def
        self._per_name: list[list[float]] = [[0, 0, 0] for _ in self._names]
        self._profiles: dict[tuple[Any, ...], set[int]] = {}

    def add(self, used: list[int], input_qty: float, defect_qty: float, profile: tuple) -> None:
        """Credit one detection lot (``used``: its distinct machine indices)."""
        lots, inputs, defects = self.lots, self.inputs, self.defects
        for m in used:
            lots[m] += 1
            inputs[m] += input_qty
            defects[m] += defect_qty
        self._profiles.setdefault(profile, set()).update(used)
        group_of, name_of = self._group_of, self._name_of
        for totals in [self._per_group[g] for g in {group_of[m] for m in used}] + [
            self._per_name[k] for k in {name_of[m] for m in used}
        ]:
            totals[0] += 1
            totals[1] += input_qty
            totals[2] += defect_qty

    def profiles(self, machine: int) -> list[tuple[Any, ...]]:
        """The profiles of the lots credited to ``machine``."""
        return [p for p, used in self._profiles.items() if machine in used]

    def by_group(self) -> dict[str, Tally]:
        return _tallies_of(self._groups, self._per_group)

    def by_name(self) -> dict[str, Tally]:
        return _tallies_of(self._names, self._per_name)


def _tallies_of(names: list[str], totals: list[list[float]]) -> dict[str, Tally]:
    return {n: Tally(i, d, int(c)) for n, (c, i, d) in zip(names, totals, strict=True) if c}


def credit_machines(agg: MsdAggregator) -> MachineCredit:
    """A pass over the detection lots that only adds up their machines (when the result is
    asked for before, or without, the detail rows)."""
    credit = MachineCredit(agg.machines)
    for row in agg.db.rows(_LOTS.format(materials="")):
        _credit(credit, row)
    return credit


def _credit(credit: MachineCredit, row: tuple[Any, ...]) -> list[int]:
    """Credit the lot of a ``_LOTS`` row; its distinct machine indices."""
    _pos, _name, pj, package, workflow, equipment, qty, _rc, _rel, _root, defects, used = row[:12]
    machines = list({int(m) for m in used.split(",")}) if used else []
    if machines:
        credit.add(machines, qty, defects, (workflow, package, pj, equipment))
    return machines


def result(agg: MsdAggregator, families: Mapping[str, str], *, encoded: bool) -> dict[str, Any]:
    """The aggregation object of the contract (``kpi``, ``charts``, ``attribution``, ...).
    ``encoded``: ``material_attribution`` (one entry per material lot: thousands in a big
    trace) comes as JSON already (``orjson.Fragment``), encoded while it is read."""
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
        return {**common, **_backward(agg, families, encoded)}
    return {**common, **_forward(agg)}


def _tallies(agg: MsdAggregator, sql: str) -> Iterator[tuple[Any, ...]]:
    """Rows of ``(key..., lots, input, defects)`` as ``(key..., Tally)``."""
    for *key, count, input_qty, defect_qty in agg.db.rows(sql):
        yield (*key, Tally(input_qty, defect_qty, count))


def _attribution(agg: MsdAggregator, families: Mapping[str, str]) -> list[dict[str, Any]]:
    credit = agg.credit()
    attribution: list[dict[str, Any]] = []
    for index, m in enumerate(agg.machines):
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


def _backward(agg: MsdAggregator, families: Mapping[str, str], encoded: bool) -> dict[str, Any]:
    attribution = _attribution(agg, families)
    credit = agg.credit()
    materials = (
        {
            "MATERIAL_KEY": key,
            "DETECTION_LOT_COUNT": count,
            "INPUT_QTY": input_qty,
            "DEFECT_QTY": defect_qty,
            "DEFECT_RATE": rate(defect_qty, input_qty),
        }
        for key, count, input_qty, defect_qty in agg.db.rows(
            "SELECT key, lots, input, defects FROM material_totals "
            "ORDER BY rate(defects, input) DESC, key"
        )
    )
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
            "by_station": pareto(credit.by_group(), None),
            "by_machine": pareto(credit.by_name(), top_n),
            "by_detection_machine": pareto(_detection_machines(agg), top_n),
            "by_material": ranked_pareto(
                _tallies(
                    agg,
                    "SELECT key, lots, input, defects FROM material_totals "
                    "ORDER BY defects DESC, key",
                ),
                top_n,
            ),
            "by_wafer_root": ranked_pareto(roots, top_n),
            "by_loss_reason": reason_pareto(_reason_totals(agg), kpi["total_input"], None),
        },
        "attribution": attribution,
        "material_attribution": encoded_array(materials) if encoded else list(materials),
        "detail_total_count": int(
            agg.db.value(
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


def detail_rows(agg: MsdAggregator, credit: MachineCredit) -> Iterator[dict[str, Any]]:
    """The detail table, one lot at a time, worst defect rate first: backward, one row per lot
    and loss reason (a clean lot gets one row with no reason), crediting ``credit`` with each
    lot's machines on the way; forward, one row per lot with defects.

    The lots (with what their families used) and their rejects are read as two streams in
    detail order and merged here: one query each, whatever the number of lots."""
    db = agg.db
    if not agg.backward:
        yield from _forward_details(agg, db.rows(_LOTS.format(materials="")))
        return
    lots = db.rows(_LOTS.format(materials=_MATERIALS))
    rejects_of = _by_position(
        db.rows(
            "SELECT d.pos, r.reason, r.qty FROM detail_order d JOIN rejects r ON r.idx = d.idx "
            "WHERE r.qty <> 0 AND selected(r.reason) ORDER BY d.pos, r.reason"
        )
    )
    # Machines are the factory's few hundred: one entry each, shared by every row naming it.
    machine_entries = [{"station": m.group, "machine": m.name} for m in agg.machines]
    machine_order = [(group_order(m.group), m.name) for m in agg.machines]
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


def _forward_details(
    agg: MsdAggregator, lots: Iterator[tuple[Any, ...]]
) -> Iterator[dict[str, Any]]:
    downstream_of = _by_position(
        agg.db.rows("SELECT pos, grp, qty FROM pos_downstream ORDER BY pos")
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
