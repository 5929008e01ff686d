"""One lot along the demo factory's route: queue and processing times, the machine of each step,
its history rows (``DW_MES_LOTWIPHISTORY``, partial track-outs included) and, on the way, what
the records (``records.py``) and the genealogy (``genealogy.py``) make of it: rejects, materials,
jobs, holds, splits, GD rework and merges.

A part of ``DemoFactory`` (``generator.py``) on ``FactoryState`` (``state.py``).
"""

from __future__ import annotations

from pipeline.demo import factory as F
from pipeline.demo.genealogy import P_GD_REWORK, P_MERGE, Genealogy
from pipeline.demo.records import Records
from pipeline.demo.state import Lot

P_PARTIAL_TRACKOUT = 0.04
P_HOLD = 0.012


class RouteWalk(Genealogy, Records):
    """Walks lots along ``factory.ROUTE`` and writes what happens at each step."""

    def walk(
        self,
        lot: Lot,
        start: int,
        *,
        allow_split: bool = True,
        allow_merge: bool = True,
        stop_at: int | None = None,
    ) -> None:
        """Walk ``lot`` from route step ``start`` to the end (or to ``stop_at``, excluded), unless
        it stops earlier: held for good, fully split, or parked in a merge pool. Writes its
        container row when it stops (a parked lot's is written when its merge happens)."""
        rng = self.rng
        split_at, full_split = self.plan_split(lot, start) if allow_split else (None, False)
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
