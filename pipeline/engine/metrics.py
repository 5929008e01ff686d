"""The service's counters, kept in one Redis hash so every process adds to the same figures
(gunicorn workers, dramatiq workers on any host), and their Prometheus exposition.

``count`` never fails its caller: a lost increment is better than a failed job or request.
``RedisCollector`` reads the hash, a few index sizes and the operator's overview (queue depths,
Redis memory, stalled jobs: ``pipeline.engine.overview``) when Prometheus scrapes ``/metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.config import Settings
from pipeline.engine import codec, keys, overview

log = logging.getLogger(__name__)

#: name -> (help, label names, kind): what ``count`` may record.
COUNTERS = {
    "jobs": ("Jobs by lifecycle event (accepted, finished, failed, cancelled)", ("event",)),
    "stage_seconds": ("Seconds stages took, summed per stage", ("stage",)),
    "stage_runs": ("Stages completed", ("stage",)),
    "rows_written": ("Rows written to checkpoints by finished stages", ("part",)),
    "stream_bytes": ("Bytes sent by NDJSON streams", ()),
    "rate_limited": ("Requests refused by the rate limit", ("bucket",)),
}


def _field(name: str, labels: dict[str, str]) -> str:
    return "|".join([name, *(f"{k}={labels[k]}" for k in sorted(labels))])


def count(client: redis.Redis, name: str, amount: float = 1, **labels: str) -> None:
    """Add ``amount`` to counter ``name`` (one of ``COUNTERS``) with ``labels``."""
    if name not in COUNTERS:
        raise KeyError(f"unknown counter {name!r}")
    try:
        client.hincrbyfloat(keys.METRICS, _field(name, labels), amount)
    except redis.RedisError as error:
        log.debug("counter %s not recorded: %s", name, error)


def snapshot(client: redis.Redis) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter: ``(name, ((label, value), ...)) -> value``."""
    figures = {}
    for raw_field, value in client.hgetall(keys.METRICS).items():
        name, *pairs = codec.as_text(raw_field).split("|")
        labels = tuple(tuple(p.split("=", 1)) for p in pairs)
        figures[(name, labels)] = float(value)
    return figures  # type: ignore[return-value]


def live_workers(client: redis.Redis, within_seconds: float) -> int:
    """Worker processes whose heartbeat is at most ``within_seconds`` old."""
    return int(client.zcount(keys.WORKERS, time.time() - within_seconds, "+inf"))


class RedisCollector(Collector):
    """Prometheus families from the shared counters, the job indexes and the overview.

    Gauges besides the counters: ``trace_jobs_current{state}``, ``trace_workers_alive``,
    ``trace_queue_messages{queue,kind}`` (kind ``ready``/``delayed``/``dead``; a queue the
    broker could not count has no sample), ``trace_redis_memory_used_bytes``,
    ``trace_redis_memory_max_bytes`` (0: no limit), ``trace_redis_eviction_policy{policy}`` (1
    when the policy may evict job keys, else 0) and ``trace_jobs_stalled`` (active jobs quiet
    past the resume bound). A scrape with Redis away fails (the endpoint answers 503)."""

    def __init__(self, client: redis.Redis, settings: Settings, broker: Any = None) -> None:
        self.redis = client
        self.settings = settings
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        figures = snapshot(self.redis)
        for name, (text, label_names) in COUNTERS.items():
            family = CounterMetricFamily(f"trace_{name}", text, labels=list(label_names))
            for (found, labels), value in sorted(figures.items()):
                if found == name:
                    values = dict(labels)
                    family.add_metric([values.get(n, "") for n in label_names], value)
            yield family
        indexes = GaugeMetricFamily(
            "trace_jobs_current", "Jobs in the indexes now, by state", labels=["state"]
        )
        indexes.add_metric(["active"], self.redis.zcard(keys.RUNNING))
        indexes.add_metric(["failed"], self.redis.zcard(keys.FAILED))
        indexes.add_metric(["recent"], self.redis.zcard(keys.RECENT))
        yield indexes
        workers = GaugeMetricFamily(
            "trace_workers_alive", "Worker processes with a fresh heartbeat"
        )
        workers.add_metric([], live_workers(self.redis, self.settings.stall_seconds))
        yield workers
        yield from self._overview()

    def _overview(self) -> Iterator[Metric]:
        queues = GaugeMetricFamily(
            "trace_queue_messages",
            "Messages in each job queue, by kind (ready, delayed, dead-lettered)",
            labels=["queue", "kind"],
        )
        for depth in overview.queue_depths(self.broker):
            counts = (depth["ready"], depth["delayed"], depth["dead"])
            for kind, value in zip(overview.QUEUE_KINDS, counts, strict=True):
                if value is not None:
                    queues.add_metric([depth["queue"], kind], value)
        yield queues
        memory = overview.redis_memory(self.redis)
        yield GaugeMetricFamily(
            "trace_redis_memory_used_bytes", "Redis used_memory (bytes)", memory["used_bytes"]
        )
        yield GaugeMetricFamily(
            "trace_redis_memory_max_bytes",
            "Redis maxmemory (bytes; 0: no limit)",
            memory["max_bytes"],
        )
        policy = GaugeMetricFamily(
            "trace_redis_eviction_policy",
            "1 when Redis's maxmemory-policy may evict job keys (anything but noeviction)",
            labels=["policy"],
        )
        policy.add_metric([memory["policy"]], 1 if memory["evicts"] else 0)
        yield policy
        stalled = overview.stalled_jobs(self.redis, self.settings.resume_bound_seconds)
        yield GaugeMetricFamily(
            "trace_jobs_stalled",
            "Active jobs with no sign of life past the resume bound (stall + reaper interval)",
            len(stalled),
        )
