"""Job ids: 32 lowercase hex characters, the first 8 the job's creation time.

``<8 hex: epoch seconds><24 hex: 96 random bits>`` (``secrets``): unguessable still, sortable by
creation, and readable without Redis. That last part is what tells a lost job from an expired
one: every key of a job lives at least ``TRACE_JOB_TTL_SECONDS`` from its creation (the TTL is
only ever refreshed later), so a job that is missing while its id says it is younger than that
was lost (Redis restarted without persistence, a failover lost writes, an operator purged it),
not expired, and its client should submit it again rather than wait. Nothing stored could say
so: an index entry dies with the keys it would vouch for.

An id that does not parse (too short, not hex) has no creation time. Ids made before this
format (128 random bits) parse too, as a random time: one in ~1.2 million (TTL / 2^32 at the
default hour) falls within a TTL of now and would be called lost instead of not found.
"""

from __future__ import annotations

import re
import secrets
import time

#: Hex characters of a job id.
LENGTH = 32
_ID = re.compile(r"[0-9a-f]{32}")
#: A creation time this far ahead of the reader's clock still counts (seconds): hosts' clocks
#: differ a little, and the id is made by whichever API host took the request.
CLOCK_SKEW_SECONDS = 60


def new_job_id(now: float | None = None) -> str:
    """A fresh id created at ``now`` (epoch seconds; default: the clock)."""
    created = int(time.time() if now is None else now)
    return f"{created:08x}{secrets.token_hex(12)}"


def created_at(job_id: str) -> int | None:
    """The epoch second the id says its job was created, or ``None`` for an id of another
    form."""
    if not _ID.fullmatch(job_id):
        return None
    return int(job_id[:8], 16)


def lost(job_id: str, ttl_seconds: float, now: float | None = None) -> bool:
    """Whether a job that is *missing* from Redis was lost rather than expired or never made:
    its id says it was created less than ``ttl_seconds`` ago."""
    created = created_at(job_id)
    if created is None:
        return False
    age = (time.time() if now is None else now) - created
    return -CLOCK_SKEW_SECONDS <= age < ttl_seconds
