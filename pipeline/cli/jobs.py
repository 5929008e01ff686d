"""``python -m pipeline jobs ...``: the operator's job tooling, against the configured Redis.

``list`` (filter by state, age, profile), ``show ID`` (state, stages with progress, errors,
parts, key TTLs), ``retry ID`` / ``retry --failed --since 1h`` (resume at the failed stage,
keeping finished stages and batches), ``cancel ID``, ``purge`` (release what expired or was
cancelled: ``UNLINK``, non-blocking), ``requeue-dead`` (our actors' messages in Dramatiq's
dead-letter queues, Redis broker), ``watch`` (tail the job event stream).

Tables for people by default, ``--json`` for scripts. Exit codes: 0 done; 1 something was
refused (e.g. retry of a job that is not failed); 2 bad usage; 5 job not found; 6 Redis or the
broker unavailable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson
import redis
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings
from pipeline.engine import codec, keys, lifecycle
from pipeline.engine.job import CANCELLED, FAILED, FINISHED, QUEUES, STATES, Job
from pipeline.engine.messages import ACTOR_NAMES, BrokerDispatcher
from pipeline.engine.runtime import Runtime
from pipeline.engine.status import job_status

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2, 5, 6
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d`` (a bare number is seconds) -> seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 90s, 30m, 1h, 2d): {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def add_commands(commands: Any) -> None:
    """Add ``jobs`` and its subcommands to the CLI's subparsers."""
    jobs = commands.add_parser("jobs", help="list, inspect, retry, cancel and purge jobs")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("list", help="recent jobs, newest first")
    p.add_argument("--state", choices=(*STATES, "expired"), help="only jobs in this state")
    p.add_argument("--since", type=duration, help="only jobs created this long ago or later")
    p.add_argument("--profile", help="only jobs of this profile")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(jobs_func=cmd_list)

    p = sub.add_parser("show", help="one job: state, stages, errors, parts, key TTLs")
    p.add_argument("job_id")
    p.set_defaults(jobs_func=cmd_show)

    p = sub.add_parser("retry", help="resume failed jobs at their failed stage")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--failed", action="store_true", help="every failed job (with --since)")
    p.add_argument("--since", type=duration, help="failed this long ago or later")
    p.set_defaults(jobs_func=cmd_retry)

    p = sub.add_parser("cancel", help="cancel a queued or started job")
    p.add_argument("job_id")
    p.set_defaults(jobs_func=cmd_cancel)

    p = sub.add_parser("purge", help="release the keys of expired and cancelled jobs")
    p.add_argument(
        "--ended-before",
        type=duration,
        metavar="AGE",
        help="also purge finished and failed jobs that ended longer ago than AGE",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be purged")
    p.set_defaults(jobs_func=cmd_purge)

    p = sub.add_parser("requeue-dead", help="send our dead-lettered messages again")
    p.add_argument("--dry-run", action="store_true", help="only count them")
    p.set_defaults(jobs_func=cmd_requeue_dead)

    p = sub.add_parser("watch", help="tail the job event stream (Ctrl-C stops)")
    p.add_argument("--last", type=int, default=20, help="first show this many past events")
    p.add_argument("--job", help="only events of this job")
    p.add_argument(
        "--count", type=int, help="stop after this many new events (0: print --last and exit)"
    )
    p.set_defaults(jobs_func=cmd_watch)

    for parser in sub.choices.values():
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """The ``jobs`` command: Redis errors become exit code 6 with one line, not a trace."""
    tool = JobsTool(settings, Console(), console)
    try:
        return int(args.jobs_func(tool, args))
    except (redis.ConnectionError, redis.TimeoutError) as error:
        console.print(f"[red]SERVICE_UNAVAILABLE[/]: Redis cannot be reached: {error}")
        return EXIT_UNAVAILABLE


class JobsTool:
    """What the commands share: the runtime (Redis, registry, store) and the output."""

    def __init__(self, settings: Settings, out: Console, err: Console) -> None:
        self.settings = settings
        self.out, self.err = out, err
        self._runtime: Runtime | None = None
        self._broker: Any = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings, self._dispatcher)
        return self._runtime

    def _dispatcher(self, job: Job, messages: Any, *, resumed: bool = False) -> None:
        BrokerDispatcher(self.broker)(job, messages, resumed=resumed)

    @property
    def broker(self) -> Any:
        if self._broker is None:
            from pipeline.engine.broker import make_broker

            self._broker = make_broker(self.settings)
        return self._broker

    def emit(self, args: argparse.Namespace, data: Any, table: Table | str | None) -> None:
        if args.json:
            sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        elif table is not None:
            self.out.print(table)

    def load(self, job_id: str) -> Job | None:
        job = self.runtime.registry.load(job_id)
        if job is None:
            self.err.print(f"[red]JOB_NOT_FOUND[/]: job {job_id} not found or expired")
        return job


