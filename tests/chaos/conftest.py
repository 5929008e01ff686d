"""Fixtures of the chaos suite (``tests/chaos``; ``ops/chaos`` runs it whole, CI a short subset).

* ``trial``: what the test injected and saw, for ``RELIABILITY.md`` (``tests.chaos.reliability``).
* ``private_redis``: a Redis server of the test's own on a free loopback port, which the test may
  kill, restart, fill or configure (AOF ``everysec`` or nothing kept on disk) without touching
  the server other tests share.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pipeline.tools.stack import free_port
from tests.chaos.reliability import Book, Trial

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


@dataclass
class RedisServer:
    """A ``redis-server`` started by a test (see ``private_redis``)."""

    port: int
    directory: Path
    aof: bool
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "everysec",
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer")

    def kill(self) -> None:
        """SIGKILL: what was not yet on disk is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(f"{self.url}/{db}")


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
