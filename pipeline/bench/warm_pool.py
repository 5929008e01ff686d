"""A pool of spawned processes, each with the warehouse open before any clock starts: what the
benchmark's bare warehouse reads (``limits.scan_domains``, ``floor.replay_stages``) run on, as
many processes as the workers have. A task reads through ``source()``."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Settings
from pipeline.sources.base import Source
from pipeline.sources.sqlite import SqliteSource

#: Seconds a start-up task holds its process, so the next one goes to another process.
READY_HOLD_SECONDS = 0.2

_source: Source | None = None


@contextmanager
def warm_pool(db: Path, processes: int, settings: Settings) -> Iterator[ProcessPoolExecutor]:
    """``processes`` spawned processes (the bench runs threads: never fork it), each holding
    ``db`` open with the workers' ``fetch_rows`` and ``in_list_size``; yielded once every one
    of them has started (a task then finds its process ready). Pool errors propagate."""
    context = multiprocessing.get_context("spawn")
    init = (str(db), settings.fetch_rows, settings.in_list_size)
    with ProcessPoolExecutor(processes, context, initializer=_open, initargs=init) as pool:
        while len(set(pool.map(_ready, range(processes)))) < processes:
            pass  # idle workers take the next task: wait until every process has started
        yield pool


def source() -> Source:
    """This pool process's warehouse (only inside a task of ``warm_pool``)."""
    assert _source is not None, "not in a warm_pool process"
    return _source


def _open(db: str, fetch_rows: int, in_list_size: int) -> None:
    """Pool initializer: this process's warehouse connection."""
    global _source
    _source = SqliteSource(db, fetch_rows=fetch_rows, in_list_size=in_list_size)


def _ready(_: int) -> int:
    """Holds a pool process long enough that the next task goes to another one."""
    assert _source is not None
    time.sleep(READY_HOLD_SECONDS)
    return os.getpid()
