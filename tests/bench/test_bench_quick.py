"""The benchmark's smoke tests: ``python -m pipeline.bench --quick`` (what ``ops/bench --quick``
runs) goes through the real stack once at a small size (Redis databases 4 and 5) and prints and
writes its report; ``pipeline.bench.analysis_alone`` times the analysis in process on the same
databases. The benchmark's figures themselves are never asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from pipeline.bench import analysis_alone
from pipeline.bench.run import BenchStack
from pipeline.engine import keys
from tests.support.redis_dbs import REDIS, clean_databases

ROOT = Path(__file__).resolve().parents[2]
STORE_DB, BROKER_DB = 4, 5


@pytest.fixture
def bench_redis() -> Iterator[None]:
    for _ in clean_databases(STORE_DB, BROKER_DB):
        yield


def test_the_quick_benchmark_runs_and_prints_its_table(bench_redis: None, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACE_")}
    argv = [sys.executable, "-m", "pipeline.bench", "--quick", "--redis", REDIS]
    argv += ["--store-db", str(STORE_DB), "--broker-db", str(BROKER_DB)]
    argv += ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "BENCHMARKS.md")]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=300, check=False)
    out, err = done.stdout.decode(), done.stderr.decode(errors="replace")
    assert done.returncode == 0, err[-4000:]
    # It printed the figures and the targets, met or not
    assert "CIDs" in out and ("met" in out.lower())
    # and wrote the report, the chart and the raw figures
    assert "ops/bench" in (tmp_path / "BENCHMARKS.md").read_text()
    assert (tmp_path / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # (its raw figures apart from a full run's, which stay in work/results.json)
    assert not (tmp_path / "work" / "results.json").exists()
    recorded = orjson.loads((tmp_path / "work" / "quick" / "results.json").read_bytes())
    assert recorded["command"].startswith("ops/bench --quick")
    (size,) = recorded["results"]
    run = size["runs"][-1]
    assert (
        size["target_cids"] == 1400
        and size["lots"] == 1600
        and run["cids"] > 0
        and sum(run["domain_rows"].values()) > 0
    )
    # The MSD page was measured: the analysis again under a mask, detail pages, the export
    assert run["reanalysis_seconds"] > 0 and run["detail_last_ms"] > 0
    assert run["export_mb_per_s"] > 0 and "The MSD page" in (tmp_path / "BENCHMARKS.md").read_text()
    # and the re-analysis asked the warehouse nothing for an earlier stage
    assert not {k: n for k, n in run["reanalysis_queries"].items() if k != "aggregation" and n}
    # Each stage's floor was measured (seed-resolve and lineage replayed from the workers'
    # recorded queries), and the report sets the stages beside it
    floor = size["floor"]
    assert set(floor["seconds"]) == {"seed-resolve", "lineage", "events", "aggregation"}
    assert all(seconds > 0 for seconds in floor["seconds"].values()), floor
    assert floor["reads"]["seed-resolve"] > 0 and floor["reads"]["lineage"] > 0
    assert all(rows > 0 for rows in floor["rows"].values()), floor
    assert "Stages against their floor" in (tmp_path / "BENCHMARKS.md").read_text()
    assert not (tmp_path / "work" / "queries").exists() or not any(
        (tmp_path / "work" / "queries").iterdir()
    )
    # The resume measured on it issued no query of an earlier stage
    assert run["resume"]["queries_by_stage"].get("aggregation", 0) > 0
    assert set(run["resume"]["queries_by_stage"]) == {"aggregation"}
    assert size["baseline"]["finished"] is True
    # Each domain's worker seconds were recorded, and the scan's process seconds
    assert run["domain_seconds"]["history"] > 0 and size["limits"]["scan_task_seconds"]["history"]
    # The stream's limit read every stored row (in a child with the API's allocator)
    assert size["limits"]["read_encode_rows"] == run["stream_rows"] > 0
    assert size["limits"]["read_encode_seconds"] > 0
    # And the report can be rendered again from the raw figures, measuring nothing
    again = [
        sys.executable,
        "-m",
        "pipeline.bench",
        "--from-results",
        str(tmp_path / "work" / "quick" / "results.json"),
    ]
    again += ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "again" / "BENCHMARKS.md")]
    redone = subprocess.run(again, cwd=ROOT, env=env, capture_output=True, timeout=60, check=False)
    assert redone.returncode == 0, redone.stderr.decode(errors="replace")[-4000:]
    first = (tmp_path / "BENCHMARKS.md").read_text()
    assert (tmp_path / "again" / "BENCHMARKS.md").read_text() == first


def test_the_analysis_alone_times_a_first_analysis_and_its_reanalyses(
    bench_redis: None, warehouse: Path
) -> None:
    # Given the benchmark's trace of a small warehouse, run in this process
    bench = BenchStack(db=warehouse, redis_url=REDIS, store_db=STORE_DB, broker_db=BROKER_DB)
    # When the analysis is timed alone, with three re-analyses
    times = analysis_alone.measure(bench, 3)
    # Then the trace had lots, each step took time, and every re-analysis finished (a job that
    # did not would have raised) under one of the first result's loss reasons
    assert times.lots > 0 and times.before_seconds > 0 and times.first_seconds > 0
    assert len(times.reanalysis_seconds) == 3 and min(times.reanalysis_seconds) > 0
    summary = times.summary()
    assert summary["reanalysis_min"] <= summary["reanalysis_median"] <= summary["reanalysis_max"]
    # (each one a job of its own: the trace and three)
    jobs = redis.Redis.from_url(f"{REDIS}/{STORE_DB}").zcard(keys.RECENT)
    assert jobs == 4
