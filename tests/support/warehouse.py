"""Reading the demo warehouse directly in tests (to pick inputs)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

#: One query per column a test may list lots by (no identifier is formatted into SQL).
_LOTS_BY = {
    column: f"SELECT {column} FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
    f"ORDER BY {column} LIMIT :n OFFSET :skip"
    for column in ("CONTAINERNAME", "CONTAINERID")
}


def lots(warehouse: Path, column: str, n: int, *, skip: int = 0) -> list[str]:
    """``n`` lots' ``CONTAINERNAME`` or ``CONTAINERID`` in that column's order, after ``skip``."""
    with closing(sqlite3.connect(warehouse)) as conn:
        return [r[0] for r in conn.execute(_LOTS_BY[column], {"n": n, "skip": skip})]


def rework(db: sqlite3.Connection) -> tuple[str, str, str]:
    """A GD rework lot, the lot it was reworked from, and that lot's wafer container."""
    row = db.execute(
        "SELECT g.CONTAINERID, g.ORIGINALCONTAINERID, w.CONTAINERID "
        "FROM DW_MES_CONTAINER g "
        "JOIN DW_MES_CONTAINER s ON s.CONTAINERID = g.ORIGINALCONTAINERID "
        "JOIN DW_MES_CONTAINER w ON w.CONTAINERNAME = s.FIRSTNAME AND w.OBJECTTYPE = 'LOT' "
        "WHERE g.MFGORDERNAME LIKE 'GD%' ORDER BY g.CONTAINERID LIMIT 1"
    ).fetchone()
    assert row is not None, "the demo warehouse has GD rework lots of lots with a wafer"
    return row
