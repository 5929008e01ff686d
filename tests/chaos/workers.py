"""The chaos suite's worker side: ``ops/worker`` run the way systemd runs it, and the worker
processes found from the leases they hold.

``ServiceManager`` plays ``mes-trace-worker@.service``: one worker command (2 processes x 2
threads, as the unit's defaults), started again ``RestartSec`` after it exits non-zero
(``Restart=on-failure``). One command, not two: a SIGKILLed child stops its whole command (its
sibling finishes its running message first), so the restart delay is part of what a real host
sees, and the resume bound must hold with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from pipeline.engine import codec, keys
from pipeline.tools.stack import ROOT, WORKER, clean_env

#: ``RestartSec`` of ``ops/systemd/mes-trace-worker@.service`` (seconds).
RESTART_SEC = 2.0


@dataclass
class Lease:
    """One member of ``trace:leases``: a message of a job held by a thread of a process."""

    member: str
    job_id: str
    key: str
    pid: int
    renewed: float  # epoch seconds of its last heartbeat

    @classmethod
    def all(cls, client: redis.Redis) -> list[Lease]:
        found = []
        for raw, score in client.zrange(keys.LEASES, 0, -1, withscores=True):
            member = codec.as_text(raw)
            job_id, key = keys.parse_lease(member)
            holder = member.rpartition("|")[2]  # LeaseBook.process + "-" + thread: "<pid>-..."
            found.append(cls(member, job_id, key, int(holder.split("-")[0]), float(score)))
        return found


@dataclass
class ServiceManager:
    """Runs ``ops/worker`` with ``env`` and restarts it ``restart_sec`` after a failure exit;
    ``hold(seconds)`` keeps it down that long after its next exit (an outage)."""

    env: dict[str, str]
    log_dir: Path
    restart_sec: float = RESTART_SEC
    processes: int = 2
    threads: int = 2
    starts: list[float] = field(default_factory=list)  # epoch seconds of each start
    exits: list[tuple[float, int]] = field(default_factory=list)  # (when, exit code)
    _proc: subprocess.Popen[bytes] | None = None
    _stopping: bool = False
    _held_until: float = 0.0
    _thread: threading.Thread | None = None

    def start(self) -> ServiceManager:
        self._launch()
        self._thread = threading.Thread(target=self._watch, name="service-manager", daemon=True)
        self._thread.start()
        return self

    @property
    def pgid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def hold(self, seconds: float) -> None:
        self._held_until = time.time() + seconds

    def kill_command(self) -> None:
        """SIGKILL the whole command (main process and children), as a host crash would."""
        os.killpg(self.pgid, signal.SIGKILL)

    def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("worker-*.log"))
        )

    def _launch(self) -> None:
        env = clean_env(self.env)
        env.update(
            PYTHON=sys.executable,
            WORKER_MODULES="tests.support.faulty_worker",
            WORKER_PROCESSES=str(self.processes),
            WORKER_THREADS=str(self.threads),
        )
        log = self.log_dir / f"worker-{len(self.starts)}.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(WORKER)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts.append(time.time())

    def _watch(self) -> None:
        while not self._stopping:
            proc = self._proc
            if proc is None or proc.poll() is None:
                time.sleep(0.05)
                continue
            self.exits.append((time.time(), proc.returncode))
            if proc.returncode == 0:
                return  # a clean stop: Restart=on-failure leaves it down
            time.sleep(max(self.restart_sec, self._held_until - time.time()))
            if not self._stopping:
                self._launch()
