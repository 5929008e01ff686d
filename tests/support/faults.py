"""A real SQLite source that obeys faults a test sets in Redis (hash ``FAULTS_KEY`` in the
store's database): slow queries down, break one query permanently or for a few calls, or make
one query kill its process outright (SIGKILL, as the kernel's OOM killer would), at once or
after letting a number of its calls through."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Mapping
from typing import Any

import redis

from pipeline.config import Settings
from pipeline.errors import SourceQueryError, SourceUnavailable
from pipeline.rows import RowBatch
from pipeline.sources.sqlite import SqliteSource

FAULTS_KEY = "test:faults"


class FaultySqliteSource(SqliteSource):
    """SQLite, plus the faults in ``FAULTS_KEY``: ``delay_ms`` before every query (or
    ``delay_ms:{query}`` before that one); ``fail:{query}`` = ``permanent`` or ``kill``;
    ``transient:{query}`` = calls left to fail; ``pass:{query}`` = calls let through before the
    ``fail:`` or ``transient:`` fault applies."""

    def __init__(self, path: str, client: redis.Redis, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.client = client

    @classmethod
    def for_settings(cls, settings: Settings, client: redis.Redis) -> FaultySqliteSource:
        """The source the settings name (``TRACE_SOURCE_URL`` of SQLite), sized by them."""
        assert settings.source.path is not None, "a SQLite TRACE_SOURCE_URL is needed"
        return cls(
            settings.source.path,
            client,
            fetch_rows=settings.fetch_rows,
            in_list_size=settings.in_list_size,
        )

    def query(
        self, name: str, binds: Mapping[str, Any] | None = None, *, fragments: Any = None
    ) -> Iterator[RowBatch]:
        faults = {k.decode(): v.decode() for k, v in self.client.hgetall(FAULTS_KEY).items()}
        delay = int(faults.get(f"delay_ms:{name}", faults.get("delay_ms", 0)))
        if delay:
            time.sleep(delay / 1000)
        let_through = int(faults.get(f"pass:{name}", 0)) > 0
        if let_through and self.client.hincrby(FAULTS_KEY, f"pass:{name}", -1) >= 0:
            return super().query(name, binds, fragments=fragments)
        mode = faults.get(f"fail:{name}")
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "permanent":
            raise SourceQueryError(f"injected failure of {name}")
        transient = int(faults.get(f"transient:{name}", 0)) > 0
        # the decrement decides: two calls that both read "1" fail once between them
        if transient and self.client.hincrby(FAULTS_KEY, f"transient:{name}", -1) >= 0:
            raise SourceUnavailable(f"injected outage of {name}")
        return super().query(name, binds, fragments=fragments)
