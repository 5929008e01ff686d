"""What an operator sees of the system, read from Redis and the broker on demand: the worker
processes seen, the depth of each job queue, Redis's memory and eviction policy, and the jobs
stalled past the resume bound. ``GET /api/ops/overview`` answers it, and the Prometheus
collector (``pipeline.engine.metrics``) exports the same figures as gauges.

Every read is a few small commands: the heartbeat set, three per queue, ``INFO memory``, the
quiet end of the running index and one hash per stalled job. Nothing here writes.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, NotRequired

import redis
from pydantic import Field
from typing_extensions import TypedDict

from pipeline.config import Settings
from pipeline.engine import codec, keys
from pipeline.engine.documents import Count
from pipeline.engine.job import ACTIVE, QUEUES

#: The only ``maxmemory-policy`` under which Redis never drops a key to make room: every other
#: one may evict job keys (they all carry a TTL, so the ``volatile-*`` policies take them too).
NO_EVICTION = "noeviction"
#: Kinds of queued messages: ready to run, delayed (a retry's backoff), dead-lettered.
QUEUE_KINDS = ("ready", "delayed", "dead")
#: How a queue's depths were read.
Broker = Literal["redis", "rabbitmq", "none"]


class WorkerSeen(TypedDict):
    """One worker process of the heartbeat set (``keys.WORKERS``)."""

    id: Annotated[str, Field(description="`host:pid`, as the process registered.")]
    host: str | None
    pid: int | None
    last_beat: Annotated[float, Field(description="Epoch seconds of its last heartbeat.")]
    seconds_since_beat: Annotated[float, Field(description="One decimal.")]
    alive: Annotated[bool, Field(description="Beat within TRACE_STALL_SECONDS.")]


class QueueDepth(TypedDict):
    """Messages waiting in one job queue; ``null`` when the broker could not say."""

    queue: str
    broker: Broker
    ready: Count | None
    delayed: Count | None
    dead: Annotated[Count | None, Field(description="Dead-lettered messages.")]
    detail: NotRequired[Annotated[str, Field(description="Why the counts are unknown.")]]


class RedisMemory(TypedDict):
    """The job store's memory: used against ``maxmemory`` (0: no limit), and its policy."""

    used_bytes: Count
    max_bytes: Annotated[Count, Field(description="0: no limit set.")]
    used_ratio: Annotated[float | None, Field(description="used / max; null without a limit.")]
    policy: Annotated[str, Field(description="`maxmemory-policy`.")]
    evicts: Annotated[bool, Field(description="The policy may evict job keys.")]


class StalledJob(TypedDict):
    """An active job with no sign of life for longer than the resume bound."""

    job_id: str
    state: Annotated[str, Field(description="`queued` or `started`.")]
    stage: str | None
    quiet_seconds: Annotated[float, Field(description="Since its last sign of life.")]
    revivals: Annotated[Count, Field(description="Times the reaper resumed it since it moved.")]


class Overview(TypedDict):
    """Workers, queues, Redis and stalled jobs, as ``GET /api/ops/overview`` answers."""

    workers: list[WorkerSeen]
    queues: list[QueueDepth]
    redis: RedisMemory
    stalled_jobs: list[StalledJob]
    resume_bound_seconds: Annotated[
        int, Field(description="TRACE_STALL_SECONDS + TRACE_REAPER_INTERVAL_SECONDS.")
    ]
    at: Annotated[float, Field(description="Epoch seconds the figures were read.")]


def overview(
    client: redis.Redis, broker: Any, settings: Settings, now: float | None = None
) -> Overview:
    """Everything an operator sees of the system (``broker``: the Dramatiq broker, or
    ``None`` when there is none). Raises ``redis.RedisError`` when Redis is away; a broker
    that cannot be read only makes its queue depths ``null``."""
    now = time.time() if now is None else now
    bound = settings.resume_bound_seconds
    return {
        "workers": workers(client, settings.stall_seconds, now),
        "queues": queue_depths(broker),
        "redis": redis_memory(client),
        "stalled_jobs": stalled_jobs(client, bound, now),
        "resume_bound_seconds": bound,
        "at": round(now, 3),
    }


def workers(
    client: redis.Redis, stall_seconds: float, now: float | None = None
) -> list[WorkerSeen]:
    """Every worker process in the heartbeat set (processes silent for an hour are dropped by
    the heartbeat itself), most recent beat first; ``alive`` when it beat within
    ``stall_seconds``."""
    now = time.time() if now is None else now
    beats: list[Any] = client.zrevrange(keys.WORKERS, 0, -1, withscores=True)
    found: list[WorkerSeen] = []
    for member, score in beats:
        name = codec.as_text(member)
        host, sep, pid = name.rpartition(":")
        since = max(0.0, now - float(score))
        found.append(
            {
                "id": name,
                "host": host if sep else None,
                "pid": int(pid) if sep and pid.isdigit() else None,
                "last_beat": float(score),
                "seconds_since_beat": round(since, 1),
                "alive": since <= stall_seconds,
            }
        )
    return found


