"""The service on this machine, as child processes: a worker (``ops/worker``, i.e. ``dramatiq
pipeline.actors``) and the API (gunicorn with ``ops/gunicorn.conf.py``) on a free loopback
port, each in its own process group with its output in a log file, stopped together.

Used by the demo (``python -m pipeline demo``) and by the end-to-end tests; production runs the
same two commands under systemd (``ops/systemd/``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pipeline.tools.api_client import ApiClient

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "ops" / "worker"
#: The API's allocator: glibc's, which keeps its memory flat (``http_api/heap.py``).
API_ALLOCATOR_ENV = {"PYTHONMALLOC": "malloc"}
GUNICORN_CONF = ROOT / "ops" / "gunicorn.conf.py"


class StackError(RuntimeError):
    """A process of the stack exited or did not become ready; the message has its log's end."""


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Proc:
    """A command started in its own process group, stdout and stderr in one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, name: str, argv: list[str], env: Mapping[str, str], cwd: Path, log_dir: Path
    ) -> Proc:
        """Start ``argv`` with exactly ``env``; its output goes to ``log_dir/<name>.log``."""
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches every process
            )
        return cls(name, popen, log)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        """The end of its log, headed by its pid and exit code."""
        text = self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
        return (
            f"--- {self.name} (pid {self.popen.pid}, exit {self.popen.poll()}) {self.log}:\n{text}"
        )

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the main process only, as systemd's ``KillMode=mixed`` does (it passes the
        signal on: a worker finishes its running messages, gunicorn its responses; a second
        SIGTERM sent to dramatiq's children directly would make them quit at once); SIGKILL
        whatever of the group is left after ``timeout`` seconds."""
        pgid = self.popen.pid
        deadline = time.monotonic() + timeout
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)  # the main process is gone, its children may still be closing
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self.popen.wait(timeout=5)


def clean_env(settings_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``TRACE_``/``GUNICORN_``/``WORKER_`` knob or
    ``PYTHONPATH``, plus ``settings_env``: a child sees only the settings it is given."""
    prefixes = ("TRACE_", "GUNICORN_", "WORKER_", "dramatiq_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    base.pop("PYTHONPATH", None)
    return {**base, **settings_env}


@dataclass
class LocalStack:
    """A worker and the API on this machine; a context manager that stops both at its end.

    ``env`` holds the ``TRACE_*`` settings both get (the same Redis, broker and source);
    ``processes``/``threads`` size the worker. ``start()`` returns once ``/readyz`` answers
    200 (Redis, broker, source and a live worker), or raises ``StackError``.
    """

    env: Mapping[str, str]
    log_dir: Path
    processes: int = 2
    threads: int = 2
    api_workers: int = 2
    python: str = sys.executable
    port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)

    @property
    def api(self) -> ApiClient:
        return ApiClient("127.0.0.1", self.port)

    def start(self, ready_seconds: float = 60) -> LocalStack:
        env = clean_env(self.env)
        worker_env = {
            **env,
            "PYTHON": self.python,
            "WORKER_PROCESSES": str(self.processes),
            "WORKER_THREADS": str(self.threads),
        }
        self.procs.append(Proc.start("worker", [str(WORKER)], worker_env, ROOT, self.log_dir))
        api_env = {
            **env,
            "GUNICORN_WORKERS": str(self.api_workers),
            "GUNICORN_THREADS": "8",
            "XDG_RUNTIME_DIR": str(self.log_dir),  # gunicorn's control socket (>= 25) goes here
            **API_ALLOCATOR_ENV,
        }
        argv = [self.python, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
        argv += ["--bind", f"127.0.0.1:{self.port}"]
        self.procs.append(Proc.start("api", argv, api_env, self.log_dir, self.log_dir))
        self.wait_ready(ready_seconds)
        return self

    def wait_ready(self, seconds: float) -> None:
        """Until ``/readyz`` answers 200; ``StackError`` when a process exits or time is up."""
        deadline = time.monotonic() + seconds
        last = "no answer"
        while time.monotonic() < deadline:
            exited = [p for p in self.procs if not p.running]
            if exited:
                raise StackError(f"{exited[0].name} exited while starting\n{self.logs()}")
            try:
                status, body = self.api.request("GET", "/readyz", timeout=5)
            except OSError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if status == 200:
                    return
                last = f"{status} {body.decode(errors='replace')}"
            time.sleep(0.25)
        raise StackError(f"/readyz not 200 after {seconds:.0f} s; last: {last}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def stop(self) -> None:
        """Stop the API first (no new jobs), then the worker."""
        for proc in reversed(self.procs):
            proc.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
