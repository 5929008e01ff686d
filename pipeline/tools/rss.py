"""Resident memory of process trees, sampled from ``/proc`` (Linux): what the systemd units'
``MemoryHigh``/``MemoryMax`` are set from, measured on the real stack (``python -m pipeline demo
--measure-memory``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def rss_kb(pid: int) -> int:
    """The process's resident set (kB); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """The process's direct children (every thread's)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def tree(pid: int) -> Iterator[int]:
    """``pid`` and all its descendants."""
    yield pid
    for child in children(pid):
        yield from tree(child)


@dataclass
class PeakRss:
    """Samples, every ``interval`` seconds in a thread, the resident memory of named process
    trees: per tree the peak of its largest single process and the peak of its sum (what a
    systemd unit's cgroup counts, page cache aside)."""

    roots: Mapping[str, int]
    interval: float = 0.1
    process_peak_kb: dict[str, int] = field(default_factory=dict)
    total_peak_kb: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for name, root in self.roots.items():
            sizes = [rss_kb(pid) for pid in tree(root)]
            self.process_peak_kb[name] = max(self.process_peak_kb.get(name, 0), max(sizes))
            self.total_peak_kb[name] = max(self.total_peak_kb.get(name, 0), sum(sizes))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakRss:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
