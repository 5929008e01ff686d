"""A ``redis-server`` of a test's own, on a free loopback port (``private_redis`` in the chaos
suite; a module whose stack needs databases no other module may share starts one too)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pipeline.tools.stack import free_port


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


@contextmanager
def own_redis(directory: Path) -> Iterator[RedisServer]:
    """A started ``redis-server`` of the caller's own (no AOF) in ``directory``, on a free
    loopback port, killed on leaving; the test is skipped when Redis is not installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (ops/ensure-redis installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(free_port(), directory, aof=False)
    server.start()
    try:
        yield server
    finally:
        server.kill()
