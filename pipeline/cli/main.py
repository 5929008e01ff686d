"""``python -m pipeline``: the operator's commands.

- ``demo-data``: build a demo warehouse (SQLite) of N lots, deterministic for a seed.
- ``trace``: run one trace through the four stage functions in this process.
- ``demo``: build the demo warehouse if needed, start a worker and the API on this machine
  (``pipeline/stack.py``), trace a few hundred detection lots through the API the way the
  dashboard does, with progress bars, and end with a summary and the path of the results.
- ``jobs``: list, show, retry, cancel, purge jobs; requeue dead letters; watch events
  (``pipeline/jobs_cli.py``, with its own exit codes).

Settings come from the environment (``Settings.from_env``), read once here. Exit codes:
``EXIT_OK`` 0, ``EXIT_FAILED`` 1, ``EXIT_INVALID`` 2 (bad input or usage), ``EXIT_CONFIG`` 3,
``EXIT_SOURCE`` 4 (the warehouse could not answer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipeline import domains
from pipeline.cli import jobs as jobs_cli
from pipeline.config import Settings
from pipeline.errors import ConfigError, InvalidInput, SourceError, TraceError
from pipeline.runner import TraceRequest, TraceSummary, run_trace, top_suspects
from pipeline.sources import Source, open_source
from pipeline.tools.api_client import ApiError
from pipeline.tools.rss import PeakRss

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_CONFIG = 3
EXIT_SOURCE = 4

EXIT_CODES: tuple[tuple[type[TraceError], int], ...] = (
    (InvalidInput, EXIT_INVALID),
    (ConfigError, EXIT_CONFIG),
    (SourceError, EXIT_SOURCE),
)

DEFAULT_DEMO_LOTS = 20_000
DEFAULT_DEMO_SEED = 1
#: Without --seeds the demo traces about one detection lot per 4 lots of the warehouse
#: (5,000 for the default 20,000), so --lots alone makes the trace bigger too.
DEMO_LOTS_PER_SEED = 4
DEFAULT_DB = "var/demo-warehouse.db"
RESULTS_DIR = Path("var/results")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings, console))
    except TraceError as exc:
        console.print(f"[red]{exc.code}[/]: {exc.message}")
        return exit_code(exc)
    except KeyboardInterrupt:
        console.print("interrupted")
        return EXIT_FAILED


def exit_code(error: TraceError) -> int:
    """The exit code a script can act on for ``error``."""
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo-data", help="build a demo MES warehouse (SQLite)")
    _warehouse_options(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the file already holds this size and seed",
    )
    p.set_defaults(func=cmd_demo_data)

    p = commands.add_parser("trace", help="run one trace through the four stages, in process")
    p.add_argument("--profile", required=True, choices=domains.PROFILES)
    p.add_argument(
        "--resolve-type",
        help="lot_id, work_order, wafer_lot, serial_number, "
        "gd_work_order, gd_lot_id or container_id (mid_section_defect: omit it "
        "to resolve detection lots by --station and dates)",
    )
    p.add_argument(
        "--values",
        nargs="+",
        default=[],
        metavar="VALUE",
        help="what to resolve (a '*' makes a value a wildcard pattern)",
    )
    p.add_argument("--station", help="detection station (mid_section_defect; default 測試)")
    p.add_argument("--start-date", help="YYYY-MM-DD (mid_section_defect)")
    p.add_argument("--end-date", help="YYYY-MM-DD, inclusive (mid_section_defect)")
    p.add_argument(
        "--direction", choices=domains.DIRECTIONS, help="lineage direction (default by profile)"
    )
    p.add_argument("--loss-reasons", nargs="+", default=[], metavar="REASON")
    p.add_argument(
        "--domains",
        nargs="+",
        default=[],
        metavar="DOMAIN",
        help="event domains (default: the dashboard's set for the profile); 'all' for every domain",
    )
    p.add_argument("--out", type=Path, help="results directory (default var/results/<time>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_trace)

    p = commands.add_parser("demo", help="build the demo warehouse and trace detection lots")
    _warehouse_options(p)
    p.add_argument(
        "--seeds",
        type=int,
        help=f"about how many detection lots to trace (default: lots / {DEMO_LOTS_PER_SEED})",
    )
    p.add_argument(
        "--processes", type=int, default=2, help="worker processes (default %(default)s)"
    )
    p.add_argument(
        "--threads", type=int, default=2, help="threads per worker process (default %(default)s)"
    )
    p.add_argument("--start-date", help="detection window start, YYYY-MM-DD (instead of --seeds)")
    p.add_argument("--end-date", help="detection window end, inclusive (instead of --seeds)")
    p.add_argument(
        "--measure-memory",
        action="store_true",
        help="sample the worker's and the API's resident memory and print their peaks",
    )
    p.add_argument("--out", type=Path, help="results directory (default var/results/<time>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_demo)

    jobs_cli.add_commands(commands)
    return parser


def _warehouse_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lots", type=int, default=DEFAULT_DEMO_LOTS, help="lots to generate (default %(default)s)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_DEMO_SEED,
        help="random seed: same seed and size, same data (default %(default)s)",
    )
    p.add_argument(
        "--db",
        type=Path,
        help=f"warehouse file (default: the path of TRACE_SOURCE_URL, or {DEFAULT_DB})",
    )


# ---- commands -----------------------------------------------------------------------------


def cmd_demo_data(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    db = _db_path(args, settings)
    ensure_warehouse(db, args.lots, args.seed, console, force=args.force)
    return EXIT_OK


def cmd_trace(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    params: dict[str, Any] = {}
    if args.resolve_type:
        params.update(resolve_type=args.resolve_type, values=args.values)
    for key in ("station", "start_date", "end_date", "direction"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.loss_reasons:
        params["loss_reasons"] = args.loss_reasons
    wanted = domains.DOMAINS if args.domains == ["all"] else tuple(args.domains)
    request = TraceRequest.from_dict({"profile": args.profile, "params": params, "domains": wanted})
    with open_source(settings) as source:
        summary = _run(source, request, settings, args.out, console)
    _report(summary, console, as_json=args.json)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    from pipeline.demo import dashboard, info
    from pipeline.tools.stack import LocalStack, StackError

    db = _db_path(args, settings).resolve()
    ensure_warehouse(db, args.lots, args.seed, console)
    seeds = args.seeds if args.seeds is not None else max(1, args.lots // DEMO_LOTS_PER_SEED)
    window = info.detection_window(db, seeds)
    window = (args.start_date or window[0], args.end_date or window[1])
    out_dir = args.out or RESULTS_DIR / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # The stack gets this environment's TRACE_* settings, reading the demo warehouse.
    env = {k: v for k, v in os.environ.items() if k.startswith("TRACE_")}
    env["TRACE_SOURCE_URL"] = f"sqlite:///{db}"
    stack = LocalStack(env, out_dir / "logs", processes=args.processes, threads=args.threads)
    # Ctrl-C, SIGTERM or a closed terminal: stop what was started, as at a normal end.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        with console.status(
            f"Starting a worker ({args.processes} processes x {args.threads} threads) and the API"
        ):
            stack.start()
        console.print(
            f"Worker and API up (http://127.0.0.1:{stack.port}). Tracing the lots tested at "
            f"測試 from {window[0]} to {window[1]} through the API: mid-section defect, "
            "backward, every event domain"
        )

        def alive() -> None:
            for proc in stack.procs:
                if not proc.running:
                    raise StackError(f"{proc.name} exited\n{proc.tail()}")

        roots = {proc.name: proc.popen.pid for proc in stack.procs}
        with PeakRss(roots) as memory, _bars(console) as bars:
            summary = dashboard.run(stack.api, window, out_dir, bars, alive=alive)
    except (dashboard.DemoFailed, StackError, ApiError, OSError) as error:
        console.print(f"[red]the demo trace failed[/]: {error}")
        console.print(f"Logs: {(out_dir / 'logs').resolve()}/")
        return EXIT_FAILED
    finally:
        with console.status("Stopping the worker and the API"):
            stack.stop()
    _report(summary, console, as_json=args.json, truth=info.read_truth(db))
    if args.measure_memory:
        _report_memory(memory, console)
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _report_memory(memory: PeakRss, console: Console) -> None:
    table = Table(title="Peak resident memory during the trace (MB)")
    for column in ("service", "largest process", "all its processes"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for name, peak in memory.process_peak_kb.items():
        table.add_row(name, f"{peak / 1024:,.0f}", f"{memory.total_peak_kb[name] / 1024:,.0f}")
    console.print(table)


# ---- helpers ------------------------------------------------------------------------------


def _db_path(args: argparse.Namespace, settings: Settings) -> Path:
    if args.db:
        return Path(args.db)
    location = settings.source
    return Path(location.path) if location.kind == "sqlite" and location.path else Path(DEFAULT_DB)


def ensure_warehouse(
    db: Path, lots: int, seed: int, console: Console, *, force: bool = False
) -> None:
    """Build ``db`` unless it already holds a warehouse of ``lots`` and ``seed``."""
    from pipeline.demo import generator, info

    recorded = info.read_info(db)
    if (
        not force
        and recorded.get("lots") == str(lots)
        and recorded.get("seed") == str(seed)
        and recorded.get("generator_version") == generator.GENERATOR_VERSION
    ):
        console.print(f"Demo warehouse {db} already holds {lots:,} lots (seed {seed}).")
        return
    with _bars(console) as bars:
        task = bars.add_task(f"demo warehouse: {lots:,} lots", total=lots, rows="")
        counts = generator.generate(
            db, lots=lots, seed=seed, progress=lambda n: bars.advance(task, n)
        )
    table = Table(title=f"Demo warehouse {db}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def _bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=console,
    )


class _StageBars:
    """Draws the runner's progress: one bar per stage."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}

    def start(self, stage: str, total: int | None) -> None:
        self.tasks[stage] = self.bars.add_task(stage, total=total, rows="")
        self.rows[stage] = 0

    def advance(self, stage: str, units: int = 1, rows: int = 0) -> None:
        self.rows[stage] += rows
        self.bars.update(self.tasks[stage], advance=units, rows=f"{self.rows[stage]:,} rows")

    def finish(self, stage: str, note: str = "") -> None:
        task = self.tasks[stage]
        total = self.bars.tasks[task].total or 1
        self.bars.update(task, total=total, completed=total, rows=note)


