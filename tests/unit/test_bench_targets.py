"""The benchmark's targets are judged from the figures as issue 6 states them: the worker's
peak at the size nearest 114K CIDs, flatness within ±20% of the mean over every size, the worst
size for the API, the ratios, the latencies, and zero earlier-stage queries in every retry.
Figures here are made up; no benchmark runs."""

from __future__ import annotations

import dataclasses

from pipeline.bench.model import (
    BaselineFigure,
    LimitFigures,
    ResumeFigure,
    RunFigures,
    SizeResult,
    StageFigure,
)
from pipeline.bench.targets import TargetResult, evaluate_targets, verdict


def run(
    cids: int,
    worker_mb: float,
    *,
    api_mb: float = 80.0,
    events_rows_per_s: float = 100_000.0,
    page_last_ms: float = 20.0,
    earlier_queries: int = 0,
) -> RunFigures:
    rows = int(events_rows_per_s * 10)
    return RunFigures(
        lots=cids,
        cids=cids,
        stages={"events": StageFigure(seconds=10.0, rows=rows)},
        end_to_end_seconds=20.0,
        domain_rows={"history": rows},
        worker_peak_mb={"worker 1": worker_mb, "worker 2": worker_mb / 2},
        api_peak_mb=api_mb,
        redis_bytes=rows * 200,
        stream_seconds=5.0,
        stream_bytes=rows * 300,
        stream_rows=rows,
        ttfb_ms=5.0,
        page_first_ms=5.0,
        page_last_ms=page_last_ms,
        resume=ResumeFigure(
            seconds=3.0, queries_by_stage={"aggregation": 4, "lineage": earlier_queries}
        ),
    )


def size(*runs: RunFigures, scan_rows_per_s: float = 150_000.0) -> SizeResult:
    return SizeResult(
        lots=runs[0].lots,
        runs=list(runs),
        limits=LimitFigures(
            scan_rows={"history": int(scan_rows_per_s)},
            scan_seconds={"history": 1.0},
            read_encode_rows=100_000,
            read_encode_seconds=1.0,
        ),
        baseline=BaselineFigure(finished=True, seconds=30.0, peak_mb=900.0, rows=1000),
    )


def by_label(results: list[SizeResult]) -> dict[str, TargetResult]:
    judged = evaluate_targets(results)
    assert len({t.label for t in judged}) == len(judged) == 8
    return {t.label.split(" (")[0].split(":")[0]: t for t in judged}


def healthy() -> list[SizeResult]:
    return [
        size(run(10_000, 60), run(10_000, 64), run(10_000, 62)),
        size(run(114_000, 66), run(114_000, 70), run(114_000, 68)),
        size(run(500_000, 72)),
    ]


def test_healthy_figures_meet_every_target() -> None:
    judged = by_label(healthy())
    assert all(t.met is True for t in judged.values()), judged
    peak = judged["Worker peak RSS at 114K CIDs"]
    # The median of the three runs' largest process, at the size nearest 114K
    assert peak.measured == "68.0 MB at 114,000 CIDs"
    assert verdict(True) == "met" and verdict(False) == "NOT MET" and verdict(None) == "n/a"


def test_worker_peak_over_the_goal_at_114k_is_not_met() -> None:
    results = healthy()
    results[1] = size(run(114_000, 300), run(114_000, 240), run(114_000, 280))
    judged = by_label(results)
    assert judged["Worker peak RSS at 114K CIDs"].met is False
    assert judged["Worker peak RSS at 114K CIDs"].measured == "280 MB at 114,000 CIDs"


def test_memory_that_grows_with_the_trace_is_not_flat() -> None:
    results = healthy()
    results[2] = size(run(500_000, 120))  # mean of 62, 68, 120 is 83.3: 500K is +44%
    flat = by_label(results)["Worker peak RSS flat across sizes"]
    assert flat.met is False and "+44% at 500,000 CIDs" in flat.measured
    # Within the band it is met, even though the sizes differ
    results[2] = size(run(500_000, 78))
    assert by_label(results)["Worker peak RSS flat across sizes"].met is True


def test_no_size_near_114k_cannot_be_judged() -> None:
    results = [healthy()[0], healthy()[2]]
    peak = by_label(results)["Worker peak RSS at 114K CIDs"]
    assert peak.met is None and "no size within ±20%" in peak.measured


def test_the_worst_size_decides_the_ratios_and_latencies() -> None:
    results = healthy()
    slow = run(114_000, 66, events_rows_per_s=60_000, page_last_ms=80, api_mb=140)
    results[1] = size(slow, scan_rows_per_s=150_000)  # 40% of the scan
    judged = by_label(results)
    assert judged["Pipeline rows/s"].met is False
    assert judged["Pipeline rows/s"].measured == "worst 40% at 114,000 CIDs"
    assert judged["A result page near the end of the largest domain"].met is False
    assert judged["API RSS while streaming"].met is False


def test_one_retry_that_queried_an_earlier_stage_fails_the_resume_target() -> None:
    results = healthy()
    results[0] = size(run(10_000, 60), run(10_000, 64, earlier_queries=3), run(10_000, 62))
    resume = by_label(results)["Resume after a failure in aggregation"]
    assert resume.met is False
    assert resume.measured == "3 in 1 of 7 retries (lineage 3)"


def test_runs_without_a_resume_leave_the_resume_target_unjudged() -> None:
    results = [
        dataclasses.replace(s, runs=[dataclasses.replace(r, resume=None) for r in s.runs])
        for s in healthy()
    ]
    assert by_label(results)["Resume after a failure in aggregation"].met is None
