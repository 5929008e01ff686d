"""The real stack for the load, hostile-input and access trials: ``ops/worker`` and gunicorn
(``pipeline.tools.stack``) on a private Redis, clients that look like distinct hosts (each binds
its own 127.0.0.x source address, so each has its own rate-limit counters), raw requests for
what a well-behaved client cannot send, and the RSS of every process of the stack."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.tools.rss import children, rss_kb
from pipeline.tools.stack import LocalStack, StackError


def stack_env(warehouse: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """Settings of a stack on ``redis_url`` (store db 0, broker db 1), the test warehouse, the
    production rate limits unless ``extra`` changes them."""
    return {
        "TRACE_REDIS_URL": f"{redis_url}/0",
        "TRACE_BROKER_URL": f"{redis_url}/1",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_IN_LIST_SIZE": "100",
        "TRACE_FETCH_ROWS": "400",
        "TRACE_HEARTBEAT_SECONDS": "1",
        **extra,
    }


def started(env: Mapping[str, str], log_dir: Path, **sizes: int) -> LocalStack:
    stack = LocalStack(env, log_dir, **sizes)
    try:
        stack.start(60)
    except StackError as error:
        stack.stop()
        pytest.fail(str(error))
    return stack


def client_address(n: int) -> str:
    """The ``n``-th client's loopback address (127.0.0.2 ... 127.0.0.254)."""
    return f"127.0.0.{2 + n % 253}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Client:
    """One client host: every connection from ``source``."""

    port: int
    source: str
    headers: Mapping[str, str] | None = None

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> Answer:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, source_address=(self.source, 0)
        )
        try:
            sent = {**(self.headers or {}), **(headers or {})}
            if body is not None:
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            got = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, got, response.read())
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.send(method, path, None if body is None else orjson.dumps(body), **kw)

    def lines(self, path: str, timeout: float = 60) -> Iterator[bytes]:
        """The lines of a 200 NDJSON answer as they come (``AssertionError`` otherwise)."""
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, source_address=(self.source, 0)
        )
        try:
            conn.request("GET", path, headers=dict(self.headers or {}))
            response = conn.getresponse()
            assert response.status == 200, (path, response.status, response.read()[:500])
            while line := response.readline():
                yield line
        finally:
            conn.close()


def raw(port: int, request: bytes, source: str = "127.0.0.1", timeout: float = 30) -> Answer:
    """Send ``request`` bytes as they are and read the answer until the server closes (a body
    the server refuses is not sent whole: its answer comes first)."""
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as conn:
        conn.sendall(request)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # the server answered and closed while body bytes were unread
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body)


def envelope_problem(answer: Answer) -> str | None:
    """What is wrong with an error answer (``None``: a JSON envelope naming its problem)."""
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"{answer.status} as {answer.headers.get('content-type')}: {answer.body[:200]!r}"
    try:
        body = answer.json()
        error = body["error"]
        assert body["success"] is False and error["code"] and error["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        return f"{answer.status} not the envelope: {answer.body[:200]!r}"
    return None


# ---- memory of the stack's processes ------------------------------------------------------------
def proc_name(name: str, stack: LocalStack) -> int:
    return next(p.popen.pid for p in stack.procs if p.name == name)


def api_processes(stack: LocalStack) -> dict[str, int]:
    """gunicorn's master and workers: name -> pid."""
    master = proc_name("api", stack)
    found = {"api master": master}
    for n, pid in enumerate(sorted(children(master))):
        found[f"api worker {n + 1}"] = pid
    return found


def worker_processes(stack: LocalStack) -> dict[str, int]:
    """dramatiq's main process and its worker processes: name -> pid (ops/worker execs
    dramatiq, whose children are the workers; a fork server may sit between them)."""
    main = proc_name("worker", stack)
    found = {"dramatiq main": main}
    for n, pid in enumerate(sorted(children(main))):
        found[f"dramatiq child {n + 1}"] = pid
    return found


def rss_mb(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: rss_kb(pid) / 1024 for name, pid in pids.items()}
