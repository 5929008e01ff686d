"""The service's counters, kept in one Redis hash so every process adds to the same figures
(gunicorn workers, dramatiq workers on any host), and their Prometheus exposition.

``count`` never fails its caller: a lost increment is better than a failed job or request.
``RedisCollector`` reads the hash (and a few index sizes) when Prometheus scrapes ``/metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.engine import codec, keys

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
    """Prometheus families from the shared counters and the job indexes."""

    def __init__(self, client: redis.Redis, stall_seconds: float) -> None:
        self.redis = client
        self.stall_seconds = stall_seconds

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
        workers.add_metric([], live_workers(self.redis, self.stall_seconds))
        yield workers
