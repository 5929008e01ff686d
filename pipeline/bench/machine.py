"""One line describing the machine a benchmark ran on: CPU, memory, OS, Python, Redis."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu() -> str:
    cpuinfo = _read("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith(("model name", "Model", "Hardware")) and ":" in line
    ]
    model = models[0] if models else platform.processor() or platform.machine() or "unknown CPU"
    logical = sum(1 for line in cpuinfo.splitlines() if line.startswith("processor"))
    count = logical or os.cpu_count() or 0
    text = f"{model}, {count} CPU{'s' if count != 1 else ''}"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = count
    return text + (f" ({usable} usable)" if usable and usable != count else "")


def _memory() -> str | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            kb = int(line.split()[1])
            return f"{kb / 2**20:.1f} GiB RAM"
    return None


def _os() -> str:
    release = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            release[key] = value.strip().strip('"')
    name = release.get("PRETTY_NAME") or platform.system() or "unknown OS"
    return f"{name}, {platform.system()} {platform.release()} {platform.machine()}".strip()


def machine_description(redis_version: str | None = None) -> str:
    """One line: CPU model and count, memory, OS and kernel, Python, and Redis if given."""
    parts = [_cpu(), _memory(), _os(), f"Python {platform.python_version()}"]
    if redis_version:
        parts.append(f"Redis {redis_version}")
    return "; ".join(part for part in parts if part)
