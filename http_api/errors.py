"""Every error leaves the API in the contract's envelope, never as HTML or a stack trace:
``{"success": false, "error": {"code": "UPPER_SNAKE", "message": "..."}, "meta"?: {...}}``.

The mapping lives here only: ``ApiError`` carries a contract code; ``handle_trace_error`` turns
our own errors into one; ``serialize_error`` renders any Falcon error (404, 405, ...) the same way.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from pipeline.errors import InvalidInput, TraceError


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


def handle_trace_error(
    req: falcon.Request, resp: falcon.Response, error: TraceError, params: dict[str, Any]
) -> None:
    """Our own errors: bad input is the caller's (400), anything else is ours (500)."""
    status = falcon.HTTP_400 if isinstance(error, InvalidInput) else falcon.HTTP_500
    raise ApiError(status, error.code, error.message)
