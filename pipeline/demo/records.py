"""What the demo factory records along a lot's way: rejects (with loss reasons, the planted
bad machines' extra rejects at test, and the planted forward defect's extra rejects at trim/form
for lots rejected at molding for its reason), material consumption, maintenance jobs, holds.

A part of ``DemoFactory`` (``generator.py``); the state these methods use is ``FactoryState``'s
(``state.py``).
"""

from __future__ import annotations

from pipeline.demo import factory as F
from pipeline.demo.state import FactoryState, Lot
from pipeline.workcenters import group_order

P_PROCESS_REJECT = 0.06
P_UNNAMED_REASON = 0.03
P_STUCK_HOLD = 0.08  # a hold that is never released; the lot stops there
P_JOB = 0.003  # per equipment step: a maintenance job on that machine
BASE_TEST_REJECT = 0.006  # fraction of qty rejected at test
BAD_MACHINE_LIFT = 0.035  # added per bad machine in a lot's path
#: ``Lot.exposure`` bit of the planted forward defect (below it: one bit per bad machine).
FORWARD_EXPOSURE = 1 << 16


FORWARD_ORDER = group_order(F.FORWARD_STATION)


class Records(FactoryState):
    """Writes the events of a lot's steps."""

    def rejects(self, lot: Lot, i: int, step: F.Step, equipment: str, stamp: str) -> int:
        rng = self.rng
        if i == F.FORWARD_STEP and lot.exposure & FORWARD_EXPOSURE:
            return self.forward_rejects(lot, step, equipment, stamp)
        if i == F.TEST_STEP:
            bad = (lot.exposure & (FORWARD_EXPOSURE - 1)).bit_count()
            rate = BASE_TEST_REJECT * rng.uniform(0.5, 1.5)
            rate += BAD_MACHINE_LIFT * bad * rng.uniform(0.7, 1.3)
            total = int(lot.qty * rate)
            reasons = rng.sample(F.TEST_LOSS_REASONS, rng.randint(1, 3))
        elif rng.random() < P_PROCESS_REJECT:
            total = max(1, int(lot.qty * rng.uniform(0.0005, 0.004)))
            reasons = [rng.choice(F.PROCESS_LOSS_REASONS[F.STEP_GROUP_ORDER[i]])]
        else:
            return 0
        total = min(total, lot.qty)
        if total <= 0:
            return 0
        left = total
        for n, reason in enumerate(reasons):
            part = left if n == len(reasons) - 1 else rng.randint(0, left)
            left -= part
            defect = part // 10 if rng.random() < 0.3 else 0
            standby = 1 if part > 20 and rng.random() < 0.1 else 0
            reject = part - defect - standby
            name = None if rng.random() < P_UNNAMED_REASON else reason
            if name == F.FORWARD_FRONT_REASON and F.STEP_GROUP_ORDER[i] == FORWARD_ORDER:
                lot.exposure |= FORWARD_EXPOSURE  # the planted forward defect
            comment = None if rng.random() < 0.7 else f"{step.spec} 抽檢"
            self.w.add(
                "DW_MES_LOTREJECTHISTORY",
                (
                    lot.cid,
                    step.workcenter,
                    step.spec,
                    equipment,
                    name,
                    comment,
                    reject,
                    standby,
                    0,
                    0,
                    0,
                    defect,
                    stamp,
                ),
            )
        return total

    def forward_rejects(self, lot: Lot, step: F.Step, equipment: str, stamp: str) -> int:
        """The planted forward defect's extra rejects (one row, its own reason)."""
        total = min(int(lot.qty * F.FORWARD_LIFT * self.rng.uniform(0.7, 1.3)), lot.qty)
        if total > 0:
            reason = F.FORWARD_DOWNSTREAM_REASON
            row = (lot.cid, step.workcenter, step.spec, equipment, reason, None, total, 0, 0, 0)
            self.w.add("DW_MES_LOTREJECTHISTORY", (*row, 0, 0, stamp))
        return total

    def consume(self, lot: Lot, step: F.Step, equipment: str, stamp: str) -> None:
        part = step.material
        assert part is not None
        uses = self.material_uses.get(part, 0)
        self.material_uses[part] = uses + 1
        material_lot = f"{part.split('-')[0]}{uses // F.MATERIAL_LOT_SIZE + 1:06d}"
        qty = round(lot.qty * self.rng.uniform(0.0008, 0.0015), 3)
        self.w.add(
            "DW_MES_LOTMATERIALSHISTORY",
            (
                lot.cid,
                part,
                material_lot,
                F.MATERIAL_DESCRIPTIONS[part],
                qty,
                step.workcenter,
                step.spec,
                equipment,
                stamp,
            ),
        )

    def maybe_job(self, lot: Lot, equipment_id: str, equipment: str, clock: int) -> None:
        recent = self.recent[equipment_id]
        recent.append((lot.cid, lot.name))
        if self.rng.random() >= P_JOB:
            return
        rng = self.rng
        created = clock + rng.randrange(60, 3600)
        completed = created + rng.randrange(1800, 8 * 3600)
        done = rng.random() < 0.9
        self.w.add(
            "DW_MES_JOB",
            (
                f"JOB{self.next_seq('job'):08d}",
                equipment_id,
                equipment,
                "Completed" if done else "InProgress",
                rng.choice(F.JOB_MODELS),
                f"JO{self.yymm(created)}{self.next_seq('joborder'):06d}",
                self.time(created),
                self.time(completed) if done else None,
                rng.choice(F.JOB_CAUSES),
                rng.choice(F.JOB_REPAIRS) if done else None,
                rng.choice(F.JOB_SYMPTOMS),
                ",".join(dict.fromkeys(cid for cid, _ in recent)),
                ",".join(dict.fromkeys(name for _, name in recent)),
            ),
        )

    def hold(self, lot: Lot, step: F.Step, clock: int) -> bool:
        """Write a hold; return True when it is never released (the lot stops)."""
        rng = self.rng
        stuck = rng.random() < P_STUCK_HOLD
        released = None if stuck else clock + rng.randrange(3600, 72 * 3600)
        reason = rng.choice(F.HOLD_REASONS)
        ncr = f"NCR{self.next_seq('ncr'):06d}" if reason == "品質異常" else None
        self.w.add(
            "DW_MES_HOLDRELEASEHISTORY",
            (
                lot.cid,
                step.workcenter,
                self.time(clock),
                rng.choice(F.EMPLOYEES),
                rng.choice(F.HOLD_DEPARTMENTS),
                reason,
                f"{step.spec} {reason}",
                None if released is None else self.time(released),
                None if released is None else rng.choice(F.EMPLOYEES),
                None if released is None else "確認後放行",
                ncr,
            ),
        )
        if released is not None:
            lot.clock = released
        return stuck
