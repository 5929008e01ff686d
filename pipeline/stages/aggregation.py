"""Stage 4, aggregation: the mid-section-defect analysis, computed incrementally.

Feed it in order: the detection lots and their rejects at the station (``add_detection_lots``,
``add_detection_rejects``), the lineage of those lots (``set_lineage``), then event batches as they
stream (``add_events``); calls out of order raise ``RuntimeError``. ``result()`` builds the output.
Backward, a repeated batch changes nothing (links are sets); forward sums rows, so each event
batch must be fed exactly once. State grows with the detection lots, their
lineage and the machines/materials seen, never with the number of event rows: each event row is
folded into per-lot links (a lot counts once per machine) and per-machine sums, then dropped.

Backward (upstream attribution): every machine a detection lot or one of its ancestors used at a
group *before* the detection station is credited with that lot's input and defects; per machine
``DEFECT_RATE = DEFECT_QTY / INPUT_QTY x 100``. Bad upstream machines rise to the top.

Forward (downstream reject rate): from the detection lots down their descendants, the reject rate
of every station *after* the detection station.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline import domains
from pipeline.config import DEFAULT_PARETO_TOP_N
from pipeline.errors import InvalidInput, SourceQueryError
from pipeline.rows import RowBatch
from pipeline.sources.base import Source
from pipeline.stages.pareto import UNKNOWN, Tally, joined, pareto, rate, reason_pareto
from pipeline.workcenters import UNKNOWN_ORDER, group_order, require_group

log = logging.getLogger(__name__)

NA = "(NA)"
#: The columns of a detection lot the analysis reads (``msd/detection_lots`` has them all).
DETECTION_COLUMNS = (
    "CONTAINERID",
    "CONTAINERNAME",
    "PJ_TYPE",
    "PRODUCTLINENAME",
    "WORKFLOW",
    "FINISHEDRUNCARD",
    "DETECTION_EQUIPMENTNAME",
    "TRACKINQTY",
    "TRACKINTIMESTAMP",
)
NO_RECORDS_HINT = "所選容器在此偵測站無記錄"


@dataclass(slots=True)
class DetectionLot:
    """One lot that tracked in at the detection station, and what the analysis learned of it."""

    index: int
    cid: str
    name: str
    pj_type: str | None
    package: str | None
    workflow: str | None
    runcard: str | None
    equipment: str | None
    input_qty: float
    trackin: str | None
    rejects: dict[str, float] = field(default_factory=dict)
    defect_qty: float = 0  # selected loss reasons only
    related_count: int = 0  # ancestors (backward) / descendants (forward)
    root: str | None = None
    machines: array = field(default_factory=lambda: array("I"))  # machine indices
    materials: array = field(default_factory=lambda: array("I"))  # material indices
    downstream: dict[str, float] = field(default_factory=dict)  # group -> reject qty


@dataclass(slots=True)
class Machine:
    group: str
    name: str
    equipment_id: str
    tally: Tally = field(default_factory=Tally)
    workflows: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    pj_types: set[str] = field(default_factory=set)
    detection_machines: set[str] = field(default_factory=set)


class MsdAggregator:
    """The mid-section-defect analysis of one trace. Not thread-safe; one per job."""

    def __init__(
        self,
        *,
        direction: str = domains.BACKWARD,
        station: str,
        loss_reasons: Iterable[str] | None = None,
        date_mode: bool = True,
        top_n: int = DEFAULT_PARETO_TOP_N,
    ) -> None:
        if direction not in domains.DIRECTIONS:
            raise InvalidInput(
                f"direction must be backward or forward, got {direction!r}", field="direction"
            )
        self.direction = direction
        self.station = require_group(station).name
        self.station_order = group_order(self.station)
        self.loss_reasons = {r for r in (loss_reasons or ()) if r}
        self.date_mode = date_mode
        self.top_n = top_n
        self.lots: list[DetectionLot] = []
        self.by_cid: dict[str, int] = {}
        self.owners: dict[str, list[int]] = {}  # cid -> detection lots it belongs to
        self.lineage_given = False
        self._lineage_set = False  # detection rows before, events after
        self.machines: list[Machine] = []
        self.machine_index: dict[tuple[str, str, str], int] = {}
        self.material_keys: list[tuple[str, str]] = []
        self.material_index: dict[tuple[str, str], int] = {}
        # forward: downstream stations
        self.station_input: dict[str, float] = {}
        self.station_reject: dict[str, float] = {}
        self.station_lots: dict[str, set[str]] = {}
        self.machine_input: dict[str, float] = {}
        self.machine_reject: dict[str, float] = {}
        self.machine_lots: dict[str, set[str]] = {}
        self.reason_reject: dict[str, float] = {}

    @property
    def backward(self) -> bool:
        return self.direction == domains.BACKWARD

    # ---- inputs --------------------------------------------------------------------------
    def add_detection_lots(self, batch: RowBatch) -> None:
        """Rows of ``msd/detection_lots``: one per lot."""
        self._require(lineage_set=False)
        c = {name: batch.index(name) for name in DETECTION_COLUMNS}
        for row in batch.rows:
            cid = row[c["CONTAINERID"]]
            if cid in self.by_cid:
                continue
            lot = DetectionLot(
                index=len(self.lots),
                cid=cid,
                name=row[c["CONTAINERNAME"]] or cid,
                pj_type=row[c["PJ_TYPE"]],
                package=row[c["PRODUCTLINENAME"]],
                workflow=row[c["WORKFLOW"]],
                runcard=row[c["FINISHEDRUNCARD"]],
                equipment=row[c["DETECTION_EQUIPMENTNAME"]],
                input_qty=row[c["TRACKINQTY"]] or 0,
                trackin=row[c["TRACKINTIMESTAMP"]],
            )
            self.by_cid[cid] = lot.index
            self.lots.append(lot)

    def add_detection_rejects(self, batch: RowBatch) -> None:
        """Rows of ``msd/detection_rejects``: (lot, loss reason, qty)."""
        self._require(lineage_set=False)
        cid_at, reason_at = batch.index("CONTAINERID"), batch.index("LOSSREASONNAME")
        qty_at = batch.index("REJECTQTY")
        for row in batch.rows:
            index = self.by_cid.get(row[cid_at])
            if index is None:
                continue
            lot = self.lots[index]
            reason = row[reason_at] or "(未填寫)"
            qty = row[qty_at] or 0
            lot.rejects[reason] = lot.rejects.get(reason, 0) + qty
            if not self.loss_reasons or reason in self.loss_reasons:
                lot.defect_qty += qty

    def set_lineage(
        self,
        related: Iterable[tuple[str, Iterable[str]]] | None,
        roots: Mapping[str, str] | None = None,
    ) -> None:
        """Ancestors (backward) or descendants (forward) of each detection lot, as ``(seed,
        related lots)`` pairs (streamed: pairs of other lots are skipped), and the root lot name
        of each (backward). ``None``: no lineage, each lot stands alone (and the result says
        ``genealogy_status: error``)."""
        self._require(lineage_set=False)
        self._lineage_set = True
        self.lineage_given = related is not None
        roots = roots or {}
        for lot in self.lots:
            lot.root = roots.get(lot.cid) or lot.name
            self.owners.setdefault(lot.cid, []).append(lot.index)
        for seed, lots in related or ():
            index = self.by_cid.get(seed)
            if index is None:
                continue
            lot = self.lots[index]
            others = [c for c in dict.fromkeys(lots) if c != seed]
            lot.related_count += len(others)
            for cid in others:
                self.owners.setdefault(cid, []).append(index)

    def add_events(self, domain: str, batch: RowBatch) -> None:
        """Fold one batch of ``upstream_history``, ``materials`` or ``downstream_rejects``."""
        self._require(lineage_set=True)
        if domain == domains.UPSTREAM_HISTORY:
            self._add_history(batch)
        elif domain == domains.MATERIALS and self.backward:
            self._add_materials(batch)
        elif domain == domains.DOWNSTREAM_REJECTS and not self.backward:
            self._add_downstream_rejects(batch)
        # other domains (and materials forward, rejects backward) carry nothing it uses

    def _require(self, *, lineage_set: bool) -> None:
        if self._lineage_set != lineage_set:
            step = "before" if lineage_set else "after"
            raise RuntimeError(f"call set_lineage() {step} this (detection, lineage, events)")

    def _add_history(self, batch: RowBatch) -> None:
        cid_at, group_at = batch.index("CONTAINERID"), batch.index("WORKCENTER_GROUP")
        name_at, id_at = batch.index("EQUIPMENTNAME"), batch.index("EQUIPMENTID")
        qty_at = batch.index("TRACKINQTY")
        owners, station_order = self.owners, self.station_order
        for row in batch.rows:
            lots = owners.get(row[cid_at])
            if not lots:
                continue
            group = row[group_at] or UNKNOWN
            order = group_order(group)
            machine_name = row[name_at] or NA
            if self.backward:
                if order >= station_order:
                    continue  # only stations before detection explain it
                machine = self._machine(group, machine_name, row[id_at] or "")
                for index in lots:
                    self._link(self.lots[index], machine)
            elif station_order < order < UNKNOWN_ORDER:
                qty = row[qty_at] or 0
                self.station_input[group] = self.station_input.get(group, 0) + qty
                self.station_lots.setdefault(group, set()).add(row[cid_at])
                self.machine_input[machine_name] = self.machine_input.get(machine_name, 0) + qty
                self.machine_lots.setdefault(machine_name, set()).add(row[cid_at])
                for index in lots:
                    self.lots[index].downstream.setdefault(group, 0)

    def _machine(self, group: str, name: str, equipment_id: str) -> int:
        key = (group, name, equipment_id)
        index = self.machine_index.get(key)
        if index is None:
            index = self.machine_index[key] = len(self.machines)
            self.machines.append(Machine(group, name, equipment_id))
        return index

    def _link(self, lot: DetectionLot, machine_index: int) -> None:
        if machine_index in lot.machines:
            return  # a lot counts once per machine, however many steps it ran there
        lot.machines.append(machine_index)
        machine = self.machines[machine_index]
        machine.tally.add(lot.input_qty, lot.defect_qty)
        if lot.workflow:
            machine.workflows.add(lot.workflow)
        if lot.package:
            machine.packages.add(lot.package)
        if lot.pj_type:
            machine.pj_types.add(lot.pj_type)
        if lot.equipment:
            machine.detection_machines.add(lot.equipment)

    def _add_materials(self, batch: RowBatch) -> None:
        cid_at = batch.index("CONTAINERID")
        part_at, lot_at = batch.index("MATERIALPARTNAME"), batch.index("MATERIALLOTNAME")
        for row in batch.rows:
            lots = self.owners.get(row[cid_at])
            if not lots or not row[part_at]:
                continue
            key = (row[part_at], row[lot_at] or "")
            index = self.material_index.get(key)
            if index is None:
                index = self.material_index[key] = len(self.material_keys)
                self.material_keys.append(key)
            for lot_index in lots:
                materials = self.lots[lot_index].materials
                if index not in materials:
                    materials.append(index)

    def _add_downstream_rejects(self, batch: RowBatch) -> None:
        cid_at, group_at = batch.index("CONTAINERID"), batch.index("WORKCENTER_GROUP")
        name_at, reason_at = batch.index("EQUIPMENTNAME"), batch.index("LOSSREASONNAME")
        qty_at = batch.index("REJECT_TOTAL_QTY")
        for row in batch.rows:
            lots = self.owners.get(row[cid_at])
            group = row[group_at] or UNKNOWN
            if not lots or not self.station_order < group_order(group) < UNKNOWN_ORDER:
                continue
            qty = row[qty_at] or 0
            self.station_reject[group] = self.station_reject.get(group, 0) + qty
            machine = row[name_at] or NA
            self.machine_reject[machine] = self.machine_reject.get(machine, 0) + qty
            reason = row[reason_at] or "(未填寫)"
            self.reason_reject[reason] = self.reason_reject.get(reason, 0) + qty
            for index in lots:
                down = self.lots[index].downstream
                down[group] = down.get(group, 0) + qty

    # ---- outputs -------------------------------------------------------------------------
    def machine_ids(self) -> list[str]:
        """Equipment ids in the attribution (look their families up before ``result``)."""
        return sorted({m.equipment_id for m in self.machines if m.equipment_id})

    def result(self, families: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The aggregation object of the contract (``kpi``, ``charts``, ``attribution``, ...)."""
        available = sorted({r for lot in self.lots for r, q in lot.rejects.items() if q > 0})
        common: dict[str, Any] = {
            "direction": self.direction,
            "station": self.station,
            "available_loss_reasons": available,
            "genealogy_status": "ready" if self.lineage_given or not self.lots else "error",
            "daily_trend": self._daily_trend() if self.date_mode else [],
        }
        if not self.lots and not self.date_mode:
            common["container_mode_hint"] = NO_RECORDS_HINT
        if self.backward:
            return {**common, **self._backward_result(families or {})}
        return {**common, **self._forward_result()}

    def _backward_result(self, families: Mapping[str, str]) -> dict[str, Any]:
        attribution: list[dict[str, Any]] = []
        for m in self.machines:
            attribution.append(
                {
                    "WORKCENTER_GROUP": m.group,
                    "EQUIPMENT_NAME": m.name,
                    "EQUIPMENT_ID": m.equipment_id,
                    "RESOURCEFAMILYNAME": families.get(m.equipment_id) or UNKNOWN,
                    "DETECTION_LOT_COUNT": m.tally.lot_count,
                    "INPUT_QTY": m.tally.input_qty,
                    "DEFECT_QTY": m.tally.defect_qty,
                    "DEFECT_RATE": rate(m.tally.defect_qty, m.tally.input_qty),
                    "WORKFLOW": joined(m.workflows),
                    "PRODUCTLINENAME": joined(m.packages),
                    "PJ_TYPE": joined(m.pj_types),
                    "DETECTION_EQUIPMENTNAME": joined(m.detection_machines),
                }
            )
        attribution.sort(
            key=lambda r: (
                -r["DEFECT_RATE"],
                -r["DEFECT_QTY"],
                r["EQUIPMENT_NAME"],
                r["WORKCENTER_GROUP"],
            )
        )
        by_group: dict[str, Tally] = {}
        by_machine: dict[str, Tally] = {}
        by_material: dict[str, Tally] = {}
        by_root: dict[str, Tally] = {}
        for lot in self.lots:
            groups = {self.machines[i].group for i in lot.machines}
            names = {self.machines[i].name for i in lot.machines}
            for group in groups:
                by_group.setdefault(group, Tally()).add(lot.input_qty, lot.defect_qty)
            for name in names:
                by_machine.setdefault(name, Tally()).add(lot.input_qty, lot.defect_qty)
            for i in lot.materials:
                key = material_key(*self.material_keys[i])
                by_material.setdefault(key, Tally()).add(lot.input_qty, lot.defect_qty)
            by_root.setdefault(lot.root or lot.name, Tally()).add(lot.input_qty, lot.defect_qty)
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
        kpi = self._detection_kpi()
        kpi["affected_machine_count"] = sum(1 for r in attribution if r["DEFECT_QTY"] > 0)
        top_n = self.top_n
        return {
            "kpi": kpi,
            "charts": {
                "by_station": pareto(by_group, None),
                "by_machine": pareto(by_machine, top_n),
                "by_detection_machine": pareto(self._detection_machines(), top_n),
                "by_material": pareto(by_material, top_n),
                "by_wafer_root": pareto(by_root, top_n),
                "by_loss_reason": reason_pareto(self._reason_totals(), kpi["total_input"], None),
            },
            "attribution": attribution,
            "material_attribution": material_rows,
            "detail_total_count": sum(self._detail_count(lot) for lot in self.lots),
        }

    def _forward_result(self) -> dict[str, Any]:
        stations = {
            group: Tally(
                self.station_input.get(group, 0),
                self.station_reject.get(group, 0),
                len(self.station_lots.get(group, ())),
            )
            for group in set(self.station_input) | set(self.station_reject)
        }
        machines = {
            name: Tally(
                self.machine_input.get(name, 0),
                self.machine_reject.get(name, 0),
                len(self.machine_lots.get(name, ())),
            )
            for name in set(self.machine_input) | set(self.machine_reject)
        }
        total_input = sum(self.station_input.values())
        total_reject = sum(self.station_reject.values())
        detection = self._detection_kpi()
        kpi = {
            "detection_lot_count": len(self.lots),
            "detection_defect_qty": detection["total_defect_qty"],
            "tracked_lot_count": len(self.lots),
            "downstream_stations_reached": len(self.station_lots),
            "downstream_total_reject": total_reject,
            "downstream_reject_rate": rate(total_reject, total_input),
        }
        return {
            "kpi": kpi,
            "charts": {
                "by_downstream_station": pareto(stations, None),
                "by_downstream_machine": pareto(machines, self.top_n),
                "by_downstream_loss_reason": [
                    {
                        "name": r["name"],
                        "defect_qty": r["defect_qty"],
                        "cumulative_pct": r["cumulative_pct"],
                    }
                    for r in reason_pareto(self.reason_reject, total_input, self.top_n)
                ],
                "by_detection_machine": pareto(self._detection_machines(), self.top_n),
            },
            "attribution": [],
            "detail_total_count": sum(1 for lot in self.lots if lot.defect_qty > 0),
        }

    def _detection_kpi(self) -> dict[str, Any]:
        total_input = sum(lot.input_qty for lot in self.lots)
        total_defect = sum(lot.defect_qty for lot in self.lots)
        reasons = self._reason_totals()
        top = min(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0] if reasons else None
        return {
            "total_input": total_input,
            "lot_count": len(self.lots),
            "defective_lot_count": sum(1 for lot in self.lots if lot.defect_qty > 0),
            "total_defect_qty": total_defect,
            "total_defect_rate": rate(total_defect, total_input),
            "top_loss_reason": top,
        }

    def _reason_totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for lot in self.lots:
            for reason, qty in lot.rejects.items():
                if qty and (not self.loss_reasons or reason in self.loss_reasons):
                    totals[reason] = totals.get(reason, 0) + qty
        return totals

    def _detection_machines(self) -> dict[str, Tally]:
        tallies: dict[str, Tally] = {}
        for lot in self.lots:
            for name in (lot.equipment or UNKNOWN).split(","):
                tallies.setdefault(name.strip() or UNKNOWN, Tally()).add(
                    lot.input_qty, lot.defect_qty
                )
        return tallies

    def _daily_trend(self) -> list[dict[str, Any]]:
        days: dict[str, Tally] = {}
        for lot in self.lots:
            if lot.trackin:
                days.setdefault(lot.trackin[:10], Tally()).add(lot.input_qty, lot.defect_qty)
        return [
            {
                "date": day,
                "input_qty": t.input_qty,
                "defect_qty": t.defect_qty,
                "defect_rate": rate(t.defect_qty, t.input_qty),
                "lot_count": t.lot_count,
            }
            for day, t in sorted(days.items())
        ]

    def _selected_rejects(self, lot: DetectionLot) -> list[tuple[str, float]]:
        return sorted(
            (r, q)
            for r, q in lot.rejects.items()
            if q and (not self.loss_reasons or r in self.loss_reasons)
        )

    def _detail_count(self, lot: DetectionLot) -> int:
        return max(len(self._selected_rejects(lot)), 1)

    def detail_rows(self) -> Iterator[dict[str, Any]]:
        """The detail table, one lot at a time: backward, one row per lot and loss reason (a
        clean lot gets one row with no reason); forward, one row per lot with defects."""
        for lot in sorted(self.lots, key=lambda x: (-rate(x.defect_qty, x.input_qty), x.name)):
            base = {
                "CONTAINERNAME": lot.name,
                "PJ_TYPE": lot.pj_type,
                "PRODUCTLINENAME": lot.package,
                "WORKFLOW": lot.workflow,
                "DETECTION_EQUIPMENTNAME": lot.equipment,
                "INPUT_QTY": lot.input_qty,
            }
            if self.backward:
                machines = sorted(
                    (
                        {"station": self.machines[i].group, "machine": self.machines[i].name}
                        for i in lot.machines
                    ),
                    key=lambda m: (group_order(m["station"]), m["machine"]),
                )
                upstream = {
                    **base,
                    "FINISHEDRUNCARD": lot.runcard,
                    "ANCESTOR_COUNT": lot.related_count,
                    "UPSTREAM_MACHINES": machines,
                    "UPSTREAM_MACHINE_COUNT": len(machines),
                    "UPSTREAM_MATERIALS": [
                        {"part": p, "lot": m}
                        for p, m in sorted(self.material_keys[i] for i in lot.materials)
                    ],
                    "WAFER_ROOT": lot.root,
                }
                for reason, qty in self._selected_rejects(lot) or [("", 0)]:
                    yield {
                        **upstream,
                        "LOSS_REASON": reason,
                        "DEFECT_QTY": qty,
                        "DEFECT_RATE": rate(qty, lot.input_qty),
                    }
            elif lot.defect_qty > 0:
                down = lot.downstream
                rejects = sum(down.values())
                worst = (
                    min(down.items(), key=lambda kv: (-kv[1], group_order(kv[0])))[0]
                    if rejects
                    else None
                )
                yield {
                    **base,
                    "DEFECT_QTY": lot.defect_qty,
                    "DOWNSTREAM_STATIONS": len(down),
                    "DOWNSTREAM_REJECTS": rejects,
                    "DOWNSTREAM_REJECT_RATE": rate(rejects, lot.input_qty),
                    "WORST_DOWNSTREAM": worst,
                }


def material_key(part: str, lot: str) -> str:
    """``part (lot)``, or ``part`` when the material lot is unknown."""
    return f"{part} ({lot})" if lot else part


def machine_families(source: Source, equipment_ids: Iterable[str]) -> dict[str, str]:
    """``RESOURCEFAMILYNAME`` per equipment id, from ``DWH.DW_MES_RESOURCE``.

    The family only labels the attribution rows, and that table lies outside the trace's data
    model: when the warehouse refuses the query (no such table, no grant) every family reads
    ``(未知)`` and a warning is logged, rather than failing an analysis whose work is done.
    A transient error (``SourceUnavailable``) still propagates, so the stage is retried.
    """
    families: dict[str, str] = {}
    try:
        for batch in source.query_in("msd/resource_families", "ids", equipment_ids):
            families.update((rid, family) for rid, family in batch.rows if family)
    except SourceQueryError as error:
        log.warning("machine families unavailable, shown as %s: %s", UNKNOWN, error.message)
        return {}
    return families
