"""A real stack (``ops/worker`` and gunicorn, ``pipeline.tools.stack.LocalStack``) for the
length of a ``with`` block: a start that fails fails the test, and the stack's logs are printed
on leaving (pytest shows them when a test failed)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.tools.stack import LocalStack, StackError

#: Seconds a stack has to answer ``/readyz`` with a live worker.
READY_SECONDS = 60


@contextmanager
def running_stack(env: Mapping[str, str], log_dir: Path, **sizes: int) -> Iterator[LocalStack]:
    """The stack of ``env`` (``sizes``: ``processes``, ``threads``, ``api_workers``), ready."""
    stack = LocalStack(env, log_dir, **sizes)
    try:
        try:
            stack.start(READY_SECONDS)
        except StackError as error:
            pytest.fail(str(error))
        yield stack
    finally:
        stack.stop()
        print(stack.logs())
