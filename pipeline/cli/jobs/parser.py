"""The ``jobs`` command's verbs and their flags (every verb also takes ``--json``)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from pipeline.cli.jobs import dead_letters, listing, purge, retry_cancel, watch
from pipeline.cli.jobs.tool import run
from pipeline.engine.job import STATES

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d`` (a bare number is seconds) -> seconds.

    Raises ``argparse.ArgumentTypeError`` (argparse exits with 2) for anything else.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 90s, 30m, 1h, 2d): {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def add_command(commands: Any) -> None:
    """Add ``jobs`` and its subcommands to the CLI's subparsers."""
    jobs = commands.add_parser("jobs", help="list, inspect, retry, cancel and purge jobs")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("list", help="recent jobs, newest first")
    p.add_argument("--state", choices=(*STATES, "expired"), help="only jobs in this state")
    p.add_argument("--since", type=duration, help="only jobs created this long ago or later")
    p.add_argument("--profile", help="only jobs of this profile")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(jobs_func=listing.cmd_list)

    p = sub.add_parser("show", help="one job: state, stages, errors, parts, key TTLs")
    p.add_argument("job_id")
    p.set_defaults(jobs_func=listing.cmd_show)

    p = sub.add_parser("retry", help="resume failed jobs at their failed stage")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--failed", action="store_true", help="every failed job (with --since)")
    p.add_argument("--since", type=duration, help="failed this long ago or later")
    p.set_defaults(jobs_func=retry_cancel.cmd_retry)

    p = sub.add_parser("cancel", help="cancel a queued or started job")
    p.add_argument("job_id")
    p.set_defaults(jobs_func=retry_cancel.cmd_cancel)

    p = sub.add_parser("purge", help="release the keys of expired and cancelled jobs")
    p.add_argument(
        "--ended-before",
        type=duration,
        metavar="AGE",
        help="also purge finished and failed jobs that ended longer ago than AGE",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be purged")
    p.set_defaults(jobs_func=purge.cmd_purge)

    p = sub.add_parser("requeue-dead", help="send our dead-lettered messages again")
    p.add_argument("--dry-run", action="store_true", help="only count them")
    p.set_defaults(jobs_func=dead_letters.cmd_requeue_dead)

    p = sub.add_parser("watch", help="tail the job event stream (Ctrl-C stops)")
    p.add_argument("--last", type=int, default=20, help="first show this many past events")
    p.add_argument("--job", help="only events of this job")
    p.add_argument(
        "--count", type=int, help="stop after this many new events (0: print --last and exit)"
    )
    p.set_defaults(jobs_func=watch.cmd_watch)

    for parser in sub.choices.values():
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(func=run)
