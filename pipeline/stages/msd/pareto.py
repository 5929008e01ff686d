"""Rates and Pareto charts of the mid-section-defect analysis (the contract's rounding rules)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Pareto bucket holding everything past the top N.
OTHER = "其他"
#: Placeholder for an unknown value.
UNKNOWN = "(未知)"


def rate(part: float, whole: float) -> float:
    """``part / whole`` as a percentage rounded to 4 decimals; 0.0 for an empty denominator."""
    return round(part / whole * 100, 4) if whole else 0.0


@dataclass
class Tally:
    """Quantities summed for one chart item (lot counts come from de-duplicated lots)."""

    input_qty: float = 0
    defect_qty: float = 0
    lot_count: int = 0

    def add(self, input_qty: float, defect_qty: float) -> None:
        self.input_qty += input_qty
        self.defect_qty += defect_qty
        self.lot_count += 1


def pareto(tallies: dict[str, Tally], top_n: int | None) -> list[dict[str, Any]]:
    """Items sorted by defect qty (desc, then name), the tail past ``top_n`` folded into
    ``其他`` when it holds any quantity; ``cumulative_pct`` is each item's running share of all
    defects shown (2 decimals)."""
    ordered = sorted(tallies.items(), key=lambda kv: (-kv[1].defect_qty, kv[0]))
    return ranked_pareto(ordered, top_n)


def ranked_pareto(ranked: Iterable[tuple[str, Tally]], top_n: int | None) -> list[dict[str, Any]]:
    """``pareto`` of items already in its order (defect qty desc, then name), read once and
    holding only the first ``top_n``: for charts whose items grow with the trace (wafer roots,
    material lots), ranked by the scratch database."""
    head: list[tuple[str, Tally]] = []
    other, folded = Tally(), 0
    for name, t in ranked:
        if top_n is None or len(head) < top_n:
            head.append((name, t))
            continue
        other.input_qty += t.input_qty
        other.defect_qty += t.defect_qty
        other.lot_count += t.lot_count
        folded += 1
    if folded and (other.input_qty or other.defect_qty):
        head.append((OTHER, other))
    total = sum(t.defect_qty for _, t in head)
    items, running = [], 0.0
    for name, t in head:
        running += t.defect_qty
        items.append(
            {
                "name": name,
                "input_qty": _number(t.input_qty),
                "defect_qty": _number(t.defect_qty),
                "defect_rate": rate(t.defect_qty, t.input_qty),
                "lot_count": t.lot_count,
                "cumulative_pct": round(running / total * 100, 2) if total else 0.0,
            }
        )
    return items


def reason_pareto(
    qty_by_reason: dict[str, float],
    total_input: float,
    top_n: int | None,
    lots: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Loss-reason chart: ``{name, defect_qty, defect_rate (of all input), cumulative_pct}``,
    and ``lot_count`` when ``lots`` (per reason) is given (a folded tail has none)."""
    ordered = sorted(
        ((r, q) for r, q in qty_by_reason.items() if q), key=lambda kv: (-kv[1], kv[0])
    )
    if top_n is not None and len(ordered) > top_n:
        rest = sum(q for _, q in ordered[top_n:])
        ordered = [*ordered[:top_n], (OTHER, rest)]
    total = sum(q for _, q in ordered)
    items, running = [], 0.0
    for name, qty in ordered:
        running += qty
        item: dict[str, Any] = {"name": name, "defect_qty": _number(qty)}
        if lots is not None:
            item["lot_count"] = lots.get(name, 0)
        item["defect_rate"] = rate(qty, total_input)
        item["cumulative_pct"] = round(running / total * 100, 2) if total else 0.0
        items.append(item)
    return items


def joined(values: Iterable[str | None]) -> str:
    """Sorted distinct non-empty values joined by commas; ``(未知)`` when there are none."""
    present = sorted({v for v in values if v})
    return ",".join(present) if present else UNKNOWN


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
