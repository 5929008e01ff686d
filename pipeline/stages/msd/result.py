"""The mid-section-defect result: the contract's aggregation object, read from a finished fold.

Everything that grows with the trace is grouped, ranked and counted by SQL in the fold's scratch
database and read back a row at a time; the machines' figures come from their credit
(``pipeline.stages.msd.attribution``), which the detail rows' pass leaves on the fold. Python
holds chart items (top N), the machines (the factory's few hundred) and the output itself; the
longest list (one entry per material lot) can be encoded as it is read (``result_json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pipeline.rows import batched, to_json
from pipeline.stages.msd.attribution import attribution, machine_credit
from pipeline.stages.msd.detection_stats import (
    SELECTED_REJECTS,
    SUMS,
    daily_trend,
    detection_kpi,
    detection_machines,
    reason_lots,
    reason_totals,
    tallies,
)
from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.forward import (
    amplification,
    detection_loss_reasons,
    forward_kpi,
    reason_matrix,
)
from pipeline.stages.msd.pareto import UNKNOWN, Tally, pareto, ranked_pareto, rate, reason_pareto

#: ``container_mode_hint``: lots typed in that the detection station has no record of.
NO_RECORDS_HINT = "所選容器在此偵測站無記錄"


def result(fold: Fold, families: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The aggregation object of the contract (``kpi``, ``charts``, ``attribution``, ...);
    ``families``: ``RESOURCEFAMILYNAME`` per equipment id (``machine_families``). Asked for
    after the detail rows' pass (``sorted_details``) ran to its end, it reuses that pass's
    machine figures."""
    return _analysis(fold, families or {}, encoded=False)


def result_json(fold: Fold, families: Mapping[str, str] | None = None) -> bytes:
    """``result`` as JSON bytes, its longest list (one entry per material lot) encoded while
    it is read, never held as objects."""
    return to_json(_analysis(fold, families or {}, encoded=True))


def _analysis(fold: Fold, families: Mapping[str, str], *, encoded: bool) -> dict[str, Any]:
    """``result``; ``encoded``: ``materials_attribution`` (one entry per material lot: thousands
    in a big trace) comes as JSON already (``orjson.Fragment``), encoded while it is read."""
    db = fold.db
    lots = fold.lot_count()
    available = [r for (r,) in db.execute("SELECT reason FROM available_reasons ORDER BY 1")]
    common: dict[str, Any] = {
        "direction": fold.direction,
        "station": fold.station,
        "available_loss_reasons": available,
        "genealogy_status": "ready" if fold.lineage_given or not lots else "error",
        "daily_trend": daily_trend(fold) if fold.date_mode else [],
    }
    if common["genealogy_status"] == "error":
        common["genealogy_error"] = (
            "no lineage of the detection lots was given or found: each lot was analysed alone"
        )
    if not lots and not fold.date_mode:
        common["container_mode_hint"] = NO_RECORDS_HINT
    if fold.backward:
        return {**common, **_backward(fold, families, encoded)}
    return {**common, **_forward(fold)}


