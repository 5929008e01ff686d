"""The README's first command, ``python -m pipeline demo``, as a newcomer runs it: a real
worker and the API on loopback (Redis databases 2 and 3), the trace submitted over HTTP, the
stream in a file, the summary, and nothing left running afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.demo import factory
from pipeline.demo.info import read_truth
from tests.support.redis_dbs import REDIS, clean_databases

ROOT = Path(__file__).resolve().parents[2]
STORE_DB, BROKER_DB = 2, 3
DEMO_SECONDS = 240


@pytest.fixture
def demo_redis() -> Iterator[None]:
    for _ in clean_databases(STORE_DB, BROKER_DB):
        yield


def processes_with(marker: str) -> list[int]:
    """Pids of processes whose environment holds ``marker`` (this test's own Redis URL)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ.split(b"\0") and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def test_the_demo_runs_the_real_stack_and_leaves_nothing_running(
    demo_redis: None, tmp_path: Path
) -> None:
    db, out = tmp_path / "demo.db", tmp_path / "out"
    marker = f"TRACE_REDIS_URL={REDIS}/{STORE_DB}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_")}
    env.update(
        TRACE_REDIS_URL=f"{REDIS}/{STORE_DB}",
        TRACE_BROKER_URL=f"{REDIS}/{BROKER_DB}",
        TRACE_IN_LIST_SIZE="200",  # several batches per domain, as a bigger trace has
    )
    # When a newcomer runs the demo (small size, JSON summary for the test to read)
    argv = [sys.executable, "-m", "pipeline", "demo", "--lots", "1500", "--seed", "101"]
    argv += ["--seeds", "500", "--db", str(db), "--out", str(out), "--json"]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, timeout=DEMO_SECONDS, check=False
    )
    logs = done.stderr.decode(errors="replace")[-4000:]
    assert done.returncode == 0, logs
    summary = orjson.loads(done.stdout)

    # Then the worker and the API it started served the trace ...
    assert "Worker and API up (http://127.0.0.1:" in logs
    worker_log = (out / "logs" / "worker.log").read_text()
    assert "event=stage_finished stage=events" in worker_log
    api_log = (out / "logs" / "api.log").read_text()
    assert re.search(r"logger=pipeline.jobs pid=\d+ job=\w+ event=accepted ", api_log), api_log
    assert 'access=1 remote=127.0.0.1 method=POST path="/api/trace/events" status=202' in api_log
    # ... through every stage, with the planted machines on top
    assert 400 <= summary["seed_count"] <= 700
    assert summary["lineage_nodes"] >= summary["seed_count"]
    assert summary["event_cids"] == summary["lineage_nodes"]
    assert set(summary["seconds"]) == {"seed-resolve", "lineage", "events", "aggregation", "stream"}
    planted = {t["EQUIPMENTID"] for t in read_truth(db) if t["KIND"] == "bad_machine"}
    assert {s["EQUIPMENT_ID"] for s in summary["top_suspects"][:3]} == planted
    # And the stream in the results holds every row the summary counts, ending in complete
    lines = [orjson.loads(line) for line in (out / "trace.ndjson").read_bytes().splitlines()]
    assert lines[0]["type"] == "meta" and lines[-1]["type"] == "complete"
    records = {}
    for line in lines:
        if line["type"] == "records":
            records[line["domain"]] = records.get(line["domain"], 0) + line["count"]
    assert records == summary["rows"] and all(records.values())
    assert lines[-1]["total_records"] == sum(records.values())
    assert (out / "aggregation.json").is_file()
    # And the detail tables as the MSD page exports them, both directions, and the forward
    # trace's headline (asked the July way: the seeds alone)
    for name, first in (("detail.csv", "LOT ID,TYPE"), ("detail-forward.csv", "LOT ID,偵測設備")):
        text = (out / name).read_bytes().decode("utf-8-sig")
        assert text.startswith(first) and text.count("\r\n") > 1, name
    forward = summary["forward"]
    assert forward["detection_lot_count"] > 0 and forward["amplification"] > 1
    top = forward["top_reason_pairs"][0]
    assert (top["front"], top["downstream"]) == (
        factory.FORWARD_FRONT_REASON,
        factory.FORWARD_DOWNSTREAM_REASON,
    )
    assert (out / "aggregation-forward.json").is_file()
    # And nothing it started is still running
    assert processes_with(marker) == []


def test_a_demo_stopped_midway_stops_what_it_started(demo_redis: None, tmp_path: Path) -> None:
    # Given the demo running, its worker and API up
    marker = f"TRACE_REDIS_URL={REDIS}/{STORE_DB}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_")}
    env.update(TRACE_REDIS_URL=f"{REDIS}/{STORE_DB}", TRACE_BROKER_URL=f"{REDIS}/{BROKER_DB}")
    argv = [sys.executable, "-m", "pipeline", "demo", "--lots", "1500", "--seed", "101"]
    argv += ["--db", str(tmp_path / "demo.db"), "--out", str(tmp_path / "out")]
    log = tmp_path / "demo.err"
    with log.open("wb") as err:
        demo = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + DEMO_SECONDS
        while "Worker and API up" not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the demo's stack never came up"
            time.sleep(0.1)
        assert len(processes_with(marker)) >= 3  # the demo, the worker command, gunicorn
        # When it is told to stop (systemd, a closed terminal, kill)
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    # Then it says so, exits non-zero, and nothing it started is left
    assert code != 0
    assert processes_with(marker) == []
