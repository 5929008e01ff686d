"""The benchmark's targets are judged from the figures as issues 6 and 20 state them: end to end
over the floor at the size nearest 114K CIDs, the worker's peak at every size and its flatness
within ±20% of the mean over every size, Redis per million rows, the worst size for the API, the
ratios, the latencies, the re-analysis's share and its queries, and zero earlier-stage queries
in every retry. Figures here are made up; no benchmark runs."""

from __future__ import annotations

import dataclasses

from pipeline.bench.model import (
    BaselineFigure,
    FloorFigures,
    LimitFigures,
    ResumeFigure,
    RunFigures,
    SizeResult,
    StageFigure,
)
from pipeline.bench.targets import TargetResult, evaluate_targets, verdict

#: Each stage's seconds in a healthy run, and its floor: 17.0 s of stages over a 15.7 s floor.
STAGE_SECONDS = {"seed-resolve": 1.0, "lineage": 2.0, "events": 10.0, "aggregation": 4.0}
FLOOR_SECONDS = {"seed-resolve": 0.9, "lineage": 1.8, "events": 9.0, "aggregation": 4.0}


def run(
    cids: int,
    worker_mb: float,
    *,
    api_mb: float = 80.0,
    events_rows_per_s: float = 100_000.0,
    page_last_ms: float = 20.0,
    earlier_queries: int = 0,
    end_to_end: float = 20.0,
    redis_bytes_per_row: int = 30,
    reanalysis_seconds: float = 1.5,
    reanalysis_earlier_queries: int = 0,
    detail_first_ms: float = 20.0,
    detail_last_ms: float = 30.0,
    ttfb_ms: float = 5.0,
    events_seconds: float = 10.0,
) -> RunFigures:
    """``events_rows_per_s``: per process-second of its batches (10 s of them); the stage's
    wall seconds are ``events_seconds``."""
    rows = int(events_rows_per_s * 10)
    stages = {stage: StageFigure(seconds, rows=1000) for stage, seconds in STAGE_SECONDS.items()}
    stages["events"] = StageFigure(seconds=events_seconds, rows=rows)
    return RunFigures(
        lots=cids,
        cids=cids,
        stages=stages,
        end_to_end_seconds=end_to_end,
        domain_rows={"history": rows},
        domain_seconds={"history": 10.0},
        worker_peak_mb={"worker 1": worker_mb, "worker 2": worker_mb / 2},
        api_peak_mb=api_mb,
        redis_bytes=rows * redis_bytes_per_row,
        stream_seconds=5.0,
        stream_bytes=rows * 300,
        stream_rows=rows,
        ttfb_ms=ttfb_ms,
        page_first_ms=5.0,
        page_last_ms=page_last_ms,
        resume=ResumeFigure(
            seconds=3.0, queries_by_stage={"aggregation": 4, "lineage": earlier_queries}
        ),
        reanalysis_seconds=reanalysis_seconds,
        reanalysis_queries={"aggregation": 2, "lineage": reanalysis_earlier_queries},
        detail_first_ms=detail_first_ms,
        detail_last_ms=detail_last_ms,
        export_mb_per_s=40.0,
    )


def size(
    *runs: RunFigures,
    scan_rows_per_s: float = 150_000.0,
    read_encode_rows_per_s: float = 210_000.0,
    floor: dict[str, float] | None = FLOOR_SECONDS,
) -> SizeResult:
    return SizeResult(
        lots=runs[0].lots,
        runs=list(runs),
        limits=LimitFigures(
            scan_rows={"history": int(scan_rows_per_s)},
            scan_seconds={"history": 1.0},
            scan_task_seconds={"history": 1.0},
            read_encode_rows=int(read_encode_rows_per_s),
            read_encode_seconds=1.0,
        ),
        baseline=BaselineFigure(finished=True, seconds=30.0, peak_mb=900.0, rows=1000),
        floor=FloorFigures(seconds=dict(floor)) if floor is not None else None,
    )


