"""The scratch database a stage keeps its working set in: on disk, never visible, gone when done."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.stages.scratch import Scratch


def _deleted_sqlite_files() -> set[str]:
    """Files this process holds open that were unlinked: SQLite names its temporary files
    ``etilqs_*``."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "etilqs_" in target and target.endswith("(deleted)"):
            found.add(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_a_working_set_past_the_cache_goes_to_an_unlinked_file_that_closing_frees() -> None:
    before = _deleted_sqlite_files()
    # Given a scratch database with a 1 MiB cache, when 20 MB are written to it
    scratch = Scratch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", cache_mb=1)
    scratch.executemany("INSERT INTO t (v) VALUES (?)", (("x" * 200,) for _ in range(100_000)))
    assert scratch.value("SELECT COUNT(*) FROM t") == 100_000
    # Then the rows went to a file that was unlinked as soon as it was opened
    spilled = _deleted_sqlite_files() - before
    assert spilled
    # And closing the database lets the file go (a killed worker frees it the same way)
    scratch.close()
    assert not (_deleted_sqlite_files() & spilled)


def test_pages_may_be_read_while_the_table_they_come_from_grows() -> None:
    with Scratch("CREATE TABLE t (k INTEGER PRIMARY KEY, level INTEGER)") as scratch:
        scratch.executemany("INSERT INTO t VALUES (?, 0)", ((k,) for k in range(1, 26)))
        seen = []
        # When each page of level 0 adds rows of level 1 before the next page is read
        for page in scratch.pages(
            "SELECT k FROM t WHERE level = 0 AND k > :after ORDER BY k LIMIT :size", {}, 10
        ):
            seen += [k for (k,) in page]
            scratch.executemany("INSERT INTO t VALUES (?, 1)", ((1000 + k,) for (k,) in page))
        # Then every row of level 0 was read once, in pages of at most 10
        assert seen == list(range(1, 26))
        assert scratch.value("SELECT COUNT(*) FROM t WHERE level = 1") == 25


def test_rows_are_read_a_batch_at_a_time_and_a_closed_reader_is_harmless() -> None:
    scratch = Scratch("CREATE TABLE t (k INTEGER)")
    scratch.executemany("INSERT INTO t VALUES (?)", ((k,) for k in range(5000)))
    rows = scratch.rows("SELECT k FROM t ORDER BY k")
    assert next(rows) == (0,)
    scratch.close()
    rows.close()  # a reader left open when its database went must not raise
