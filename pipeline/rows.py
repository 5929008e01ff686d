"""Row batches: the unit every stage streams (columns once, rows as tuples), and the forms the
contract gives their values (numbers, ``YYYY-MM-DD HH:MM:SS`` text; JSON written once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowBatch:
    """Rows of one query, as fetched: ``columns`` name the tuple positions (UPPER_CASE)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, column: str) -> int:
        """Position of ``column`` in every row; ``KeyError`` naming it when absent."""
        try:
            return self.columns.index(column)
        except ValueError:
            raise KeyError(f"column {column} not in {self.columns}") from None

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts: for the edge (JSON, tests), never for the hot path."""
        columns = self.columns
        for row in self.rows:
            yield dict(zip(columns, row, strict=True))


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items (``itertools.batched`` arrived in 3.12)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def rows_at(rows: Iterator[tuple[Any, ...]]) -> Callable[[int], list[tuple[Any, ...]]]:
    """A reader of rows whose first column is an increasing key (a position, an index): ``at(key)``
    returns the rest of the rows at ``key`` (``[]`` for none); keys are asked for in increasing
    order, each row read once (the rows are streamed, never held)."""
    groups = groupby(rows, key=itemgetter(0))
    current = next(groups, None)

    def at(pos: int) -> list[tuple[Any, ...]]:
        nonlocal current
        while current is not None and current[0] < pos:
            current = next(groups, None)
        if current is None or current[0] != pos:
            return []
        found = [row[1:] for row in current[1]]
        current = next(groups, None)
        return found

    return at


class Counted(Iterator[T]):
    """The items of an iterable passed through unchanged, counted as they go (``n``)."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self.n = 0

    def __next__(self) -> T:
        item = next(self._items)
        self.n += 1
        return item


def unique(items: Iterable[T]) -> list[T]:
    """Items without repeats, first occurrence kept, order kept."""
    return list(dict.fromkeys(items))


def clean_values(values: Iterable[object]) -> list[str]:
    """User-supplied ids/names: strings trimmed, blanks dropped, repeats dropped, order kept
    (``None`` dropped, other values as text). ~0.1 µs per value when all are text."""
    items = list(values)
    try:
        cleaned = dict.fromkeys(map(str.strip, items))  # type: ignore[arg-type]
    except TypeError:  # not all text
        cleaned = dict.fromkeys(str(v).strip() for v in items if v is not None)
    cleaned.pop("", None)
    return list(cleaned)


#: msgpack's integers stop at 64 bits: larger Oracle NUMBERs become floats.
_INT_LIMIT = 2**63


def contract_value(value: Any) -> Any:
    """A warehouse value the way the contract carries it (the ``default`` of msgpack and orjson
    for what they cannot encode). Oracle hands back Decimal for NUMBER and datetime for DATE; the
    contract wants JSON numbers and "YYYY-MM-DD HH:MM:SS" text. Raises ``TypeError`` for
    anything else."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None  # the contract has no NaN/Infinity: null instead
        if value == value.to_integral_value() and abs(value) < _INT_LIMIT:
            return int(value)
        return float(value)  # msgpack integers stop at 64 bits
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store a {type(value).__name__}")


def to_json(value: Any) -> bytes:
    """JSON bytes of ``value`` as the API writes them (orjson: NaN/Infinity as null, non-string
    keys as strings; Decimal and datetime as ``contract_value`` gives them)."""
    return orjson.dumps(value, default=contract_value, option=orjson.OPT_NON_STR_KEYS)
