"""The command line: demo-data and trace, with their exit codes (the demo, which runs the
real stack: ``tests/api/test_demo.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main as cli
from pipeline.cli.exit_codes import EXIT_CONFIG, EXIT_INVALID, EXIT_OK, EXIT_SOURCE


@pytest.fixture
def use_warehouse(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> Path:
    monkeypatch.setenv("TRACE_SOURCE_URL", "sqlite:///" + str(warehouse))  # absolute: ////
    return warehouse


def test_demo_data_builds_once_and_reuses_the_same_size_and_seed(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    assert cli.main(["demo-data", "--lots", "60", "--seed", "3", "--db", str(db)]) == EXIT_OK
    built = db.stat().st_mtime_ns
    assert cli.main(["demo-data", "--lots", "60", "--seed", "3", "--db", str(db)]) == EXIT_OK
    assert db.stat().st_mtime_ns == built
    assert (
        cli.main(["demo-data", "--lots", "60", "--seed", "3", "--db", str(db), "--force"])
        == EXIT_OK
    )
    assert db.stat().st_mtime_ns != built
    with sqlite3.connect(db) as conn:  # the lots, not counting the wafer lots' containers
        lots = "SELECT COUNT(*) FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' AND MFGORDERNAME > ''"
        assert conn.execute(lots).fetchone()[0] == 60


def test_trace_writes_every_domain_and_prints_a_json_summary(
    use_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(use_warehouse) as conn:
        order = conn.execute(
            "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME "
            "LIKE 'GA%' GROUP BY 1 ORDER BY COUNT(*) DESC"
        ).fetchone()[0]
    code = cli.main(
        [
            "trace",
            "--profile",
            "query_tool",
            "--resolve-type",
            "work_order",
            "--values",
            order,
            "NOPE",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == EXIT_OK
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["not_found"] == ["NOPE"] and summary["seed_count"] > 1
    assert list(summary["rows"]) == ["history", "materials", "rejects", "holds", "jobs"]
    for domain, count in summary["rows"].items():
        lines = (tmp_path / f"{domain}.ndjson").read_bytes().splitlines()
        assert len(lines) == count
    assert summary["rows"]["history"] > 0


def test_bad_input_exits_2_and_names_the_problem(
    use_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code = cli.main(
        [
            "trace",
            "--profile",
            "query_tool",
            "--resolve-type",
            "serial_number",
            "--values",
            "x",
            "--out",
            str(out),
        ]
    )
    assert code == EXIT_INVALID
    assert "INVALID_PARAMS" in capsys.readouterr().err
    assert not out.exists()  # a refused request leaves nothing behind


def test_a_trace_where_nothing_matches_exits_2_and_writes_nothing(
    use_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    args = ["trace", "--profile", "query_tool", "--resolve-type", "lot_id"]
    code = cli.main([*args, "--values", "NOPE-1", "NOPE-2", "--out", str(out)])
    assert code == EXIT_INVALID
    assert "NO_SEEDS" in capsys.readouterr().err
    assert not out.exists()


def test_too_few_demo_lots_exit_2_and_name_the_minimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "w.db"
    assert cli.main(["demo-data", "--lots", "10", "--db", str(db)]) == EXIT_INVALID
    assert "--lots must be at least 50" in capsys.readouterr().err
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_a_missing_warehouse_exits_4(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRACE_SOURCE_URL", f"sqlite:///{tmp_path}/missing.db")
    code = cli.main(
        [
            "trace",
            "--profile",
            "query_tool",
            "--resolve-type",
            "lot_id",
            "--values",
            "x",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == EXIT_SOURCE
    assert "warehouse file not found" in capsys.readouterr().err


def test_a_bad_setting_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACE_FETCH_ROWS", "many")
    assert cli.main(["demo-data", "--db", str(tmp_path / "x.db")]) == EXIT_CONFIG
