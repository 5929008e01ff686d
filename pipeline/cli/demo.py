"""``python -m pipeline demo``: build the demo warehouse if needed, start a worker and the API on
this machine (``pipeline/tools/stack.py``), trace the detection lots of a window through the API
the way the dashboard does, with progress bars, and end with the report and the results' path."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from rich.console import Console

from pipeline.cli import output
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK
from pipeline.cli.output import progress_bars, report, report_memory, results_dir
from pipeline.cli.warehouse import db_path, ensure_warehouse, warehouse_options
from pipeline.config import Settings
from pipeline.tools.api_client import ApiError
from pipeline.tools.rss import PeakRss

#: Without --seeds the demo traces about one detection lot per 4 lots of the warehouse
#: (5,000 for the default 20,000), so --lots alone makes the trace bigger too.
DEMO_LOTS_PER_SEED = 4


def add_command(commands: Any) -> None:
    """Add ``demo`` to the CLI's subparsers."""
    p = commands.add_parser("demo", help="build the demo warehouse and trace detection lots")
    warehouse_options(p)
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
    output.add_result_options(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """``EXIT_FAILED`` (with where the logs are) when the stack or the trace fails; the stack is
    stopped however the command ends."""
    from pipeline.demo import dashboard, info
    from pipeline.tools.stack import LocalStack, StackError

    db = db_path(args, settings).resolve()
    ensure_warehouse(db, args.lots, args.seed, console)
    seeds = args.seeds if args.seeds is not None else max(1, args.lots // DEMO_LOTS_PER_SEED)
    window = info.detection_window(db, seeds)
    window = (args.start_date or window[0], args.end_date or window[1])
    out_dir = results_dir(args.out)
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
        with PeakRss(roots) as memory, progress_bars(console) as bars:
            summary = dashboard.run(stack.api, window, out_dir, bars, alive=alive)
    except (dashboard.DemoFailed, StackError, ApiError, OSError) as error:
        console.print(f"[red]the demo trace failed[/]: {error}")
        console.print(f"Logs: {(out_dir / 'logs').resolve()}/")
        return EXIT_FAILED
    finally:
        with console.status("Stopping the worker and the API"):
            stack.stop()
    report(summary, console, as_json=args.json, truth=info.read_truth(db))
    if args.measure_memory:
        report_memory(memory, console)
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
