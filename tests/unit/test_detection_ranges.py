"""A detection window cut into date ranges, and the ranges' lots merged back into what the
whole window's query answers (``pipeline.stages.msd.scope``, ``pipeline.stages.msd.ranges``)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.engine.messages import MessageKey
from pipeline.errors import SourceQueryError
from pipeline.rows import RowBatch
from pipeline.stages.msd.ranges import merge_ranges
from pipeline.stages.msd.scope import DetectionScope

COLUMNS = ("CONTAINERID", "CONTAINERNAME", "TRACKINTIMESTAMP")


def window(days: int) -> DetectionScope:
    start = dt.date(2026, 1, 1)
    return DetectionScope(("測試",), start, start + dt.timedelta(days=days))


def test_a_window_is_cut_at_whole_days_into_consecutive_ranges_that_cover_it() -> None:
    ranges = window(10).ranges(3)
    assert [(r.start_date, r.end_date) for r in ranges] == [
        (dt.date(2026, 1, 1), dt.date(2026, 1, 4)),
        (dt.date(2026, 1, 4), dt.date(2026, 1, 7)),
        (dt.date(2026, 1, 7), dt.date(2026, 1, 11)),
    ]
    # A window of fewer days than ranges: a range per day; one range: the window itself
    assert len(window(2).ranges(4)) == 2
    assert window(1).ranges(4) == [window(1)]
    assert window(10).ranges(1) == [window(10)]


def test_a_list_of_lots_is_never_cut() -> None:
    lots = DetectionScope(("測試",), container_ids=("A", "B"))
    assert lots.ranges(4) == [lots]


def batches(*rows: tuple[str, str | None, str], size: int = 2) -> list[RowBatch]:
    return [RowBatch(COLUMNS, list(rows[i : i + size])) for i in range(0, len(rows), size)]


def merged(*ranges: list[RowBatch], batch_rows: int = 3) -> list[tuple]:
    out = list(merge_ranges(ranges, batch_rows))
    assert all(len(b.rows) <= batch_rows and b.columns == COLUMNS for b in out)
    return [row for b in out for row in b.rows]


def test_the_ranges_are_merged_in_name_order_a_lot_in_two_ranges_once_with_its_latest_row() -> None:
    early = batches(
        ("c2", "A-1", "01-02"),
        ("c9", "B-1", "01-03"),  # also tracked in later: the later range's row is kept
        ("c5", None, "01-02"),  # no name: sorted by its id
    )
    late = batches(("c1", "A-0", "01-08"), ("c9", "B-1", "01-09"), ("c7", "Z-9", "01-08"))
    assert merged(early, late) == [
        ("c1", "A-0", "01-08"),
        ("c2", "A-1", "01-02"),
        ("c9", "B-1", "01-09"),
        ("c7", "Z-9", "01-08"),
        ("c5", None, "01-02"),
    ]


def test_ties_on_the_name_are_broken_by_the_id_as_the_query_sorts_them() -> None:
    first = batches(("c2", "SAME", "01-02"))
    second = batches(("c1", "SAME", "01-08"), ("c3", "SAME", "01-09"))
    assert [row[0] for row in merged(first, second)] == ["c1", "c2", "c3"]


def test_empty_ranges_merge_to_nothing_or_to_the_others_rows() -> None:
    assert merged([], [RowBatch(COLUMNS, [])]) == []
    assert merged([], batches(("c1", "A", "01-08"))) == [("c1", "A", "01-08")]


def test_a_range_out_of_the_merge_order_is_an_error_not_a_lot_listed_twice() -> None:
    # Given a range sorted otherwise (as a linguistic collation could)
    unsorted = batches(("c2", "b-lot", "01-02"), ("c1", "B-LOT", "01-03"))
    with pytest.raises(SourceQueryError, match="out of the order"):
        merged(unsorted, batches(("c3", "C", "01-08")))


def test_a_range_message_key_reads_back_from_its_text() -> None:
    key = MessageKey("seed-resolve", group=1)
    assert str(key) == "seed-resolve:1"
    assert MessageKey.parse(str(key)) == key
    assert key.actor_kwargs() == {"window_range": 1}
    assert MessageKey.parse("seed-resolve") == MessageKey("seed-resolve")
    assert MessageKey("seed-resolve").actor_kwargs() == {}
