"""What the ``jobs`` verbs share: ``JobsTool`` (the runtime, the broker, the output), ``run``
(the ``jobs`` command itself: a missing Redis is an exit code, not a traceback) and the time
format of the tables."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

import orjson
import redis
from rich.console import Console
from rich.table import Table

from pipeline.cli.exit_codes import EXIT_UNAVAILABLE
from pipeline.config import Settings
from pipeline.engine import job_ids
from pipeline.engine.job import Job
from pipeline.engine.messages import BrokerDispatcher
from pipeline.engine.runtime import Runtime
from pipeline.errors import JobLost


def run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """The ``jobs`` command: Redis errors become exit code 6 with one line, not a trace."""
    tool = JobsTool(settings, Console(), console)
    try:
        return int(args.jobs_func(tool, args))
    except (redis.ConnectionError, redis.TimeoutError) as error:
        console.print(f"[red]SERVICE_UNAVAILABLE[/]: Redis cannot be reached: {error}")
        return EXIT_UNAVAILABLE


class JobsTool:
    """What the commands share: the runtime (Redis, registry, store) and the output.

    The runtime and the broker are made on first use, so a verb that needs neither connects to
    nothing.
    """

    def __init__(self, settings: Settings, out: Console, err: Console) -> None:
        self.settings = settings
        self.out, self.err = out, err
        self._runtime: Runtime | None = None
        self._broker: Any = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings, self._dispatcher)
        return self._runtime

    def _dispatcher(self, job: Job, messages: Any, *, resumed: bool = False) -> None:
        BrokerDispatcher(self.broker)(job, messages, resumed=resumed)

    @property
    def broker(self) -> Any:
        if self._broker is None:
            from pipeline.engine.broker import make_broker

            self._broker = make_broker(self.settings)
        return self._broker

    def emit(self, args: argparse.Namespace, data: Any, table: Table | str | None) -> None:
        """``data`` as JSON on stdout with ``--json``, else ``table`` (if any) for people."""
        if args.json:
            sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        elif table is not None:
            self.out.print(table)

    def load(self, job_id: str) -> Job | None:
        """The job, or ``None`` after saying on stderr that it is not found (or expired), or
        lost (``JOB_LOST``: missing while its id says it is younger than the job TTL; the exit
        code stays "not found" either way: the job is not there to act on)."""
        job = self.runtime.registry.load(job_id)
        if job is None:
            if job_ids.lost(job_id, self.settings.job_ttl_seconds):
                self.err.print(f"[red]JOB_LOST[/]: {JobLost.of(job_id).message}")
            else:
                self.err.print(f"[red]JOB_NOT_FOUND[/]: job {job_id} not found or expired")
        return job


def when(epoch: float | None) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS`` (empty for none)."""
    if not epoch:
        return ""
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")
