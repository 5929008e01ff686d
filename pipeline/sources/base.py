"""The Source seam: the one way stages read the warehouse.

A source runs a named query (``pipeline/sources/sql``) with ``:name`` binds and yields
``RowBatch``es of at most ``fetch_rows`` rows as the driver fetches them; nothing is ever fetched
whole. A list-valued bind expands to ``:name_0, :name_1, ...`` and may hold at most
``in_list_size`` (<= 1000) values; ``query_in`` splits longer id lists into such batches.

Subclasses implement ``_execute`` (the driver primitive) and convert every driver error into
``SourceUnavailable`` (transient) or ``SourceQueryError`` (permanent) at this seam.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar

from pipeline.config import DEFAULT_FETCH_ROWS, DEFAULT_IN_LIST_SIZE, MAX_IN_LIST_SIZE
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch, batched
from pipeline.sources import sql

Binds = Mapping[str, Any]
_SCALARS = (str, int, float, dt.date, type(None))


class Source(ABC):
    """Streams named queries from a warehouse."""

    #: The SQL dialect this source reads (``sqlite`` or ``oracle``).
    dialect: ClassVar[str]

    def __init__(
        self, *, fetch_rows: int = DEFAULT_FETCH_ROWS, in_list_size: int = DEFAULT_IN_LIST_SIZE
    ) -> None:
        if not 1 <= in_list_size <= MAX_IN_LIST_SIZE:
            raise ValueError(f"in_list_size must be 1..{MAX_IN_LIST_SIZE}")
        self.fetch_rows = fetch_rows
        self.in_list_size = in_list_size
        #: Queries executed per query name, for tests and metrics.
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def query(
        self, name: str, binds: Binds | None = None, *, fragments: Mapping[str, str] | None = None
    ) -> Iterator[RowBatch]:
        """Run query ``name`` and yield its rows in batches of at most ``fetch_rows``.

        Raises ``SourceUnavailable`` (retry may help) or ``SourceQueryError`` (it will not);
        ``InvalidInput`` for an empty id list. Close the iterator (or exhaust it) to free the
        cursor early.
        """
        text = sql.render(sql.load(name, self.dialect), fragments)
        text, flat = expand_binds(text, binds or {}, self.in_list_size)
        with self._lock:
            self.queries[name] += 1
        return self._execute(text, flat)

    def query_in(
        self,
        name: str,
        list_bind: str,
        ids: Iterable[Any],
        binds: Binds | None = None,
        *,
        fragments: Mapping[str, str] | None = None,
    ) -> Iterator[RowBatch]:
        """Run ``name`` once per batch of ``in_list_size`` ids bound to ``:list_bind``."""
        for chunk in batched(ids, self.in_list_size):
            yield from self.query(name, {**(binds or {}), list_bind: chunk}, fragments=fragments)

    @abstractmethod
    def _execute(self, text: str, binds: dict[str, Any]) -> Iterator[RowBatch]:
        """Execute literal SQL with flat binds; yield batches; convert driver errors."""

    #: A statement that reaches the warehouse and reads nothing (``ping``).
    ping_sql: ClassVar[str] = "SELECT 1"

    def ping(self) -> None:
        """Reach the warehouse (``/readyz``); raises ``SourceUnavailable`` when it cannot."""
        for _ in self._execute(self.ping_sql, {}):
            pass

    def close(self) -> None:  # noqa: B027 - optional hook: a source may hold nothing to free
        """Release connections. The source may not be used afterwards."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def drain(cursor: Any, size: int) -> Iterator[RowBatch]:
    """A DB-API cursor's rows in batches of at most ``size`` (UPPER_CASE column names).

    Driver errors propagate; the caller converts them.
    """
    columns = tuple(d[0].upper() for d in cursor.description or ())
    while rows := cursor.fetchmany(size):
        yield RowBatch(columns, rows)


def expand_binds(text: str, binds: Binds, limit: int) -> tuple[str, dict[str, Any]]:
    """Expand list binds into numbered placeholders; check every bind is used and scalar.

    Only generated bind names enter the SQL text; the values stay binds.
    """
    flat: dict[str, Any] = {}
    for name, value in binds.items():
        token = re.compile(rf":{re.escape(name)}(?![A-Za-z0-9_])")
        if not token.search(text):
            raise ValueError(f"bind :{name} is not used by the query")
        if isinstance(value, (list, tuple)):
            if not value:
                raise InvalidInput(f"empty list for :{name}", field=name)
            if len(value) > limit:
                raise ValueError(f":{name} has {len(value)} values, more than {limit} per list")
            names = [f"{name}_{i}" for i in range(len(value))]
            text = token.sub(", ".join(":" + n for n in names), text)
            values: Iterable[Any] = value
        else:
            names, values = [name], [value]
        for bind_name, bind_value in zip(names, values, strict=True):
            if not isinstance(bind_value, _SCALARS):
                raise ValueError(f"bind :{bind_name} must be str, int, float, date or None")
            if bind_name in flat:
                raise ValueError(f"bind :{bind_name} given twice")
            flat[bind_name] = bind_value
    return text, flat
