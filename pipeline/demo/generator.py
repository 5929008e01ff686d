"""The demo warehouse generator: a deterministic simulation of a back-end assembly/test factory.

Wafer lots start as root lots and split into child lots over several levels; lots walk the route in
process order on machines drawn from each workcenter's pool; some lots are merged into combined
assembly lots at marking; a few lots are reworked as GD lots. Along the way the simulation writes
history, materials, rejects (with loss reasons), holds (some never released) and maintenance jobs
whose ``CONTAINERIDS`` list the lots that were on the machine.

A few machines upstream of test are planted as *bad*: lots that passed them (themselves or through
an ancestor) show a clearly higher reject rate at test. The planted truth, and two genealogy
cycles (a split cycle and a split+merge cycle), go into ``DEMO_TRUTH``.

Memory stays flat: state is per family plus small bounded pools (merge candidates, the last lots
per machine); rows go to the writer's fixed-size buffers. Same seed and size, same data.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pipeline.demo import factory as F
from pipeline.demo.records import BAD_MACHINE_LIFT, Lot, Records
from pipeline.demo.writer import WarehouseWriter
from pipeline.errors import InvalidInput
from pipeline.workcenters import group_of

GENERATOR_VERSION = "2"
#: The first lot starts here; lots start evenly over ``SPAN_DAYS``.
START = dt.datetime(2026, 4, 1)
SPAN_DAYS = 180
#: The smallest warehouse worth generating (lots).
MIN_LOTS = 50

P_SPLIT = (0.9, 0.5, 0.25)  # chance a lot at depth d splits
SPLIT_CHILDREN = ((2, 4), (2, 3), (2, 2))
P_FULL_SPLIT = 0.5  # the parent hands on all its qty and stops
P_MERGE = 0.12  # chance a lot arriving at marking joins a combined assembly lot
P_GD_REWORK = 0.004  # per step after molding
P_PARTIAL_TRACKOUT = 0.04
P_HOLD = 0.012
P_SHARED_WAFER = 0.2
P_GC_ORDER = 0.2
JOB_RECENT_LOTS = 6
N_BAD_MACHINES = 3

_MASK64 = (1 << 64) - 1
_CID_MULTIPLIER = 0x9E3779B97F4A7C15  # odd, so counter -> id is a bijection (ids never collide)


class Clock:
    """Seconds since ``START`` as ``YYYY-MM-DD HH:MM:SS`` (fast: one day string per day)."""

    def __init__(self) -> None:
        self._days: list[str] = []

    def __call__(self, seconds: int) -> str:
        day, rest = divmod(seconds, 86_400)
        while day >= len(self._days):
            self._days.append((START + dt.timedelta(days=len(self._days))).strftime("%Y-%m-%d"))
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{self._days[day]} {hours:02d}:{minutes:02d}:{secs:02d}"


class DemoFactory(Records):
    """Simulates ``lots`` lots into ``writer``. Call ``run()`` once."""

    def __init__(
        self,
        writer: WarehouseWriter,
        *,
        lots: int,
        seed: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.w = writer
        self.target = lots
        self.seed = seed
        self.rng = random.Random(seed)
        self.progress = progress or (lambda n: None)
        self.time = Clock()
        self.created = 0
        self._cid_counter = 0
        self._cid_salt = self.rng.getrandbits(64)
        self._seq: dict[str, int] = {}
        self.machines: dict[str, list[tuple[str, str]]] = {}
        self.bad: dict[str, int] = {}  # EQUIPMENTID -> exposure bit
        self.recent: dict[str, deque[tuple[str, str]]] = {}
        self.material_uses: dict[str, int] = {}
        self.merge_pool: dict[tuple[str, str], list[Lot]] = {}
        self.merge_target: dict[tuple[str, str], int] = {}
        self._wafer: str | None = None
        self._stack: list[tuple[Lot, int]] = []

    # ---- ids and names -------------------------------------------------------------------
    def next_seq(self, kind: str) -> int:
        self._seq[kind] = self._seq.get(kind, 0) + 1
        return self._seq[kind]

    def new_cid(self) -> str:
        self._cid_counter += 1
        return f"{(self._cid_counter * _CID_MULTIPLIER + self._cid_salt) & _MASK64:016x}"

    def yymm(self, clock: int) -> str:
        return self.time(clock)[2:7].replace("-", "")

    @property
    def budget(self) -> int:
        return self.target - self.created

    def new_lot(self, **fields: object) -> Lot:
        self.created += 1
        return Lot(cid=self.new_cid(), **fields)  # type: ignore[arg-type]

    # ---- the run -------------------------------------------------------------------------
    def run(self) -> None:
        self.build_equipment()
        self.plant_cycles()
        self.progress(self.created)
        while self.budget > 0:
            before = self.created
            self.start_family()
            self.drain()
            self.progress(self.created - before)
        for pooled in list(self.merge_pool.values()):  # leftovers walk on alone
            for lot in pooled:
                self._stack.append((lot, F.MERGE_STEP))
        self.merge_pool.clear()
        before = self.created
        self.drain(allow_merge=False)
        self.progress(self.created - before)
        self.write_info()

    def build_equipment(self) -> None:
        for pool_index, pool in enumerate(F.POOLS.values()):
            workcenter = next(s.workcenter for s in F.ROUTE if s.pool == pool.prefix)
            machines = []
            for n in range(1, pool.size + 1):
                machine = (f"EQ{pool_index:02d}{n:04d}", f"{pool.prefix}-{n:02d}")
                machines.append(machine)
                self.recent[machine[0]] = deque(maxlen=JOB_RECENT_LOTS)
                self.w.add("DW_MES_RESOURCE", (*machine, pool.family, workcenter))
            self.machines[pool.prefix] = machines
        groups = self.rng.sample(F.PLANT_GROUPS, N_BAD_MACHINES)
        for bit, group in enumerate(sorted(groups, key=F.PLANT_GROUPS.index)):
            prefix = next(s.pool for s in F.ROUTE if s.pool and group_of(s.workcenter) == group)
            assert prefix is not None
            equipment_id, name = self.rng.choice(self.machines[prefix])
            self.bad[equipment_id] = 1 << bit
            note = f"lots through it: test reject rate +{BAD_MACHINE_LIFT:.1%} of qty"
            self.w.add("DEMO_TRUTH", ("bad_machine", group, equipment_id, name, None, note))

    def new_root(self, clock: int, *, order_prefix: str = "GA") -> Lot:
        if self._wafer is None or self.rng.random() >= P_SHARED_WAFER:
            self._wafer = f"PS{self.yymm(clock)}{self.next_seq('wafer'):05d}"
        order = f"{order_prefix}{self.yymm(clock)}{self.next_seq('order'):05d}"
        pj_type, function = self.rng.choice(F.PRODUCT_TYPES)
        package = self.rng.choice(F.PACKAGES)
        variant = self.rng.randint(1, 3)
        product = (
            f"{pj_type}-{package}-V{variant}",
            package,
            pj_type,
            function,
            f"BOP-{package}-{variant}",
        )
        return self.new_lot(
            name=f"{order}-A00-001",
            order=order,
            wafer=self._wafer,
            product=product,
            qty=self.rng.randrange(20_000, 60_000, 100),
            clock=clock,
            exposure=0,
            depth=0,
        )

    def family_clock(self) -> int:
        share = self.created / self.target
        return int(share * SPAN_DAYS * 86_400) + self.rng.randrange(0, 6 * 3600)

    def start_family(self) -> None:
        prefix = "GC" if self.rng.random() < P_GC_ORDER else "GA"
        self._stack.append((self.new_root(self.family_clock(), order_prefix=prefix), 0))

    def plant_cycles(self) -> None:
        """Two genealogy cycles the lineage stage must survive (recorded in DEMO_TRUTH)."""
        a, b, c = (self.new_root(self.family_clock()) for _ in range(3))
        a.split_from, b.split_from, c.split_from = b.cid, a.cid, a.cid
        for lot in (a, b, c):
            self.w.add(
                "DEMO_TRUTH",
                ("split_cycle", None, None, None, lot.cid, "SPLITFROMID cycle: A<-B, B<-A, C<-A"),
            )
            self.walk(lot, 0, allow_split=False, allow_merge=False)
        x, y = self.new_root(self.family_clock()), self.new_root(self.family_clock())
        x.split_from = y.cid
        self.w.add(
            "DW_MES_PJ_COMBINEDASSYLOTS",
            (x.cid, x.name, y.cid, f"SN{self.next_seq('serial'):08d}", self.time(x.clock)),
        )
        for lot in (x, y):
            self.w.add(
                "DEMO_TRUTH",
                ("merge_cycle", None, None, None, lot.cid, "X split from Y, and X merged into Y"),
            )
        self.walk(x, 0, allow_split=False, allow_merge=False, stop_at=F.MERGE_STEP)
        self.walk(y, F.MERGE_STEP, allow_split=False, allow_merge=False)

    def drain(self, *, allow_merge: bool = True) -> None:
        while self._stack:
            lot, step = self._stack.pop()
            self.walk(lot, step, allow_merge=allow_merge and step < F.MERGE_STEP)

    # ---- one lot along the route ---------------------------------------------------------
    def walk(
        self,
        lot: Lot,
        start: int,
        *,
        allow_split: bool = True,
        allow_merge: bool = True,
        stop_at: int | None = None,
    ) -> None:
        rng = self.rng
        split_at, full_split = None, False
        if allow_split and lot.depth < len(P_SPLIT) and rng.random() < P_SPLIT[lot.depth]:
            lo, hi = F.SPLIT_WINDOWS[lot.depth]
            if start <= hi:
                split_at = rng.randint(max(lo, start), hi)
                full_split = rng.random() < P_FULL_SPLIT
        end = len(F.ROUTE) if stop_at is None else stop_at
        machine_for: dict[str, tuple[str, str]] = {}  # a lot runs a group on one machine, mostly
        for i in range(start, end):
            if i == F.MERGE_STEP and allow_merge and rng.random() < P_MERGE:
                self.join_merge(lot)
                return
            step = F.ROUTE[i]
            track_in = lot.clock + rng.randrange(600, 36_000)  # queue time
            lot.last_spec = step.spec
            if step.pool is None:  # a checkpoint: no equipment, no processing time
                lot.clock = track_in + 60
                self.track(lot, step, (None, None), track_in, [(lot.clock, lot.qty)])
                continue
            machine = machine_for.get(step.pool)
            if machine is None or rng.random() < F.P_OTHER_MACHINE:
                machine = rng.choice(self.machines[step.pool])
                machine_for.setdefault(step.pool, machine)
            track_out = track_in + rng.randrange(1800, 18_000)
            self.run_step(lot, i, step, machine, track_in, track_out)
            if rng.random() < P_HOLD and self.hold(lot, step, track_out):
                self.finish(lot)
                return
            if i == split_at and self.budget > 0:
                self.split(lot, i, full_split)
                if full_split:
                    self.finish(lot)
                    return
            if (
                i >= F.FIRST_STEP_OF_GROUP["成型"]
                and self.budget > 0
                and rng.random() < P_GD_REWORK
            ):
                self.rework(lot, i)
        self.finish(lot)

    def run_step(
        self,
        lot: Lot,
        i: int,
        step: F.Step,
        machine: tuple[str, str],
        track_in: int,
        track_out: int,
    ) -> None:
        """Process ``lot`` at route step ``i`` on ``machine``: rejects, history, materials, jobs."""
        equipment_id, equipment = machine
        lot.exposure |= self.bad.get(equipment_id, 0)
        lot.clock = track_out
        rejected = self.rejects(lot, i, step, equipment, self.time(track_out))
        qty_out = max(lot.qty - rejected, 0)
        runcard = None
        if i == F.TEST_STEP:
            runcard = f"RC{self.yymm(track_in)}{self.next_seq('runcard'):07d}"
        if self.rng.random() < P_PARTIAL_TRACKOUT and qty_out > 1:  # the lot left in two parts
            first = qty_out // 3
            middle = track_in + (track_out - track_in) // 2
            outs = [(middle, first), (track_out, qty_out - first)]
        else:
            outs = [(track_out, qty_out)]
        self.track(lot, step, machine, track_in, outs, runcard)
        lot.qty = qty_out
        if step.material:
            self.consume(lot, step, equipment, self.time(track_out))
        self.maybe_job(lot, equipment_id, equipment, track_out)

    def track(
        self,
        lot: Lot,
        step: F.Step,
        machine: tuple[str | None, str | None],
        track_in: int,
        outs: list[tuple[int, int]],
        runcard: str | None = None,
    ) -> None:
        """History rows of one step: one per track-out ``(time, qty)`` (partial track-outs
        repeat the track-in time and qty)."""
        equipment_id, equipment = machine
        t_in = self.time(track_in)
        for track_out, qty_out in outs:
            row = (lot.cid, step.workcenter, equipment_id, equipment, step.spec, t_in,
                   self.time(track_out), lot.qty, qty_out, runcard, lot.order)  # fmt: skip
            self.w.add("DW_MES_LOTWIPHISTORY", row)

    def finish(self, lot: Lot) -> None:
        name, line, pj_type, function, bop = lot.product
        self.w.add(
            "DW_MES_CONTAINER",
            (
                lot.cid,
                lot.name,
                "LOT",
                lot.split_from,
                lot.original,
                lot.wafer,
                lot.order,
                lot.order,
                name,
                line,
                pj_type,
                function,
                bop,
                lot.last_spec,
                lot.qty,
            ),
        )

    def split(self, parent: Lot, step: int, full: bool) -> None:
        low, high = SPLIT_CHILDREN[parent.depth]
        count = min(self.rng.randint(low, high), self.budget)
        shares = count + (0 if full else 1)
        share = parent.qty // shares
        for _ in range(count):
            n = self.next_seq(f"child:{parent.order}")
            self._stack.append(
                (
                    self.new_lot(
                        name=f"{parent.order}-A{parent.depth + 1:02d}-{n + 1:03d}",
                        order=parent.order,
                        wafer=parent.wafer,
                        product=parent.product,
                        qty=share,
                        clock=parent.clock,
                        exposure=parent.exposure,
                        depth=parent.depth + 1,
                        split_from=parent.cid,
                        original=parent.original or parent.cid,
                    ),
                    step + 1,
                )
            )
        parent.qty -= share * count

    def rework(self, parent: Lot, step: int) -> None:
        order = f"GD{self.yymm(parent.clock)}{self.next_seq('gd'):05d}"
        qty = max(parent.qty // 20, 1)
        parent.qty -= qty
        self._stack.append(
            (
                self.new_lot(
                    name=f"{order}-R01-001",
                    order=order,
                    wafer=parent.wafer,
                    product=parent.product,
                    qty=qty,
                    clock=parent.clock,
                    exposure=parent.exposure,
                    depth=len(P_SPLIT),
                    split_from=parent.cid,
                    original=parent.cid,
                ),
                step + 1,
            )
        )

    def join_merge(self, lot: Lot) -> None:
        """Park ``lot`` until enough lots of its product arrive, then merge them into one."""
        key = (lot.product[2], lot.product[1])
        pool = self.merge_pool.setdefault(key, [])
        if not pool:
            self.merge_target[key] = self.rng.randint(2, 4)
        pool.append(lot)
        if len(pool) < self.merge_target[key] or self.budget <= 0:
            return
        sources = self.merge_pool.pop(key)
        for source in sources:
            self.finish(source)
        first = sources[0]
        clock = max(s.clock for s in sources) + self.rng.randrange(600, 7200)
        order = f"GC{self.yymm(clock)}{self.next_seq('order'):05d}"
        merged = self.new_lot(
            name=f"{order}-M00-001",
            order=order,
            wafer=first.wafer,
            product=first.product,
            qty=sum(s.qty for s in sources),
            clock=clock,
            exposure=0,
            depth=len(P_SPLIT),
        )
        for source in sources:
            merged.exposure |= source.exposure
        serial = f"SN{self.next_seq('serial'):08d}"
        for source in sources:
            self.w.add(
                "DW_MES_PJ_COMBINEDASSYLOTS",
                (source.cid, source.name, merged.cid, serial, self.time(clock)),
            )
        # The packing box is a container too, but not a LOT: seed resolution must skip it.
        name, line, pj_type, function, bop = merged.product
        self.w.add(
            "DW_MES_CONTAINER",
            (
                self.new_cid(),
                f"BX{serial[2:]}",
                "BOX",
                None,
                merged.cid,
                merged.wafer,
                merged.order,
                merged.order,
                name,
                line,
                pj_type,
                function,
                bop,
                None,
                merged.qty,
            ),
        )
        self._stack.append((merged, F.MERGE_STEP))

    def write_info(self) -> None:
        info = {
            "generator_version": GENERATOR_VERSION,
            "seed": str(self.seed),
            "lots": str(self.target),
            "start_date": START.strftime("%Y-%m-%d"),
            "span_days": str(SPAN_DAYS),
        }
        for key, value in info.items():
            self.w.add("DEMO_INFO", (key, value))


def generate(
    path: str | Path,
    *,
    lots: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write a demo warehouse of ``lots`` lots to ``path``; return row counts per table.

    Deterministic for a given ``(lots, seed)``. The file appears at ``path`` only when complete.
    Raises ``InvalidInput`` for fewer than ``MIN_LOTS`` lots (too few to hold every planted case).
    """
    if lots < MIN_LOTS:
        raise InvalidInput(f"--lots must be at least {MIN_LOTS}, got {lots}", field="lots")
    with WarehouseWriter(path) as writer:
        DemoFactory(writer, lots=lots, seed=seed, progress=progress).run()
        writer.finish()
    return dict(writer.counts)
