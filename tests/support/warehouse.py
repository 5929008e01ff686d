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