def by_label(results: list[SizeResult]) -> dict[str, TargetResult]:
    judged = evaluate_targets(results)
    assert len({t.label for t in judged}) == len(judged) == 14
    return {t.label.split(" (")[0].split(":")[0]: t for t in judged}


def healthy() -> list[SizeResult]:
    return [
        size(run(10_000, 60), run(10_000, 64), run(10_000, 62)),
        size(run(114_000, 66), run(114_000, 70), run(114_000, 68)),
        size(run(1_000_000, 72)),
    ]


FLOOR = "End to end / floor at 114K CIDs"


def test_healthy_figures_meet_every_target() -> None:
    judged = by_label(healthy())
    assert all(t.met is True for t in judged.values()), judged
    # The median of the three runs' largest process, at the worst size
    assert judged["Worker peak RSS at every size"].measured == "worst 72.0 MB at 1,000,000 CIDs"
    assert judged[FLOOR].measured == "1.27× (20.0 s over a floor of 15.7 s) at 114,000 CIDs"
    assert judged[FLOOR].goal == "≤ 1.3×"
    assert judged["Re-analysis"].measured == "0 in 7 re-analyses"
    assert verdict(True) == "met" and verdict(False) == "NOT MET" and verdict(None) == "n/a"


def test_end_to_end_far_above_the_floor_at_114k_is_not_met() -> None:
    results = healthy()
    results[1] = size(run(114_000, 66, end_to_end=25.0))
    judged = by_label(results)
    assert judged[FLOOR].met is False
    assert judged[FLOOR].measured == "1.59× (25.0 s over a floor of 15.7 s) at 114,000 CIDs"
    # Other sizes do not decide it
    results = healthy()
    results[2] = size(run(1_000_000, 72, end_to_end=60.0))
    assert by_label(results)[FLOOR].met is True


def test_a_floor_not_measured_or_missing_a_stage_cannot_be_judged() -> None:
    results = healthy()
    results[1] = size(run(114_000, 66), floor=None)  # an older results.json
    assert by_label(results)[FLOOR].met is None
    assert by_label(results)[FLOOR].measured == "not measured at 114,000 CIDs"
    partial = {k: v for k, v in FLOOR_SECONDS.items() if k != "lineage"}
    results[1] = size(run(114_000, 66), floor=partial)
    assert by_label(results)[FLOOR].met is None


def test_worker_peak_over_128_mb_at_any_size_is_not_met() -> None:
    results = healthy()
    results[2] = size(run(1_000_000, 140))
    judged = by_label(results)
    assert judged["Worker peak RSS at every size"].met is False
    assert judged["Worker peak RSS at every size"].measured == "worst 140 MB at 1,000,000 CIDs"
    assert judged["Worker peak RSS at every size"].goal == "≤ 128 MB"


def test_memory_that_grows_with_the_trace_is_not_flat() -> None:
    results = healthy()
    results[2] = size(run(1_000_000, 120))  # mean of 62, 68, 120 is 83.3: 1M is +44%
    flat = by_label(results)["Worker peak RSS flat across sizes"]
    assert flat.met is False and "+44% at 1,000,000 CIDs" in flat.measured
    # Within the band it is met, even though the sizes differ
    results[2] = size(run(1_000_000, 78))
    assert by_label(results)["Worker peak RSS flat across sizes"].met is True


def test_redis_over_40_mb_per_million_rows_at_any_size_is_not_met() -> None:
    results = healthy()
    results[0] = size(run(10_000, 60, redis_bytes_per_row=50))  # 47.7 MB per M rows
    redis = by_label(results)["Redis memory per million rows stored"]
    assert redis.met is False and redis.measured == "worst 47.7 MB at 10,000 CIDs"


def test_no_size_near_114k_cannot_be_judged() -> None:
    results = [healthy()[0], healthy()[2]]
    floor = by_label(results)[FLOOR]
    assert floor.met is None and "no size within ±20%" in floor.measured


