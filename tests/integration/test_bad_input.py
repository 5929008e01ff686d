"""Bad input gets a clear error naming the problem, or is treated as a plain value: never as SQL."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.errors import InvalidInput
from pipeline.sources.base import Source
from pipeline.stages.events import fetch_events
from pipeline.stages.lineage import trace_lineage
from pipeline.stages.lineage_document import payload
from pipeline.stages.seed_resolve import PASSES
from tests.integration.test_seed_resolve import resolve_seeds

HOSTILE = [
    "'; DROP TABLE DW_MES_CONTAINER; --",
    "GA' OR '1'='1",
    'GA" OR "1"="1',
    "GA2604*'; DELETE FROM DW_MES_JOB; --",
    "%",
    "_",
    "\\",
    "GD) UNION SELECT CONTAINERID, CONTAINERNAME, 1 FROM DWH.DW_MES_CONTAINER --",
]
TABLES = ("DW_MES_CONTAINER", "DW_MES_JOB", "DW_MES_LOTWIPHISTORY")


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.mark.parametrize("resolve_type", sorted(PASSES))
@pytest.mark.parametrize("values", [[], ["", "   "], None, "GA123", 42])
def test_empty_or_malformed_values_are_refused(
    source: Source, resolve_type: str, values: object
) -> None:
    with pytest.raises(InvalidInput) as error:
        resolve_seeds(source, resolve_type, values)
    assert (error.value.field or "").startswith("params.values")
    assert error.value.code == "INVALID_PARAMS"


def test_an_unknown_resolve_type_names_the_valid_ones(source: Source) -> None:
    with pytest.raises(InvalidInput, match="expected one of lot_id, work_order, wafer_lot"):
        resolve_seeds(source, "lot_id; DROP TABLE x", ["a"])


@pytest.mark.parametrize("resolve_type", ["lot_id", "wafer_lot", "container_id", "serial_number"])
def test_quotes_and_semicolons_are_values_that_match_nothing(
    sqlite_source: Source, db: sqlite3.Connection, resolve_type: str
) -> None:
    before = _counts(db)
    result = resolve_seeds(sqlite_source, resolve_type, HOSTILE)
    assert result.seeds == []
    assert result.not_found == HOSTILE
    assert _counts(db) == before


def test_hostile_ids_flow_through_lineage_and_events_as_values(
    sqlite_source: Source, db: sqlite3.Connection
) -> None:
    before = _counts(db)
    graph = trace_lineage(sqlite_source, HOSTILE, "forward")
    assert payload(graph)["children_map"] == {}
    for domain in ("history", "jobs", "holds"):
        assert list(fetch_events(sqlite_source, domain, HOSTILE)) == []
    assert _counts(db) == before
