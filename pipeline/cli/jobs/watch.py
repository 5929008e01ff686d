"""``jobs watch``: tail the job event stream (the last ``--last`` events first; ``--job`` for one
job; ``--count`` to stop)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

import orjson

from pipeline.cli.exit_codes import EXIT_OK
from pipeline.cli.jobs.tool import JobsTool, when
from pipeline.engine import lifecycle

#: Events ``watch --job`` searches for that job's last ones.
WATCH_LOOKBACK = 10_000


def cmd_watch(tool: JobsTool, args: argparse.Namespace) -> int:
    client = tool.runtime.redis
    # With --job, the last N events of that job (looked for among the newest WATCH_LOOKBACK).
    past = lifecycle.latest(client, WATCH_LOOKBACK if args.job else max(args.last, 1))
    after = past[-1][0] if past else "0-0"  # an id, not "$": nothing is lost between reads
    if args.job:
        past = [(i, e) for i, e in past if e.get("job") == args.job]
    past = past[-args.last :] if args.last > 0 else []
    shown = 0

    def show(entries: Iterable[tuple[str, dict[str, str]]]) -> int:
        count = 0
        for entry_id, event in entries:
            if args.job and event.get("job") != args.job:
                continue
            count += 1
            if args.json:
                sys.stdout.write(orjson.dumps({"id": entry_id, **event}).decode() + "\n")
            else:
                at = when(float(event.pop("at", "0") or 0))
                rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "job"))
                tool.out.print(f"{at} {event.get('job')} [bold]{event.get('event')}[/] {rest}")
            sys.stdout.flush()
        return count

    show(past)
    if args.count is not None and args.count <= 0:  # --count 0: the backlog only
        return EXIT_OK
    try:
        for entry in lifecycle.follow(client, after, block_ms=1000):
            shown += show([entry])
            if args.count is not None and shown >= args.count:
                break
    except KeyboardInterrupt:
        pass
    return EXIT_OK
