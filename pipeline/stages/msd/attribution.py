"""The backward attribution of the mid-section-defect analysis: what each upstream machine is
credited with (the detection lots whose families used it, their input and defects) and the
attribution rows of the result.

The machines each detection lot is credited with (tens per lot: millions of pairs in a big trace)
are joined into one column per lot when the fold is finished (``lots.machines``), read once, in
detail order (``LOTS``), and the per-machine figures are added up in that same pass
(``MachineCredit``), so the pairs are never held in Python. The detail rows' pass
(``pipeline.stages.msd.detail``) credits the machines on the way and keeps the credit on the
fold; asked for before it, or without it, ``machine_credit`` makes a pass of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.stages.msd.fold import Fold
from pipeline.stages.msd.machines import MachineCredit
from pipeline.stages.msd.pareto import UNKNOWN, joined, rate

#: A detection lot in detail order: its position, the columns the detail table starts from,
#: its defects, (backward) the distinct machines its family used, as "3,17,42"
#: (``MsdAggregator.finish``), and where a lot record keeps its detail head (``head_ref``).
_LOTS = """
SELECT d.pos, l.name, l.pj_type, l.package, l.workflow, l.equipment, l.input_qty, l.runcard,
       l.related_count, l.root, l.cid, l.defect_qty, l.machines, l.head_ref
FROM detail_order d JOIN lots l ON l.idx = d.idx {where}
ORDER BY d.pos
"""
LOTS = _LOTS.format(where="")
#: Whether a lot (``l``) has a counted reject (a detail row of its own per loss reason; any
#: other lot's one row is the clean one): ``lots.counted``, set with the lots' defects.
COUNTED = "l.counted"
#: ``LOTS`` of the lots with a counted reject: the detail pass of a lot record read under the
#: loss-reason mask alone, whose clean rows are written in SQL (``pipeline.stages.msd.detail``).
COUNTED_LOTS = _LOTS.format(where=f"WHERE {COUNTED}")


def machine_credit(fold: Fold) -> MachineCredit:
    """What each machine is credited with (backward): from the detail pass when it ran to its
    end, else from a pass over the detection lots that only adds up their machines (when the
    result is asked for before, or without, the detail rows); kept on the fold."""
    if fold.memo.credit is None:
        credit = new_credit(fold)
        for row in fold.db.rows(LOTS):
            credit_lot(credit, row)
        fold.memo.credit = credit
    return fold.memo.credit


def machine_ids(fold: Fold) -> list[str]:
    """Equipment ids in the attribution (look their families up before ``result``)."""
    if not fold.backward:
        return []
    lots = machine_credit(fold).lots
    return sorted({m.equipment_id for i, m in enumerate(fold.machines) if lots[i]} - {""})


def new_credit(fold: Fold) -> MachineCredit:
    """An empty credit of the fold's machines; or, when its lot record brought the credit of
    its lots' number and input (``Fold.credit_base``), that one, defects still to add."""
    if fold.credit_base is not None:
        return MachineCredit.from_base(fold.machines, fold.credit_base)
    return MachineCredit(fold.machines)


def credit_lot(credit: MachineCredit, row: tuple[Any, ...]) -> list[int] | None:
    """Credit the lot of a ``LOTS`` row; its distinct machine indices, or ``None`` when the
    credit needed no look at them (a credit made from a base, a lot without defects)."""
    _pos, _name, pj, package, workflow, equipment, qty, _rc, _rel, _root, _cid = row[:11]
    defects, used = row[11:13]
    if credit.based and not defects:
        return None
    machines = list(map(int, used.split(","))) if used else []  # distinct (group_concat)
    if machines and credit.based:
        credit.add_defects(machines, defects)
    elif machines:
        credit.add(machines, qty, defects, (workflow, package, pj, equipment))
    return machines


def attribution(fold: Fold, families: Mapping[str, str]) -> list[dict[str, Any]]:
    """The attribution rows: one per machine credited with a detection lot, most defects first
    (the contract's order; the dashboard ranks them itself, ``top_suspects`` by rate);
    ``families``: ``RESOURCEFAMILYNAME`` per equipment id (else ``(未知)``)."""
    credit = machine_credit(fold)
    rows: list[dict[str, Any]] = []
    for index, m in enumerate(fold.machines):
        if not credit.lots[index]:
            continue  # seen only on lots no detection lot owns
        defects, inputs = credit.defects[index], credit.inputs[index]
        profiles = credit.profiles(index)
        rows.append(
            {
                "WORKCENTER_GROUP": m.group,
                "EQUIPMENT_NAME": m.name,
                "EQUIPMENT_ID": m.equipment_id,
                "RESOURCEFAMILYNAME": families.get(m.equipment_id) or UNKNOWN,
                "DETECTION_LOT_COUNT": credit.lots[index],
                "INPUT_QTY": inputs,
                "DEFECT_QTY": defects,
                "DEFECT_RATE": rate(defects, inputs),
                "WORKFLOW": joined(p[0] for p in profiles),
                "PRODUCTLINENAME": joined(p[1] for p in profiles),
                "PJ_TYPE": joined(p[2] for p in profiles),
                "DETECTION_EQUIPMENTNAME": joined(p[3] for p in profiles),
            }
        )
    rows.sort(
        key=lambda r: (
            -r["DEFECT_QTY"],
            -r["DEFECT_RATE"],
            r["EQUIPMENT_NAME"],
            r["WORKCENTER_GROUP"],
            r["EQUIPMENT_ID"],
        )
    )
    return rows
