"""The demo warehouse generator: a deterministic simulation of a back-end assembly/test factory.

Wafer lots (each a container of its own) start as root lots and split into child lots over
several levels; lots walk the route in process order on machines drawn from each workcenter's
pool; some lots are merged into combined assembly lots at marking; a few lots are reworked as GD
lots. Along the way the simulation writes history, materials, rejects (with loss reasons), holds
(some never released) and maintenance jobs whose ``CONTAINERIDS`` list the lots that were on the
machine.

A few machines upstream of test are planted as *bad*: lots that passed them (themselves or through
an ancestor) show a clearly higher reject rate at test. A forward defect is planted too: lots
rejected at molding for one reason (``factory.FORWARD_FRONT_REASON``), and their descendants,
reject clearly more at trim/form for another (``FORWARD_DOWNSTREAM_REASON``). The planted truth,
and two genealogy cycles (a split cycle and a split+merge cycle), go into ``DEMO_TRUTH``.

Memory stays flat: state is per family plus small bounded pools (merge candidates, the last lots
per machine); rows go to the writer's fixed-size buffers. Same seed and size, same data.

This module runs the simulation (``generate``, ``DemoFactory.run``); its parts live beside it:
``state.py`` (the lot, ids, the budget), ``genealogy.py`` (roots, splits, rework, merges),
``route_walk.py`` (a lot along the route), ``records.py`` (rejects, materials, jobs, holds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from pipeline.demo import factory as F
from pipeline.demo.clock import START
from pipeline.demo.records import BAD_MACHINE_LIFT
from pipeline.demo.route_walk import RouteWalk
from pipeline.demo.writer import WarehouseWriter
from pipeline.errors import InvalidInput
from pipeline.workcenters import group_of

GENERATOR_VERSION = "4"
#: Lots start evenly over this many days from ``START`` (``clock.py``).
SPAN_DAYS = 180
#: The smallest warehouse worth generating (lots).
MIN_LOTS = 50

P_GC_ORDER = 0.2  # chance a family's root lot has a GC work order (else GA)
JOB_RECENT_LOTS = 6  # lots a maintenance job lists: the last ones on its machine
N_BAD_MACHINES = 3


class DemoFactory(RouteWalk):
    """Simulates ``lots`` lots into ``writer``. Call ``run()`` once."""

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
        """Every pool's machines (``DW_MES_RESOURCE``), and the bad machines planted among them."""
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
        note = (
            f"lots rejected at {F.FORWARD_STATION} for {F.FORWARD_FRONT_REASON}, and their "
            f"descendants: +{F.FORWARD_LIFT:.0%} of qty rejected at 切彎腳 for "
            f"{F.FORWARD_DOWNSTREAM_REASON}"
        )
        self.w.add("DEMO_TRUTH", ("forward_defect", F.FORWARD_STATION, None, None, None, note))

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
        """Walk every lot on the stack, and every lot those walks put there, to its end."""
        while self._stack:
            lot, step = self._stack.pop()
            self.walk(lot, step, allow_merge=allow_merge and step < F.MERGE_STEP)

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
