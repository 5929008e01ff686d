"""The scratch tables of the mid-section-defect analysis: the folder
(``pipeline.stages.msd.folding``) writes them, the readers of a finished ``Fold`` (result, detail
rows, attribution) read them.

What grows with the trace lives here, not in Python objects: per detection lot its quantities,
rejects and root; which lots of each family belong to which detection lot; what each family lot
used (backward) or met downstream (forward). Quantities are pieces; ``idx`` numbers the detection
lots in the order they came, ``pos`` in detail order (worst defect rate first). ``FINISH`` and
``DETAIL_ORDER`` are the statements ``MsdAggregator.finish`` builds the readers' tables with.
"""

from __future__ import annotations

from pipeline import domains

#: The lots' index by lot id (``SCHEMA``), built again in one sort after a lot record's lots,
#: which are inserted without it: reading a record of 85K lots (114K CIDs) took 1.33 s against
#: 1.53 s with the index kept up to date row by row (medians of four alternating pairs, one
#: process, 2026-12-07).
LOTS_BY_CID = "CREATE UNIQUE INDEX lots_by_cid ON lots (cid)"

SCHEMA = f"""
CREATE TABLE wanted (cid TEXT PRIMARY KEY) WITHOUT ROWID;
-- every detection lot that came (the masks not applied), in the order it came
CREATE TABLE detected (seq INTEGER PRIMARY KEY, cid TEXT NOT NULL UNIQUE);
CREATE TABLE lots (
    idx INTEGER PRIMARY KEY, cid TEXT NOT NULL, name TEXT NOT NULL, pj_type TEXT,
    package TEXT, workflow TEXT, runcard TEXT, equipment TEXT, input_qty NOT NULL, trackin TEXT,
    defect_qty NOT NULL DEFAULT 0, related_count INTEGER NOT NULL DEFAULT 0, root TEXT,
    -- 1: the lot has a reject that counts (a reason the mask selects, a quantity not 0): a row
    -- of its own per such reason in the detail table; set with ``defect_qty``
    counted INTEGER NOT NULL DEFAULT 0,
    -- backward, what the lot's family used before detection (finish, or a lot record):
    -- distinct machine indices comma-joined, distinct material indices as a JSON array
    machines TEXT, materials TEXT,
    -- a lot record's lot: the row of its detail head in the record's heads (lot_record)
    head_ref INTEGER
);
-- a lot once (a repeated detection row keeps its first); a lot record's lots come without it,
-- which is built once they are in (LOTS_BY_CID)
{LOTS_BY_CID};
CREATE TABLE rejects (
    idx INTEGER NOT NULL, reason TEXT NOT NULL, qty NOT NULL, PRIMARY KEY (idx, reason)
) WITHOUT ROWID;
-- the loss reasons of the rejects that count as defects under the mask (every one without it):
-- filled once the rejects are in, so readers filter with ``reason IN counted_reasons`` (SQL
-- alone, not a Python call per reject row)
CREATE TABLE counted_reasons (reason TEXT PRIMARY KEY) WITHOUT ROWID;
-- the loss reasons of the detection lots' rejects of a quantity > 0, every one, the mask
-- aside (the result's ``available_loss_reasons``): filled by finish from ``rejects``, or from
-- a lot record, which then brings the counted rejects alone
CREATE TABLE available_reasons (reason TEXT PRIMARY KEY) WITHOUT ROWID;
-- each detection lot -> the lots of its family (itself, its ancestors or descendants); filled in
-- detection-lot order, so it is written in key order (its index by lot comes after)
CREATE TABLE owners (idx INTEGER NOT NULL, cid TEXT NOT NULL, PRIMARY KEY (idx, cid))
    WITHOUT ROWID;
-- the lineage as given, staged to be applied in bulk (set_lineage)
CREATE TABLE staged_roots (cid TEXT NOT NULL, root TEXT);
CREATE TABLE staged_related (seed TEXT NOT NULL, cid TEXT NOT NULL);
CREATE TABLE staged_counts (seed TEXT NOT NULL, n INTEGER NOT NULL);
CREATE TABLE machines (
    idx INTEGER PRIMARY KEY, grp TEXT NOT NULL, name TEXT NOT NULL, equipment_id TEXT NOT NULL
);
CREATE TABLE materials (
    idx INTEGER PRIMARY KEY, part TEXT NOT NULL, lot TEXT NOT NULL, UNIQUE (part, lot)
);
-- the description of each material part, the first one the events gave (a label only)
CREATE TABLE part_descriptions (part TEXT PRIMARY KEY, description TEXT NOT NULL) WITHOUT ROWID;
-- backward: what each family lot used, appended as folded (repeats are harmless: readers
-- take distinct values); indexed by lot once the folding is done (finish). Machines: one row
-- per lot and event batch, its distinct machine indices ascending, comma-joined (family_use)
CREATE TABLE cid_machines (cid TEXT NOT NULL, machines TEXT NOT NULL);
CREATE TABLE cid_materials (cid TEXT NOT NULL, material INTEGER NOT NULL);
-- forward: the lots that reached each downstream station and machine, rejects per station and
-- per loss reason (positive quantities)
CREATE TABLE station_lots (grp TEXT NOT NULL, cid TEXT NOT NULL, PRIMARY KEY (grp, cid))
    WITHOUT ROWID;
CREATE TABLE machine_lots (machine TEXT NOT NULL, cid TEXT NOT NULL, PRIMARY KEY (machine, cid))
    WITHOUT ROWID;
CREATE TABLE cid_downstream (cid TEXT NOT NULL, grp TEXT NOT NULL, qty NOT NULL,
    PRIMARY KEY (cid, grp)) WITHOUT ROWID;
CREATE TABLE cid_reasons (cid TEXT NOT NULL, reason TEXT NOT NULL, qty NOT NULL,
    PRIMARY KEY (cid, reason)) WITHOUT ROWID;
-- finish: the detection lots in detail order (worst defect rate first); per material (part,
-- lot), the detection lots using it; forward, each lot's rejects per downstream station, by
-- position
-- (pos counts from 1 without a gap: filled once, in order)
CREATE TABLE detail_order (pos INTEGER PRIMARY KEY, idx INTEGER NOT NULL UNIQUE);
CREATE TABLE material_totals (material INTEGER PRIMARY KEY, lots INTEGER NOT NULL,
    input NOT NULL, defects NOT NULL);
CREATE TABLE pos_downstream (pos INTEGER NOT NULL, grp TEXT NOT NULL, qty NOT NULL,
    PRIMARY KEY (pos, grp)) WITHOUT ROWID;
"""

