"""``jobs retry ID`` / ``jobs retry --failed [--since AGE]`` (resume failed jobs at their failed
stage, keeping finished stages and batches) and ``jobs cancel ID``."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from pipeline.cli.exit_codes import EXIT_NOT_FOUND, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from pipeline.cli.jobs.tool import JobsTool
from pipeline.engine import codec, keys
from pipeline.engine.job import CANCELLED


def cmd_retry(tool: JobsTool, args: argparse.Namespace) -> int:
    if bool(args.job_id) == bool(args.failed) or (args.job_id and args.since is not None):
        tool.err.print("retry needs a job id, or --failed [--since AGE]")
        return EXIT_USAGE
    skipped: list[str] = []
    if args.job_id:
        ids = [args.job_id]
        if tool.load(args.job_id) is None:
            return EXIT_NOT_FOUND
    else:
        low = time.time() - args.since if args.since is not None else "-inf"
        ids = [codec.as_text(m) for m in tool.runtime.redis.zrangebyscore(keys.FAILED, low, "+inf")]
        # A job refused for its input fails the same way again: bulk retry leaves it alone
        # (retry it by id to insist).
        for job_id in list(ids):
            job = tool.runtime.registry.load(job_id)
            if job is not None and job.error and job.error.get("input"):
                ids.remove(job_id)
                skipped.append(job_id)
    results = {job_id: tool.runtime.retry(job_id) for job_id in ids}
    table = Table("job", "retried")
    for job_id, done in results.items():
        table.add_row(job_id, "yes" if done else "no (not failed, nor partly failed)")
    for job_id in skipped:
        table.add_row(job_id, "no (bad input: it would fail again)")
    tool.emit(args, {"retried": [j for j, d in results.items() if d],
                     "refused": [j for j, d in results.items() if not d],
                     "skipped": skipped}, table)  # fmt: skip
    return EXIT_OK if all(results.values()) else EXIT_REFUSED


def cmd_cancel(tool: JobsTool, args: argparse.Namespace) -> int:
    job = tool.load(args.job_id)
    if job is None:
        return EXIT_NOT_FOUND
    state = tool.runtime.registry.cancel(job.id)
    tool.emit(args, {"job_id": job.id, "status": state}, f"job {job.id}: {state}")
    return EXIT_OK if state == CANCELLED else EXIT_REFUSED
