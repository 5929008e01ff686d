"""Row batches: the unit every stage streams (columns once, rows as tuples)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

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
    """User-supplied ids/names: strings trimmed, blanks dropped, repeats dropped, order kept."""
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        text = str(value).strip()
        if text:
            out.append(text)
    return unique(out)
