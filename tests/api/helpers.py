"""Helpers of the API tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import falcon.testing
import orjson

from tests.support.warehouse import lots


def lot_names(warehouse: Path, n: int, *, skip: int = 0) -> list[str]:
    """``n`` lot names of the warehouse, in a fixed order."""
    return lots(warehouse, "CONTAINERNAME", n, skip=skip)


def lot_ids(warehouse: Path, n: int, *, skip: int = 0) -> list[str]:
    """``n`` lot CIDs of the warehouse, in a fixed order."""
    return lots(warehouse, "CONTAINERID", n, skip=skip)


def post_events(
    client: falcon.testing.TestClient,
    warehouse: Path,
    lots: int,
    domains: Sequence[str] = ("history",),
) -> falcon.testing.Result:
    """``POST /api/trace/events`` of the warehouse's first ``lots`` lots (query_tool)."""
    body = {"profile": "query_tool", "container_ids": lot_ids(warehouse, lots)}
    return client.simulate_post("/api/trace/events", json={**body, "domains": list(domains)})


def wait_status(
    client: falcon.testing.TestClient, job_id: str, want: str = "finished", timeout: float = 60
) -> dict[str, Any]:
    """Poll the status endpoint until the job is ``want`` (or ended otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        data = client.simulate_get(f"/api/trace/job/{job_id}").json["data"]
        if data["status"] in (want, "finished", "failed"):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {data['status']} after {timeout} s")
        time.sleep(0.05)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]
