"""``jobs purge``: release the keys of expired and cancelled jobs (and, with ``--ended-before``,
of jobs that ended long ago): ``UNLINK``, non-blocking."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.table import Table

from pipeline.cli.exit_codes import EXIT_OK
from pipeline.cli.jobs.tool import JobsTool
from pipeline.engine import codec, keys, lifecycle, operator
from pipeline.engine.job import CANCELLED, FAILED, FINISHED


def cmd_purge(tool: JobsTool, args: argparse.Namespace) -> int:
    """Jobs whose hash expired leave index entries (and maybe keys whose TTL was not refreshed
    yet); cancelled jobs keep their hash until their TTL; with ``--ended-before``, finished and
    failed jobs that ended long enough ago go too."""
    runtime = tool.runtime
    client = runtime.redis
    now = time.time()
    purged: list[dict[str, Any]] = []
    for member in client.zrange(keys.RECENT, 0, -1):
        job_id = codec.as_text(member)
        job = runtime.registry.load(job_id)
        if job is None:
            why = "expired"
        elif job.state == CANCELLED:
            why = "cancelled"
        elif (
            args.ended_before is not None
            and job.state in (FINISHED, FAILED)
            and job.finished_at
            and job.finished_at < now - args.ended_before
        ):
            why = f"{job.state} long ago"
        else:
            continue
        released = 0 if args.dry_run else operator.purge(runtime, job_id)
        purged.append({"job_id": job_id, "why": why, "keys": released})
        if not args.dry_run:
            runtime.registry.announce(lifecycle.PURGED, job_id, why=why, keys=released)
    table = Table("job", "why", "keys released")
    for item in purged:
        table.add_row(item["job_id"], item["why"], str(item["keys"]))
    tool.emit(args, {"purged": purged, "dry_run": args.dry_run}, table)
    return EXIT_OK
