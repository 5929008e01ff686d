"""Fixtures of the chaos suite (``tests/chaos``; ``ops/chaos`` runs it whole, CI a short subset).

* ``trial``: what the test injected and saw, for ``RELIABILITY.md`` (``tests.chaos.reliability``).
* ``private_redis``: a Redis server of the test's own on a free loopback port, which the test may
  kill, restart, fill or configure (AOF ``everysec`` or nothing kept on disk) without touching
  the server other tests share.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.tools.stack import free_port
from tests.chaos.reliability import Book, Trial
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BOOK = Book()


@pytest.fixture
def trial(request: pytest.FixtureRequest) -> Iterator[Trial]:
    entry = BOOK.new(request.node.nodeid.removeprefix("tests/chaos/"))
    began = time.monotonic()
    yield entry
    entry.seconds = round(time.monotonic() - began, 1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "when", None) == "call":
        for entry in BOOK.trials:
            if item.nodeid.endswith(entry.test):
                entry.outcome = report.outcome  # type: ignore[attr-defined]
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not BOOK.trials:
        return
    BOOK.save(ROOT)
    target = os.environ.get("CHAOS_REPORT")
    if target:
        from tests.chaos.reliability import markdown

        command = os.environ.get("CHAOS_COMMAND", "ops/chaos")
        Path(target).write_text(markdown(BOOK, command))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``private_redis(aof=False)``: a started Redis server of this test's own."""
    servers: list[RedisServer] = []

    def start(*, aof: bool = False) -> RedisServer:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed (ops/ensure-redis installs it)")
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(free_port(), directory, aof)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
