"""``GET /api/trace/job-events``: the job event log (the capped Redis stream ``trace:events``
that ``pipeline.engine.lifecycle.record`` writes), read by monitors page by page.

Without ``after`` it answers the newest ``count`` events (oldest first); with ``after`` the
events after that stream id, and with ``wait`` it waits up to that many seconds for one to come
(``XREAD BLOCK``). ``next`` is the cursor to send as ``after`` the next time; ``job`` keeps only
that job's events among those read, so the cursor still moves past the others.
"""

from __future__ import annotations

from typing import Any, cast

import falcon
import redis

from http_api.models.answers import JobEvent, JobEventLog
from http_api.models.queries import MAX_WAIT_SECONDS, JobEventsQuery
from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from http_api.services import Services
from pipeline.engine import lifecycle
from pipeline.errors import InvalidInput, ServiceUnavailable


def event_document(entry_id: str, data: dict[str, str]) -> JobEvent:
    """One event as the API answers it: its stream ``id``, its fields as recorded (strings)
    and ``at`` as epoch seconds (a number; ``null`` if the entry carries none)."""
    try:
        at: float | None = float(data["at"])
    except (KeyError, ValueError):
        at = None
    document: Any = {**data, "id": entry_id, "at": at}  # the recorded fields are extra keys
    return cast(JobEvent, document)


class JobEventsResource(Resource):
    """``GET /api/trace/job-events?after=&count=&job=&wait=``: the job event log.

    Rate limited with the status/result/stream requests (bucket ``job``).
    """

    tag = "jobs"
    rate_bucket = "job"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        settings = services.settings
        self.max_wait = min(MAX_WAIT_SECONDS, settings.sync_wait_seconds)
        # The store's client fails any command that takes TRACE_REDIS_TIMEOUT_SECONDS (its
        # socket timeout: a hung Redis is a 503, never a hang), so an XREAD BLOCK of up to 25 s
        # on it would be cut off as "Redis away" after 10 s by default. Waiting reads use their
        # own client instead: the same connection settings (TLS, socket, database) on a pool of
        # its own whose socket timeout is the longest wait plus TRACE_REDIS_TIMEOUT_SECONDS, so
        # a hung Redis still ends a waiting request (as a 503) within wait + timeout, and the
        # store's client keeps its short timeout for everything else.
        pool = services.redis.connection_pool
        options = dict(pool.connection_kwargs)
        if options.get("socket_timeout") is not None:
            options["socket_timeout"] = settings.redis_timeout_seconds + self.max_wait
        self.waiting_redis = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **options)
        )

    @operation(
        Operation(
            "getJobEvents",
            "The job event log (accepted, stages, retries, failures, finished, ...).",
            {200: Answer("The events read (maybe none).", JobEventLog)},
            description="Without `after`: the newest `count` events, oldest first. With "
            "`after`: the events after that id; with `wait`, the answer waits up to that "
            "many seconds (at most TRACE_SYNC_WAIT_SECONDS) for one to come. Page on with "
            "`after=next`. The log is capped at `max_events` entries, oldest dropped first.",
            query=JobEventsQuery,
            errors=(InvalidInput, ServiceUnavailable),
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, query: JobEventsQuery) -> None:
        after, count = query.after, query.count
        wait = min(query.wait or 0, self.max_wait)
        if after is None:
            entries = lifecycle.latest(self.services.redis, count)
        elif wait:
            entries = lifecycle.read(self.waiting_redis, after, count=count, block_ms=wait * 1000)
        else:  # never BLOCK 0: to Redis that means "wait forever"
            entries = lifecycle.read(self.services.redis, after, count=count)

        cursor = entries[-1][0] if entries else (after or "0")
        job = query.job
        log: JobEventLog = {
            "events": [
                event_document(i, d) for i, d in entries if job is None or d.get("job") == job
            ],
            "next": cursor,
            "max_events": self.services.settings.event_log_max,
        }
        resp.media = {"success": True, "data": log}
