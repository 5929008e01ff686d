"""The detail table of the mid-section-defect analysis, read from a finished fold one detection
lot at a time, worst defect rate first.

Backward, one row per lot and loss reason (a clean lot gets one row with no reason), with the
machines and materials its family used before the detection station; forward, one row per lot
with defects, with its rejects at the stations after it. The pass crediting the machines
(``pipeline.stages.msd.attribution``) is this one: read to its end, it leaves the credit on the
fold, so the result afterwards reads no lot again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple

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
    """The CSV cells (``EXPORT_COLUMNS`` of a direction; a missing value is empty) of a lot's
    detail rows: the lot's cells taken once, each row's own fields put in their places."""

    def __init__(self, direction: str) -> None:
        self.keys = [key for _, key in EXPORT_COLUMNS[direction]]
        self.at = {key: i for i, key in enumerate(self.keys)}

    def of(self, lot: dict[str, Any], extras: list[Extra]) -> Iterator[list[Any]]:
        """Each of the lot's rows' cells, in the order of ``extras``."""
        base = [lot.get(key) for key in self.keys]
        at = self.at
        for extra in extras:
            cells = base.copy()
            for key, value in extra.items():
                if key in at:
                    cells[at[key]] = value
            yield ["" if cell is None else cell for cell in cells]


class DetailLot(NamedTuple):
    """One detection lot of the detail table: its position (worst defect rate first), the
    fields of the export's cells its rows share, what each of its rows adds, its head: all the
    fields its rows share, a JSON object left open (``None``: a lot record gave the lot, and
    its record's heads keep the head), and ``ref``, the row of the heads holding the head
    (built heads are kept in detail order: ``pos - 1``)."""

    pos: int
    fields: dict[str, Any]
    extras: list[Extra]
    head: bytes | None  # None: recorded
    ref: int


class SortedDetails:
    """The detail rows of a fold in the table's default order, defect rate descending (the old
    backend's; ties in the order they came), as what is stored of them and as their export
    cells. Held in the fold's scratch database (``sorted_details``), not in memory.

    A lot's shared fields (backward: its machines and materials, most of a row's bytes: the
    head) are encoded once per lot, not once per loss-reason row, and stored once per lot: a
    row is stored as the row of its lot's head in the heads (``ref``) and its own few fields
    (the tail, which closes the object); its JSON is the head joined to the tail. A fold a lot
    record gave builds no head: its rows name the record's."""

    #: Ties in detail order, a lot's rows in the order it gave them (the clean rows of
    #: ``clean_rows_in_sql`` are written before the others: ``seq`` alone is not that order).
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
    """The detail rows (``detail_lots``) read once (to its end: the machines are credited)
    into the fold's scratch database. Its tables stay there until the fold's scratch database
    is closed (dropping ~100K rows of them took ~2 % of a 114K analysis; the closing frees
    them at no cost), or until the next ``sorted_details`` of the fold."""
    db, direction = fold.db, fold.direction
    _drop_details(db)
    db.execute("CREATE TEMP TABLE detail_lot (pos INTEGER PRIMARY KEY, head BLOB)")
    db.execute(
        "CREATE TEMP TABLE sorted_detail "
        "(rate REAL, seq INTEGER PRIMARY KEY, pos INTEGER, ref INTEGER, tail BLOB, cells BLOB)"
    )
    export, backward = ExportCells(direction), fold.backward
    in_sql = clean_rows_in_sql(fold)
    try:
        if in_sql:
            _write_clean_rows(fold, export)
        for chunk in batched(detail_lots(fold, counted_only=in_sql), LOTS_PER_WRITE):
            heads, rows = [], []
            for pos, lot, extras, head, ref in chunk:
                if head is not None:
                    heads.append((pos, head))
                for extra, cells in zip(extras, export.of(lot, extras), strict=True):
                    rows.append(
                        (
                            (extra.get("DEFECT_RATE") or 0) if backward else 0,
                            pos,
                            ref,
                            _tail(extra),
                            orjson.dumps(cells),
                        )
                    )
            db.executemany("INSERT INTO detail_lot VALUES (?, ?)", heads)
            db.executemany(
                "INSERT INTO sorted_detail (rate, pos, ref, tail, cells) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
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


def detail_lots(fold: Fold, *, counted_only: bool = False) -> Iterator[DetailLot]:
    """The detail table, one lot at a time, worst defect rate first. Backward, one row per
    loss reason (a clean lot gets one row with no reason); forward, one row per lot with
    defects. Backward it credits the machines on the way, and when read to its end keeps that
    credit on the fold, so ``result`` needs no pass of its own afterwards. ``counted_only``
    (backward, a credit that adds defects alone: ``clean_rows_in_sql``): the lots with a
    counted reject only."""
    if not fold.backward:
        for pos, row in _forward_details(fold, fold.db.rows(LOTS)):
            yield DetailLot(pos, row, [{}], orjson.dumps(row)[:-1], pos - 1)
        return
    credit = new_credit(fold)
    if counted_only and not credit.based:
        raise ValueError("every lot is credited: none is left out of the pass")
    yield from _backward_details(fold, credit, counted_only=counted_only)
    fold.memo.credit = credit


def clean_rows_in_sql(fold: Fold) -> bool:
    """Whether the clean rows (a lot without a counted reject: one row, ``CLEAN``) are written
    by one statement (``_write_clean_rows``) rather than lot by lot: for a lot record read under
    the loss-reason mask alone, whose heads are recorded and whose machines are credited with
    defects only (``Fold.credit_base``): then such a lot needs nothing of Python."""
    return fold.backward and fold.recorded and fold.credit_base is not None


def _write_clean_rows(fold: Fold, export: ExportCells) -> None:
    """The clean rows of ``clean_rows_in_sql``'s fold into ``sorted_detail``: the same tail
    and export cells the lot-by-lot pass writes (``_backward_details``; a test compares them),
    their head the recorded one."""
    extra = _extra(*CLEAN, 0)
    values = {
        "CONTAINERNAME": "l.name",
        "PJ_TYPE": "l.pj_type",
        "PRODUCTLINENAME": "l.package",
        "WORKFLOW": "l.workflow",
        "DETECTION_EQUIPMENTNAME": "l.equipment",
        "INPUT_QTY": "l.input_qty",
        "ANCESTOR_COUNT": "l.related_count",
        # the distinct machines, comma-joined (or NULL)
        "UPSTREAM_MACHINE_COUNT": "CASE WHEN COALESCE(l.machines, '') = '' THEN 0 ELSE "
        "length(l.machines) - length(replace(l.machines, ',', '')) + 1 END",
        **{key: f":{key}" for key in extra},
    }
    cells = ", ".join(f"COALESCE({values[key]}, '')" for key in export.keys)
    fold.db.execute(
        "INSERT INTO sorted_detail (rate, pos, ref, tail, cells) "
        f"SELECT 0, d.pos, l.head_ref, :tail, json_array({cells}) "
        f"FROM detail_order d JOIN lots l ON l.idx = d.idx WHERE NOT {COUNTED} ORDER BY d.pos",
        {**extra, "tail": _tail(extra)},
    )


def _extra(reason: str, defects: Any, qty: Any) -> Extra:
    """What a backward detail row adds to its lot's fields."""
    return {"LOSS_REASON": reason, "DEFECT_QTY": defects, "DEFECT_RATE": rate(defects, qty)}


def _tail(extra: Extra) -> bytes:
    """A row's own fields, closing the JSON object its head leaves open."""
    return b"," + orjson.dumps(extra)[1:] if extra else b"}"


def _backward_details(
    fold: Fold, credit: MachineCredit, *, counted_only: bool
) -> Iterator[DetailLot]:
    """The lots (with what their families used) and their rejects are read as two streams in
    detail order and merged here: one query each, whatever the number of lots."""
    db = fold.db
    lots = db.rows(COUNTED_LOTS if counted_only else LOTS)
    rejects_of = rows_at(
        db.rows(
            "SELECT d.pos, r.reason, r.qty FROM detail_order d JOIN rejects r ON r.idx = d.idx "
            "WHERE r.qty <> 0 AND r.reason IN counted_reasons ORDER BY d.pos, r.reason"
        )
    )
    # Built heads only: each lot's material lots, sorted (a lot record brings its heads).
    materials_of = rows_at(
        db.rows(
            "SELECT d.pos, m.part, m.lot FROM detail_order d JOIN lots l ON l.idx = d.idx, "
            "json_each(l.materials) j JOIN materials m ON m.idx = j.value "
            "ORDER BY d.pos, m.part, m.lot"
        )
        if not fold.recorded
        else iter(())
    )
    # Machines are the factory's few hundred: one entry each, shared by every row naming it.
    machine_entries = [{"station": m.group, "machine": m.name} for m in fold.machines]
    machine_order = [(group_order(m.group), m.name) for m in fold.machines]
    for row in lots:
        pos, name, pj, package, workflow, equipment, qty, runcard, related, root, cid = row[:11]
        used = credit_lot(credit, row)
        extras = [_extra(reason, defects, qty) for reason, defects in rejects_of(pos) or [CLEAN]]
        base = _base(name, pj, package, workflow, equipment, qty)
        if fold.recorded:  # the head is recorded: only the export's cells
            # (machines the credit did not look at are counted in their comma-joined list)
            count = len(used) if used is not None else (row[12] or "").count(",") + bool(row[12])
            cells = {**base, "ANCESTOR_COUNT": related, "UPSTREAM_MACHINE_COUNT": count}
            yield DetailLot(pos, cells, extras, None, row[13])
            continue
        assert used is not None  # a credit made from a base serves recorded folds only
        used.sort(key=machine_order.__getitem__)
        materials = materials_of(pos)
        upstream = {
            **base,
            "CONTAINERID": cid,
            "FINISHEDRUNCARD": runcard,
            "ANCESTOR_COUNT": related,
            "UPSTREAM_MACHINES": [machine_entries[m] for m in used],
            "UPSTREAM_MACHINE_COUNT": len(used),
            "UPSTREAM_MATERIALS": [{"part": p, "lot": m} for p, m in materials],
            "WAFER_ROOT": root,
        }
        # the object left open for each row's own fields
        yield DetailLot(pos, upstream, extras, orjson.dumps(upstream)[:-1], pos - 1)


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
