"""``jobs list`` (recent jobs, filtered) and ``jobs show ID`` (one job: state, stages, errors,
parts, key TTLs)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
import redis
from rich.table import Table

from pipeline.cli.exit_codes import EXIT_NOT_FOUND, EXIT_OK
from pipeline.cli.jobs.tool import JobsTool, when
from pipeline.engine import codec, keys
from pipeline.engine.job import Job
from pipeline.engine.status import job_status


def job_line(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "status": job.state,  # as in the API's status document
        "profile": job.request.profile,
        "kind": job.request.job_kind,
        "cid_count": job.cid_count,
        "stage": job.stage,
        "queue": job.queue,
        "created_at": job.created_at,
        "elapsed_seconds": job.elapsed_seconds(),
        "error": job.error,
    }


def cmd_list(tool: JobsTool, args: argparse.Namespace) -> int:
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


def parts_of(client: redis.Redis, job_id: str) -> dict[str, dict[str, float]]:
    """Per checkpointed part of the job: committed batches, chunks and rows, and the seconds its
    batches took, added up (worker seconds; recorded by the events stage)."""
    prefix = keys.manifest(job_id, "")
    parts: dict[str, dict[str, float]] = {}
    for name in client.sscan_iter(keys.job_keys(job_id), match=f"{prefix}*", count=500):
        part = codec.as_text(name)[len(prefix) :]
        chunks = rows = 0
        seconds = 0.0
        for data in client.hvals(codec.as_text(name)):
            entry = codec.unpack(codec.as_bytes(data))
            chunks += len(entry["chunks"])
            rows += sum(c[1] for c in entry["chunks"])
            seconds += float((entry.get("note") or {}).get("seconds") or 0)
        parts[part] = {
            "batches": int(client.hlen(codec.as_text(name))),
            "chunks": chunks,
            "rows": rows,
            "seconds": round(seconds, 3),
        }
    return dict(sorted(parts.items()))


def key_ttls(client: redis.Redis, job_id: str) -> dict[str, int | None]:
    """TTLs of every key the job registered (and its hash and key set): the shortest and
    longest, how many are already gone, and how many have no TTL (which would never expire)."""
    names = [keys.job(job_id), keys.job_keys(job_id)]
    names += [codec.as_text(n) for n in client.sscan_iter(keys.job_keys(job_id), count=1000)]
    ttls: list[int] = []
    for start in range(0, len(names), 1000):
        pipe = client.pipeline(transaction=False)
        for name in names[start : start + 1000]:
            pipe.ttl(name)
        ttls += [int(t) for t in pipe.execute()]
    alive = [t for t in ttls if t >= 0]
    return {
        "keys": len(names),
        "min_seconds": min(alive) if alive else None,
        "max_seconds": max(alive) if alive else None,
        "gone": sum(1 for t in ttls if t == -2),
        "without_ttl": sum(1 for t in ttls if t == -1),
    }


def _ttl_text(ttls: dict[str, int | None]) -> str:
    text = f"{ttls['keys']} keys, TTL {ttls['min_seconds']}..{ttls['max_seconds']} s"
    if ttls["gone"]:
        text += f", {ttls['gone']} gone"
    if ttls["without_ttl"]:
        text += f", [red]{ttls['without_ttl']} without TTL[/]"
    return text


def cmd_show(tool: JobsTool, args: argparse.Namespace) -> int:
    job = tool.load(args.job_id)
    if job is None:
        return EXIT_NOT_FOUND
    client = tool.runtime.redis
    status = job_status(job, tool.runtime.registry)
    data = {
        **status,
        "status": job.state,  # operators see the real state (the API shows cancelled as failed)
        "request": job.request.as_dict() | {"container_ids": len(job.request.container_ids)},
        "parts": parts_of(client, job.id),
        "ttl_seconds": int(client.ttl(keys.job(job.id))),
        "keys": int(client.scard(keys.job_keys(job.id))) + 1,
        "key_ttls": key_ttls(client, job.id),
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
        ("keys / TTL", _ttl_text(data["key_ttls"])),
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
    for part, info in data["parts"].items():
        seconds = info["seconds"]
        parts.add_row(
            part,
            f"{info['batches']:,.0f}",
            f"{info['chunks']:,.0f}",
            f"{info['rows']:,.0f}",
            f"{seconds:,.1f}" if seconds else "",
            f"{info['rows'] / seconds:,.0f}" if seconds else "",
        )
    tool.out.print(parts)
    return EXIT_OK
