"""Reads what the generator recorded in a demo warehouse (DEMO_INFO, DEMO_TRUTH).

Demo tooling only: it opens the file directly, the stages never read these tables.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from pipeline.demo import factory


def _connect(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)


def read_info(path: str | Path) -> dict[str, str]:
    """DEMO_INFO as a dict; empty when the file is missing or is not a demo warehouse."""
    if not Path(path).is_file():
        return {}
    try:
        with closing(_connect(path)) as conn:
            return dict(conn.execute("SELECT KEY, VALUE FROM DEMO_INFO"))
    except sqlite3.Error:
        return {}


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    """The planted facts (bad machines, genealogy cycles)."""
    with closing(_connect(path)) as conn:
        cursor = conn.execute(
            "SELECT KIND, WORKCENTER_GROUP, EQUIPMENTID, EQUIPMENTNAME, CONTAINERID, NOTE "
            "FROM DEMO_TRUTH ORDER BY KIND, rowid"  # rowid: the order they were planted
        )
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor]


def detection_window(path: str | Path, target: int) -> tuple[str, str]:
    """An inclusive date range (``YYYY-MM-DD``) in the middle of the data in which about
    ``target`` lots were tested, found day by day through the track-in index."""
    info = read_info(path)
    start = dt.date.fromisoformat(info["start_date"])
    day = start + dt.timedelta(days=int(info["span_days"]) // 2)
    test_spec = factory.ROUTE[factory.TEST_STEP].spec
    first, count = day, 0
    with closing(_connect(path)) as conn:
        for _ in range(366):
            nxt = day + dt.timedelta(days=1)
            (n,) = conn.execute(
                "SELECT COUNT(DISTINCT CONTAINERID) FROM DW_MES_LOTWIPHISTORY "
                "WHERE TRACKINTIMESTAMP >= ? AND TRACKINTIMESTAMP < ? AND SPECNAME = ?",
                (day.isoformat(), nxt.isoformat(), test_spec),
            ).fetchone()
            count += n
            if count >= target:
                break
            day = nxt
    return first.isoformat(), day.isoformat()
