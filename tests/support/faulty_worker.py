"""A worker plugin for tests: ``dramatiq pipeline.actors tests.support.faulty_worker`` gives the
worker a ``FaultySqliteSource`` (see ``tests.support.faults``); nothing else of it changes."""

from __future__ import annotations

import redis

from pipeline import actors
from tests.support.faults import FaultySqliteSource

_settings = actors.settings
assert _settings.source.path is not None
actors.runtime.use_source(
    FaultySqliteSource(
        _settings.source.path,
        redis.Redis.from_url(_settings.redis_url),
        fetch_rows=_settings.fetch_rows,
        in_list_size=_settings.in_list_size,
    )
)