def test_the_worst_size_decides_the_ratios_and_latencies() -> None:
    results = healthy()
    slow = run(114_000, 66, events_rows_per_s=60_000, page_last_ms=80, api_mb=140)
    results[1] = size(slow, scan_rows_per_s=150_000)  # 40% of the scan
    judged = by_label(results)
    scan = "Events rows per process-second / bare scan's"
    assert judged[scan].met is False
    assert judged[scan].measured == "worst 40% at 114,000 CIDs"
    assert judged["A result page near the end of the largest domain"].met is False
    assert judged["API RSS while streaming"].met is False


def test_the_events_are_judged_per_process_second_not_by_the_stage_s_wall_seconds() -> None:
    # Given an events stage whose wall seconds ran long (an analysis took one of the two
    # workers beside it: by the wall, 20 % of the scan) while its batches fetched at 60 % of
    # the bare scan per process
    results = healthy()
    results[1] = size(run(114_000, 66, events_rows_per_s=90_000, events_seconds=30.0))
    # Then the fetching is judged on its own throughput: met
    judged = by_label(results)["Events rows per process-second / bare scan's"]
    assert judged.met is True and judged.measured == "worst 60% at 114,000 CIDs"


def test_a_stream_under_90_percent_of_the_bare_read_is_not_met() -> None:
    results = healthy()
    results[2] = size(run(1_000_000, 72), read_encode_rows_per_s=250_000)  # 200K / 250K
    stream = by_label(results)["Stream rows/s / bare read + decompress + decode + encode rows/s"]
    assert stream.met is False and stream.measured == "worst 80% at 1,000,000 CIDs"
    assert stream.goal == "≥ 90%"


def test_a_slow_detail_page_or_first_byte_is_not_met() -> None:
    results = healthy()
    results[2] = size(run(1_000_000, 72, detail_last_ms=140))
    judged = by_label(results)
    assert judged["MSD detail page, the last"].met is False
    assert judged["MSD detail page, the last"].measured == "worst 140 ms at 1,000,000 CIDs"
    assert judged["MSD detail page, the first"].met is True
    results[0] = size(run(10_000, 60, detail_first_ms=120, ttfb_ms=150))
    judged = by_label(results)
    assert judged["MSD detail page, the first"].measured == "worst 120 ms at 10,000 CIDs"
    assert judged["MSD detail page, the first"].met is False
    assert judged["Time to first byte of the stream"].met is False


def test_a_re_analysis_over_a_tenth_of_end_to_end_is_not_met() -> None:
    results = healthy()
    results[0] = size(run(10_000, 60, reanalysis_seconds=2.5))  # 12.5% of 20 s
    share = by_label(results)["Re-analysis under another loss-reason mask / end to end"]
    assert share.met is False and share.measured == "worst 12% at 10,000 CIDs"
    assert share.goal == "≤ 10%"


def test_a_re_analysis_that_queried_an_earlier_stage_is_not_met() -> None:
    results = healthy()
    results[1] = size(run(114_000, 66, reanalysis_earlier_queries=2), run(114_000, 70))
    queries = by_label(results)["Re-analysis"]
    assert queries.met is False
    assert queries.measured == "2 in 1 of 6 re-analyses (lineage 2)"


def test_one_retry_that_queried_an_earlier_stage_fails_the_resume_target() -> None:
    results = healthy()
    results[0] = size(run(10_000, 60), run(10_000, 64, earlier_queries=3), run(10_000, 62))
    resume = by_label(results)["Resume after a failure in aggregation"]
    assert resume.met is False
    assert resume.measured == "3 in 1 of 7 retries (lineage 3)"


def test_runs_without_the_newer_figures_leave_their_targets_unjudged() -> None:
    older = [
        dataclasses.replace(
            s,
            floor=None,
            runs=[
                dataclasses.replace(
                    r,
                    resume=None,
                    reanalysis_seconds=None,
                    reanalysis_queries=None,
                    detail_first_ms=None,
                    detail_last_ms=None,
                )
                for r in s.runs
            ],
        )
        for s in healthy()
    ]
    judged = by_label(older)
    for label in (
        "Resume after a failure in aggregation",
        "Re-analysis",
        "Re-analysis under another loss-reason mask / end to end",
        "MSD detail page, the first",
        FLOOR,
    ):
        assert judged[label].met is None, label