#: After the folding: what the result and the detail table read, built in bulk (an index is
#: sorted once, rather than kept up to date row by row while folding).
FINISH = {
    domains.BACKWARD: (
        # covering: the family pass reads nothing else of them (a lookup of the row as well
        # took it from ~1 s to ~3 s at 114K); it then puts what each detection lot's family
        # used on the lot (``family_use.fill_family_use``; a lot record's lots hold it already)
        "CREATE INDEX cid_machines_by_cid ON cid_machines (cid, machines)",
        "CREATE INDEX cid_materials_by_cid ON cid_materials (cid, material)",
    ),
    domains.FORWARD: (
        "INSERT INTO pos_downstream SELECT d.pos, c.grp, SUM(c.qty) FROM cid_downstream c "
        "JOIN owners o ON o.cid = c.cid JOIN detail_order d ON d.idx = o.idx "
        "GROUP BY d.pos, c.grp",
    ),
}
#: Backward, after ``FINISH``: each material's detection lots, their input and defects. A
#: detection lot counts once per material (part, lot), however many of its family used it
#: (MSD-11).
MATERIAL_TOTALS = (
    "INSERT INTO material_totals SELECT j.value, COUNT(*), SUM(l.input_qty), "
    "SUM(l.defect_qty) FROM lots l, json_each(l.materials) j GROUP BY j.value"
)
#: ``MATERIAL_TOTALS`` from a lot record's (material, lots, input) rows (``?``, inserted with no
#: defects): the lots' defects are added up here, of the lots that have any (the others add 0).
MATERIAL_DEFECTS = (
    "UPDATE material_totals SET defects = d.qty FROM (SELECT j.value AS material, "
    "SUM(l.defect_qty) AS qty FROM lots l, json_each(l.materials) j WHERE l.defect_qty <> 0 "
    "GROUP BY j.value) d WHERE d.material = material_totals.material"
)
#: Detection lots in detail order (backward every lot; forward those with defects).
DETAIL_ORDER = {
    domains.BACKWARD: "",
    domains.FORWARD: "WHERE defect_qty > 0",
}
