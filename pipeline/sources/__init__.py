"""Sources: where the trace reads the warehouse. ``open_source(settings)`` picks one by URL."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.sources.base import Source

__all__ = ["Source", "open_source"]


def open_source(settings: Settings) -> Source:
    """The source ``TRACE_SOURCE_URL`` names: the embedded SQLite file or Oracle."""
    location = settings.source
    common = {"fetch_rows": settings.fetch_rows, "in_list_size": settings.in_list_size}
    if location.kind == "sqlite":
        from pipeline.sources.sqlite import SqliteSource

        assert location.path is not None
        return SqliteSource(location.path, **common)
    from pipeline.sources.oracle import OracleSource  # imports oracledb only when needed

    assert location.user is not None and location.dsn is not None
    return OracleSource(
        user=location.user,
        dsn=location.dsn,
        password=settings.oracle_password,
        pool_min=settings.oracle_pool_min,
        pool_max=settings.oracle_pool_max,
        call_timeout_ms=settings.oracle_call_timeout_ms,
        **common,
    )
