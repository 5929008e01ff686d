"""List binds expand into numbered placeholders; values never enter the SQL text."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.errors import InvalidInput
from pipeline.sources.base import expand_binds


def test_a_list_bind_becomes_numbered_placeholders_and_the_values_stay_binds() -> None:
    text, binds = expand_binds(
        "SELECT 1 FROM t WHERE a IN (:cids) AND b = :cidsx",
        {"cids": ["x'", "y;"], "cidsx": 1},
        1000,
    )
    assert text == "SELECT 1 FROM t WHERE a IN (:cids_0, :cids_1) AND b = :cidsx"
    assert binds == {"cids_0": "x'", "cids_1": "y;", "cidsx": 1}


def test_more_than_the_in_list_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 1000 per list"):
        expand_binds("x IN (:ids)", {"ids": [str(i) for i in range(1001)]}, 1000)


def test_an_empty_list_is_bad_input() -> None:
    with pytest.raises(InvalidInput, match="empty list for :ids"):
        expand_binds("x IN (:ids)", {"ids": []}, 1000)


def test_an_unused_bind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=":other is not used"):
        expand_binds("x = :one", {"one": 1, "other": 2}, 1000)


def test_only_scalars_and_dates_may_be_bound() -> None:
    _, binds = expand_binds("x >= :d", {"d": dt.date(2026, 5, 1)}, 1000)
    assert binds == {"d": dt.date(2026, 5, 1)}
    with pytest.raises(ValueError, match="must be str, int, float, date or None"):
        expand_binds("x = :d", {"d": {"nested": 1}}, 1000)
