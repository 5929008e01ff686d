"""The SQL files: Oracle's text parses with Oracle's grammar; each dialect uses only its own
functions; fragments are filled exactly; binds are the only way values travel."""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot.errors import ParseError

from pipeline.sources import sql
from pipeline.sources.base import expand_binds
from pipeline.workcenters import require_group, station_filter

# Representative fragments, as the stages build them.
_STATION, _STATION_BINDS = station_filter("h.WORKCENTERNAME", require_group("測試"))
FRAGMENTS = {
    "column": "c.CONTAINERNAME",
    "station_filter": _STATION,
    "scope": "h.TRACKINTIMESTAMP >= :start_date AND h.TRACKINTIMESTAMP < :end_date",
    "window": " AND r.TXNDATE >= :start_date AND r.TXNDATE < :end_date",
    "contains_any": "INSTR(j.CONTAINERIDS, :cid0) > 0 OR INSTR(j.CONTAINERIDS, :cid1) > 0",
}
SQLITE_ONLY = re.compile(r"\b(julianday|datetime|date|strftime|ifnull)\s*\(", re.IGNORECASE)
ORACLE_ONLY = re.compile(r"\b(SYSDATE|NVL|TRUNC|TO_DATE|TO_CHAR|DECODE|ROWNUM)\b", re.IGNORECASE)


def _rendered(name: str, dialect: str) -> str:
    text = sql.load(name, dialect)
    return sql.render(text, {k: v for k, v in FRAGMENTS.items() if k in sql.markers(text)})


@pytest.mark.parametrize("name", sql.query_names())
def test_the_oracle_text_of_every_query_parses_as_oracle_sql(name: str) -> None:
    text = _rendered(name, "oracle")
    binds = set(re.findall(r":([A-Za-z_]\w*)", text))
    expanded, _ = expand_binds(
        text, {b: ["a", "b"] if b in {"cids", "values", "ids"} else "x" for b in binds}, 1000
    )
    try:
        tree = sqlglot.parse_one(expanded, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
    except ParseError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{name}: {exc}")
    assert tree.key == "select"
    assert "DWH." in text, "queries name the warehouse tables through schema DWH"


@pytest.mark.parametrize("name", sql.query_names())
def test_each_dialect_uses_only_its_own_functions(name: str) -> None:
    assert not SQLITE_ONLY.search(sql.load(name, "oracle")), name
    assert not ORACLE_ONLY.search(sql.load(name, "sqlite")), name


def test_a_broken_oracle_query_would_be_caught() -> None:
    # The parse check can fail: a typo'd statement does not pass it.
    with pytest.raises(ParseError):
        sqlglot.parse_one(
            "SELECT c.X FROM WHERE c.X IN (:a)", read="oracle", error_level=sqlglot.ErrorLevel.RAISE
        )


def test_dialect_files_override_the_shared_file() -> None:
    assert "SYSDATE" in sql.load("events/holds", "oracle")
    assert "julianday" in sql.load("events/holds", "sqlite")
    assert sql.load("events/history", "oracle") == sql.load("events/history", "sqlite")


def test_comments_are_dropped_so_they_cannot_carry_binds() -> None:
    assert "--" not in sql.load("events/jobs_probe", "sqlite")


def test_fragments_must_match_the_markers_exactly() -> None:
    text = sql.load("seeds/containers_in", "sqlite")
    with pytest.raises(ValueError, match="needs fragments"):
        sql.render(text, {})
    with pytest.raises(ValueError, match="needs fragments"):
        sql.render(text, {"column": "c.CONTAINERNAME", "extra": "1=1"})


def test_an_unknown_query_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        sql.load("events/nope", "sqlite")
