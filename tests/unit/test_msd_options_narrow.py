"""The Type/Package pickers' cross-filter (``pipeline.stages.msd.options.narrow``) on made-up
combinations: the cases the demo warehouse does not have (a container without a function)."""

from __future__ import annotations

from pipeline.stages.msd.options import narrow

COMBINATIONS = [
    ("TVS", "SMA", "BOP-SMA-1", "保護"),
    ("TVS", "SMB", "BOP-SMB-1", ""),
    ("SBD", "SMA", "BOP-SMA-2", "整流"),
]


def test_a_combination_without_a_function_counts_for_the_other_pickers_only() -> None:
    everything = narrow(COMBINATIONS)
    assert everything == {
        "pj_types": ["SBD", "TVS"],
        "packages": ["SMA", "SMB"],
        "bops": ["BOP-SMA-1", "BOP-SMA-2", "BOP-SMB-1"],
        "pj_functions": ["保護", "整流"],
    }
    # Selecting a function keeps only the combinations that have it
    assert narrow(COMBINATIONS, {"pj_functions": ["保護"]})["packages"] == ["SMA"]


def test_each_selection_narrows_the_others_and_never_itself() -> None:
    lists = narrow(COMBINATIONS, {"pj_types": ["TVS"], "packages": ["SMA"]})
    assert lists["pj_types"] == ["SBD", "TVS"]  # by the package only
    assert lists["packages"] == ["SMA", "SMB"]  # by the type only
    assert lists["bops"] == ["BOP-SMA-1"]  # by both
    assert lists["pj_functions"] == ["保護"]


def test_no_combinations_give_empty_lists_whatever_is_selected() -> None:
    empty = {"pj_types": [], "packages": [], "bops": [], "pj_functions": []}
    assert narrow([]) == empty
    assert narrow([], {"pj_types": ["TVS"]}) == empty
