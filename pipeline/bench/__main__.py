"""``python -m pipeline.bench`` (``ops/bench``): the benchmark. For each size it builds (or
reuses) a demo warehouse, starts the real stack (a dramatiq worker command and gunicorn on
loopback, on Redis databases of its own), runs the 114K-style trace several times, measures the
limits of the parts and the old in-memory approach on the same data, and ends with a table,
``BENCHMARKS.md`` and a PNG chart. ``--quick`` is a small smoke run (written under var/)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from rich.console import Console

from pipeline import domains
from pipeline.bench import baseline, chart, floor, limits, machine, query_log, report
from pipeline.bench.model import Comparison, FloorFigures, SizeResult, size_from_dict
from pipeline.bench.run import BenchStack, job_cids, measure_resume, run_once
from pipeline.cli.warehouse import ensure_warehouse
from pipeline.engine.store import CheckpointStore

ROOT = Path(__file__).resolve().parents[2]
#: Sizes: lots after lineage (CIDs) of the benchmark's trace; 114K is the old system's crash.
DEFAULT_SIZES = (10_000, 114_000, 1_000_000)
#: Warehouse lots per CID after lineage of that trace (the demo generator's ratio, measured:
#: 10,920 lots -> 9,985 CIDs, 54,600 -> 50,060, 124,500 -> 114,067).
LOTS_PER_CID = 1.092
#: Sizes from this one up get ``--large-runs`` runs (each takes minutes), and their limits and
#: floor are measured once (``LARGE_REPEATS``; a scan of every domain takes minutes there).
LARGE = 200_000
#: Repeats of the limits and the floor below ``LARGE`` (their medians are quoted), and from it.
REPEATS = 3
LARGE_REPEATS = 1


def warehouse_lots(cids: int) -> int:
    """Lots of the warehouse whose trace reaches about ``cids`` lots (rounded up to 100s)."""
    # round() first: in floating point 50,000 x 1.092 is 54,600.000000000007 (54,700 after ceil)
    return max(100, math.ceil(round(cids * LOTS_PER_CID) / 100) * 100)


#: The old system ran on a 7 GB VM: the baseline gets that much address space.
BASELINE_MAX_MB = 7 * 1024


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ops/bench", description=__doc__)
    p.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help=f"lots after lineage (CIDs) per size, comma separated; the warehouse gets "
        f"{LOTS_PER_CID} lots per CID",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per size (medians are quoted)")
    p.add_argument("--large-runs", type=int, default=1, help=f"runs per size >= {LARGE:,}")
    p.add_argument("--seed", type=int, default=1, help="warehouse seed")
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--threads", type=int, default=1, help="threads per worker process")
    p.add_argument("--store-db", type=int, default=7, help="Redis database of the store")
    p.add_argument("--broker-db", type=int, default=8, help="Redis database of the broker")
    p.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL")
    p.add_argument("--baseline-max-mb", type=int, default=BASELINE_MAX_MB)
    p.add_argument("--no-baseline", action="store_true", help="skip the in-memory baseline")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="the report")
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench", help="warehouses, logs")
    p.add_argument(
        "--before",
        type=Path,
        help="figures of an earlier version to compare with (JSON: label, commit, changes, "
        "results as in results.json), e.g. ops/bench-before.json",
    )
    p.add_argument("--notes", type=Path, help="a Markdown file added to BENCHMARKS.md as notes")
    p.add_argument(
        "--from-results",
        type=Path,
        help="measure nothing: render the report from a results.json written by an earlier run",
    )
    p.add_argument(
        "--results",
        type=Path,
        help="where the raw figures go (default WORK/results.json; with --quick "
        "WORK/quick/results.json, so a smoke run never replaces a full run's figures)",
    )
    p.add_argument("--quick", action="store_true", help="one small run: a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.runs, args.baseline_max_mb = "1400", 1, 2048
        if args.out == ROOT / "BENCHMARKS.md":
            args.out = args.work / "quick" / "BENCHMARKS.md"
    if args.results is None:
        args.results = (
            args.work / "quick" / "results.json" if args.quick else args.work / "results.json"
        )
    return args


def measure_size(args: argparse.Namespace, cids: int, console: Console) -> SizeResult:
    lots = warehouse_lots(cids)
    db = args.work / f"warehouse-{lots}-{args.seed}.db"
    queries = args.work / "queries"  # the workers' query log (pipeline.bench.query_log)
    ensure_warehouse(db, lots, args.seed, console)
    bench = BenchStack(
        db,
        redis_url=args.redis,
        store_db=args.store_db,
        broker_db=args.broker_db,
        processes=args.processes,
        threads=args.threads,
        query_log=queries,
    )
    runs = args.large_runs if cids >= LARGE else args.runs
    repeats = LARGE_REPEATS if cids >= LARGE else REPEATS
    result = SizeResult(lots, [], target_cids=cids)
    label = f"{cids:,} CIDs ({lots:,}-lot warehouse)"
    with console.status(f"{label}: starting the worker and the API"):
        stack = bench.start(args.work / "logs" / str(lots))
    try:
        job_id = ""
        for n in range(1, runs + 1):
            with console.status(f"{label}: run {n} of {runs}"):
                figures, job_id = run_once(bench, stack, lots)
            result.runs.append(figures)
            console.print(
                f"{label}, run {n}: {figures.cids:,} lots after lineage, "
                f"{figures.rows_stored:,} rows, {figures.end_to_end_seconds:.1f} s end to end, "
                f"worker peak {figures.worker_peak:.0f} MB"
            )
        with console.status(f"{label}: the parts' limits"):
            store = CheckpointStore(bench.client(), ttl_seconds=3600)
            result.limits = limits.measure_limits(
                db,
                store,
                job_id,
                domains.DOMAINS,
                store_url=bench.store_url(),
                processes=args.processes,
                settings=bench.settings(),
                repeats=repeats,
            )
            traced = job_cids(bench, job_id)
        with console.status(f"{label}: each stage's floor"):
            result.floor = measure_stage_floor(bench, args, job_id, result, repeats)
        with console.status(f"{label}: a job failed in aggregation, retried"):
            result.runs[-1].resume = measure_resume(bench, stack)
    finally:
        stack.stop()
        bench.flush()
        query_log.clear(queries)  # the resume's queries, or a failed run's
    if not args.no_baseline:
        with console.status(f"{label}: the old in-memory approach"):
            result.baseline = baseline.run_baseline(
                db,
                traced,
                domains.DOMAINS,
                max_mb=args.baseline_max_mb,
                timeout_s=3600,
                workdir=args.work,
            )
    return result


def measure_stage_floor(
    bench: BenchStack, args: argparse.Namespace, job_id: str, result: SizeResult, repeats: int
) -> FloorFigures:
    """The stages' floors of the last run's job (``floor.measure_floor``), its events floor
    from the limits just measured; the job's query log is removed afterwards (at 1M CIDs its
    lineage's IN lists weigh hundreds of MB)."""
    assert result.limits is not None and bench.query_log is not None
    sealed = bench.query_log / job_id
    try:
        return floor.measure_floor(
            bench.db,
            CheckpointStore(bench.client(), ttl_seconds=3600),
            job_id,
            sealed if sealed.is_dir() else None,
            scan_rows=result.limits.scan_rows,
            scan_seconds=result.limits.scan_seconds,
            processes=args.processes,
            settings=bench.settings(),
            repeats=repeats,
        )
    finally:
        query_log.clear(bench.query_log)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    args.work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    if args.from_results:
        recorded = orjson.loads(args.from_results.read_bytes())
        results = [size_from_dict(size) for size in recorded["results"]]
    else:
        redis_version = str(
            BenchStack(Path(), redis_url=args.redis).client().info("server")["redis_version"]
        )
        recorded = {
            "command": "ops/bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            "machine": machine.machine_description(redis_version),
            "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        }
        results = measure(args, recorded, console)
    before = Comparison.from_dict(orjson.loads(args.before.read_bytes())) if args.before else None
    out = Console()
    for table in report.summary_tables(results):
        out.print(table)
    out.print(report.targets_table(results))
    if before is not None:
        out.print(report.comparison_table(before, results))
    chart_path = args.out.with_name(report.DEFAULT_CHART)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chart.write_chart(chart_path, results)
    report.write_markdown(
        args.out,
        results,
        machine=str(recorded["machine"]),
        command=str(recorded["command"]).strip(),
        chart=chart_path.name,
        notes=args.notes.read_text(encoding="utf-8") if args.notes else "",
        generated=dt.datetime.fromisoformat(str(recorded["date"])),
        before=before,
    )
    out.print(f"Wrote {args.out} and {chart_path} ({time.monotonic() - began:.0f} s)")
    return 0


def measure(
    args: argparse.Namespace, recorded: dict[str, object], console: Console
) -> list[SizeResult]:
    """Every size, measured; the raw figures are written to ``args.results`` after each size
    (with ``recorded``: command, machine, date), so a later failure loses nothing measured and
    ``--from-results`` can render the report again."""
    results: list[SizeResult] = []
    for cids in [int(s) for s in str(args.sizes).split(",") if s.strip()]:
        results.append(measure_size(args, cids, console))
        raw = {**recorded, "results": [dataclasses.asdict(r) for r in results]}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_bytes(
            orjson.dumps(raw, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
    console.print(f"Raw figures: {args.results}")
    return results


if __name__ == "__main__":
    sys.exit(main())
