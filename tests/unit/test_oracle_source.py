"""The Oracle source, without a server: error classification at the seam, a real connection
attempt to a closed loopback port, and the credential rules."""

from __future__ import annotations

import socket

import oracledb
import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError, SourceQueryError, SourceUnavailable
from pipeline.sources import open_source
from pipeline.sources.oracle import convert_error


@pytest.mark.parametrize(
    "message",
    [
        "DPY-6005: cannot connect to database",
        "ORA-03113: end-of-file on communication channel",
        "DPY-4024: call timeout of 60000 ms exceeded",
        "ORA-01013: user requested cancel of current operation",
    ],
)
def test_lost_connections_and_timeouts_are_retryable(message: str) -> None:
    error = convert_error(oracledb.DatabaseError(message))
    assert isinstance(error, SourceUnavailable) and error.retryable
    assert message in error.message


@pytest.mark.parametrize(
    "message",
    [
        "ORA-00942: table or view does not exist",
        "ORA-00904: invalid identifier",
        "ORA-01722: invalid number",
    ],
)
def test_bad_sql_and_bad_data_are_permanent(message: str) -> None:
    error = convert_error(oracledb.DatabaseError(message))
    assert isinstance(error, SourceQueryError) and not error.retryable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_an_unreachable_server_is_reported_as_retryable() -> None:
    # Given an Oracle URL on a loopback port where nothing listens
    settings = Settings(
        source_url=f"oracle://reader@127.0.0.1:{_closed_port()}/DWH",
        oracle_password="x",
        oracle_pool_min=0,
        oracle_call_timeout_ms=2000,
    )
    # When a query runs through the thin-mode pool
    with pytest.raises(SourceUnavailable, match="oracle:"):
        source = open_source(settings)
        list(source.query("lineage/containers", {"cids": ["0000000000000001"]}))


def test_the_oracle_source_needs_a_password_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="TRACE_ORACLE_PASSWORD"):
        open_source(Settings(source_url="oracle://reader@127.0.0.1:1521/DWH"))
