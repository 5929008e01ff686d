"""Shared fixtures: a clean environment, one generated warehouse per test session, sources.

The warehouse is generated once per session (deterministic: same seed, same data) in a temporary
directory. ``source`` is parametrised: the embedded SQLite file always, and a live Oracle server
too when ``TRACE_ORACLE_TEST_DSN`` names one (``oracle://user@host:port/service``, password in
``TRACE_ORACLE_PASSWORD``; it must hold the demo warehouse's tables in schema DWH).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.demo.generator import generate
from pipeline.sources.base import Source
from pipeline.sources.sqlite import SqliteSource

# Read before the environment is cleared for the tests.
ORACLE_TEST_DSN = os.environ.get("TRACE_ORACLE_TEST_DSN", "")
ORACLE_TEST_PASSWORD = os.environ.get("TRACE_ORACLE_PASSWORD", "")

WAREHOUSE_LOTS = 3000
WAREHOUSE_SEED = 11


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's TRACE_* settings."""
    for name in list(os.environ):
        if name.startswith("TRACE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo warehouse of ``WAREHOUSE_LOTS`` lots, built once per session."""
    path = tmp_path_factory.mktemp("warehouse") / "demo.db"
    generate(path, lots=WAREHOUSE_LOTS, seed=WAREHOUSE_SEED)
    return path


@pytest.fixture
def db(warehouse: Path) -> Iterator[sqlite3.Connection]:
    """A direct read-only connection to the warehouse, for independent expectations."""
    with closing(sqlite3.connect(warehouse.as_uri() + "?mode=ro", uri=True)) as conn:
        yield conn


@pytest.fixture
def sqlite_source(warehouse: Path) -> Iterator[SqliteSource]:
    with SqliteSource(warehouse) as source:
        yield source


def pytest_report_header() -> str:
    state = f"on ({ORACLE_TEST_DSN})" if ORACLE_TEST_DSN else "off (TRACE_ORACLE_TEST_DSN unset)"
    return f"oracle source tests: {state}"


def _source_params() -> list[object]:
    """SQLite always; Oracle only when a server is configured (no skipped clutter otherwise)."""
    params: list[object] = ["sqlite"]
    if ORACLE_TEST_DSN:
        params.append(pytest.param("oracle", marks=pytest.mark.oracle))
    return params


@pytest.fixture(params=_source_params())
def source(request: pytest.FixtureRequest, warehouse: Path) -> Iterator[Source]:
    """Each available source in turn (SQLite always; Oracle when configured)."""
    if request.param == "sqlite":
        with SqliteSource(warehouse) as sqlite:
            yield sqlite
        return
    from pipeline.sources import open_source

    settings = Settings(source_url=ORACLE_TEST_DSN, oracle_password=ORACLE_TEST_PASSWORD)
    with open_source(settings) as oracle:
        yield oracle
