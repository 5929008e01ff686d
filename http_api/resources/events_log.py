"""``GET /api/trace/job-events``: the job event log (the capped Redis stream ``trace:events``
that ``pipeline.engine.lifecycle.record`` writes), read by monitors page by page.

Without ``after`` it answers the newest ``count`` events (oldest first); with ``after`` the
events after that stream id, and with ``wait`` it waits up to that many seconds for one to come
(``XREAD BLOCK``). ``next`` is the cursor to send as ``after`` the next time; ``job`` keeps only
that job's events among those read, so the cursor still moves past the others.
"""

from __future__ import annotations

import re
from typing import Any

import falcon
import redis

from http_api.body import bad_params, int_param
from http_api.services import Services
from pipeline.engine import lifecycle

#: Events per answer: ``count`` is 1..MAX_COUNT (default DEFAULT_COUNT).
DEFAULT_COUNT = 100
MAX_COUNT = 1000
#: The longest ``wait`` a client may ask for (seconds); the API also never holds a request
#: longer than ``TRACE_SYNC_WAIT_SECONDS`` (kept under a proxy's read timeout).
MAX_WAIT_SECONDS = 25
#: A stream id: milliseconds, optionally ``-sequence`` (each an unsigned 64-bit number).
STREAM_ID = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # ASCII digits only: Redis reads no others
MAX_ID_PART = 2**64 - 1


def stream_id_param(req: falcon.Request, name: str) -> str | None:
    """A Redis stream id query parameter (``1700000000000-0``, or ``0``); 400 naming it
    otherwise (a number Redis would refuse included: that would be its error, a 503)."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    found = STREAM_ID.fullmatch(raw)
    if found is None or any(int(p) > MAX_ID_PART for p in found.groups() if p is not None):
        raise bad_params(
            f"{name} must be a stream id such as 1700000000000-0 (a `next` of an earlier "
            f"answer), got {raw!r}"
        )
    return raw


def event_document(entry_id: str, data: dict[str, str]) -> dict[str, Any]:
    """One event as the API answers it: its stream ``id``, its fields as recorded (strings)
    and ``at`` as epoch seconds (a number; ``null`` if the entry carries none)."""
    try:
        at: float | None = float(data["at"])
    except (KeyError, ValueError):
        at = None
    return {**data, "id": entry_id, "at": at}


class JobEventsResource:
    """``GET /api/trace/job-events?after=&count=&job=&wait=``: the job event log.

    Rate limited with the status/result/stream requests (bucket ``job``).
    """

    rate_bucket = "job"

    def __init__(self, services: Services) -> None:
        self.services = services
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

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        after = stream_id_param(req, "after")
        count = int_param(req, "count", DEFAULT_COUNT)
        if not 1 <= count <= MAX_COUNT:
            raise bad_params(f"count must be 1..{MAX_COUNT}, got {count}")
        wait = self._wait(req, after)
        job = req.get_param("job") or None

        if after is None:
            entries = lifecycle.latest(self.services.redis, count)
        elif wait:
            entries = lifecycle.read(self.waiting_redis, after, count=count, block_ms=wait * 1000)
        else:  # never BLOCK 0: to Redis that means "wait forever"
            entries = lifecycle.read(self.services.redis, after, count=count)

        cursor = entries[-1][0] if entries else (after or "0")
        events = [event_document(i, d) for i, d in entries if job is None or d.get("job") == job]
        resp.media = {
            "success": True,
            "data": {
                "events": events,
                "next": cursor,
                "max_events": self.services.settings.event_log_max,
            },
        }

    def _wait(self, req: falcon.Request, after: str | None) -> int:
        """Seconds to wait for a new event: ``wait`` (0..MAX_WAIT_SECONDS, only with ``after``)
        within ``TRACE_SYNC_WAIT_SECONDS``."""
        if req.get_param("wait") in (None, ""):
            return 0
        wait = int_param(req, "wait", 0)
        if wait > MAX_WAIT_SECONDS:
            raise bad_params(f"wait must be 0..{MAX_WAIT_SECONDS} seconds, got {wait}")
        if after is None:
            raise bad_params("wait needs after (the stream id to wait for events after)")
        return min(wait, self.max_wait)
