"""What the detection lots alone say, in both directions: the KPIs of the detection station, the
loss reasons, the lots per detection machine and the daily trend; and the SQL pieces the result
reuses to count lots (``SUMS``) and the rejects that count as defects (``SELECTED_REJECTS``).

Every figure is grouped and summed by SQL in the fold's scratch database; quantities are pieces,
rates percentages (``pareto.rate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.pareto import UNKNOWN, Tally, rate

#: The rejects of the detection lots that count as defects (the ``loss_reasons`` asked for).
SELECTED_REJECTS = "FROM rejects WHERE qty <> 0 AND reason IN counted_reasons"
#: Lots, input and defects of a group of detection lots ``l``, as ``tallies`` reads them.
SUMS = "COUNT(*), SUM(l.input_qty), SUM(l.defect_qty)"


def tallies(fold: Fold, sql: str) -> Iterator[tuple[Any, ...]]:
    """Rows of ``(key..., lots, input, defects)`` as ``(key..., Tally)``."""
    for *key, count, input_qty, defect_qty in fold.db.rows(sql):
        yield (*key, Tally(input_qty, defect_qty, count))


def detection_kpi(fold: Fold) -> dict[str, Any]:
    """Input, lots, defective lots, defects, their rate and the top loss reason."""
    total_input, lots, defective, total_defect = fold.db.execute(
        "SELECT COALESCE(SUM(input_qty), 0), COUNT(*), COALESCE(SUM(defect_qty > 0), 0), "
        "COALESCE(SUM(defect_qty), 0) FROM lots"
    ).fetchone()
    reasons = reason_totals(fold)
    top = min(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0] if reasons else ""
    return {
        "total_input": total_input,
        "lot_count": lots,
        "defective_lot_count": defective,
        "total_defect_qty": total_defect,
        "total_defect_rate": rate(total_defect, total_input),
        "top_loss_reason": top,
    }


def reason_totals(fold: Fold) -> dict[str, float]:
    """Defects per loss reason (those selected)."""
    return dict(fold.db.execute(f"SELECT reason, SUM(qty) {SELECTED_REJECTS} GROUP BY reason"))


def reason_lots(fold: Fold) -> dict[str, int]:
    """Detection lots per loss reason (those selected, with a defect of it)."""
    return dict(
        fold.db.execute(f"SELECT reason, COUNT(DISTINCT idx) {SELECTED_REJECTS} GROUP BY reason")
    )


def detection_machines(fold: Fold) -> dict[str, Tally]:
    """Lots per detection machine (a lot tested on several counts for each)."""
    per_machine: dict[str, Tally] = {}
    rows = tallies(fold, f"SELECT l.equipment, {SUMS} FROM lots l GROUP BY l.equipment")
    for equipment, t in rows:
        for name in (equipment or UNKNOWN).split(","):
            total = per_machine.setdefault(name.strip() or UNKNOWN, Tally())
            total.input_qty += t.input_qty
            total.defect_qty += t.defect_qty
            total.lot_count += t.lot_count
    return per_machine


def daily_trend(fold: Fold) -> list[dict[str, Any]]:
    """Per track-in day (``YYYY-MM-DD``) of the detection lots: input, defects, rate, lots."""
    days = tallies(
        fold,
        f"SELECT substr(l.trackin, 1, 10) AS day, {SUMS} FROM lots l "
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
