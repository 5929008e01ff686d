"""The lot record of a backward mid-section-defect analysis: each detection lot as no mask
changes it, kept so that the same trace under another mask is analysed from it alone, with no
detection rows, lineage or events read again.

An analysis over every detection lot of a trace (no ``pj_types``/``packages`` mask; the loss
reasons do not matter: they decide which rejects are defects, not what a lot is) records, per
detection lot in the order the lots came: its detection row's fields, its rejects at the
detection station per loss reason (every reason), its related lots' count and root, the
machines and the material lots (indices into the fold's machines and materials) its family
used before the detection station, and where its detail rows' shared fields (the head, ~1 KB:
its machines and materials as the detail pass encoded them) are kept: a row of the record's
heads, a part stored beside it (``pipeline.engine.detail_rows``). A later analysis of the same
trace takes these in place of the detection queries, ``set_lineage`` and the event batches
(``MsdAggregator.add_recorded_lots``): each lot then stands for its whole family, which is all
the backward figures ask of it (MSD-11 counts a machine or material once per detection lot
anyway), and its detail rows name the recorded head, which it never reads or writes again.

Forward is not recorded: which lots are the seeds of the forward re-keying depends on the
loss-reason mask, so a forward re-analysis folds the events again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.stages.msd.attribution import machine_credit
from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.folding import DETECTION_COLUMNS
from pipeline.stages.msd.machines import Machine

#: The record's layout (its rows' columns and what they hold, its meta's fields): raise it with
#: any change to them, so a record written before is not read as if it were of this one.
VERSION = 4
#: One row per detection lot (``lots`` of ``pipeline.stages.msd.tables`` but its defects): the
#: detection row's fields, the related lots' count, the root lot name, the distinct machine
#: indices comma-joined (``NULL``: none), the distinct material indices as a JSON array, the
#: rejects as [loss reason, qty] pairs, and the row of the record's heads holding the detail
#: rows' shared fields (0-based).
COLUMNS = (
    *DETECTION_COLUMNS,
    "RELATED_COUNT",
    "ROOT",
    "MACHINES",
    "MATERIALS",
    "REJECTS",
    "HEAD_REF",
)


@dataclass(frozen=True)
class LotRecordMeta:
    """What the rows refer to: the machines and the material lots by index, the material
    parts' descriptions, whether the trace had its lineage (``genealogy_status``), and what
    no loss-reason mask changes: the machines' credit (``MachineCredit.base``), each
    material lot's detection lots and their input (``material_totals`` but the defects) and
    the loss reasons of the lots' rejects (``available_reasons``; a re-analysis of every lot
    then takes only the rejects its mask counts)."""

    machines: tuple[Machine, ...]
    descriptions: dict[str, str]
    lineage_given: bool
    credit: dict[str, Any]  # the machines' credit of every lot but its defects (``base``)
    materials: tuple[tuple[int, str, str], ...]  # (index, part, lot) of the material lots
    material_base: tuple[tuple[int, int, Any], ...]  # (index, lots, input) of the same
    reasons: tuple[str, ...]  # the loss reasons of the rejects of a quantity > 0

    def to_blob(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "machines": [(m.group, m.name, m.equipment_id) for m in self.machines],
            "descriptions": self.descriptions,
            "lineage_given": self.lineage_given,
            "credit": self.credit,
            "materials": self.materials,
            "material_base": self.material_base,
            "reasons": self.reasons,
        }

    @classmethod
    def from_blob(cls, blob: dict[str, Any]) -> LotRecordMeta | None:
        """The meta of a lot record; ``None`` when it is of another ``VERSION`` (recorded by an
        earlier release: the analysis reads the detection rows, lineage and events instead)."""
        if blob.get("version") != VERSION:
            return None
        machines: Sequence[Sequence[str]] = blob["machines"]
        return cls(
            tuple(Machine(g, n, e) for g, n, e in machines),
            dict(blob["descriptions"]),
            bool(blob["lineage_given"]),
            dict(blob["credit"]),
            tuple((int(i), p, lot) for i, p, lot in blob["materials"]),
            tuple((int(i), int(n), qty) for i, n, qty in blob["material_base"]),
            tuple(blob["reasons"]),
        )


def record_meta(fold: Fold) -> LotRecordMeta:
    """The meta of a fold's lot record (read its detail rows first: the pass that writes them
    credits every lot, and the credit is kept)."""
    descriptions = dict(fold.db.rows("SELECT part, description FROM part_descriptions"))
    credit = machine_credit(fold).base()
    materials = tuple(fold.db.rows("SELECT idx, part, lot FROM materials ORDER BY idx"))
    totals = tuple(fold.db.rows("SELECT material, lots, input FROM material_totals ORDER BY 1"))
    reasons = tuple(r for (r,) in fold.db.rows("SELECT reason FROM available_reasons ORDER BY 1"))
    return LotRecordMeta(
        fold.machines, descriptions, fold.lineage_given, credit, materials, totals, reasons
    )
