"""Rates and Pareto charts follow the contract's rounding and folding rules."""

from __future__ import annotations

from pipeline.stages.msd.pareto import OTHER, Tally, joined, pareto, rate, reason_pareto


def test_rates_are_percentages_rounded_to_four_decimals_and_zero_without_input() -> None:
    assert rate(1, 3) == 33.3333
    assert rate(5, 0) == 0.0


def test_pareto_keeps_the_top_n_by_defects_and_folds_the_rest_into_other() -> None:
    tallies = {f"M{i}": Tally(100, i, 1) for i in range(1, 6)}
    items = pareto(tallies, top_n=2)
    assert [i["name"] for i in items] == ["M5", "M4", OTHER]
    assert items[-1] == {
        "name": OTHER,
        "input_qty": 300,
        "defect_qty": 6,
        "defect_rate": 2.0,
        "lot_count": 3,
        "cumulative_pct": 100.0,
    }
    assert [i["cumulative_pct"] for i in items] == [33.33, 60.0, 100.0]


def test_an_empty_tail_is_not_shown_as_other() -> None:
    tallies = {"A": Tally(10, 5, 1), "B": Tally(0, 0, 0)}
    assert [i["name"] for i in pareto(tallies, top_n=1)] == ["A"]


def test_loss_reasons_rate_against_all_input() -> None:
    items = reason_pareto({"短路": 30, "開路": 10, "無": 0}, total_input=1000, top_n=None)
    assert items == [
        {"name": "短路", "defect_qty": 30, "defect_rate": 3.0, "cumulative_pct": 75.0},
        {"name": "開路", "defect_qty": 10, "defect_rate": 1.0, "cumulative_pct": 100.0},
    ]


def test_joined_sorts_distinct_values_and_marks_none_as_unknown() -> None:
    assert joined(["b", "a", None, "b"]) == "a,b"
    assert joined([None, ""]) == "(未知)"
