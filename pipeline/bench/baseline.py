"""The old approach on the same data, in a subprocess, under a memory cap.

The old system fetched every row of every domain, kept each as a dict, all at once, and built
one JSON document of the whole result. The child process here does the same with the pipeline's
own ``fetch_events`` (so the rows are the pipeline's rows), then reports one JSON line::

    python -m pipeline.bench.baseline DB_PATH CIDS_FILE DOMAINS

(``CIDS_FILE``: one CID per line; ``DOMAINS``: comma separated). ``run_baseline`` starts it with
its address space capped (``RLIMIT_AS``), which models the old system's 7 GB VM: it counts virtual
memory, so the cap includes the interpreter, the sqlite library and allocator slack (a few tens
of MB before any row is read), not only the rows.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.bench.model import BaselineFigure
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.events import fetch_events

#: The old system's fetch size and IN-list size.
FETCH_ROWS = 5000
IN_LIST_SIZE = 1000
#: Exit status of the child when it ran out of memory.
EXIT_MEMORY = 3
#: Seconds between looks at the child.
POLL_SECONDS = 0.05


def _peak_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory (MB) of process ``pid``: ``VmHWM``, the high-water mark of its own
    address space. ``ru_maxrss`` is not used on Linux: it carries over the RSS of the forked
    copy of the parent into the exec'd child, so a big parent would inflate the baseline's
    peak. ``None`` when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        if pid != "self":
            return None
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _materialise(db_path: Path, cids: list[str], domains: list[str]) -> tuple[int, int]:
    """Every row of every domain as a dict, all held at once, then one JSON document of it.
    Returns (rows, document length)."""
    results: dict[str, Any] = {}
    total = 0
    with SqliteSource(db_path, fetch_rows=FETCH_ROWS, in_list_size=IN_LIST_SIZE) as source:
        for domain in domains:
            rows = [
                dict(zip(batch.columns, row, strict=True))
                for batch in fetch_events(source, domain, cids)
                for row in batch.rows
            ]
            results[domain] = {"data": rows, "count": len(rows)}
            total += len(rows)
    document = json.dumps({"results": results})
    return total, len(document)


def main(argv: Sequence[str]) -> int:
    """The child: ``DB_PATH CIDS_FILE DOMAINS``; prints one JSON line (see the module doc)."""
    if len(argv) != 3:
        print("usage: python -m pipeline.bench.baseline DB_PATH CIDS_FILE DOMAINS", file=sys.stderr)
        return 2
    db_path, cids_file, domain_list = Path(argv[0]), Path(argv[1]), argv[2]
    cids = [line.strip() for line in cids_file.read_text().splitlines() if line.strip()]
    domains = [d for d in domain_list.split(",") if d]
    started = time.perf_counter()
    failed = False
    try:
        rows, size = _materialise(db_path, cids, domains)
    except MemoryError:
        failed = True  # handled outside the except block, once the rows are unreachable
    seconds = time.perf_counter() - started
    if failed:
        print(json.dumps({"error": "MemoryError", "peak_mb": _peak_mb(), "seconds": seconds}))
        return EXIT_MEMORY
    figures = {"seconds": seconds, "peak_mb": _peak_mb(), "rows": rows, "json_bytes": size}
    print(json.dumps(figures), flush=True)
    return 0


def run_baseline(
    db_path: Path,
    cids: Sequence[str],
    domains: Sequence[str],
    *,
    max_mb: int,
    timeout_s: float,
    workdir: Path,
) -> BaselineFigure:
    """Run the old approach over ``cids`` in a child process capped at ``max_mb`` MiB of
    address space (``RLIMIT_AS``) and ``timeout_s`` wall seconds.

    Finished: the child's seconds (fetch to JSON document), peak RSS and rows. Not finished:
    ``seconds`` and ``rows`` are ``None``, ``peak_mb`` is the child's peak RSS as it reported
    it or, if it could not, as last seen while it ran (``None`` if never seen), and ``reason``
    says why. Never raises for the child's failure. (``preexec_fn``: call it from one thread.)
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cids_file = workdir / "baseline-cids.txt"
    cids_file.write_text("".join(f"{cid}\n" for cid in cids))
    out_path, err_path = workdir / "baseline.out", workdir / "baseline.err"
    limit = max_mb * 2**20
    root = Path(__file__).resolve().parents[2]
    paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def cap() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [
        sys.executable,
        "-m",
        "pipeline.bench.baseline",
        str(Path(db_path).resolve()),
        str(cids_file),
        ",".join(domains),
    ]
    started = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, cwd=workdir, env=env, preexec_fn=cap
        )
        seen_peak, timed_out = _watch(process, started + timeout_s)
    elapsed = time.perf_counter() - started
    code = process.returncode
    report = _last_json(out_path.read_text(errors="replace"))
    stderr = err_path.read_text(errors="replace")

    def failed(reason: str) -> BaselineFigure:
        peak = report.get("peak_mb", seen_peak)
        return BaselineFigure(False, None, None if peak is None else float(peak), None, reason)

    if timed_out:
        return failed(f"timed out after {timeout_s:g} s")
    if code == 0 and "seconds" in report:
        peak = float(report.get("peak_mb") or seen_peak or 0.0)
        return BaselineFigure(True, float(report["seconds"]), peak, int(report["rows"]))
    if report.get("error") == "MemoryError" or (code != 0 and "MemoryError" in stderr):
        seconds = float(report.get("seconds", elapsed))
        return failed(f"ran out of memory under the {max_mb} MB cap after {seconds:.1f} s")
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
        return failed(f"killed by signal {-code} ({name}) after {elapsed:.1f} s")
    tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
    return failed(f"exited with status {code}: {tail}")


def _watch(process: subprocess.Popen[bytes], deadline: float) -> tuple[float | None, bool]:
    """Wait for ``process`` (killing it at ``deadline``), looking at its peak RSS meanwhile:
    the last peak seen (``None`` if never) and whether it was killed for time."""
    seen: float | None = None
    while process.poll() is None:
        seen = _peak_mb(process.pid) or seen
        if time.perf_counter() >= deadline:
            process.kill()
            process.wait()
            return seen, True
        time.sleep(POLL_SECONDS)
    return seen, False


def _last_json(text: str) -> dict[str, Any]:
    """The child's report: its last stdout line that is a JSON object ({} if none)."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
