"""A worker plugin for tests: ``dramatiq pipeline.actors tests.support.faulty_worker`` gives the
worker a ``FaultySqliteSource`` (see ``tests.support.faults``); nothing else of it changes."""

from __future__ import annotations

import redis

from pipeline import actors
from tests.support.faults import FaultySqliteSource

actors.runtime.use_source(
    FaultySqliteSource.for_settings(
        actors.settings, redis.Redis.from_url(actors.settings.redis_url)
    )
)
