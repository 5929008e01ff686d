"""The warehouse queries the benchmark's workers ran for seed-resolve, lineage and the
aggregation, kept on disk for the floor (``pipeline.bench.floor``) to replay bare: each query's
name, binds and fragments exactly as the stage handed them to the source (after ``query_in``
cut its id list), so the replay renders the same SQL with the same binds.

Files, not the store's Redis database: the benchmark measures that database's memory. The
probe (``pipeline.bench.probe``) appends to ``<directory>/current/<pid>.pickle`` (one pickle
per query, in the order the process ran them); the runner clears the directory before a job and
``seal``s what the job wrote under the job's id once it has finished, so later jobs (the
re-analysis, the resume) write elsewhere. The pickles are this benchmark's own files: never
point ``read`` at anything else.
"""

from __future__ import annotations

import os
import pickle
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.engine.job import AGGREGATION, LINEAGE, SEED_RESOLVE

#: The environment variable naming the directory (unset: nothing is recorded).
QUERY_LOG_ENV = "BENCH_QUERY_LOG"
#: The stages whose queries are recorded.
RECORDED_STAGES = (SEED_RESOLVE, LINEAGE, AGGREGATION)
#: Where the running job's queries go, under the directory.
CURRENT = "current"


class LoggedQuery(NamedTuple):
    """One query a stage ran: when (``time.monotonic()`` seconds, comparable across the
    machine's processes), in which process and stage, and what (``Source.query``'s
    arguments)."""

    at: float
    pid: int
    stage: str
    name: str
    binds: dict[str, Any]
    fragments: dict[str, str] | None


_lock = threading.Lock()


def append(
    directory: Path,
    stage: str,
    name: str,
    binds: Mapping[str, Any] | None,
    fragments: Mapping[str, str] | None,
) -> None:
    """Record one query of ``stage`` in this process's file of the running job (opened and
    closed each time, so a ``seal`` between two jobs is never written into). ``OSError``
    propagates (the benchmark cannot measure its floor without it)."""
    query = LoggedQuery(
        time.monotonic(),
        os.getpid(),
        stage,
        name,
        dict(binds or {}),
        dict(fragments) if fragments is not None else None,
    )
    data = pickle.dumps(query, protocol=pickle.HIGHEST_PROTOCOL)
    path = directory / CURRENT / f"{os.getpid()}.pickle"
    with _lock:
        try:
            fh = path.open("ab")
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("ab")
        with fh:
            fh.write(data)


def clear(directory: Path) -> None:
    """Remove every recorded query (before a job whose queries are wanted alone)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def seal(directory: Path, job_id: str) -> Path:
    """The running job's queries, moved to ``<directory>/<job_id>`` (empty when it ran
    none); call it once the job has finished."""
    sealed = directory / job_id
    current = directory / CURRENT
    if current.is_dir():
        current.rename(sealed)
    else:
        sealed.mkdir(parents=True, exist_ok=True)
    return sealed


def read(sealed: Path, pid: int | None = None) -> list[LoggedQuery]:
    """Every query a ``seal``ed directory holds (of process ``pid`` alone, if given), in the
    order they ran (by ``at``); an unreadable or truncated file raises
    (``pickle.UnpicklingError``, ``EOFError`` inside a record)."""
    queries: list[LoggedQuery] = []
    for path in sorted(sealed.glob("*.pickle" if pid is None else f"{pid}.pickle")):
        with path.open("rb") as fh:
            while fh.peek(1):
                queries.append(pickle.load(fh))
    return sorted(queries, key=lambda query: query.at)
