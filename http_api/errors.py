"""Every error leaves the API in the contract's envelope, never as HTML or a stack trace:
``{"success": false, "error": {"code": "UPPER_SNAKE", "message": "..."}, "meta"?: {...}}``.

This is the one place errors become answers (``install``): our own errors (``TraceError`` and its
subclasses, raised by resources, guards and the engine) answer with their class's status and
code; Redis away anywhere in a request is ``ServiceUnavailable``; Falcon's own errors (an unknown
route, a method not allowed) get the same envelope; anything else is a bug, logged with its
trace and answered as ``INTERNAL_ERROR`` without it. Answers with status 429 or 503 tell the
client when to come back: a ``Retry-After`` header and ``meta.retry_after_seconds``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import falcon
import redis

from pipeline.errors import InternalError, ServiceUnavailable, TooManyRequests, TraceError

log = logging.getLogger(__name__)

#: Statuses whose answers carry ``Retry-After``.
COME_BACK_LATER = (429, 503)


def error_body(code: str, message: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's error envelope."""
    body: dict[str, Any] = {"success": False, "error": {"code": code, "message": message}}
    if meta:
        body["meta"] = meta
    return body


def error_answer(error: TraceError, retry_after: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    """``(status, headers, body)`` of ``error``'s answer; ``retry_after`` (seconds) for a 503
    that names no time of its own."""
    headers = dict(error.headers)
    meta = dict(error.meta)
    if error.status in COME_BACK_LATER:
        seconds = error.retry_after if isinstance(error, TooManyRequests) else retry_after
        headers["Retry-After"] = str(seconds)
        meta["retry_after_seconds"] = seconds
    return error.status, headers, error_body(error.code, error.message, meta)


def install(app: falcon.App, retry_after: int) -> None:
    """Map every error to its envelope on ``app`` (Falcon picks the most specific handler)."""

    def answer(req: falcon.Request, resp: falcon.Response, error: TraceError, params: Any) -> None:
        status, headers, body = error_answer(error, retry_after)
        resp.status = falcon.code_to_http_status(status)
        resp.set_headers(headers)
        resp.content_type = falcon.MEDIA_JSON
        resp.media = body

    def redis_down(
        req: falcon.Request, resp: falcon.Response, error: redis.RedisError, params: Any
    ) -> None:
        away = ServiceUnavailable("the job store (Redis) cannot be reached; try again later")
        answer(req, resp, away, params)

    def unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params: Any):
        if isinstance(error, falcon.HTTPError):  # Falcon's own: rendered by serialize_error
            raise error
        log.exception("unexpected error on %s %s", req.method, req.path)
        answer(req, resp, InternalError("internal error; the service logged it"), params)

    app.set_error_serializer(serialize_falcon_error)
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(redis.RedisError, redis_down)
    app.add_error_handler(TraceError, answer)


def serialize_falcon_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    """Falcon's own errors (404 for an unknown route, 405, ...) in the envelope, whatever the
    client accepts; the code is the status's reason (``404 Not Found`` -> ``NOT_FOUND``)."""
    title = re.sub(r"^\d+\s*", "", error.title or "error")
    code = re.sub(r"[^A-Z0-9]+", "_", title.upper()).strip("_") or "ERROR"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(code, error.description or error.title or "error")
