"""The forward figures of the mid-section-defect analysis, read from a finished fold: the KPIs,
the amplification (MSD-07), the detection loss reasons (MSD-06) and the front x downstream
reason matrix (MSD-09).

The cohort is the defect lots (the detection lots with a defect under ``loss_reasons``) and
their descendants, re-keyed to them (MSD-08, ``owners``); only stations after the detection
station count. Grouping is SQL in the fold's scratch database; what Python holds is the
factory's size (loss reasons, stations), never the trace's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.pareto import OTHER, rate

#: A detection lot's rejects that count as defects, joined with the lot (``r``, ``l``).
_DEFECTS = (
    "FROM rejects r JOIN lots l ON l.idx = r.idx WHERE r.qty > 0 AND r.reason IN counted_reasons"
)


def forward_kpi(fold: Fold) -> dict[str, Any]:
    """The forward cards: detection lots (all, with or without defects), their defects, the
    tracked lots (the same number, as the contract has it), the downstream stations reached,
    their rejects and reject rate (percent, 4 dp)."""
    down = fold.downstream
    lots, defects = fold.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(defect_qty), 0) FROM lots"
    ).fetchone()
    reject = sum(down.station_reject.values())
    return {
        "detection_lot_count": lots,
        "detection_defect_qty": defects,
        "tracked_lot_count": lots,
        "downstream_stations_reached": len(set(down.station_input) | set(down.station_reject)),
        "downstream_total_reject": reject,
        "downstream_reject_rate": rate(reject, sum(down.station_input.values())),
    }


def amplification(fold: Fold) -> float | None:
    """MSD-07: the defect lots' downstream reject rate (their own and their descendants'
    rejects / track-in at the stations after detection) over their detection defect rate
    (their defects / their detection input), rounded to 6 decimals. One cohort on both sides:
    the defect lots, whose descendants the numerator follows; the old backend divided by the
    input of *every* detection lot, which mixes the clean lots' input into the defect rate and
    makes the ratio grow with the share of clean lots, not with anything downstream.
    ``None`` when the detection defect rate is 0 (no defect lot: nothing to amplify); ``0.0``
    when nothing was rejected downstream."""
    seed_input, defects = fold.db.execute(
        "SELECT COALESCE(SUM(input_qty), 0), COALESCE(SUM(defect_qty), 0) FROM lots "
        "WHERE defect_qty > 0"
    ).fetchone()
    if not defects or not seed_input:
        return None
    down = fold.downstream
    given, reject = sum(down.station_input.values()), sum(down.station_reject.values())
    downstream_rate = reject / given if given else 0.0
    return round(downstream_rate / (defects / seed_input), 6)


def detection_loss_reasons(fold: Fold) -> list[dict[str, Any]]:
    """MSD-06: per loss reason at detection (those counted), its defects, the input and number
    of the lots carrying it, and ``reject_rate`` = defects / that input as a FRACTION (6 dp);
    Top N by defects (then name), the rest as ``其他`` over the union of their lots."""
    db = fold.db
    items: list[dict[str, Any]] = []
    shown: list[str] = []
    for reason, qty, given, lots in db.rows(
        f"SELECT r.reason, SUM(r.qty), SUM(l.input_qty), COUNT(*) {_DEFECTS} "
        "GROUP BY r.reason ORDER BY SUM(r.qty) DESC, r.reason"
    ):
        if len(shown) < fold.top_n:
            shown.append(reason)
            items.append(_reason_item(reason, qty, given, lots))
    marks = ",".join("?" * len(shown)) or "NULL"
    rest = f"{_DEFECTS} AND r.reason NOT IN ({marks})"
    qty = db.value(f"SELECT COALESCE(SUM(r.qty), 0) {rest}", shown)
    if qty:
        given, lots = db.execute(
            "SELECT COALESCE(SUM(input_qty), 0), COUNT(*) FROM lots "
            f"WHERE idx IN (SELECT r.idx {rest})",
            shown,
        ).fetchone()
        items.append(_reason_item(OTHER, qty, given, lots))
    return items


def _reason_item(reason: str, qty: float, given: float, lots: int) -> dict[str, Any]:
    return {
        "loss_reason": reason,
        "reject_qty": qty,
        "input_qty": given,
        "lot_count": lots,
        "reject_rate": round(qty / given, 6) if given else 0.0,
    }


def reason_matrix(fold: Fold) -> dict[str, Any]:
    """MSD-09: ``{rows, cols, cells, row_pct}``: each downstream reject (pieces) of a defect lot's
    family counts under every front reason (counted at detection) of the defect lots it
    descends from, once per reason; rows (front reasons) and columns (downstream reasons) are
    each ranked by total (then name), Top N + ``其他``; ``row_pct`` is each cell's share of its
    row (percent, 2 dp; 0 for an empty row). Empty lists when nothing was rejected downstream.
    """
    cells = fold.db.execute(
        "SELECT f.reason, c.reason, SUM(c.qty) FROM cid_reasons c JOIN (SELECT DISTINCT o.cid, "
        "r.reason FROM owners o JOIN rejects r ON r.idx = o.idx "
        "WHERE r.qty > 0 AND r.reason IN counted_reasons) f ON f.cid = c.cid GROUP BY 1, 2"
    ).fetchall()  # one row per (front, downstream) loss-reason pair: the factory's size, read twice
    row_of = _buckets([(r, q) for r, _c, q in cells], fold.top_n)
    col_of = _buckets([(c, q) for _r, c, q in cells], fold.top_n)
    rows = list(dict.fromkeys(row_of.values()))
    cols = list(dict.fromkeys(col_of.values()))
    grid = [[0] * len(cols) for _ in rows]
    for front, downstream, qty in cells:
        grid[rows.index(row_of[front])][cols.index(col_of[downstream])] += qty
    return {
        "rows": [{"name": name, "total": sum(grid[i])} for i, name in enumerate(rows)],
        "cols": [{"name": name, "total": sum(r[j] for r in grid)} for j, name in enumerate(cols)],
        "cells": grid,
        "row_pct": [[round(v / sum(r) * 100, 2) if sum(r) else 0.0 for v in r] for r in grid],
    }


def _buckets(quantities: Sequence[tuple[str, float]], top_n: int) -> dict[str, str]:
    """Each name -> itself when it ranks in the top N by total quantity (then name), else
    ``其他``; in rank order."""
    totals: dict[str, float] = {}
    for name, qty in quantities:
        totals[name] = totals.get(name, 0) + qty
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    return {name: name if i < top_n else OTHER for i, name in enumerate(ranked)}
