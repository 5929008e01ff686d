"""The mid-section-defect page's CSV export: the detail rows of an analysis as the old backend
wrote them (a UTF-8 BOM, the contract's Chinese headers per direction, Python csv's ``\\r\\n``),
encoded one stored chunk of rows at a time, so the API holds one chunk whatever the trace."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pipeline.stages.msd.detail import EXPORT_COLUMNS

COLUMNS = EXPORT_COLUMNS
BOM = "\ufeff".encode()


def csv_chunks(direction: str, chunks: Iterable[Iterable[Sequence[Any]]]) -> Iterator[bytes]:
    """The CSV file: the BOM and the header row first, then one piece per chunk of rows (each
    row its cells, ``pipeline.stages.msd.detail.ExportCells``)."""
    yield BOM + _lines([[header for header, _ in COLUMNS[direction]]])
    for rows in chunks:
        yield _lines(rows)


def _lines(rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)  # Python csv's dialect: \r\n, minimal quoting
    return out.getvalue().encode()
