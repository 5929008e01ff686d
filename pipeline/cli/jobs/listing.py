"""``jobs list`` (recent jobs, filtered) and ``jobs show ID`` (one job: state, stages, errors,
parts, key TTLs)."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

import orjson
from rich.table import Table

from pipeline.cli.exit_codes import EXIT_NOT_FOUND, EXIT_OK
from pipeline.cli.jobs.tool import JobsTool, when
from pipeline.engine import codec, keys
from pipeline.engine.job import Job
from pipeline.engine.manifest import KeyTtls
from pipeline.engine.status import job_status


def job_line(job: Job) -> dict[str, Any]:
    """One job as ``jobs list`` gives it (its JSON; the table shows the same fields)."""
    return {
        "job_id": job.id,
        "status": job.state,  # as in the API's status document
        "profile": job.request.profile,
        "kind": job.request.job_kind,
        "cid_count": job.cid_count,
        "stage": job.current_stage,
        "queue": job.queue,
        "created_at": job.created_at,
        "elapsed_seconds": job.elapsed_seconds(),
        "error": job.error,
    }


def cmd_list(tool: JobsTool, args: argparse.Namespace) -> int:
    """Jobs from the index of recent jobs, newest first, filtered; an expired job is a line
    that says so."""
    client = tool.runtime.redis
    low = time.time() - args.since if args.since is not None else "-inf"
    ids = [codec.as_text(m) for m in client.zrevrangebyscore(keys.RECENT, "+inf", low)]
    lines: list[dict[str, Any]] = []
    for job_id in ids:
        job = tool.runtime.registry.load(job_id)
        line: dict[str, Any] = job_line(job) if job else {"job_id": job_id, "status": "expired"}
        if args.state and line["status"] != args.state:
            continue
        if args.profile and line.get("profile") != args.profile:
            continue
        lines.append(line)
        if len(lines) >= args.limit:
            break
    table = Table(
        "job", "state", "profile", "kind", "lots", "stage", "created", "elapsed s", "error"
    )
    for row in lines:
        error: dict[str, Any] = row.get("error") or {}
        created: float | None = row.get("created_at")
        table.add_row(
            row["job_id"], row["status"], row.get("profile", ""), row.get("kind", ""),
            str(row.get("cid_count", "")), row.get("stage") or "",
            when(created), str(row.get("elapsed_seconds", "")),
            error.get("code", ""),
        )  # fmt: skip
    tool.emit(args, lines, table)
    return EXIT_OK


def _ttl_text(ttls: KeyTtls) -> str:
    text = f"{ttls.keys} keys, TTL {ttls.min_seconds}..{ttls.max_seconds} s"
    if ttls.gone:
        text += f", {ttls.gone} gone"
    if ttls.without_ttl:
        text += f", [red]{ttls.without_ttl} without TTL[/]"
    return text


def cmd_show(tool: JobsTool, args: argparse.Namespace) -> int:
    """``EXIT_NOT_FOUND`` for a job that is not (or no longer) there."""
    job = tool.load(args.job_id)
    if job is None:
        return EXIT_NOT_FOUND
    client, store = tool.runtime.redis, tool.runtime.store
    status = job_status(job, tool.runtime.registry, tool.runtime.settings.max_rows_per_domain)
    summaries = store.part_summaries(job.id)
    ttl_seconds = int(client.ttl(keys.job(job.id)))
    key_count = int(client.scard(keys.job_keys(job.id))) + 1  # registered keys, and the job hash
    ttls = store.key_ttls(job.id)
    data = {
        **status,
        "status": job.state,  # operators see the real state (the API shows cancelled as failed)
        "request": job.request.as_dict() | {"container_ids": len(job.request.container_ids)},
        "parts": {part: asdict(summary) for part, summary in summaries.items()},
        "ttl_seconds": ttl_seconds,
        "keys": key_count,
        "key_ttls": asdict(ttls),
    }
    if args.json:
        tool.emit(args, data, None)
        return EXIT_OK
    head = Table.grid(padding=(0, 2))
    for label, value in (
        ("job", job.id),
        ("state", job.state),
        ("profile / kind", f"{job.request.profile} / {job.request.job_kind}"),
        ("lots", str(job.cid_count)),
        ("queue", job.queue),
        ("created", when(job.created_at)),
        ("elapsed", f"{status['elapsed_seconds']} s"),
        ("progress", status["progress"]),
        ("error", orjson.dumps(job.error).decode() if job.error else "-"),
        ("failed domains", ", ".join(status["failed_domains"]) or "-"),
        ("keys / TTL", _ttl_text(ttls)),
    ):
        head.add_row(label, value)
    tool.out.print(head)
    stages = Table("stage", "done", "batches", "rows", "runs")
    for stage, info in status["stages"].items():
        total = info["batches_total"]
        batches = (
            f"{info['batches_done']}/{total}" if total is not None else str(info["batches_done"])
        )
        stages.add_row(
            stage,
            "yes" if info["completed"] else "",
            batches,
            f"{info['rows']:,}",
            str(info["runs"]),
        )
    tool.out.print(stages)
    parts = Table("part", "batches", "chunks", "rows", "batch s", "rows/s")
    for part, summary in summaries.items():
        seconds = summary.seconds
        parts.add_row(
            part,
            f"{summary.batches:,.0f}",
            f"{summary.chunks:,.0f}",
            f"{summary.rows:,.0f}",
            f"{seconds:,.1f}" if seconds else "",
            f"{summary.rows / seconds:,.0f}" if seconds else "",
        )
    tool.out.print(parts)
    return EXIT_OK
