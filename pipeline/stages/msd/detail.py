"""The detail table of the mid-section-defect analysis, written from a finished fold into its
scratch database, worst defect rate first.

Backward, one row per lot and loss reason (a clean lot gets one row with no reason), with the
machines and materials its family used before the detection station; forward, one row per lot
with defects, with its rejects at the stations after it. Backward, the lot-by-lot pass that
builds the heads (the fields a lot's rows share) also credits the machines
(``pipeline.stages.msd.attribution``) and leaves the credit on the fold, so the result
afterwards reads no lot again; the rows themselves are written by SQL statements over the lots
and their counted rejects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import orjson

from pipeline import domains
from pipeline.rows import batched, rows_at
from pipeline.stages.msd.attribution import COUNTED, COUNTED_LOTS, LOTS, credit_lot, new_credit
from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.machines import MachineCredit
from pipeline.stages.msd.pareto import rate
from pipeline.stages.scratch import Scratch
from pipeline.workcenters import group_order

#: Detection lots whose detail rows are written to the scratch database per round trip (lots).
LOTS_PER_WRITE = 500
#: Backward detail rows written to the scratch database per round trip (rows).
ROWS_PER_WRITE = 1000
#: Backward, the (loss reason, defects) of a lot's one row when no reject of it counts.
CLEAN = ("", 0)

#: The CSV export's columns per direction: (header, detail row key), in file order (the old
#: backend's headers).
EXPORT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
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


#: What a detail row adds to its lot's shared fields (backward: the loss reason's; forward:
#: nothing, a lot is one row).
Extra = dict[str, Any]


class ExportCells:
    """The CSV cells of a direction's detail rows (``EXPORT_COLUMNS``; a missing value is
    empty): ``keys`` in the file's order, ``at`` each key's place."""

    def __init__(self, direction: str) -> None:
        self.keys = [key for _, key in EXPORT_COLUMNS[direction]]
        self.at = {key: i for i, key in enumerate(self.keys)}

    def of(self, row: dict[str, Any]) -> list[Any]:
        """The cells of a detail row given whole (forward: a lot's one row)."""
        return ["" if row.get(key) is None else row[key] for key in self.keys]


class SortedDetails:
    """The detail rows of a fold in the table's default order, defect rate descending (the old
    backend's; ties in the order they came), as what is stored of them and as their export
    cells. Held in the fold's scratch database (``sorted_details``), not in memory.

    A lot's shared fields (backward: its machines and materials, most of a row's bytes: the
    head) are encoded once per lot, not once per loss-reason row, and stored once per lot: a
    row is stored as the row of its lot's head in the heads (``ref``) and its own few fields
    (the tail, which closes the object); its JSON is the head joined to the tail. A fold a lot
    record gave builds no head: its rows name the record's."""

    #: Ties in detail order, a lot's rows in the order it gave them (backward, the clean rows
    #: are written before the others: ``seq`` alone is not that order).
    ORDER = "ORDER BY s.rate DESC, s.pos, s.seq"

    def __init__(self, fold: Fold) -> None:
        self.db = fold.db
        self.recorded = fold.recorded

    def heads(self) -> Iterator[bytes]:
        """The heads this fold built, in detail order (row ``pos - 1``); none from a record."""
        return (head for (head,) in self.db.rows("SELECT head FROM detail_lot ORDER BY pos"))

    def stored_rows(self) -> Iterator[tuple[int, bytes]]:
        """Each row as (the row of its head in the heads, its tail)."""
        return self.db.rows(f"SELECT s.ref, s.tail FROM sorted_detail s {self.ORDER}")

    def json_rows(self, heads: Sequence[bytes] | None = None) -> Iterator[bytes]:
        """Each row as one JSON object (UTF-8); a fold a lot record gave needs the record's
        ``heads`` (read whole: the in-process runner's and the tests' reader, not the
        service's, which reads only a page's heads: ``pipeline.engine.detail_rows``)."""
        if self.recorded and heads is None:
            raise ValueError("a fold a lot record gave reads its heads from the record's")
        if heads is None:
            return (
                head + tail
                for head, tail in self.db.rows(
                    "SELECT h.head, s.tail FROM sorted_detail s "
                    f"JOIN detail_lot h ON h.pos = s.pos {self.ORDER}"
                )
            )
        return (heads[ref] + tail for ref, tail in self.stored_rows())

    def rows(self) -> Iterator[dict[str, Any]]:
        return (orjson.loads(row) for row in self.json_rows())

    def cells(self) -> Iterator[tuple[Any, ...]]:
        return (
            tuple(orjson.loads(d))
            for (d,) in self.db.rows(f"SELECT s.cells FROM sorted_detail s {self.ORDER}")
        )

    def lot_record(self) -> Iterator[tuple[Any, ...]]:
        """Backward, each detection lot in the order the lots came, as no mask changes it
        (``pipeline.stages.msd.lot_record.COLUMNS``), its head the row of ``heads``."""
        if self.recorded:
            raise ValueError("a lot record is kept by an analysis that built its heads")
        rejects_of = rows_at(self.db.rows("SELECT idx, reason, qty FROM rejects ORDER BY 1, 2"))
        for row in self.db.rows(
            "SELECT l.idx, l.cid, l.name, l.pj_type, l.package, l.workflow, l.runcard, "
            "l.equipment, l.input_qty, l.trackin, l.related_count, l.root, l.machines, "
            "l.materials, d.pos - 1 FROM lots l JOIN detail_order d ON d.idx = l.idx "
            "ORDER BY l.idx"
        ):
            yield (*row[1:14], rejects_of(row[0]), row[14])


@contextmanager
def sorted_details(fold: Fold) -> Iterator[SortedDetails]:
    """The detail rows written once into the fold's scratch database (backward, the pass
    that writes them credits the machines: ``_backward_rows``). Its tables stay there until
    the fold's scratch database is closed (dropping ~100K rows of them took ~2 % of a 114K
    analysis; the closing frees them at no cost), or until the next ``sorted_details`` of
    the fold."""
    db, direction = fold.db, fold.direction
    _drop_details(db)
    db.execute("CREATE TEMP TABLE detail_lot (pos INTEGER PRIMARY KEY, head BLOB)")
    db.execute(
        "CREATE TEMP TABLE sorted_detail "
        "(rate REAL, seq INTEGER PRIMARY KEY, pos INTEGER, ref INTEGER, tail BLOB, cells BLOB)"
    )
    export = ExportCells(direction)
    try:
        if fold.backward:
            _backward_rows(fold, export)
        else:
            _forward_rows(fold, export)
        db.execute("CREATE INDEX sorted_detail_order ON sorted_detail (rate DESC, pos, seq)")
        yield SortedDetails(fold)
    except BaseException:
        # A reader interrupted mid-table (Dramatiq's time limit, a lost chunk) may still hold
        # a cursor on them: dropping them then fails, and must not hide why it stopped (the
        # scratch database goes with the fold's aggregator anyway).
        with suppress(sqlite3.OperationalError):
            _drop_details(db)
        raise


def _drop_details(db: Scratch) -> None:
    db.execute("DROP TABLE IF EXISTS sorted_detail")
    db.execute("DROP TABLE IF EXISTS detail_lot")


def _forward_rows(fold: Fold, export: ExportCells) -> None:
    """Forward: one row per defect lot, its head all of it (a row adds nothing)."""
    db = fold.db
    for chunk in batched(_forward_details(fold, db.rows(LOTS)), LOTS_PER_WRITE):
        heads, rows = [], []
        for pos, lot in chunk:
            heads.append((pos, orjson.dumps(lot)[:-1]))
            rows.append((0, pos, pos - 1, b"}", orjson.dumps(export.of(lot))))
        db.executemany("INSERT INTO detail_lot VALUES (?, ?)", heads)
        db.executemany(
            "INSERT INTO sorted_detail (rate, pos, ref, tail, cells) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def _backward_rows(fold: Fold, export: ExportCells) -> None:
    """Backward: the lot-by-lot pass credits the machines and builds the heads (a lot record
    brings its own), keeping the credit on the fold once it ran to its end. The rows come
    after it, one per lot and counted loss reason, read from the lots joined with their
    counted rejects (``_write_counted_rows``), and one clean row per lot without a counted
    reject, written by one statement (``_write_clean_rows``). The whole pass at 114K CIDs:
    4.6-5.2 s, against 5.3-6.2 s when the lot-by-lot pass built the rows (2026-12-07)."""
    db = fold.db
    credit = new_credit(fold)
    for chunk in batched(_credit_and_heads(fold, credit), LOTS_PER_WRITE):
        db.executemany("INSERT INTO detail_lot VALUES (?, ?)", chunk)
    fold.memo.credit = credit
    # a built head is the row pos - 1 of the heads (detail order); a recorded one, the record's
    ref = "l.head_ref" if fold.recorded else "d.pos - 1"
    _write_clean_rows(fold, export, ref)
    _write_counted_rows(fold, export, ref)


def _credit_and_heads(fold: Fold, credit: MachineCredit) -> Iterator[tuple[int, bytes]]:
    """Credit every lot (a credit from a record's base: the lots with a counted reject, their
    defects alone) and yield each built head as (pos, head), in detail order: the lots (with
    what their families used) and their material lots are read as two streams in that order
    and merged here, one query each, whatever the number of lots."""
    db = fold.db
    lots = db.rows(COUNTED_LOTS if credit.based else LOTS)
    if fold.recorded:  # the heads are the record's
        for row in lots:
            credit_lot(credit, row)
        return
    materials_of = rows_at(
        db.rows(
            "SELECT d.pos, m.part, m.lot FROM detail_order d JOIN lots l ON l.idx = d.idx, "
            "json_each(l.materials) j JOIN materials m ON m.idx = j.value "
            "ORDER BY d.pos, m.part, m.lot"
        )
    )
    # Machines are the factory's few hundred: one entry each, shared by every head naming it.
    machine_entries = [{"station": m.group, "machine": m.name} for m in fold.machines]
    machine_order = [(group_order(m.group), m.name) for m in fold.machines]
    for row in lots:
        pos, name, pj, package, workflow, equipment, qty, runcard, related, root, cid = row[:11]
        used = credit_lot(credit, row)
        assert used is not None  # a credit made from a base serves recorded folds only
        used.sort(key=machine_order.__getitem__)
        head = {
            **_base(name, pj, package, workflow, equipment, qty),
            "CONTAINERID": cid,
            "FINISHEDRUNCARD": runcard,
            "ANCESTOR_COUNT": related,
            "UPSTREAM_MACHINES": [machine_entries[m] for m in used],
            "UPSTREAM_MACHINE_COUNT": len(used),
            "UPSTREAM_MATERIALS": [{"part": p, "lot": m} for p, m in materials_of(pos)],
            "WAFER_ROOT": root,
        }
        # the object left open for each row's own fields
        yield pos, orjson.dumps(head)[:-1]


#: A backward lot's export cells taken from its ``lots`` row (``l``), by export key: the
#: distinct machines are comma-joined (or NULL).
_LOT_CELLS = {
    "CONTAINERNAME": "l.name",
    "PJ_TYPE": "l.pj_type",
    "PRODUCTLINENAME": "l.package",
    "WORKFLOW": "l.workflow",
    "DETECTION_EQUIPMENTNAME": "l.equipment",
    "INPUT_QTY": "l.input_qty",
    "ANCESTOR_COUNT": "l.related_count",
    "UPSTREAM_MACHINE_COUNT": "CASE WHEN COALESCE(l.machines, '') = '' THEN 0 ELSE "
    "length(l.machines) - length(replace(l.machines, ',', '')) + 1 END",
}


def _write_clean_rows(fold: Fold, export: ExportCells, ref: str) -> None:
    """The clean rows (a lot without a counted reject: one row, ``CLEAN``) into
    ``sorted_detail``, by one statement: their tail and extra cells are the same for all."""
    extra = _extra(*CLEAN, 0)
    values = {**_LOT_CELLS, **{key: f":{key}" for key in extra}}
    cells = ", ".join(f"COALESCE({values[key]}, '')" for key in export.keys)
    fold.db.execute(
        "INSERT INTO sorted_detail (rate, pos, ref, tail, cells) "
        f"SELECT 0, d.pos, {ref}, :tail, json_array({cells}) "
        f"FROM detail_order d JOIN lots l ON l.idx = d.idx WHERE NOT {COUNTED} ORDER BY d.pos",
        {**extra, "tail": _tail(extra)},
    )


def _write_counted_rows(fold: Fold, export: ExportCells, ref: str) -> None:
    """The rows of the lots with a counted reject into ``sorted_detail``: one per counted
    loss reason of a quantity not 0, in the lot's order of reasons (the lot-by-lot pass's
    encoding: ``_extra``, ``_tail``, the cells in ``export``'s order, empty for none)."""
    keys = export.keys
    lot_cells = ", ".join(_LOT_CELLS.get(key, "NULL") for key in keys)
    rows = fold.db.rows(
        f"SELECT d.pos, {ref}, r.reason, r.qty, l.input_qty, {lot_cells} "
        "FROM detail_order d JOIN lots l ON l.idx = d.idx JOIN rejects r ON r.idx = l.idx "
        f"WHERE {COUNTED} AND r.qty <> 0 AND r.reason IN counted_reasons "
        "ORDER BY d.pos, r.reason"
    )
    own = [export.at[key] for key in _extra(*CLEAN, 0)]  # the row's own cells
    for chunk in batched(rows, ROWS_PER_WRITE):
        stored = []
        for pos, head_ref, reason, qty, input_qty, *cells in chunk:
            extra = _extra(reason, qty, input_qty)
            for at, value in zip(own, extra.values(), strict=True):
                cells[at] = value
            encoded = orjson.dumps(["" if cell is None else cell for cell in cells])
            stored.append((extra["DEFECT_RATE"] or 0, pos, head_ref, _tail(extra), encoded))
        fold.db.executemany(
            "INSERT INTO sorted_detail (rate, pos, ref, tail, cells) VALUES (?, ?, ?, ?, ?)",
            stored,
        )


def _extra(reason: str, defects: Any, qty: Any) -> Extra:
    """What a backward detail row adds to its lot's fields."""
    return {"LOSS_REASON": reason, "DEFECT_QTY": defects, "DEFECT_RATE": rate(defects, qty)}


def _tail(extra: Extra) -> bytes:
    """A row's own fields, closing the JSON object its head leaves open."""
    return b"," + orjson.dumps(extra)[1:] if extra else b"}"


def _forward_details(
    fold: Fold, lots: Iterator[tuple[Any, ...]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The defect lots, each with what it and its descendants (re-keyed to it, as in the
    summary) met at the stations after detection: stations reached, rejects, their rate per
    piece of the lot's detection input (percent) and the station that rejected most."""
    db = fold.db
    downstream_of = rows_at(db.rows("SELECT pos, grp, qty FROM pos_downstream ORDER BY pos"))
    reasons_of = rows_at(
        db.rows(
            "SELECT d.pos, r.reason FROM detail_order d JOIN rejects r ON r.idx = d.idx "
            "WHERE r.qty > 0 AND r.reason IN counted_reasons ORDER BY d.pos, r.qty DESC, r.reason"
        )
    )
    for row in lots:
        pos, name, pj, package, workflow, equipment, qty = row[:7]
        defects = row[11]
        down = dict(downstream_of(pos))
        reasons = reasons_of(pos)
        rejects = sum(down.values())
        worst = (
            min(down.items(), key=lambda kv: (-kv[1], group_order(kv[0])))[0] if rejects else None
        )
        yield (
            pos,
            {
                "CONTAINERNAME": name,
                "DETECTION_EQUIPMENTNAME": equipment,
                "DETECTION_LOSS_REASON": reasons[0][0] if reasons else None,
                "TRACKINQTY": qty,
                "DEFECT_QTY": defects,
                "DOWNSTREAM_STATIONS_REACHED": len(down),
                "DOWNSTREAM_TOTAL_REJECT": rejects,
                "DOWNSTREAM_REJECT_RATE": rate(rejects, qty),
                "PJ_TYPE": pj,
                "PRODUCTLINENAME": package,
                "WORKFLOW": workflow,
                "WORST_DOWNSTREAM_STATION": worst,
            },
        )


def _base(
    name: str, pj: Any, package: Any, workflow: Any, equipment: Any, qty: Any
) -> dict[str, Any]:
    return {
        "CONTAINERNAME": name,
        "PJ_TYPE": pj,
        "PRODUCTLINENAME": package,
        "WORKFLOW": workflow,
        "DETECTION_EQUIPMENTNAME": equipment,
        "INPUT_QTY": qty,
    }
