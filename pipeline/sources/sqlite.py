"""The embedded warehouse: a SQLite file attached ``AS DWH`` so ``DWH.TABLE`` names work unchanged.

The file is opened read-only. Each thread gets its own connection (sqlite3 connections must not be
shared by concurrent threads); for parallel reads use processes, not threads (SQLite lookups from
two threads of one process run slower than from one: performance-notes.md).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import SourceError, SourceNotFound, SourceQueryError, SourceUnavailable
from pipeline.rows import RowBatch
from pipeline.sources.base import Source, drain

_TRANSIENT_MARKERS = ("locked", "busy", "interrupted", "disk i/o error")


class SqliteSource(Source):
    """Reads a warehouse file from ``python -m pipeline demo-data`` (or any with its tables)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise SourceNotFound(
                f"warehouse file not found: {self.path} "
                "(build one with: python -m pipeline demo-data --db PATH; "
                "an absolute TRACE_SOURCE_URL needs four slashes: sqlite:////abs/path.db)"
            )
        self._uri = self.path.as_uri() + "?mode=ro"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect("file::memory:", uri=True, check_same_thread=False)
                conn.execute("ATTACH DATABASE ? AS DWH", (self._uri,))
                # Oracle's LIKE is case-sensitive; make SQLite's the same.
                conn.execute("PRAGMA case_sensitive_like = ON")
            except sqlite3.Error as exc:
                raise _convert(exc) from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _execute(self, text: str, binds: dict[str, Any]) -> Iterator[RowBatch]:
        conn = self._connection()
        try:
            cursor = conn.execute(text, {k: _text_date(v) for k, v in binds.items()})
            try:
                yield from drain(cursor, self.fetch_rows)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise _convert(exc) from exc

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


def _text_date(value: Any) -> Any:
    """Dates as the warehouse stores them (text), so date comparisons work on either source."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _convert(exc: sqlite3.Error) -> SourceError:
    message = f"sqlite: {exc}"
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and any(m in text for m in _TRANSIENT_MARKERS):
        return SourceUnavailable(message)
    return SourceQueryError(message)
