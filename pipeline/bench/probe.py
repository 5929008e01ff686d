"""The benchmark's probe (installed in workers by ``WORKER_MODULES=pipeline.bench.worker_plugin``):
the worker reads
the SQLite warehouse through ``ProbeSqliteSource``, which counts the source queries of each stage
in Redis and, while ``FAIL_AGGREGATION_KEY`` is set, fails the aggregation's queries: how the
benchmark measures what a resume costs (a job failed in aggregation, then retried, must issue no
query of an earlier stage). When ``BENCH_QUERY_LOG`` names a directory it also records the
queries of seed-resolve, lineage and the aggregation there (``pipeline.bench.query_log``), for
the floor to replay. Nothing else of the worker changes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis

from pipeline import logs
from pipeline.bench import query_log
from pipeline.errors import SourceQueryError
from pipeline.rows import RowBatch
from pipeline.sources.sqlite import SqliteSource

#: Hash: stage -> source queries issued while that stage ran.
QUERIES_KEY = "trace:bench:queries"
#: While this key exists, every query of the aggregation stage fails (permanently).
FAIL_AGGREGATION_KEY = "trace:bench:fail-aggregation"


class ProbeSqliteSource(SqliteSource):
    """SQLite, counting queries per stage, failing the aggregation's on demand and, with a
    ``query_log_dir``, recording those of ``query_log.RECORDED_STAGES``."""

    def __init__(
        self, path: str, client: redis.Redis, *, query_log_dir: Path | None = None, **kwargs: Any
    ) -> None:
        super().__init__(path, **kwargs)
        self.client = client
        self.query_log_dir = query_log_dir

    def query(
        self, name: str, binds: Mapping[str, Any] | None = None, *, fragments: Any = None
    ) -> Iterator[RowBatch]:
        stage = logs.current_stage() or "unknown"
        self.client.hincrby(QUERIES_KEY, stage, 1)
        if stage == "aggregation" and self.client.exists(FAIL_AGGREGATION_KEY):
            raise SourceQueryError(f"benchmark: {name} fails on purpose (resume measurement)")
        if self.query_log_dir is not None and stage in query_log.RECORDED_STAGES:
            query_log.append(self.query_log_dir, stage, name, binds, fragments)
        return super().query(name, binds, fragments=fragments)


def install() -> None:
    """Give this worker process's runtime the probing source."""
    from pipeline import actors

    settings = actors.settings
    assert settings.source.path is not None, "the benchmark runs on a SQLite warehouse"
    logged = os.environ.get(query_log.QUERY_LOG_ENV)
    actors.runtime.use_source(
        ProbeSqliteSource(
            settings.source.path,
            redis.Redis.from_url(settings.redis_url),
            query_log_dir=Path(logged) if logged else None,
            fetch_rows=settings.fetch_rows,
            in_list_size=settings.in_list_size,
        )
    )
