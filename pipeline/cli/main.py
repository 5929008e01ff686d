"""``python -m pipeline``: the operator's commands.

- ``demo-data``: build a demo warehouse (SQLite) of N lots, deterministic for a seed.
- ``trace``: run one trace through the four stage functions in this process.
- ``demo``: build the demo warehouse if needed, start a worker and the API on this machine
  (``pipeline/tools/stack.py``), trace a few hundred detection lots through the API the way the
  dashboard does, with progress bars, and end with a summary and the path of the results.
- ``jobs``: list, show, retry, cancel, purge jobs; requeue dead letters; watch events
  (``pipeline/cli/jobs/``, with its own exit codes).

Settings come from the environment (``Settings.from_env``), read once here. Exit codes:
``EXIT_OK`` 0, ``EXIT_FAILED`` 1, ``EXIT_INVALID`` 2 (bad input or usage), ``EXIT_CONFIG`` 3,
``EXIT_SOURCE`` 4 (the warehouse could not answer).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from pipeline.cli import demo, trace, warehouse
from pipeline.cli.exit_codes import EXIT_FAILED, exit_code
from pipeline.cli.jobs import parser as jobs
from pipeline.config import Settings
from pipeline.errors import TraceError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code
    (``exit_codes.py``): a ``TraceError`` becomes one red line and its code, not a traceback."""
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


def build_parser() -> argparse.ArgumentParser:
    """Every command, each added by its own module (in the order ``--help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=__doc__,  # this module's docstring is the operator's --help
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    warehouse.add_command(commands)
    trace.add_command(commands)
    demo.add_command(commands)
    jobs.add_command(commands)
    return parser
