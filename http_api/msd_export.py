"""The mid-section-defect page's CSV export: the detail rows of an analysis as the old backend
wrote them (a UTF-8 BOM, the contract's Chinese headers per direction, Python csv's ``\\r\\n``),
encoded one stored chunk of rows at a time, so the API holds one chunk whatever the trace."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipeline import domains

#: (header, detail row key) per direction, in the export's column order.
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    domains.BACKWARD: (
        ("LOT ID", "CONTAINERNAME"),
        ("TYPE", "PJ_TYPE"),
        ("PACKAGE", "PRODUCTLINENAME"),
        ("WORKFLOW", "WORKFLOW"),
        ("偵測設備", "DETECTION_EQUIPMENTNAME"),
        ("投入數", "INPUT_QTY"),
        ("報廢原因", "LOSS_REASON"),
        ("不良數", "DEFECT_QTY"),
        ("不良率(%)", "DEFECT_RATE"),
        ("上游LOT數", "ANCESTOR_COUNT"),
        ("上游台數", "UPSTREAM_MACHINE_COUNT"),
    ),
    domains.FORWARD: (
        ("LOT ID", "CONTAINERNAME"),
        ("偵測設備", "DETECTION_EQUIPMENTNAME"),
        ("前段不良原因", "DETECTION_LOSS_REASON"),
        ("偵測投入", "TRACKINQTY"),
        ("偵測不良", "DEFECT_QTY"),
        ("下游到達站數", "DOWNSTREAM_STATIONS_REACHED"),
        ("下游不良總數", "DOWNSTREAM_TOTAL_REJECT"),
        ("下游不良率(%)", "DOWNSTREAM_REJECT_RATE"),
    ),
}
BOM = "\ufeff".encode()


def csv_chunks(direction: str, chunks: Iterable[Iterable[Mapping[str, Any]]]) -> Iterator[bytes]:
    """The CSV file: the BOM and the header row first, then one piece per chunk of rows."""
    columns = COLUMNS[direction]
    yield BOM + _lines([[header for header, _ in columns]])
    for rows in chunks:
        yield _lines([[_cell(row.get(key)) for _, key in columns] for row in rows])


def _lines(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)  # Python csv's dialect: \r\n, minimal quoting
    return out.getvalue().encode()


def _cell(value: Any) -> Any:
    return "" if value is None else value
