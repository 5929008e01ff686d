"""``python -m pipeline trace``: one trace through the four stage functions, in this process
(no Redis, no worker), with a progress bar per stage and the report at the end."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline import domains
from pipeline.cli import output
from pipeline.cli.exit_codes import EXIT_OK
from pipeline.cli.output import StageBars, progress_bars, report, results_dir
from pipeline.config import Settings
from pipeline.runner import TraceRequest, TraceSummary, run_trace
from pipeline.sources import Source, open_source


def add_command(commands: Any) -> None:
    """Add ``trace`` to the CLI's subparsers."""
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
    p.add_argument(
        "--station",
        help="detection stations, comma-joined workcenter groups (mid_section_defect; "
        "default 測試)",
    )
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
    output.add_result_options(p)
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """Raises what the stages raise (``InvalidInput``, ``SourceError``...): ``main`` maps it."""
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
        summary = run_in_process(source, request, settings, args.out, console)
    report(summary, console, as_json=args.json)
    return EXIT_OK


def run_in_process(
    source: Source, request: TraceRequest, settings: Settings, out: Path | None, console: Console
) -> TraceSummary:
    """Run ``request`` against ``source`` here, drawing the stages' bars on ``console``."""
    with progress_bars(console) as bars:
        return run_trace(source, request, settings, results_dir(out), progress=StageBars(bars))
