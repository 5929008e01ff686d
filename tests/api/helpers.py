"""Helpers of the API tests."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import falcon.testing
import orjson


def lot_names(warehouse: Path, n: int, *, skip: int = 0) -> list[str]:
    """``n`` lot names of the warehouse, in a fixed order."""
    with closing(sqlite3.connect(warehouse)) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
                "ORDER BY CONTAINERNAME LIMIT ? OFFSET ?",
                (n, skip),
            )
        ]


def lot_ids(warehouse: Path, n: int, *, skip: int = 0) -> list[str]:
    with closing(sqlite3.connect(warehouse)) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
                "ORDER BY CONTAINERID LIMIT ? OFFSET ?",
                (n, skip),
            )
        ]


def wait_status(
    client: falcon.testing.TestClient, job_id: str, want: str = "finished", timeout: float = 60
) -> dict[str, Any]:
    """Poll the status endpoint until the job is ``want`` (or ended otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        data = client.simulate_get(f"/api/trace/job/{job_id}").json["data"]
        if data["status"] == want or data["status"] in ("finished", "failed", "cancelled"):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {data['status']} after {timeout} s")
        time.sleep(0.05)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]
