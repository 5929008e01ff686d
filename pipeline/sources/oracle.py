"""The production warehouse: Oracle through python-oracledb in thin mode (no Oracle client).

This is the only module that imports ``oracledb``. One connection pool per process; each query
borrows a connection, sets a round-trip timeout, fetches ``arraysize`` rows per round trip (with
``prefetchrows`` so the first batch arrives with the execute) and hands the connection back.

Values are made to match the contract here rather than row by row later: DATE/TIMESTAMP columns
become ``YYYY-MM-DD HH:MM:SS`` strings and binary floats lose NaN/Infinity (``None``), through
per-column converters; NUMBER columns arrive as ``int``/``float`` (no ``Decimal``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Iterator
from typing import Any

import oracledb

from pipeline.errors import ConfigError, SourceError, SourceQueryError, SourceUnavailable
from pipeline.rows import RowBatch
from pipeline.sources.base import Source, drain

#: Error codes after which the same query may succeed (lost connection, timeout, instance
#: restarting, pool exhausted). Everything else (bad SQL, missing table, bad bind) is permanent.
TRANSIENT_CODES = frozenset(
    {
        "DPY-4005",  # timed out waiting for a pool connection
        "DPY-4011",  # connection closed by the database or network
        "DPY-4024",  # call timeout exceeded
        "DPY-6005",  # cannot connect
        "DPI-1067",  # call timeout (thick mode)
        "DPI-1080",  # connection closed
        "ORA-00018",
        "ORA-00020",  # sessions/processes exhausted
        "ORA-00028",  # session killed
        "ORA-01013",  # user requested cancel (call timeout)
        "ORA-01033",
        "ORA-01034",
        "ORA-01089",
        "ORA-01090",  # instance starting/stopping
        "ORA-02396",  # idle time exceeded
        "ORA-03113",
        "ORA-03114",
        "ORA-03135",  # end of file / not connected / connection lost
        "ORA-12170",
        "ORA-12514",
        "ORA-12528",
        "ORA-12537",
        "ORA-12541",
        "ORA-12543",
    }
)
_CODE = re.compile(r"\b((?:ORA|DPY|DPI)-\d{4,5})\b")


class OracleSource(Source):
    """Streams queries from the MES data warehouse (schema ``DWH``)."""

    dialect = "oracle"
    ping_sql = "SELECT 1 FROM DUAL"

    def __init__(
        self,
        *,
        user: str,
        dsn: str,
        password: str | None,
        pool_min: int,
        pool_max: int,
        call_timeout_ms: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not password:
            raise ConfigError("TRACE_ORACLE_PASSWORD is not set (the Oracle source needs it)")
        self.call_timeout_ms = call_timeout_ms
        try:
            self._pool = oracledb.create_pool(
                user=user,
                password=password,
                dsn=dsn,
                min=pool_min,
                max=pool_max,
                increment=1,
                getmode=oracledb.POOL_GETMODE_TIMEDWAIT,
                wait_timeout=call_timeout_ms,
                ping_interval=60,
            )
        except oracledb.Error as exc:
            raise convert_error(exc) from exc

    def _execute(self, text: str, binds: dict[str, Any]) -> Iterator[RowBatch]:
        try:
            conn = self._pool.acquire()
        except oracledb.Error as exc:
            raise convert_error(exc) from exc
        try:
            conn.call_timeout = self.call_timeout_ms
            cursor = conn.cursor()
            cursor.arraysize = self.fetch_rows
            cursor.prefetchrows = self.fetch_rows + 1  # +1: the first batch needs no extra trip
            cursor.outputtypehandler = _output_type_handler
            try:
                cursor.execute(text, binds)
                yield from drain(cursor, self.fetch_rows)
            except oracledb.Error as exc:
                raise convert_error(exc) from exc
        finally:
            # A broken connection is dropped by the pool; the error was already raised.
            with contextlib.suppress(oracledb.Error):
                self._pool.release(conn)

    def close(self) -> None:
        with contextlib.suppress(oracledb.Error):
            self._pool.close(force=True)


def convert_error(exc: Exception) -> SourceError:
    """A driver error as ``SourceUnavailable`` (transient) or ``SourceQueryError`` (permanent)."""
    error = exc.args[0] if exc.args else None
    code = getattr(error, "full_code", None)
    if not code:
        match = _CODE.search(str(exc))
        code = match.group(1) if match else ""
    message = f"oracle: {str(exc).strip()}"
    if (
        code in TRANSIENT_CODES
        or getattr(error, "isrecoverable", False)
        or isinstance(exc, oracledb.OperationalError)
    ):
        return SourceUnavailable(message)
    return SourceQueryError(message)


def _format_timestamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    # The warehouse's local time, shown without a zone (the dashboard parses only this form).
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


_DATE_TYPES = (
    oracledb.DB_TYPE_DATE,
    oracledb.DB_TYPE_TIMESTAMP,
    oracledb.DB_TYPE_TIMESTAMP_LTZ,
    oracledb.DB_TYPE_TIMESTAMP_TZ,
)
_BINARY_FLOATS = (oracledb.DB_TYPE_BINARY_DOUBLE, oracledb.DB_TYPE_BINARY_FLOAT)


def _output_type_handler(cursor: Any, metadata: Any) -> Any:
    if metadata.type_code in _DATE_TYPES:
        return cursor.var(
            metadata.type_code, arraysize=cursor.arraysize, outconverter=_format_timestamp
        )
    if metadata.type_code in _BINARY_FLOATS:
        return cursor.var(
            metadata.type_code, arraysize=cursor.arraysize, outconverter=_finite_or_none
        )
    return None