# ---- list and show ----------------------------------------------------------------------------
def _when(epoch: float | None) -> str:
    if not epoch:
        return ""
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


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
            _when(created), str(row.get("elapsed_seconds", "")),
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
        ("created", _when(job.created_at)),
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


# ---- retry, cancel --------------------------------------------------------------------------
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
        table.add_row(job_id, "yes" if done else "no (not failed)")
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


# ---- purge ----------------------------------------------------------------------------------
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
        released = 0 if args.dry_run else purge_job(runtime, job_id)
        purged.append({"job_id": job_id, "why": why, "keys": released})
        if not args.dry_run:
            runtime.registry.announce(lifecycle.PURGED, job_id, why=why, keys=released)
    table = Table("job", "why", "keys released")
    for item in purged:
        table.add_row(item["job_id"], item["why"], str(item["keys"]))
    tool.emit(args, {"purged": purged, "dry_run": args.dry_run}, table)
    return EXIT_OK


def purge_job(runtime: Runtime, job_id: str) -> int:
    """Release every key of a job (``UNLINK``: freed in the background) and its index entries."""
    client = runtime.redis
    released = runtime.store.release(job_id)
    pipe = client.pipeline(transaction=False)
    pipe.unlink(keys.job(job_id))
    for index in (keys.RECENT, keys.RUNNING, keys.FAILED):
        pipe.zrem(index, job_id)
    pipe.execute()
    return released + 1


# ---- dead letters ---------------------------------------------------------------------------
def cmd_requeue_dead(tool: JobsTool, args: argparse.Namespace) -> int:
    import dramatiq

    if tool.settings.broker_url.startswith(("amqp://", "amqps://")):
        tool.err.print(
            "requeue-dead reads the Redis broker's dead-letter sets; with RabbitMQ move "
            "messages from the <queue>.XQ queues with its management tools (shovel)"
        )
        return EXIT_USAGE
    client = tool.broker.client
    ours = set(ACTOR_NAMES.values())
    moved: list[dict[str, Any]] = []
    for queue in QUEUES:
        dead, bodies = f"dramatiq:{queue}.XQ", f"dramatiq:{queue}.XQ.msgs"
        for message_id in client.zrange(dead, 0, -1):
            data = client.hget(bodies, message_id)
            if data is None:
                continue
            message = dramatiq.Message.decode(codec.as_bytes(data))
            if message.actor_name not in ours:
                continue
            moved.append({"queue": queue, "actor": message.actor_name, "job_id": message.args[0]})
            if args.dry_run:
                continue
            options = {
                k: v for k, v in message.options.items() if k not in ("retries", "traceback")
            }
            tool.broker.enqueue(message.copy(options=options))
            client.zrem(dead, message_id)
            client.hdel(bodies, message_id)
    table = Table("queue", "actor", "job")
    for item in moved:
        table.add_row(item["queue"], item["actor"], item["job_id"])
    tool.emit(args, {"requeued": moved, "dry_run": args.dry_run}, table)
    return EXIT_OK


# ---- watch ----------------------------------------------------------------------------------
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
                at = _when(float(event.pop("at", "0") or 0))
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
