"""A detection window read in date ranges (``DetectionScope.ranges``), one query per range, so
several workers read it at once; the ranges' lots merged back into exactly what the whole
window's query answers (``msd/detection_lots``): one row per lot, its latest track-in in the
window, sorted by lot name (the id where there is none), then id.

Each range's rows come sorted that way by its query, so the merge streams: it holds one row per
range, never a range's lots. A lot detected in two ranges is one row in each, next to each
other in the merged order (same name, same id); the later range's row is its latest track-in in
the window (the ranges do not overlap, and the query keeps a lot's latest track-in within its
range), the same row the whole window's query keeps.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any

from pipeline.errors import SourceQueryError
from pipeline.rows import RowBatch, batched

#: The detection query's order: lot name (the id where it has none), then id.
Key = tuple[str, str]


def merge_ranges(ranges: Sequence[Iterable[RowBatch]], batch_rows: int) -> Iterator[RowBatch]:
    """The rows of the ranges' detection queries (``ranges`` in date order, each streamed in
    its query's order) as the whole window's query answers them, in batches of ``batch_rows``.

    Raises ``SourceQueryError`` when a range's rows are not in the order the merge reads (a
    warehouse sorting names otherwise than by code point, e.g. an Oracle session with a
    linguistic ``NLS_SORT``): merged anyway, a lot seen in two ranges could be listed twice.
    """
    columns: list[tuple[str, ...]] = []  # the first range's, once it has a row
    streams = [_keyed(number, batches, columns) for number, batches in enumerate(ranges)]
    merged = heapq.merge(*streams)  # equal keys (a lot in two ranges): the earlier range first
    latest = (list(rows)[-1][2] for _, rows in groupby(merged, key=_lot))
    for chunk in batched(latest, batch_rows):
        yield RowBatch(columns[0], chunk)


def _keyed(
    number: int, batches: Iterable[RowBatch], columns: list[tuple[str, ...]]
) -> Iterator[tuple[Key, int, tuple[Any, ...]]]:
    """Range ``number``'s rows as (their sort key, ``number``, the row), checked in order."""
    previous: Key | None = None
    for batch in batches:
        if not batch.rows:
            continue
        if not columns:
            columns.append(batch.columns)
        elif batch.columns != columns[0]:
            raise SourceQueryError(f"detection range {number} has other columns: {batch.columns}")
        cid_at, name_at = batch.index("CONTAINERID"), batch.index("CONTAINERNAME")
        for row in batch.rows:
            key = (row[name_at] or row[cid_at], row[cid_at])
            if previous is not None and key < previous:
                raise SourceQueryError(
                    f"detection range {number}: lot {key[1]!r} came after {previous[1]!r}, out "
                    "of the order the ranges are merged in (the source sorts names otherwise "
                    "than by code point: set TRACE_DETECTION_RANGES=1)"
                )
            previous = key
            yield key, number, tuple(row)


def _lot(item: tuple[Key, int, tuple[Any, ...]]) -> str:
    return item[0][1]