def _run(
    source: Source, request: TraceRequest, settings: Settings, out: Path | None, console: Console
) -> TraceSummary:
    out_dir = out or RESULTS_DIR / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    with _bars(console) as bars:
        return run_trace(source, request, settings, out_dir, progress=_StageBars(bars))


def _report(
    summary: TraceSummary,
    console: Console,
    *,
    as_json: bool,
    truth: list[dict[str, Any]] | None = None,
) -> None:
    if as_json:
        sys.stdout.write(
            orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return
    out = Console()
    stages = Table(title="Lots per stage")
    stages.add_column("stage")
    stages.add_column("lots", justify="right")
    stages.add_column("seconds", justify="right")
    stages.add_row(
        "seed-resolve", f"{summary.seed_count:,}", f"{summary.seconds.get('seed-resolve', 0):.2f}"
    )
    stages.add_row(
        "lineage", f"{summary.lineage_nodes:,}", f"{summary.seconds.get('lineage', 0):.2f}"
    )
    stages.add_row("events", f"{summary.event_cids:,}", f"{summary.seconds.get('events', 0):.2f}")
    if "aggregation" in summary.seconds:
        stages.add_row("aggregation", "", f"{summary.seconds['aggregation']:.2f}")
    out.print(stages)
    rows = Table(title="Rows per domain")
    rows.add_column("domain")
    rows.add_column("rows", justify="right")
    for domain, count in summary.rows.items():
        rows.add_row(domain, f"{count:,}")
    out.print(rows)
    suspects = top_suspects(summary.aggregation)
    if suspects:
        planted = {t["EQUIPMENTID"] for t in truth or [] if t["KIND"] == "bad_machine"}
        table = Table(title="Top suspect machines (upstream of the detection station)")
        for column in ("rank", "group", "machine", "lots", "input", "defects", "defect rate %"):
            table.add_column(column, justify="right" if column != "group" else "left")
        if planted:
            table.add_column("planted?")
        for rank, row in enumerate(suspects, 1):
            cells = [
                str(rank),
                row["WORKCENTER_GROUP"],
                row["EQUIPMENT_NAME"],
                f"{row['DETECTION_LOT_COUNT']:,}",
                f"{row['INPUT_QTY']:,}",
                f"{row['DEFECT_QTY']:,}",
                f"{row['DEFECT_RATE']:.4f}",
            ]
            if planted:
                cells.append("yes" if row["EQUIPMENT_ID"] in planted else "")
            table.add_row(*cells)
        out.print(table)
        if planted:
            found = sum(1 for row in suspects[: len(planted)] if row["EQUIPMENT_ID"] in planted)
            out.print(
                f"Planted bad machines among the top {len(planted)}: {found} of {len(planted)}"
            )
    if summary.not_found:
        out.print(f"Not found: {', '.join(summary.not_found[:20])}")
    out.print(
        f"Results: {summary.out_dir.resolve()}/ "
        f"({', '.join(sorted(p.name for p in summary.out_dir.iterdir()))})"
    )
