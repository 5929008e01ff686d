"""The alert rules (``ops/prometheus/alerts.yml``) and the Grafana dashboard
(``ops/grafana/trace-pipeline.json``) as the tests read them: their PromQL expressions and the
metric names those use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "trace-pipeline.json"
#: Every metric of ours starts so (PromQL's functions, labels and keywords never do).
METRIC = re.compile(r"\btrace_[a-z0-9_]+\b")


def rules() -> list[dict[str, Any]]:
    """Every rule of every group of the alert rules."""
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    """The dashboard's panels, rows' nested panels included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def metric_names(expressions: list[str]) -> set[str]:
    """The metric names the PromQL ``expressions`` read."""
    return {name for expr in expressions for name in METRIC.findall(expr)}
