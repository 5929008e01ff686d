"""How the mid-section-defect detail table is stored, and a page of it read back.

A detail row is a JSON object: its lot's shared fields (the head: backward, its machines and
materials, ~1.3 KB, the same in every row of the lot and under every loss-reason mask) and its
own few fields (the tail: the loss reason, its defects and rate; it closes the object). The
heads are stored once per lot, in a part of their own in small chunks (``HEAD_CHUNK_ROWS``),
and the detail part holds each row as (the row of its head in the heads part, its tail), in the
table's order. A page reads its rows, then only the chunks holding their heads (one round trip
to find them, one to read them), and joins each head to its tail.

The detail part's columns name the heads its rows refer to:

* ``("head", "tail")``: the job's own heads (``parts.AGGREGATION_HEADS``), in its detail order;
* ``("record_head", "tail")``: the heads of the job's lot record
  (``parts.AGGREGATION_RECORD_HEADS``), written by the analysis that keeps the record and
  linked with it into a re-analysis, which so neither reads nor writes a head (at 114K CIDs
  that was ~110 MB through its scratch database and ~230 MB compressed again);
* ``("json",)``: a job stored before the heads were kept apart: each row whole.
"""

from __future__ import annotations

from typing import Any

from pipeline.engine import parts
from pipeline.engine.pages import Page
from pipeline.engine.results import ResultReader
from pipeline.engine.store import CheckpointStore
from pipeline.stages.msd.detail import SortedDetails

#: Heads per stored chunk: a page decompresses a whole chunk for each head it shows (500 rows
#: at most: ~500 chunks of ~85 KB), and every chunk is a key the whole-result check asks for
#: (``pipeline.engine.integrity``). Measured at 114K CIDs (85K heads): 32 rows, 500-row pages
#: of a re-analysis 63-82 ms and 20-row ones 9-15 ms; 64 rows, 46-61 ms and 8-9 ms; 128 rows,
#: 54-99 ms and 10-12 ms (the rows before: 25-28 ms and 5-6 ms).
HEAD_CHUNK_ROWS = 64
#: Heads per committed batch (its chunks written in one round trip).
HEAD_BATCH_ROWS = 1024
#: The detail part's columns, by the heads part its rows name.
COLUMNS = {
    parts.AGGREGATION_HEADS: ("head", "tail"),
    parts.AGGREGATION_RECORD_HEADS: ("record_head", "tail"),
}
#: The columns of a detail part stored with each row whole (before the heads were apart).
WHOLE_ROWS = ("json",)
_HEADS_BY_COLUMN = {columns[0]: part for part, columns in COLUMNS.items()}


def write_detail(
    store: CheckpointStore, job_id: str, table: SortedDetails, *, heads: str, batch_rows: int
) -> None:
    """Store the detail rows of ``table`` naming the heads part ``heads`` (a key of
    ``COLUMNS``), and the heads the table built into it (a table a lot record gave built none:
    its record's are linked). A run that resumes one whose rows named other heads (it read a
    lot record lost since) drops those rows first: committed rows are kept only when they are
    the same."""
    columns = COLUMNS[heads]
    if store.columns(job_id, parts.AGGREGATION_DETAIL) not in ((), columns):
        store.drop_part(job_id, parts.AGGREGATION_DETAIL)
    if not table.recorded:
        store.write_rows(
            job_id,
            heads,
            ("head",),
            ((head,) for head in table.heads()),
            HEAD_BATCH_ROWS,
            chunk_rows=HEAD_CHUNK_ROWS,
        )
    store.write_rows(job_id, parts.AGGREGATION_DETAIL, columns, table.stored_rows(), batch_rows)


def detail_page(
    results: ResultReader, job_id: str, offset: int, limit: int
) -> tuple[Page, list[Any]]:
    """Rows ``offset`` .. ``offset + limit`` of the job's finished detail table (``limit`` 0:
    to the end), each its JSON object as bytes (a job stored before the rows were kept
    encoded: the object itself). Raises ``ResultGone`` when a chunk of the rows or of their
    heads is gone."""
    part = parts.AGGREGATION_DETAIL
    columns = results.store.columns(job_id, part)
    page = results.part_page(job_id, part, offset, limit)
    rows = [row for chunk in results.part_chunks(part, page) for row in chunk]
    if columns == WHOLE_ROWS or not rows:
        return page, [row[0] for row in rows]
    heads = results.part_rows_at(job_id, _HEADS_BY_COLUMN[columns[0]], {r for r, _ in rows})
    return page, [heads[ref][0] + tail for ref, tail in rows]
