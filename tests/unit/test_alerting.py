"""The alert rules and the Grafana dashboard: promtool accepts the rules (and the dashboard's
expressions), every rule says how long, how bad and what to do, and the dashboard asks for its
Prometheus data source. That every metric they name is one ``/metrics`` exports is checked
against the real API in ``tests/api/test_ops_stack.py``.

promtool comes with Debian's ``prometheus`` package: ``ops/ensure-promtool`` installs it when it
is missing and we are root; the promtool tests are skipped only where it cannot.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.alerting import ALERTS, ROOT, dashboard, dashboard_exprs, panels, rules

#: What issue 21 asks the rules to watch, by the alert that does.
WATCHED = {
    "TraceNoLiveWorker": "trace_workers_alive",
    "TraceJobsFailing": "trace_jobs_total",
    "TraceJobStalled": "trace_jobs_stalled",
    "TraceQueueDepthGrowing": "trace_queue_messages",
    "TraceRedisMemoryNearMax": "trace_redis_memory_max_bytes",
    "TraceRedisEvictingPolicy": "trace_redis_eviction_policy",
    "TraceRateLimitRejectionsSpiking": "trace_rate_limited_total",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(
        [str(ROOT / "ops" / "ensure-promtool")], capture_output=True, text=True, timeout=300
    )
    if found.returncode != 0:
        pytest.skip(f"promtool cannot be installed here: {found.stderr.strip()}")
    return found.stdout.strip().splitlines()[-1]


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_accepts_the_dashboards_expressions(promtool: str, tmp_path: Path) -> None:
    """Each panel's query as a recording rule: promtool parses every one."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expr in enumerate(dashboard_exprs()):
        # a JSON string is a YAML double-quoted scalar
        lines += [f"      - record: dashboard:query_{number}", f"        expr: {json.dumps(expr)}"]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_says_how_long_how_bad_and_what_to_do() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    for name, metric in WATCHED.items():
        assert metric in found[name]["expr"], name
    for name, rule in found.items():
        assert rule["for"], name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_dashboard_reads_its_prometheus_data_source() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    drawn = [p for p in panels() if p["type"] != "row"]
    assert len(drawn) >= 10
    for panel in drawn:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
