"""The Redis databases a test module owns: found answering, empty before and after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

#: The local server every test talks to (``ops/test`` starts it when none answers);
#: ``TEST_REDIS_URL`` names another, so two test runs on one machine can each have their own.
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def clean_databases(store_db: int, broker_db: int) -> Iterator[redis.Redis]:
    """For a fixture: yields a client of ``store_db``; both databases are flushed around it."""
    clients = [redis.Redis.from_url(f"{REDIS}/{db}") for db in (store_db, broker_db)]
    try:
        clients[0].ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis does not answer on {REDIS}: run the tests with ./ops/test")
    for client in clients:
        client.flushdb()
    yield clients[0]
    for client in clients:
        client.flushdb()
        client.close()