def _backward(fold: Fold, families: Mapping[str, str], encoded: bool) -> dict[str, Any]:
    """Upstream attribution: machines, materials and wafer roots behind the defects."""
    rows = attribution(fold, families)
    credit = machine_credit(fold)
    materials = (
        {
            "MATERIAL_KEY": f"{part} ({lot})" if lot else part,
            "MATERIAL_PART_NAME": part,
            "MATERIAL_LOT_NAME": lot,
            "MATERIAL_PART_DESC": description,
            "DETECTION_LOT_COUNT": count,
            "INPUT_QTY": input_qty,
            "DEFECT_QTY": defect_qty,
            "DEFECT_RATE": rate(defect_qty, input_qty),
        }
        for part, lot, description, count, input_qty, defect_qty in fold.db.rows(
            f"{MATERIAL_TOTALS} ORDER BY t.defects DESC, rate(t.defects, t.input) DESC, "
            "m.part, m.lot"
        )
    )
    kpi = detection_kpi(fold)
    kpi["affected_machine_count"] = len({r["EQUIPMENT_ID"] for r in rows if r["DEFECT_QTY"] > 0})
    top_n = fold.top_n
    detection = known_detection_machines(fold)
    return {
        "kpi": kpi,
        "charts": {
            "by_station": pareto(credit.by_group(), None),
            # A lot is credited to every machine and material its family used: a tail summed
            # into 其他 would count it once per machine, so these two list their top N only.
            "by_machine": pareto(dict(_top(credit.by_name(), top_n)), None),
            "by_detection_machine": pareto(detection, top_n),
            "by_material": ranked_pareto(
                tallies(
                    fold,
                    "SELECT CASE WHEN m.lot <> '' THEN m.part || ' (' || m.lot || ')' "
                    "ELSE m.part END AS k, t.lots, t.input, t.defects FROM material_totals t "
                    "JOIN materials m ON m.idx = t.material ORDER BY t.defects DESC, k "
                    f"LIMIT {int(top_n)}",
                ),
                None,
            ),
            "by_wafer_root": ranked_pareto(
                tallies(
                    fold,
                    f"SELECT COALESCE(NULLIF(l.root, ''), l.name) AS r, {SUMS} FROM lots l "
                    "GROUP BY r ORDER BY SUM(l.defect_qty) DESC, r",
                ),
                top_n,
            ),
            "by_workflow": ranked_pareto(
                tallies(
                    fold,
                    f"SELECT COALESCE(NULLIF(l.workflow, ''), '{UNKNOWN}') AS w, {SUMS} "
                    "FROM lots l GROUP BY w ORDER BY SUM(l.defect_qty) DESC, w",
                ),
                top_n,
            ),
            "by_loss_reason": reason_pareto(
                reason_totals(fold), kpi["total_input"], None, reason_lots(fold)
            ),
        },
        "attribution": rows,
        "materials_attribution": encoded_array(materials) if encoded else list(materials),
        # a row per lot and selected reason, a clean lot one row: every lot, plus the rows
        # beyond each defective lot's first (one scan of the rejects, every one a lot's)
        "detail_total_count": int(
            fold.db.value(
                "SELECT (SELECT COUNT(*) FROM lots) + COUNT(*) - COUNT(DISTINCT idx) "
                f"{SELECTED_REJECTS}"
            )
        ),
    }


#: Per material (part, lot): its part's description and the detection lots that used it.
MATERIAL_TOTALS = (
    "SELECT m.part, m.lot, COALESCE(d.description, ''), t.lots, t.input, t.defects "
    "FROM material_totals t JOIN materials m ON m.idx = t.material "
    "LEFT JOIN part_descriptions d ON d.part = m.part"
)


def _top(tallies: Mapping[str, Tally], top_n: int) -> list[tuple[str, Tally]]:
    """The first ``top_n`` items in chart order (defects desc, then name)."""
    return sorted(tallies.items(), key=lambda kv: (-kv[1].defect_qty, kv[0]))[:top_n]


def known_detection_machines(fold: Fold) -> dict[str, Tally]:
    """Lots per detection machine, the lots of no known machine left out (the old chart's)."""
    machines = detection_machines(fold)
    machines.pop(UNKNOWN, None)
    return machines


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
    """Downstream of the defect lots (``pipeline.stages.msd.forward``): the KPIs, the
    amplification, the detection loss reasons, the reason matrix, and the charts of the
    stations and machines after the detection station."""
    db, down = fold.db, fold.downstream
    station_lots = dict(db.execute("SELECT grp, COUNT(*) FROM station_lots GROUP BY grp"))
    machine_lots = dict(db.execute("SELECT machine, COUNT(*) FROM machine_lots GROUP BY machine"))
    stations = _tallies(down.station_input, down.station_reject, station_lots)
    machines = _tallies(down.machine_input, down.machine_reject, machine_lots)
    total_input = sum(down.station_input.values())
    return {
        "kpi": forward_kpi(fold),
        "amplification": amplification(fold),
        "by_detection_loss_reason": detection_loss_reasons(fold),
        "by_front_downstream_reason_matrix": reason_matrix(fold),
        "charts": {
            "by_downstream_station": pareto(stations, None),
            "by_downstream_machine": pareto(machines, fold.top_n),
            "by_downstream_loss_reason": [
                {
                    "name": r["name"],
                    "defect_qty": r["defect_qty"],
                    "cumulative_pct": r["cumulative_pct"],
                }
                for r in reason_pareto(down.reason_reject, total_input, fold.top_n)
            ],
            "by_detection_machine": pareto(known_detection_machines(fold), fold.top_n),
        },
        "attribution": [],
        "detail_total_count": int(db.value("SELECT COUNT(*) FROM lots WHERE defect_qty > 0")),
    }


def _tallies(
    inputs: Mapping[str, float], rejects: Mapping[str, float], lots: Mapping[str, int]
) -> dict[str, Tally]:
    """Per name (station or machine) met downstream: its input, rejects and lots."""
    return {
        name: Tally(inputs.get(name, 0), rejects.get(name, 0), lots.get(name, 0))
        for name in set(inputs) | set(rejects)
    }
