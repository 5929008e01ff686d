"""The SQL files: one per query, one per dialect where Oracle and SQLite differ.

A query is named by its path without the suffix (``events/history``). ``load(name, dialect)``
returns ``<name>.<dialect>.sql`` when that file exists, else the shared ``<name>.sql``.

Values always travel as ``:name`` binds. The only text spliced into a query is a *fragment* built by
our own code from vetted identifiers and bind names (``{{ station_filter }}``); ``render`` refuses a
query whose markers and fragments do not match exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent
DIALECTS = ("sqlite", "oracle")
_MARKER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@cache
def load(name: str, dialect: str) -> str:
    """The text of query ``name`` for ``dialect``; ``LookupError`` when there is none."""
    if dialect not in DIALECTS:
        raise LookupError(f"unknown SQL dialect {dialect!r}")
    for candidate in (SQL_DIR / f"{name}.{dialect}.sql", SQL_DIR / f"{name}.sql"):
        if candidate.is_file():
            return _without_comments(candidate.read_text(encoding="utf-8"))
    raise LookupError(f"no SQL file for query {name!r} ({dialect})")


def _without_comments(text: str) -> str:
    """Drop whole-line ``--`` comments (they may mention binds and markers) and a final ``;``."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").rstrip()


def markers(text: str) -> set[str]:
    """Names of the fragment markers in a query."""
    return set(_MARKER.findall(text))


def render(text: str, fragments: Mapping[str, str] | None = None) -> str:
    """Fill the query's fragment markers; every marker needs a fragment and vice versa."""
    given = dict(fragments or {})
    needed = markers(text)
    if needed != set(given):
        raise ValueError(f"query needs fragments {sorted(needed)}, got {sorted(given)}")
    if not needed:
        return text
    return _MARKER.sub(lambda m: given[m.group(1)], text)


def query_names() -> list[str]:
    """Every query name, sorted."""
    names = set()
    for path in SQL_DIR.rglob("*.sql"):
        stem = path.relative_to(SQL_DIR).as_posix()[: -len(".sql")]
        for dialect in DIALECTS:
            stem = stem.removesuffix(f".{dialect}")
        names.add(stem)
    return sorted(names)
