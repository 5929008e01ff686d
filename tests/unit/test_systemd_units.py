"""The systemd units in ``ops/systemd``: one worker unit per queue, graceful stops longer than
the processes' own shutdown timeouts, restarts, memory limits, and ``systemd-analyze verify``
finding nothing wrong (where systemd's tools are installed)."""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.engine.job import QUEUES

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "ops" / "systemd"
INSTALL_ROOT = "/opt/mes-trace"


def directives(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file, every value of a repeated key kept."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def one(unit: dict[str, list[str]], key: str) -> str:
    values = unit[key]
    assert len(values) == 1, (key, values)
    return values[0]


def megabytes(size: str) -> float:
    number, suffix = re.fullmatch(r"(\d+)([KMG])", size).groups()  # type: ignore[union-attr]
    return int(number) * {"K": 1 / 1024, "M": 1, "G": 1024}[suffix]


def worker_shutdown_seconds() -> float:
    text = (ROOT / "ops" / "worker").read_text()
    found = re.search(r"WORKER_SHUTDOWN_TIMEOUT_MS:-(\d+)", text)
    assert found, "ops/worker must default its shutdown timeout"
    return int(found.group(1)) / 1000


def test_the_target_wants_the_api_and_one_worker_unit_per_queue() -> None:
    target = directives(UNITS / "mes-trace.target")
    wanted = one(target, "Wants").split()
    assert wanted == ["mes-trace-api.service"] + [f"mes-trace-worker@{q}.service" for q in QUEUES]


def test_a_worker_unit_consumes_its_queue_and_stops_gracefully() -> None:
    unit = directives(UNITS / "mes-trace-worker@.service")
    # the queue is the instance name, last on the command line (no environment file changes it)
    assert one(unit, "ExecStart") == f"{INSTALL_ROOT}/ops/worker --queues %i"
    assert unit["EnvironmentFile"] == [
        "/etc/mes-trace/trace.env",
        "-/etc/mes-trace/worker-%i.env",
    ]
    # SIGTERM to the main process only, which passes it on; time enough to finish a message
    assert one(unit, "KillMode") == "mixed" and one(unit, "KillSignal") == "SIGTERM"
    assert float(one(unit, "TimeoutStopSec")) > worker_shutdown_seconds()
    # one dead worker process ends the command non-zero: systemd starts it again
    assert one(unit, "Restart") in ("on-failure", "always")
    assert 0 < megabytes(one(unit, "MemoryHigh")) < megabytes(one(unit, "MemoryMax"))
    # a worker-only host (scale out) enables the worker units alone: they start at boot
    assert "multi-user.target" in one(unit, "WantedBy").split()
    # the large-job queue runs one job per process, as the memory limits assume
    large = directives(UNITS / "worker-trace_large.env")
    assert large["WORKER_THREADS"] == ["1"]


def test_the_api_unit_outwaits_gunicorns_graceful_timeout() -> None:
    unit = directives(UNITS / "mes-trace-api.service")
    conf = runpy.run_path(str(ROOT / "ops" / "gunicorn.conf.py"))
    assert one(unit, "ExecStart").startswith(
        f"{INSTALL_ROOT}/.venv/bin/gunicorn -c {INSTALL_ROOT}/ops/gunicorn.conf.py"
    )
    assert one(unit, "KillMode") == "mixed"
    assert float(one(unit, "TimeoutStopSec")) > conf["graceful_timeout"]
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert "multi-user.target" in one(unit, "WantedBy").split()
    assert 0 < megabytes(one(unit, "MemoryHigh")) < megabytes(one(unit, "MemoryMax"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # Installed as the README says, with this checkout as the install root (and the example
    # settings as the environment file; no service user on a test machine)
    for path in UNITS.glob("mes-trace*"):
        text = path.read_text().replace(INSTALL_ROOT, str(ROOT))
        text = text.replace("/etc/mes-trace/trace.env", str(ROOT / ".env.example"))
        text = re.sub(r"^(User|Group)=.*\n", "", text, flags=re.MULTILINE)
        (tmp_path / path.name).write_text(text)
    (ROOT / ".venv" / "bin" / "gunicorn").exists() or pytest.skip("no .venv/bin/gunicorn")
    names = ["mes-trace.target", "mes-trace-api.service"]
    names += [f"mes-trace-worker@{q}.service" for q in QUEUES]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [
        line
        for line in done.stderr.splitlines()
        # a container without systemd as init has no system manager to ask about these
        if not re.search(r"redis-server\.service|network-online\.target|Failed to", line)
    ]
    assert done.returncode == 0 and complaints == [], done.stderr
