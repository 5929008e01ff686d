"""Every error leaves the API in the contract's envelope, never as HTML or a stack trace:
``{"success": false, "error": {"code": "UPPER_SNAKE", "message": "..."}, "meta"?: {...}}``.

The mapping lives here only: ``ApiError`` carries a contract code; ``handle_trace_error`` turns
our own errors into one; ``serialize_error`` renders any Falcon error (404, 405, ...) the same way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import falcon

from pipeline.errors import InvalidInput, TraceError

log = logging.getLogger(__name__)


class ApiError(falcon.HTTPError):
    """An HTTP error with the contract's UPPER_SNAKE ``code`` and optional ``meta``."""

    def __init__(
        self,
        status: str,
        code: str,
        message: str,
        *,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, title=code, description=message, headers=headers)
        self.error_code = code
        self.meta = meta


def error_body(code: str, message: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's error envelope."""
    body: dict[str, Any] = {"success": False, "error": {"code": code, "message": message}}
    if meta:
        body["meta"] = meta
    return body


def _code_of(error: falcon.HTTPError) -> str:
    code = getattr(error, "error_code", None)
    if code:
        return str(code)
    title = re.sub(r"^\d+\s*", "", error.title or "error")  # "404 Not Found" -> NOT_FOUND
    return re.sub(r"[^A-Z0-9]+", "_", title.upper()).strip("_") or "ERROR"


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's error serializer: the envelope as JSON, whatever the client accepts."""
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(
        _code_of(error), error.description or error.title or "error", getattr(error, "meta", None)
    )


#: Error codes whose HTTP status is not simply 400 (bad input) or 500 (ours).
STATUS_BY_CODE = {
    "CID_LIMIT_EXCEEDED": falcon.HTTP_413,
    "LINEAGE_JOB_NOT_FOUND": falcon.HTTP_404,
    "LINEAGE_JOB_NOT_READY": falcon.HTTP_409,
    "SERVICE_UNAVAILABLE": falcon.HTTP_503,
    "SOURCE_UNAVAILABLE": falcon.HTTP_503,
}
#: Statuses that tell the client to come back later (with ``Retry-After``).
RETRY_LATER = (falcon.HTTP_503,)


def error_status(code: str, bad_input: bool) -> str:
    """The HTTP status of an error ``code`` (``bad_input``: the caller's fault)."""
    return STATUS_BY_CODE.get(code, falcon.HTTP_400 if bad_input else falcon.HTTP_500)


def api_error(
    code: str,
    message: str,
    *,
    bad_input: bool,
    retry_after: int,
    status: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ApiError:
    """The ``ApiError`` for a code (its status from ``error_status`` unless given), with
    ``Retry-After`` (and ``meta.retry_after_seconds``) when the client should come back."""
    status = status or error_status(code, bad_input)
    if status in RETRY_LATER:
        return ApiError(
            status,
            code,
            message,
            meta={**(meta or {}), "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    return ApiError(status, code, message, meta=meta)


class TraceErrorHandler:
    """Our own errors: bad input is the caller's (400, or the code's own status), the store or
    broker away is 503 with ``Retry-After``, anything else is ours (500)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after

    def __call__(
        self, req: falcon.Request, resp: falcon.Response, error: TraceError, params: Any
    ) -> None:
        raise api_error(
            error.code,
            error.message,
            bad_input=isinstance(error, InvalidInput),
            retry_after=self.retry_after,
        )


class RedisDownHandler:
    """Redis unreachable (or answering an error) anywhere in a request: 503, never a hang."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after

    def __call__(
        self, req: falcon.Request, resp: falcon.Response, error: Exception, params: Any
    ) -> None:
        raise api_error(
            "SERVICE_UNAVAILABLE",
            "the job store (Redis) cannot be reached; try again later",
            bad_input=False,
            retry_after=self.retry_after,
        )


def handle_trace_error(
    req: falcon.Request, resp: falcon.Response, error: TraceError, params: dict[str, Any]
) -> None:
    """Our own errors with the default ``Retry-After`` (see ``TraceErrorHandler``)."""
    TraceErrorHandler(30)(req, resp, error, params)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: Any
) -> None:
    """A bug: logged with its trace here, answered as 500 ``INTERNAL_ERROR`` without it."""
    if isinstance(error, falcon.HTTPError):
        raise error
    log.exception("unexpected error on %s %s", req.method, req.path)
    raise ApiError(falcon.HTTP_500, "INTERNAL_ERROR", "internal error; the service logged it")
