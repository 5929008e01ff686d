"""The report reads results.json files written before issue 20 (no floor, no re-analysis
queries, no MSD page figures): they load, the floor table and the before/after table show "—"
for what they lack, and a newer file gives each stage beside its floor. Figures are made up."""

from __future__ import annotations

import dataclasses

from pipeline.bench.model import Comparison, size_from_dict
from pipeline.bench.report import COMPARED, comparison_rows
from pipeline.bench.sections import SECTIONS
from tests.bench.test_bench_targets import healthy

NEW_RUN_FIELDS = (
    "reanalysis_queries",
    "reanalysis_seconds",
    "detail_first_ms",
    "detail_last_ms",
    "export_mb_per_s",
    "export_api_peak_mb",
)


def older_results() -> list[dict[str, object]]:
    """``healthy()`` as an older benchmark wrote it: without the fields added since."""
    sizes = []
    for size in healthy():
        raw = dataclasses.asdict(size)
        del raw["floor"]
        for run in raw["runs"]:
            for name in NEW_RUN_FIELDS:
                del run[name]
        sizes.append(raw)
    return sizes


def floor_table() -> list[list[str]]:
    section = next(s for s in SECTIONS if s.title.startswith("Stages against their floor"))
    return [[column.cell(size) for column in section.columns] for size in healthy()]


def test_an_older_results_file_loads_and_compares_with_dashes() -> None:
    before = Comparison("before", "abc1234", "", [size_from_dict(s) for s in older_results()])
    assert all(size.floor is None for size in before.results)
    assert before.results[0].runs[0].reanalysis_queries is None
    headers = [header for header, _, _ in COMPARED]
    rows = comparison_rows(before, healthy())
    reanalysis = rows[0][1 + headers.index("re-analysis s")]
    assert reanalysis == "— → 1.50"
    # what both have is compared
    assert rows[1][1 + headers.index("end to end s")] == "20.0 → 20.0"
    assert rows[1][1 + headers.index("Redis MB per M rows")] == "28.6 → 28.6"


def test_a_newer_results_file_round_trips_with_its_floor() -> None:
    size = healthy()[1]
    again = size_from_dict(dataclasses.asdict(size))
    assert again == size and again.floor is not None and size.floor is not None
    assert again.floor.total_seconds == size.floor.total_seconds == 15.7


def test_the_floor_table_sets_each_stage_beside_its_floor() -> None:
    cids, seed, seed_floor, *_, end_to_end, floor, ratio = floor_table()[1]
    assert (cids, seed, seed_floor) == ("114,000", "1.00", "0.90")
    assert (end_to_end, floor, ratio) == ("20.0", "15.7", "1.3×")
