"""The mid-section-defect page's warehouse-derived option lists, cached in Redis for the API.

The web process never queries the warehouse, so a worker computes the lists
(``pipeline.stages.msd.options``) into one JSON document at ``trace:msd:options``: the loss
reasons and the distinct container attribute combinations (tuples, never one row per lot). The
API answers from it and narrows the combinations per request (``narrow``).

A refresh is *due* when the document is missing or older than ``TRACE_MSD_OPTIONS_TTL_SECONDS``;
the document lives twice that long in Redis, so a stale one still answers meanwhile. Whoever
sees a refresh due (a worker process at boot, the API on a request) asks for one with
``ask_refresh``: a claim (``SET NX``, expiring after a message's time limit) lets one message
through however many ask, until the refresh stores its document (which drops the claim) or the
claim expires (a refresh that failed for good is asked again then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypedDict

import orjson
import redis

from pipeline.config import Settings
from pipeline.engine import keys
from pipeline.sources.base import Source
from pipeline.stages.msd.options import container_combinations, loss_reasons

log = logging.getLogger(__name__)

#: The document's shape, also answered as ``meta.schema_version`` (the old backend's cache was
#: at 2 with the same 4-tuples); a document of another version counts as missing.
SCHEMA_VERSION = 2


class OptionsDocument(TypedDict):
    schema_version: int
    #: When the worker read the warehouse (ISO 8601, UTC, milliseconds: ``...Z``).
    updated_at: str
    loss_reasons: list[str]
    #: Distinct (PJ_TYPE, PRODUCTLINENAME, PJ_BOP, PJ_FUNCTION), sorted.
    containers: list[list[str]]


def build(source: Source) -> OptionsDocument:
    """The document, read from the warehouse now (two queries). Raises the source's errors."""
    reasons = loss_reasons(source)
    containers = [list(c) for c in container_combinations(source)]
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "schema_version": SCHEMA_VERSION,
        "updated_at": now,
        "loss_reasons": reasons,
        "containers": containers,
    }


def store(client: redis.Redis, document: OptionsDocument, ttl_seconds: int) -> None:
    """Write ``document`` (kept ``2 x ttl_seconds``) and drop the refresh claim, atomically."""
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.MSD_OPTIONS, orjson.dumps(document), ex=2 * ttl_seconds)
    pipe.delete(keys.MSD_OPTIONS_CLAIM)
    pipe.execute()


def read(client: redis.Redis) -> OptionsDocument | None:
    """The cached document; ``None`` when there is none (or of another version)."""
    raw = client.get(keys.MSD_OPTIONS)
    if raw is None:
        return None
    document = orjson.loads(raw)  # bytes: the store's client does not decode
    if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION:
        return None
    return document  # type: ignore[return-value]


def age_seconds(document: OptionsDocument, now: float | None = None) -> float:
    """Seconds since the document's warehouse read (negative if another host's clock runs
    ahead)."""
    stamp = datetime.fromisoformat(document["updated_at"].replace("Z", "+00:00"))
    return (time.time() if now is None else now) - stamp.timestamp()


def due(document: OptionsDocument | None, ttl_seconds: int) -> bool:
    """Whether a refresh is due: no document, or one at least ``ttl_seconds`` old."""
    return document is None or age_seconds(document) >= ttl_seconds


def ask_refresh(client: redis.Redis, claim_seconds: int, send: Callable[[], None]) -> bool:
    """Send one refresh message (``send``) unless one was asked within ``claim_seconds`` and has
    not stored its document yet. Whether this call sent it. A failed send gives the claim back
    (the next caller asks again) and raises."""
    if not client.set(keys.MSD_OPTIONS_CLAIM, str(time.time()), nx=True, ex=claim_seconds):
        return False
    try:
        send()
    except BaseException:
        client.delete(keys.MSD_OPTIONS_CLAIM)
        raise
    log.info("msd options: refresh asked")
    return True


def refresh_if_due(
    client: redis.Redis,
    settings: Settings,
    send: Callable[[], None],
    document: OptionsDocument | None = None,
) -> bool:
    """Ask for a refresh when one is due (``document``: the one just read, else it is read).
    Whether a message was sent."""
    if document is None:
        document = read(client)
    if not due(document, settings.msd_options_ttl_seconds):
        return False
    return ask_refresh(client, settings.message_time_limit_seconds, send)


def refresh_options(client: redis.Redis, source: Source, settings: Settings) -> OptionsDocument:
    """What the refresh message does in a worker: read the warehouse, store the document.
    Raises the source's errors (``SourceUnavailable``: Dramatiq retries the message; the claim
    stays until it expires, so requests meanwhile send no more)."""
    started = time.monotonic()
    document = build(source)
    store(client, document, settings.msd_options_ttl_seconds)
    log.info(
        "msd options: refreshed (%d loss reasons, %d container combinations) in %.3f s",
        len(document["loss_reasons"]),
        len(document["containers"]),
        time.monotonic() - started,
    )
    return document