def queue_depths(broker: Any) -> list[QueueDepth]:
    """Messages per job queue (``pipeline.engine.job.QUEUES``): ready, delayed and dead.

    The Redis broker (Dramatiq's layout): ``<ns>:<queue>`` and ``<ns>:<queue>.DQ`` are lists of
    message ids, ``<ns>:<queue>.XQ`` a sorted set of dead-lettered ones (messages being run are
    in none of them). RabbitMQ: each queue's ``message_count`` (ready messages, not those
    delivered and unacknowledged). No broker, or one that fails to answer: ``null`` counts and
    a ``detail`` saying why, never an error."""
    client = getattr(broker, "client", None)
    if broker is None:
        return [_unknown(q, "none", "no broker (in-process dispatch)") for q in QUEUES]
    if client is not None:
        namespace = getattr(broker, "namespace", "dramatiq")
        pipe = client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(f"{namespace}:{queue}")
            pipe.llen(f"{namespace}:{queue}.DQ")
            pipe.zcard(f"{namespace}:{queue}.XQ")
        try:
            counts = [int(n) for n in pipe.execute()]
        except redis.RedisError as error:
            return [_unknown(q, "redis", f"broker unreadable: {error}") for q in QUEUES]
        return [_depth(q, "redis", *counts[i * 3 : i * 3 + 3]) for i, q in enumerate(QUEUES)]
    depths: list[QueueDepth] = []
    for queue in QUEUES:
        try:
            ready, delayed, dead = broker.get_queue_message_counts(queue)
        except Exception as error:  # RabbitMQ away or refusing: unknown, not a failed page
            depths.append(_unknown(queue, "rabbitmq", f"broker unreadable: {error}"))
        else:
            depths.append(_depth(queue, "rabbitmq", ready, delayed, dead))
    return depths


def _depth(queue: str, broker: Broker, ready: int, delayed: int, dead: int) -> QueueDepth:
    return {"queue": queue, "broker": broker, "ready": ready, "delayed": delayed, "dead": dead}


def _unknown(queue: str, broker: Broker, why: str) -> QueueDepth:
    depth: QueueDepth = {
        "queue": queue,
        "broker": broker,
        "ready": None,
        "delayed": None,
        "dead": None,
    }
    depth["detail"] = why
    return depth


def eviction_policy(client: redis.Redis) -> str:
    """Redis's ``maxmemory-policy`` (``CONFIG GET``; raises ``redis.RedisError`` when Redis is
    away or refuses the command)."""
    found: dict[Any, Any] = client.config_get("maxmemory-policy")
    value = next(iter(found.values()), "")  # redis-py decodes CONFIG GET's reply itself
    return value.decode() if isinstance(value, bytes) else str(value)


def evicts(policy: str) -> bool:
    """Whether Redis under ``policy`` may evict job keys (any policy but ``noeviction``)."""
    return policy != NO_EVICTION


def redis_memory(client: redis.Redis) -> RedisMemory:
    """``used_memory`` and ``maxmemory`` (bytes, ``INFO memory``) and the eviction policy."""
    info = client.info("memory")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    policy = eviction_policy(client)
    return {
        "used_bytes": used,
        "max_bytes": limit,
        "used_ratio": round(used / limit, 4) if limit else None,
        "policy": policy,
        "evicts": evicts(policy),
    }


def stalled_jobs(
    client: redis.Redis, bound_seconds: float, now: float | None = None
) -> list[StalledJob]:
    """Active jobs with no sign of life (a heartbeat of a worker holding their work, work sent
    for them) for longer than ``bound_seconds``, quietest first. The reaper should have resumed
    such a job by then: none is usual only when no worker runs. A job waiting behind others in
    a busy queue shows here too until the reaper revives it (each revival resets its clock)."""
    now = time.time() if now is None else now
    quiet: list[Any] = client.zrangebyscore(
        keys.RUNNING, "-inf", now - bound_seconds, withscores=True
    )
    if not quiet:
        return []
    pipe = client.pipeline(transaction=False)
    for member, _ in quiet:
        pipe.hmget(keys.job(codec.as_text(member)), "state", "stage", "revivals")
    fields: list[Any] = pipe.execute()
    found: list[StalledJob] = []
    for (member, score), (state, stage, revivals) in zip(quiet, fields, strict=True):
        if state is None or codec.as_text(state) not in ACTIVE:
            continue  # ended or expired meanwhile: the reaper drops it from the index
        found.append(
            {
                "job_id": codec.as_text(member),
                "state": codec.as_text(state),
                "stage": codec.as_text(stage) if stage else None,
                "quiet_seconds": round(now - float(score), 1),
                "revivals": int(revivals or 0),
            }
        )
    return found
