"""What the chaos suite measured, per test, and ``RELIABILITY.md`` written from it.

Each chaos test gets a ``Trial`` (the ``trial`` fixture) and notes on it what it did: the faults it
injected, the jobs it ran, the rows it compared with an undisturbed run, the inputs it tried, the
recovery times it saw (seconds from a fault to the work running again), and the RSS of the
processes it watched (MB, before and after). Failed assertions are counted by the suite itself.
At the end of the session the trials are written to ``var/chaos/reliability.json``, and with
``CHAOS_REPORT=<path>`` (``ops/chaos`` sets it) as the Markdown table of ``RELIABILITY.md``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

#: ``CHAOS_FULL=1`` (``ops/chaos``): the whole suite; otherwise the short subset CI runs.
FULL = os.environ.get("CHAOS_FULL") == "1"


def scale(short: int, full: int) -> int:
    """``full`` in the full suite, ``short`` in CI's subset (repetitions, jobs, cases...)."""
    return full if FULL else short


@dataclass
class Trial:
    """What one chaos test did and saw."""

    test: str
    faults: list[str] = field(default_factory=list)  # each fault injected, in words
    jobs: int = 0  # jobs run to their end
    rows_compared: int = 0  # rows compared with an undisturbed run (or pages with streams)
    inputs: int = 0  # requests or inputs tried (hostile input, load)
    failures: list[str] = field(default_factory=list)  # what went wrong (the goal: none)
    recovery_seconds: list[float] = field(default_factory=list)
    rss_mb: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (before, after)
    notes: list[str] = field(default_factory=list)
    outcome: str = "not run"
    seconds: float = 0.0

    def fault(self, text: str) -> None:
        self.faults.append(text)

    def recovered(self, seconds: float) -> None:
        self.recovery_seconds.append(round(seconds, 2))

    def rss(self, name: str, before_mb: float, after_mb: float) -> None:
        self.rss_mb[name] = (round(before_mb, 1), round(after_mb, 1))


@dataclass
class Book:
    """Every trial of the session."""

    trials: list[Trial] = field(default_factory=list)
    began: float = field(default_factory=time.time)

    def new(self, test: str) -> Trial:
        trial = Trial(test)
        self.trials.append(trial)
        return trial

    def save(self, root: Path) -> Path:
        out = root / "var" / "chaos"
        out.mkdir(parents=True, exist_ok=True)
        path = out / "reliability.json"
        path.write_bytes(
            orjson.dumps(
                {"full": FULL, "machine": machine(), "trials": [asdict(t) for t in self.trials]},
                option=orjson.OPT_INDENT_2,
            )
        )
        return path


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
    }


def _recovery(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def _rss(values: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {a:.0f}→{b:.0f}" for k, (a, b) in values.items()) or "–"


def markdown(book: Book, command: str) -> str:
    """``RELIABILITY.md``: per test what was injected and what came out."""
    m = machine()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(book.began))
    failures = sum(len(t.failures) + (t.outcome == "failed") for t in book.trials)
    lines = [
        "# Reliability",
        "",
        f"Written by the chaos suite (`{command}`) on {when}",
        f"in {time.time() - book.began:.0f} s; {'full suite' if FULL else 'short subset (CI)'}.",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['system']}, Python {m['python']}.",
        "",
        f"**Failures: {failures}** (the goal: 0).",
        "",
        "| test | outcome | faults injected | jobs | rows compared | inputs | failures "
        "| recovery s (median / max) | RSS MB before→after |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for t in book.trials:
        faults = "; ".join(sorted(set(t.faults)))
        if len(t.faults) > len(set(t.faults)):
            faults += f" ({len(t.faults)} in all)"
        lines.append(
            f"| `{t.test}` | {t.outcome} | {faults or '–'} | {t.jobs} | {t.rows_compared:,} "
            f"| {t.inputs:,} | {len(t.failures)} | {_recovery(t.recovery_seconds)} "
            f"| {_rss(t.rss_mb)} |"
        )
    notes = [(t.test, n) for t in book.trials for n in [*t.failures, *t.notes]]
    if notes:
        lines += ["", "## Notes and failures", ""]
        lines += [f"- `{test}`: {note}" for test, note in notes]
    return "\n".join(lines) + "\n"
