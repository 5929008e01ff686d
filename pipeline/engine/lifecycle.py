"""A job's lifecycle events, recorded where operators look, by one call.

Each event (accepted, stage started/finished, retry, domain failed, failed, cancelled,
finished, purged) becomes:

* one log line with the job id, in ``key=value`` form (``job=… event=stage_finished
  stage=events rows=412000 seconds=8.100``; ``pipeline.logs`` writes the whole line as logfmt),
  so ``grep job=<id>`` tells a job's story;
* one entry of the capped Redis stream ``trace:events`` (``XADD … MAXLEN ~ N``: the oldest
  entries go first, so an overload can never grow it without bound), tailed by
  ``python -m pipeline jobs watch`` and readable by monitors;
* for the job-level events, a ``trace_jobs_total{event}`` counter (``pipeline.engine.metrics``).

Recording never fails its caller: a lost event is better than a failed job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from pipeline import logs
from pipeline.engine import codec, keys, metrics

log = logging.getLogger("pipeline.jobs")

ACCEPTED = "accepted"
STAGE_STARTED = "stage_started"
STAGE_FINISHED = "stage_finished"
RETRY = "retry"
DOMAIN_FAILED = "domain_failed"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = "finished"
PURGED = "purged"
#: A finished job's result was found with a piece gone: never reused again (``reason``).
DAMAGED = "result_damaged"
#: Events counted in ``trace_jobs_total``.
COUNTED = (ACCEPTED, FAILED, CANCELLED, FINISHED, PURGED)

#: Default cap of the event stream (entries; Redis trims approximately, in whole nodes).
DEFAULT_MAX_EVENTS = 100_000


def record(
    client: redis.Redis,
    event: str,
    job_id: str,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Record ``event`` of ``job_id`` with ``fields`` (see the module docstring)."""
    note(event, job_id, level=level, **fields)
    entry = {"event": event, "job": job_id, "at": f"{time.time():.3f}"}
    entry.update({k: str(v) for k, v in fields.items() if v is not None})
    try:
        client.xadd(keys.EVENTS, entry, maxlen=max_events, approximate=True)  # type: ignore[arg-type]
    except redis.RedisError as error:
        log.debug("event %s of job %s not recorded: %s", event, job_id, error)
    if event in COUNTED:
        metrics.count(client, "jobs", event=event)


def note(event: str, job_id: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Only the log line of ``event`` (for when Redis, where the stream lives, is away)."""
    details = {"event": event, **fields}
    log.log(
        level, "job=%s %s", job_id, logs.pairs(details), extra={"job_id": job_id, "fields": details}
    )


def read(
    client: redis.Redis, after: str = "0", *, count: int = 100, block_ms: int | None = None
) -> list[tuple[str, dict[str, str]]]:
    """Events after stream id ``after`` (``"$"``: only new ones), oldest first; with
    ``block_ms`` wait that long for one to arrive."""
    found: Any = client.xread({keys.EVENTS: after}, count=count, block=block_ms)
    return [_entry(e) for e in found[0][1]] if found else []


def latest(client: redis.Redis, count: int = 100) -> list[tuple[str, dict[str, str]]]:
    """The newest ``count`` events, oldest first."""
    entries: Any = client.xrevrange(keys.EVENTS, count=count)
    return [_entry(e) for e in reversed(entries)]


def _entry(raw: Any) -> tuple[str, dict[str, str]]:
    entry_id, data = raw
    return codec.as_text(entry_id), {codec.as_text(k): codec.as_text(v) for k, v in data.items()}


def follow(
    client: redis.Redis, after: str = "$", *, block_ms: int = 2000
) -> Iterator[tuple[str, dict[str, str]]]:
    """Every event from now on (or after ``after``), as it comes; never ends."""
    while True:
        for entry_id, data in read(client, after, block_ms=block_ms):
            after = entry_id
            yield entry_id, data
