"""The gunicorn worker of the API: gthread, whose own error answers are the contract's envelope.

gunicorn answers some requests before the app sees them: a request line longer than
``limit_request_line`` (414), headers past ``limit_request_fields``/``limit_request_field_size``
(431), anything it cannot parse (400), and its own failures (500). Stock gunicorn writes those
as HTML; this worker writes them as JSON, in the envelope ``http_api.errors`` renders for every
other answer, so no answer of the service is ever HTML. After a request with a big body it
gives the freed heap back (``http_api.heap``). ``ops/gunicorn.conf.py`` names it as
``worker_class`` and sets the limits.
"""

from __future__ import annotations

import http
from typing import Any

import orjson
from gunicorn import util
from gunicorn.http.errors import (
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
)
from gunicorn.workers.gthread import ThreadWorker

from http_api import heap
from http_api.errors import error_answer
from pipeline.errors import (
    InternalError,
    MalformedRequest,
    RequestTooLarge,
    TraceError,
    UriTooLong,
)

#: ``Retry-After`` of a 503 gunicorn answers itself (it never does today; the envelope needs one).
RETRY_AFTER_SECONDS = 30


def server_error(exc: BaseException) -> TraceError:
    """What a request gunicorn refused (or failed) is, as one of our errors."""
    if isinstance(exc, LimitRequestLine):
        return UriTooLong(f"the request line is too long: {exc}")
    if isinstance(exc, LimitRequestHeaders):
        return RequestTooLarge(f"the request headers are too large: {exc}")
    if isinstance(exc, ParseException) and not isinstance(
        exc,
        InvalidResponseHeader | InvalidResponseHeaderName,  # the app's fault, not the client's
    ):
        return MalformedRequest(f"not a valid HTTP request: {type(exc).__name__}: {exc}")
    return InternalError("internal error; the service logged it")


def error_bytes(error: TraceError) -> bytes:
    """A whole HTTP/1.1 answer of ``error``: status line, headers, the envelope as JSON."""
    status, headers, body = error_answer(error, RETRY_AFTER_SECONDS)
    payload = orjson.dumps(body)
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class JsonErrorsThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, answering its own errors in the envelope (see the module
    docstring); it logs them as gunicorn does (a warning per refused request, a trace for its
    own failures)."""

    def handle_request(self, req: Any, conn: Any) -> bool:
        """gthread's, then ``heap.after_request()``: a big body's freed pages go back to the
        system once its answer is written (see ``http_api.heap``)."""
        try:
            return bool(super().handle_request(req, conn))
        finally:
            heap.after_request()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        error = server_error(exc)
        ip = (addr or ("", -1))[0]
        if error.status >= 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s (%s)", ip, exc, error.code)
        try:
            util.write_nonblock(client, error_bytes(error))
        except Exception:
            self.log.debug("Failed to send error message.")
