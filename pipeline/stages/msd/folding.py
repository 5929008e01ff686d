"""Stage 4, aggregation: the mid-section-defect analysis, folded incrementally.

Feed it in order: the detection lots and their rejects at the station (``add_detection_lots``,
``add_detection_rejects``), the lineage of those lots (``set_lineage``), then event batches as they
stream (``add_events``), and ``finish`` it: it returns the frozen ``Fold`` that the readers take
(``pipeline.stages.msd.result``, ``.detail``, ``.attribution``). Calls out of order, and any
input after ``finish``, raise ``RuntimeError``. Backward, a repeated batch changes nothing (links
are sets); forward sums rows, so each event batch must be fed exactly once.

State: per detection lot (its quantities, rejects, root), which lots of the family belong to which
detection lot, and what each family lot used (machines, materials) or met downstream (stations,
rejects) live in a ``Scratch`` database (``pipeline.stages.msd.tables``), not in Python objects: a
worker's memory stays the same whether the trace has 10K lots or 500K. Python holds one event
batch, the machines (a few hundred, the factory's) and the forward totals per station and
machine. Each event row is folded and dropped; the per-detection-lot view is joined in SQL once,
by ``finish``.

Backward (upstream attribution): every machine a detection lot or one of its ancestors used at a
group *before* the detection station is credited with that lot's input and defects; per machine
``DEFECT_RATE = DEFECT_QTY / INPUT_QTY x 100``. Bad upstream machines rise to the top.

Forward (downstream reject rate): the detection lots with a defect (under ``loss_reasons``) are the
seeds; every descendant's downstream history and rejects are re-keyed to the seeds it descends
from (the ``owners`` table, MSD-08), and only stations *after* the detection station count. A
descendant of two seeds counts once in the totals per station (its rows are physical), and for
each seed in that seed's detail row; its rejects per downstream reason (``cid_reasons``) are what
the front x downstream reason matrix joins with its seeds' front reasons (MSD-09).

Several detection stations: upstream is the groups before the *earliest* selected station in
process order, downstream the groups after the *latest* one, so a selected station is never
counted as upstream or downstream of the detection (with 成型 and 測試 selected, backward credits
切割 … 焊接_DW, forward looks at nothing: no group comes after 測試).

The masks: ``loss_reasons`` decides which rejects count as defects; ``pj_types`` and ``packages``
(date mode) keep only the detection lots of those PJ types / packages (``PJ_TYPE`` /
``PRODUCTLINENAME``, trimmed). Neither narrows the seeds: they are read-time masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline import domains
from pipeline.config import DEFAULT_PARETO_TOP_N, DEFAULT_SCRATCH_CACHE_MB
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch, batched
from pipeline.stages.msd.family_use import fill_family_use, joined
from pipeline.stages.msd.fold import Downstream, Fold
from pipeline.stages.msd.machines import Machine
from pipeline.stages.msd.pareto import UNKNOWN, rate
from pipeline.stages.msd.tables import (
    DETAIL_ORDER,
    FINISH,
    LOTS_BY_CID,
    MATERIAL_DEFECTS,
    MATERIAL_TOTALS,
    SCHEMA,
)
from pipeline.stages.scratch import Scratch
from pipeline.workcenters import DEFAULT_STATION, UNKNOWN_ORDER, group_order, require_group

if TYPE_CHECKING:  # the record's module reads DETECTION_COLUMNS from this one
    from pipeline.stages.msd.lot_record import LotRecordMeta

NA = "(NA)"
NO_REASON = "(未填寫)"
#: The columns of a detection lot the analysis reads (``msd/detection_lots`` has them all).
DETECTION_COLUMNS = (
    "CONTAINERID",
    "CONTAINERNAME",
    "PJ_TYPE",
    "PRODUCTLINENAME",
    "WORKFLOW",
    "FINISHEDRUNCARD",
    "DETECTION_EQUIPMENTNAME",
    "TRACKINQTY",
    "TRACKINTIMESTAMP",
)
#: Seed/related pairs applied per round trip to the scratch database (pairs).
LINEAGE_CHUNK = 1000
#: Lots looked up in one query when an event batch's lots are checked for owners (lots).
OWNED_LOOKUP = 500
#: Recorded lots written to the scratch database per round trip (lots).
RECORD_CHUNK = 1000


class MsdAggregator:
    """Folds one trace's mid-section-defect inputs; ``finish`` hands over the ``Fold``. Not
    thread-safe; one per job. Close it (or use it as a context manager) to drop its scratch
    database, and with it the fold's."""

    def __init__(
        self,
        *,
        direction: str = domains.BACKWARD,
        stations: Sequence[str] = (DEFAULT_STATION,),
        loss_reasons: Iterable[str] | None = None,
        pj_types: Iterable[str] = (),
        packages: Iterable[str] = (),
        date_mode: bool = True,
        top_n: int = DEFAULT_PARETO_TOP_N,
        cache_mb: int = DEFAULT_SCRATCH_CACHE_MB,
    ) -> None:
        if direction not in domains.DIRECTIONS:
            raise InvalidInput(
                f"direction must be backward or forward, got {direction!r}", field="direction"
            )
        self.direction = direction
        groups = sorted({require_group(name) for name in stations}, key=lambda g: g.order)
        if not groups:
            raise InvalidInput("at least one detection station is needed", field="params.station")
        #: The stations in process order, comma-joined (the result's ``station``).
        self.station = ",".join(g.name for g in groups)
        #: Upstream is before the earliest station, downstream after the latest.
        self.upstream_before = groups[0].order
        self.downstream_after = groups[-1].order
        self.loss_reasons = {r for r in (loss_reasons or ()) if r}
        self.pj_types = {t.strip() for t in pj_types if t.strip()}
        self.packages = {p.strip() for p in packages if p.strip()}
        self.date_mode = date_mode
        self.top_n = top_n
        self.db = Scratch(SCHEMA, cache_mb=cache_mb)
        self.db.function("rate", 2, rate)
        self.lineage_given = False
        self._lineage_set = False  # detection rows before, events after
        self._recorded = False  # add_recorded_lots stood in for the detection, lineage, events
        # the meta of a lot record read with every lot kept (no PJ-type or package mask): what
        # no loss-reason mask changes (the machines' credit, the materials' lots and input, the
        # loss reasons there are) is taken from it, not added up again
        self._base: LotRecordMeta | None = None
        self._restricted = False
        self._fold: Fold | None = None  # made by finish; nothing is folded after it
        self.machines: list[Machine] = []
        self.machine_index: dict[tuple[str, str, str], int] = {}
        self.downstream = Downstream()

    def __enter__(self) -> MsdAggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @property
    def backward(self) -> bool:
        return self.direction == domains.BACKWARD

    def selected(self, reason: str) -> bool:
        """Whether a loss reason counts as a defect (all do unless ``loss_reasons`` is set)."""
        return not self.loss_reasons or reason in self.loss_reasons

    # ---- inputs --------------------------------------------------------------------------
    def restrict_to(self, cids: Iterable[str]) -> None:
        """Keep only the detection rows of these lots (call before ``add_detection_lots``)."""
        self._require(lineage_set=False)
        self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((c,) for c in cids))
        self._restricted = True

    def masked(self, pj_type: str | None, package: str | None) -> bool:
        """Whether the ``pj_types``/``packages`` masks leave a detection lot out."""
        if self.pj_types and (pj_type or "").strip() not in self.pj_types:
            return True
        return bool(self.packages) and (package or "").strip() not in self.packages

    def add_detection_lots(self, batch: RowBatch) -> None:
        """Rows of ``msd/detection_lots``: one per lot (a repeated lot keeps its first row);
        lots the ``pj_types``/``packages`` masks leave out are only noted as detected (their
        rejects are still asked for: see ``detection_cids``)."""
        self._require(lineage_set=False)
        at = [batch.index(name) for name in DETECTION_COLUMNS]
        rows = [tuple(row[i] for i in at) for row in batch.rows]
        keep = " WHERE EXISTS (SELECT 1 FROM wanted WHERE cid = ?1)" if self._restricted else ""
        self.db.executemany(
            f"INSERT OR IGNORE INTO detected (cid) SELECT ?1{keep}", ((r[0],) for r in rows)
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO lots (cid, name, pj_type, package, workflow, runcard, "
            f"equipment, input_qty, trackin) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9{keep}",
            (
                (cid, name or cid, pj, package, workflow, runcard, equipment, qty or 0, trackin)
                for cid, name, pj, package, workflow, runcard, equipment, qty, trackin in rows
                if not self.masked(pj, package)
            ),
        )

    def add_detection_rejects(self, batch: RowBatch) -> None:
        """Rows of ``msd/detection_rejects``: (lot, loss reason, qty); other lots are ignored."""
        self._require(lineage_set=False)
        cid_at, reason_at = batch.index("CONTAINERID"), batch.index("LOSSREASONNAME")
        qty_at = batch.index("REJECTQTY")
        self.db.executemany(
            "INSERT INTO rejects (idx, reason, qty) SELECT idx, ?2, ?3 FROM lots WHERE cid = ?1 "
            "ON CONFLICT (idx, reason) DO UPDATE SET qty = qty + excluded.qty",
            ((r[cid_at], r[reason_at] or NO_REASON, r[qty_at] or 0) for r in batch.rows),
        )

    def detection_cids(self) -> Iterator[str]:
        """The detection lots so far, in the order they came, masked or not: the rejects query
        over them is the same under every mask, so a re-analysis reads it back rather than
        asking the warehouse (rejects of lots the masks leave out are dropped as they come)."""
        return (cid for (cid,) in self.db.rows("SELECT cid FROM detected ORDER BY seq"))

    def detected_count(self) -> int:
        """How many detection lots came, masked or not."""
        return int(self.db.value("SELECT COUNT(*) FROM detected"))

    def lot_count(self) -> int:
        """How many detection lots the analysis counts (those the masks keep)."""
        return int(self.db.value("SELECT COUNT(*) FROM lots"))

    def set_lineage(
        self,
        related: Iterable[tuple[str, Iterable[str]]] | None,
        roots: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Ancestors (backward) or descendants (forward) of each detection lot, as ``(seed,
        related lots)`` pairs (streamed: pairs of other lots are skipped), and the root lot name
        of each as a map or ``(seed, root)`` pairs (backward). ``None``: no lineage, each lot
        stands alone (and the result says ``genealogy_status: error``)."""
        self._begin_families(lineage_given=related is not None)
        db = self.db
        pairs = roots.items() if isinstance(roots, Mapping) else roots or ()
        db.executemany("INSERT INTO staged_roots VALUES (?, ?)", pairs)
        for chunk in batched(related or (), LINEAGE_CHUNK):
            counts: list[tuple[str, int]] = []
            owned: list[tuple[str, str]] = []
            for seed, lots in chunk:
                others = [c for c in dict.fromkeys(lots) if c != seed]
                counts.append((seed, len(others)))
                owned.extend((seed, c) for c in others)
            db.executemany("INSERT INTO staged_counts VALUES (?, ?)", counts)
            db.executemany("INSERT INTO staged_related VALUES (?, ?)", owned)
        # Each detection lot owns itself and its related lots: written in key order. Forward,
        # only the defect lots (the seeds whose descendants' downstream is re-keyed to them).
        owning = "" if self.backward else " AND defect_qty > 0"
        self._end_families(
            "SELECT idx, cid FROM (SELECT idx, cid FROM lots "
            f"WHERE 1{owning} UNION ALL SELECT l.idx, s.cid FROM staged_related s "
            f"JOIN lots l ON l.cid = s.seed WHERE 1{owning})"
        )

    def add_recorded_lots(self, rows: Iterable[Sequence[Any]], meta: LotRecordMeta) -> None:
        """Backward, in place of the detection rows, ``set_lineage`` and the events: the
        detection lots as an earlier analysis of the same trace recorded them (rows of
        ``lot_record.COLUMNS`` in the order the lots came, streamed; lots the masks leave out
        are skipped). Each lot then stands for its whole family, holding its family's machines
        and materials, and where the record's heads part keeps its detail rows' head
        (``lots.head_ref``: the head is never read here). Under no PJ-type or package mask
        (the record's lots, every one) the machines' credit and the materials' totals start
        from what the record says of their lots and input: only defects are added up."""
        if not self.backward:
            raise RuntimeError("a lot record serves the backward analysis only")
        self._require(lineage_set=False)
        if self.detected_count():
            raise RuntimeError("a lot record stands in for the detection rows, not beside them")
        for machine in meta.machines:
            self._machine(machine.group, machine.name, machine.equipment_id)
        db = self.db
        db.executemany("INSERT INTO part_descriptions VALUES (?, ?)", meta.descriptions.items())
        db.executemany("INSERT INTO materials (idx, part, lot) VALUES (?, ?, ?)", meta.materials)
        db.execute("DROP INDEX lots_by_cid")  # built once the lots are in
        # Every lot kept (no PJ-type or package mask): the record says which loss reasons
        # there are, and the rejects of the others than the mask's are never read.
        every_lot = not (self.pj_types or self.packages)
        wanted = self.selected if every_lot else None
        for chunk in batched(enumerate(rows), RECORD_CHUNK):
            lots: list[tuple[Any, ...]] = []
            rejects: list[tuple[int, str, Any]] = []
            for idx, row in chunk:
                if self.masked(row[2], row[3]):
                    continue
                lots.append((idx, *row[:13], row[14]))
                rejects.extend(
                    (idx, reason, qty)
                    for reason, qty in row[13]
                    if wanted is None or wanted(reason)
                )
            db.executemany(
                "INSERT INTO lots (idx, cid, name, pj_type, package, workflow, runcard, "
                "equipment, input_qty, trackin, related_count, root, machines, materials, "
                "head_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                lots,
            )
            db.executemany("INSERT INTO rejects VALUES (?, ?, ?)", rejects)
        db.execute(LOTS_BY_CID)  # a lot twice in a record fails here, as its insert did
        self._recorded = True
        if every_lot:
            self._base = meta
        # The record holds each lot's root and related count, and its family's machines and
        # materials: no ``owners`` (``_end_families``) are needed.
        self._begin_families(lineage_given=meta.lineage_given)

    def _begin_families(self, *, lineage_given: bool) -> None:
        """The detection lots are in: which loss reasons count (``counted_reasons``), and each
        lot's defects under the masks."""
        self._require(lineage_set=False)
        self._lineage_set = True
        self.lineage_given = lineage_given
        db = self.db
        reasons = [r for (r,) in db.execute("SELECT DISTINCT reason FROM rejects")]
        db.executemany(
            "INSERT INTO counted_reasons VALUES (?)", ((r,) for r in reasons if self.selected(r))
        )
        db.execute(  # a lot without selected rejects keeps its 0s
            "UPDATE lots SET defect_qty = s.qty, counted = s.counted FROM (SELECT idx, "
            "SUM(qty) AS qty, MAX(qty <> 0) AS counted FROM rejects "
            "WHERE reason IN counted_reasons GROUP BY idx) s WHERE s.idx = lots.idx"
        )

    def _end_families(self, owners: str) -> None:
        """Apply the staged roots and related counts, and fill ``owners`` from the query
        ``owners`` (``idx, cid`` pairs)."""
        db = self.db
        db.execute("UPDATE lots SET root = r.root FROM staged_roots r WHERE r.cid = lots.cid")
        db.execute("UPDATE lots SET root = name WHERE root IS NULL OR root = ''")
        db.execute(
            "UPDATE lots SET related_count = c.n FROM (SELECT seed, SUM(n) AS n "
            "FROM staged_counts GROUP BY seed) c WHERE c.seed = lots.cid"
        )
        db.execute(f"INSERT OR IGNORE INTO owners {owners} ORDER BY 1, 2")
        db.execute("CREATE INDEX owners_by_cid ON owners (cid)")
        for table in ("staged_roots", "staged_related", "staged_counts"):
            db.execute(f"DELETE FROM {table}")

    def uses(self, domain: str) -> bool:
        """Whether ``add_events`` reads rows of ``domain`` (the others need not be fed; after
        ``add_recorded_lots``, none)."""
        if self._recorded:
            return False
        if domain == domains.UPSTREAM_HISTORY:
            return True
        return domain == (domains.MATERIALS if self.backward else domains.DOWNSTREAM_REJECTS)

    def add_events(self, domain: str, batch: RowBatch) -> None:
        """Fold one batch of ``upstream_history``, ``materials`` or ``downstream_rejects``
        (other domains carry nothing the analysis uses and are ignored)."""
        self._require(lineage_set=True)
        if not self.uses(domain) or not batch.rows:
            return
        # Backward, what a lot used is stored whether or not a detection lot owns it (finish
        # joins with the owners); forward adds up per station here, so it checks first.
        owned = None if self.backward else self._owned(batch)
        if domain == domains.UPSTREAM_HISTORY:
            self._add_history(batch, owned)
        elif domain == domains.MATERIALS:
            self._add_materials(batch)
        else:
            self._add_downstream_rejects(batch, owned or set())

    def _require(self, *, lineage_set: bool) -> None:
        if self._lineage_set != lineage_set:
            step = "before" if lineage_set else "after"
            raise RuntimeError(f"call set_lineage() {step} this (detection, lineage, events)")
        if self._fold is not None:
            raise RuntimeError("the fold is finished: nothing can be added after finish()")

    def _owned(self, batch: RowBatch) -> set[str]:
        """The lots of ``batch`` that belong to a detection lot."""
        cid_at = batch.index("CONTAINERID")
        owned: set[str] = set()
        for chunk in batched({row[cid_at] for row in batch.rows}, OWNED_LOOKUP):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT DISTINCT cid FROM owners WHERE cid IN ({marks})", chunk)
            owned.update(cid for (cid,) in rows)
        return owned

    def _add_history(self, batch: RowBatch, owned: set[str] | None) -> None:
        cid_at, group_at = batch.index("CONTAINERID"), batch.index("WORKCENTER_GROUP")
        name_at, id_at = batch.index("EQUIPMENTNAME"), batch.index("EQUIPMENTID")
        qty_at = batch.index("TRACKINQTY")
        upstream_before, downstream_after = self.upstream_before, self.downstream_after
        used: dict[str, set[int]] = {}  # backward: each lot's machines in this batch
        reached: set[tuple[str, str]] = set()
        machine_lots: set[tuple[str, str]] = set()
        for row in batch.rows:
            cid = row[cid_at]
            if owned is not None and cid not in owned:
                continue
            group = row[group_at] or UNKNOWN
            order = group_order(group)
            machine_name = row[name_at] or NA
            if self.backward:
                if order < upstream_before:  # only stations before detection explain it
                    machine = self._machine(group, machine_name, row[id_at] or "")
                    used.setdefault(cid, set()).add(machine)
            elif downstream_after < order < UNKNOWN_ORDER:
                self.downstream.add_input(group, machine_name, row[qty_at] or 0)
                reached.add((group, cid))
                machine_lots.add((machine_name, cid))
        db = self.db
        db.executemany(
            "INSERT INTO cid_machines VALUES (?, ?)", ((c, joined(m)) for c, m in used.items())
        )
        db.executemany("INSERT OR IGNORE INTO station_lots VALUES (?, ?)", reached)
        db.executemany("INSERT OR IGNORE INTO machine_lots VALUES (?, ?)", machine_lots)
        db.executemany(
            "INSERT OR IGNORE INTO cid_downstream VALUES (?2, ?1, 0)", reached
        )  # a station reached counts even without rejects there

    def _machine(self, group: str, name: str, equipment_id: str) -> int:
        key = (group, name, equipment_id)
        index = self.machine_index.get(key)
        if index is None:
            index = self.machine_index[key] = len(self.machines)
            self.machines.append(Machine(group, name, equipment_id))
            self.db.execute(
                "INSERT INTO machines VALUES (?, ?, ?, ?)", (index, group, name, equipment_id)
            )
        return index

    def _add_materials(self, batch: RowBatch) -> None:
        cid_at = batch.index("CONTAINERID")
        part_at, lot_at = batch.index("MATERIALPARTNAME"), batch.index("MATERIALLOTNAME")
        used = {
            (row[cid_at], row[part_at], row[lot_at] or "") for row in batch.rows if row[part_at]
        }
        if "MATERIALDESCRIPTION" in batch.columns:
            # A label, not a key: a part described two ways reads as the smaller text, in
            # whatever order the batches come.
            text_at = batch.index("MATERIALDESCRIPTION")
            self.db.executemany(
                "INSERT INTO part_descriptions VALUES (?, ?) ON CONFLICT (part) "
                "DO UPDATE SET description = MIN(description, excluded.description)",
                {
                    (row[part_at], row[text_at])
                    for row in batch.rows
                    if row[part_at] and row[text_at]
                },
            )
        self.db.executemany(
            "INSERT OR IGNORE INTO materials (part, lot) VALUES (?, ?)",
            {(part, lot) for _cid, part, lot in used},
        )
        self.db.executemany(
            "INSERT INTO cid_materials SELECT ?1, idx FROM materials WHERE part = ?2 AND lot = ?3",
            used,
        )

    def _add_downstream_rejects(self, batch: RowBatch, owned: set[str]) -> None:
        cid_at, group_at = batch.index("CONTAINERID"), batch.index("WORKCENTER_GROUP")
        name_at, reason_at = batch.index("EQUIPMENTNAME"), batch.index("LOSSREASONNAME")
        qty_at = batch.index("REJECT_TOTAL_QTY")
        per_lot: dict[tuple[str, str], float] = {}
        per_reason: dict[tuple[str, str], float] = {}
        for row in batch.rows:
            cid, group = row[cid_at], row[group_at] or UNKNOWN
            if cid not in owned or not self.downstream_after < group_order(group) < UNKNOWN_ORDER:
                continue
            qty, reason = row[qty_at] or 0, row[reason_at] or NO_REASON
            self.downstream.add_reject(group, row[name_at] or NA, reason, qty)
            per_lot[(cid, group)] = per_lot.get((cid, group), 0) + qty
            if qty > 0:
                per_reason[(cid, reason)] = per_reason.get((cid, reason), 0) + qty
        self.db.executemany(
            "INSERT INTO cid_downstream VALUES (?, ?, ?) "
            "ON CONFLICT (cid, grp) DO UPDATE SET qty = qty + excluded.qty",
            ((cid, group, qty) for (cid, group), qty in per_lot.items()),
        )
        self.db.executemany(
            "INSERT INTO cid_reasons VALUES (?, ?, ?) "
            "ON CONFLICT (cid, reason) DO UPDATE SET qty = qty + excluded.qty",
            ((cid, reason, qty) for (cid, reason), qty in per_reason.items()),
        )

    def finish(self) -> Fold:
        """End the folding: order the detection lots for the detail table and credit each with
        what its family used or met (SQL joins over the scratch tables, sorted before they are
        stored), then hand over the frozen ``Fold`` the result and the detail rows read. Asked
        again, it returns the same fold; any input after it raises ``RuntimeError``."""
        if self._fold is not None:
            return self._fold
        db = self.db
        # A lot without defects rates 0 (``rate``'s value, asked of Python only for the others:
        # a 114K trace's ~85K lots are mostly clean under a one-reason mask).
        db.execute(
            f"INSERT INTO detail_order (idx) SELECT idx FROM lots {DETAIL_ORDER[self.direction]} "
            "ORDER BY CASE WHEN defect_qty = 0 THEN 0.0 ELSE rate(defect_qty, input_qty) END DESC, "
            "name, idx"
        )
        base = self._base
        if base is not None:  # the record's rejects were read for the mask's reasons only
            db.executemany("INSERT INTO available_reasons VALUES (?)", ((r,) for r in base.reasons))
        else:
            db.execute(
                "INSERT INTO available_reasons SELECT DISTINCT reason FROM rejects WHERE qty > 0"
            )
        for statement in FINISH[self.direction]:
            db.execute(statement)
        if self.backward and not self._recorded:
            fill_family_use(db)
        if self.backward and base is not None:
            db.executemany("INSERT INTO material_totals VALUES (?, ?, ?, 0)", base.material_base)
            db.execute(MATERIAL_DEFECTS)
        elif self.backward:
            db.execute(MATERIAL_TOTALS)
        self._fold = Fold(
            db=db,
            direction=self.direction,
            station=self.station,
            date_mode=self.date_mode,
            top_n=self.top_n,
            lineage_given=self.lineage_given,
            machines=tuple(self.machines),
            downstream=self.downstream,
            recorded=self._recorded,
            credit_base=base.credit if base is not None else None,
        )
        return self._fold
