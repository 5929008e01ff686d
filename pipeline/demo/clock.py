"""Simulated time of the demo factory: seconds since ``START``, written as MES timestamps."""

from __future__ import annotations

import datetime as dt

#: The first lot starts here (the generator spreads lot starts over its ``SPAN_DAYS``).
START = dt.datetime(2026, 4, 1)


class Clock:
    """Seconds since ``START`` as ``YYYY-MM-DD HH:MM:SS`` (fast: one day string per day)."""

    def __init__(self) -> None:
        self._days: list[str] = []

    def __call__(self, seconds: int) -> str:
        day, rest = divmod(seconds, 86_400)
        while day >= len(self._days):
            self._days.append((START + dt.timedelta(days=len(self._days))).strftime("%Y-%m-%d"))
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{self._days[day]} {hours:02d}:{minutes:02d}:{secs:02d}"
