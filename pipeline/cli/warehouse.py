"""``python -m pipeline demo-data``: build the demo warehouse (SQLite) of N lots, deterministic
for a seed; and what ``demo`` (and the benchmark) share with it: the warehouse options, where the
file goes, ``ensure_warehouse``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.cli.exit_codes import EXIT_OK
from pipeline.cli.output import progress_bars
from pipeline.config import Settings

DEFAULT_DEMO_LOTS = 20_000
DEFAULT_DEMO_SEED = 1
DEFAULT_DB = "var/demo-warehouse.db"


def add_command(commands: Any) -> None:
    """Add ``demo-data`` to the CLI's subparsers."""
    p = commands.add_parser("demo-data", help="build a demo MES warehouse (SQLite)")
    warehouse_options(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the file already holds this size and seed",
    )
    p.set_defaults(func=cmd_demo_data)


def warehouse_options(p: argparse.ArgumentParser) -> None:
    """``--lots``, ``--seed`` and ``--db``: which warehouse, and where."""
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


def cmd_demo_data(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    db = db_path(args, settings)
    ensure_warehouse(db, args.lots, args.seed, console, force=args.force)
    return EXIT_OK


def db_path(args: argparse.Namespace, settings: Settings) -> Path:
    """``--db``, else the file of a SQLite ``TRACE_SOURCE_URL``, else ``DEFAULT_DB``."""
    if args.db:
        return Path(args.db)
    location = settings.source
    return Path(location.path) if location.kind == "sqlite" and location.path else Path(DEFAULT_DB)


def ensure_warehouse(
    db: Path, lots: int, seed: int, console: Console, *, force: bool = False
) -> None:
    """Build ``db`` unless it already holds a warehouse of ``lots`` and ``seed`` (made by this
    generator version), with a progress bar and a table of rows per table.

    Raises ``InvalidInput`` for too few lots (``generator.MIN_LOTS``).
    """
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
    with progress_bars(console) as bars:
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
