"""A small client of the trace API over plain HTTP (one connection per request), as the
dashboard uses it: JSON calls, job status polling and the NDJSON stream read line by line.
Used by the demo and the end-to-end tests."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

#: How many times one GET waits out a 429 before its answer is returned as it is.
MAX_RATE_WAITS = 3


class ApiError(RuntimeError):
    """An answer other than the one expected; carries the status and the decoded body."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        try:
            self.body: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.body = body.decode(errors="replace")
        super().__init__(f"{method} {path} answered {status}: {str(self.body)[:2000]}")


@dataclass(frozen=True)
class ApiClient:
    """The API at ``host:port``."""

    host: str
    port: int

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, bytes]:
        """Send ``body`` as JSON (when given); the status and the whole body. A 429 to a GET
        is waited out (its ``Retry-After``, at most ``MAX_RATE_WAITS`` times), as a polite
        client does; other answers are returned as they are."""
        for _ in range(MAX_RATE_WAITS):
            status, data, retry_after = self._send(method, path, body, headers, timeout)
            if status != 429 or method != "GET" or retry_after is None:
                break
            time.sleep(retry_after)
        return status, data

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes, float | None]:
        conn = self._connect(timeout)
        try:
            payload = None if body is None else orjson.dumps(body)
            sent = dict(headers or {})
            if payload is not None:
                sent["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            retry_after = response.getheader("Retry-After")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            return response.status, response.read(), wait
        finally:
            conn.close()

    def json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | tuple[int, ...] = 200,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Any:
        """The decoded JSON answer; ``ApiError`` when the status is not ``expect``."""
        status, data = self.request(method, path, body, headers=headers, timeout=timeout)
        if status not in ((expect,) if isinstance(expect, int) else expect):
            raise ApiError(method, path, status, data)
        return orjson.loads(data)

    def lines(self, path: str, *, timeout: float = 60) -> Iterator[bytes]:
        """The raw lines (with their ``\\n``) of an NDJSON answer as they arrive; ``ApiError``
        when it is not 200. ``timeout`` bounds each read, not the whole stream."""
        conn = self._connect(timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            if response.status != 200:
                raise ApiError("GET", path, response.status, response.read())
            while line := response.readline():
                yield line
        finally:
            conn.close()
