"""Structured log lines: one line per record, ``key=value`` (logfmt), the job id on every line
about a job.

A line looks like::

    time=2026-11-23T10:15:02.512Z level=info logger=pipeline.jobs pid=4121 job=9f3c…
    event=stage_finished stage=events rows=412000 seconds=8.100

(one line; wrapped here). A line logged while a stage runs also carries ``stage=``. Where the
job comes from: the record's ``job_id`` (``extra=``, as
``pipeline.engine.lifecycle`` passes it), else the job whose message this thread is running
(``job_context``, set by the worker around each message), so a library's warning in the middle
of a batch is still findable by ``grep job=<id>``. A record with ``fields`` (a dict, in
``extra=``) is written as those pairs; any other record as ``msg="…"``. Values with spaces,
quotes, ``=`` or line breaks are quoted JSON strings, so a traceback stays on its line
(``error="Traceback …\\n…"``).

``install(level)`` puts the formatter on the root logger's handlers: the dramatiq CLI and
gunicorn set up handlers (where lines go) and this only changes what a line looks like.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import orjson

_current_job: ContextVar[str | None] = ContextVar("trace_job", default=None)
_current_stage: ContextVar[str | None] = ContextVar("trace_stage", default=None)

_NEEDS_QUOTES = frozenset(' "=\n\r\t')


def enter_job(job_id: str) -> Token[str | None]:
    """From now on, lines logged in this thread (or task) carry ``job=job_id``; hand the token
    to ``leave_job`` to stop."""
    return _current_job.set(job_id)


def leave_job(token: Token[str | None]) -> None:
    """Undo the ``enter_job`` that returned ``token``."""
    _current_job.reset(token)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Lines logged in this block (this thread or task) carry ``job=job_id``."""
    token = enter_job(job_id)
    try:
        yield
    finally:
        leave_job(token)


@contextmanager
def stage_context(stage: str) -> Iterator[None]:
    """Lines logged in this block carry ``stage=stage`` (unless they name a stage of their
    own); ``current_stage()`` tells the code running in it which stage it serves."""
    token = _current_stage.set(stage)
    try:
        yield
    finally:
        _current_stage.reset(token)


def current_stage() -> str | None:
    """The stage whose work this thread runs (``stage_context``), if any."""
    return _current_stage.get()


def value_text(value: Any) -> str:
    """``value`` as one logfmt value: floats with 3 decimals, quoted when it must be."""
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if not text or any(c in _NEEDS_QUOTES for c in text):
        return orjson.dumps(text).decode()
    return text


def pairs(fields: Mapping[str, Any]) -> str:
    """``k=v k=v`` of the fields that are not ``None``."""
    return " ".join(f"{k}={value_text(v)}" for k, v in fields.items() if v is not None)


class LogfmtFormatter(logging.Formatter):
    """Formats a record as one logfmt line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "job": getattr(record, "job_id", None) or _current_job.get(),
        }
        fields = getattr(record, "fields", None)
        if not (isinstance(fields, Mapping) and "stage" in fields):
            head["stage"] = _current_stage.get()
        body = pairs(fields) if isinstance(fields, Mapping) else pairs({"msg": record.getMessage()})
        line = f"{pairs(head)} {body}"
        if record.exc_info:
            line += f" error={value_text(self.formatException(record.exc_info))}"
        return line


def install(level: str = "INFO") -> None:
    """Make every line of this process a logfmt line at ``level`` and above (the handlers the
    process has keep writing where they write; with none, lines go to stderr)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = LogfmtFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(level.upper())
