"""A stage's working set on local disk: a private, temporary SQLite database.

Lineage (the graph around the seeds) and the mid-section-defect aggregation (per detection lot
state, the lot -> detection lot map) grow with the trace. Held as Python objects they cost a few
hundred bytes per lot, so a worker's memory would grow with every trace it runs. In a
``Scratch`` they live in a SQLite file instead, and the process holds only SQLite's page cache
(``TRACE_SCRATCH_CACHE_MB``) plus one batch: memory stays flat from 10K to 500K lots.

The database is SQLite's own temporary database (``sqlite3.connect("")``): the file is created
in ``SQLITE_TMPDIR`` (else ``TMPDIR``, else ``/var/tmp``) only once the cache spills, unlinked as
soon as it is opened, and therefore gone when the connection closes or the process dies, even by
``SIGKILL``. Nothing in it is durable and nothing needs to be: a stage that restarts rebuilds it
from its checkpoints. One ``Scratch`` belongs to one stage run in one thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pipeline.config import DEFAULT_SCRATCH_CACHE_MB

#: Rows per ``fetchmany`` when reading a scratch query back (rows).
READ_ROWS = 2000


class Scratch:
    """A throwaway SQLite database on local disk (see the module docstring).

    Use it as a context manager or call ``close``. Statements run inside one transaction for the
    database's whole life (nothing is ever committed: nothing needs to survive it), so bulk
    inserts cost no per-row commit.
    """

    def __init__(self, schema: str = "", *, cache_mb: int = DEFAULT_SCRATCH_CACHE_MB) -> None:
        if cache_mb < 1:
            raise ValueError("a scratch database needs at least 1 MiB of cache")
        self.conn = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        for pragma in (
            f"cache_size = -{cache_mb * 1024}",  # negative: KiB, not pages
            "temp_store = FILE",  # sorts and temporary indexes spill to disk, not to memory
            "journal_mode = OFF",
            "synchronous = OFF",
            "locking_mode = EXCLUSIVE",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        if schema:
            self.conn.executescript(schema)
        self.conn.execute("BEGIN")
        self._closed = False

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the database (its file is already unlinked: closing frees it)."""
        if not self._closed:
            self._closed = True
            self.conn.close()

    def function(self, name: str, arity: int, func: Callable[..., Any]) -> None:
        """Make a deterministic Python function callable from this database's SQL."""
        self.conn.create_function(name, arity, func, deterministic=True)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def value(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """The first column of the first row (``None`` when there is no row)."""
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Iterator[Any]:
        """The rows of a query, read ``READ_ROWS`` at a time (never all at once).

        Do not write to the tables a query reads while iterating it; read in keyed pages
        (``pages``) when the loop writes to them.
        """
        cursor = self.conn.execute(sql, params)
        try:
            while rows := cursor.fetchmany(READ_ROWS):
                yield from rows
        finally:
            if not self._closed:  # a reader dropped after close: its cursor went with it
                cursor.close()

    def pages(
        self, sql: str, params: dict[str, Any], size: int, *, start: Any = -1
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Pages of at most ``size`` rows of a keyset query: its first column is the key,
        increasing; ``sql`` filters ``key > :after`` and ends ``ORDER BY key LIMIT :size``;
        ``start`` is below every key (``-1`` for ids, ``""`` for non-empty text).

        Each page is read completely before it is handed out, so the caller may write to the
        tables the query reads (rows it must not see need a filter that excludes them).
        """
        after = start
        while True:
            cursor = self.conn.execute(sql, {**params, "after": after, "size": size})
            page = cursor.fetchmany(size)  # all of it: the query ends in LIMIT :size
            if not page:
                return
            yield page
            after = page[-1][0]
