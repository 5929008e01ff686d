"""How the benchmark writes its figures: seconds, MB, ms, rows/s, counts, shares and ratios;
``NONE`` for a figure that was not measured. One place, so the terminal tables, BENCHMARKS.md
and the chart always agree."""

from __future__ import annotations

import math
from collections.abc import Callable

NONE = "—"  # a figure that was not measured


def _fmt(value: float | None, fmt: Callable[[float], str]) -> str:
    return NONE if value is None or math.isnan(value) else fmt(value)


def seconds(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def mb(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def ms(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}" if v < 100 else f"{v:,.0f}")


def count(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:,.0f}")


def rate(value: float | None) -> str:
    """Rows per second: a whole count."""
    return count(value)


def pct(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.0%}")


def times(value: float | None) -> str:
    return _fmt(value, lambda v: f"{v:.1f}×")


def compact(value: float) -> str:
    """12,345,678 -> 12.3M; for the chart's bar labels."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"
