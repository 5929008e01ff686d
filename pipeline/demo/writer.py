"""Writes the demo warehouse: batched inserts into a temporary file, indexes after the load, then
an atomic rename, so a crash never leaves a half-built warehouse at the target path.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
_INDEX_MARKER = "-- INDEXES"
#: Rows buffered per table before one ``executemany`` (rows).
FLUSH_ROWS = 20_000

COLUMNS: dict[str, tuple[str, ...]] = {}


def _schema_parts() -> tuple[str, str]:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    tables, _, rest = text.partition(_INDEX_MARKER)
    return tables, rest.partition("\n")[2]  # skip the rest of the marker's comment line


def _parse_columns(tables_sql: str) -> dict[str, tuple[str, ...]]:
    """Column names per table, in declaration order, read from the DDL."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(tables_sql)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: tuple(r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (name,)))
            for name in names
        }
    finally:
        conn.close()


COLUMNS.update(_parse_columns(_schema_parts()[0]))


class WarehouseWriter:
    """Buffers rows per table and writes them in batches; ``finish()`` indexes and publishes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._tmp.unlink(missing_ok=True)
        self._conn = sqlite3.connect(self._tmp)
        # Nothing to protect until the rename: no journal, no fsync, one writer.
        self._conn.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE;"
            "PRAGMA cache_size=-65536;"
        )
        self._conn.executescript(_schema_parts()[0])
        self._inserts = {
            table: f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})"
            for table, cols in COLUMNS.items()
        }
        self._buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}
        self.counts: dict[str, int] = dict.fromkeys(COLUMNS, 0)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        """Queue one row (a tuple in the table's column order)."""
        buffer = self._buffers[table]
        buffer.append(row)
        if len(buffer) >= FLUSH_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        buffer = self._buffers[table]
        if buffer:
            self._conn.executemany(self._inserts[table], buffer)
            self.counts[table] += len(buffer)
            buffer.clear()

    def finish(self) -> None:
        """Write what is buffered, build the indexes, and move the file into place."""
        for table in self._buffers:
            self._flush(table)
        self._conn.commit()
        self._conn.executescript(_schema_parts()[1])
        self._conn.execute("ANALYZE")
        self._conn.commit()
        self._conn.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file."""
        self._conn.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> WarehouseWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
