"""A finished fold: what ``MsdAggregator.finish`` hands the readers of the analysis.

The folder (``pipeline.stages.msd.folding``) only folds; the result, the detail rows and the
attribution only read a ``Fold``: its scratch database (the tables of
``pipeline.stages.msd.tables``, finished: indexed, the detection lots in detail order), what the
analysis was asked (direction, station, ...) and the little Python state the folding kept (the
machines, the forward totals). Nothing adds to a fold once it is made; the aggregator that made
it owns its scratch database (closing the aggregator drops it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline import domains
from pipeline.stages.msd.machines import Machine, MachineCredit
from pipeline.stages.scratch import Scratch


class Downstream:
    """Forward: quantities summed per downstream station, machine and loss reason, as the event
    rows are folded (the factory's size, not the trace's)."""

    def __init__(self) -> None:
        self.station_input: dict[str, float] = {}
        self.station_reject: dict[str, float] = {}
        self.machine_input: dict[str, float] = {}
        self.machine_reject: dict[str, float] = {}
        self.reason_reject: dict[str, float] = {}

    def add_input(self, group: str, machine: str, qty: float) -> None:
        """A lot tracked in at a downstream station (``qty``: its track-in quantity)."""
        self.station_input[group] = self.station_input.get(group, 0) + qty
        self.machine_input[machine] = self.machine_input.get(machine, 0) + qty

    def add_reject(self, group: str, machine: str, reason: str, qty: float) -> None:
        """Rejects of a lot at a downstream station (``qty``: pieces)."""
        self.station_reject[group] = self.station_reject.get(group, 0) + qty
        self.machine_reject[machine] = self.machine_reject.get(machine, 0) + qty
        self.reason_reject[reason] = self.reason_reject.get(reason, 0) + qty


@dataclass(slots=True)
class FoldMemo:
    """What the readers of a fold work out once and share: the machines' credit, kept by the
    first pass over the detection lots that ran to its end (the detail rows' or the
    attribution's own), so the next reader needs no pass of its own."""

    credit: MachineCredit | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Fold:
    """The finished fold of one trace (see the module docstring). Valid while the aggregator
    that made it is open."""

    db: Scratch
    direction: str
    station: str
    date_mode: bool  # the detection lots came from a date range (not typed in)
    top_n: int  # items a chart keeps before folding the rest into 其他
    lineage_given: bool  # False: each lot stood alone (genealogy_status: error)
    machines: tuple[Machine, ...]  # backward: every upstream machine seen, by index
    downstream: Downstream  # forward: totals per downstream station, machine, loss reason
    recorded: bool = False  # the lots came from a lot record: their heads are the record's
    # and, under no PJ-type or package mask, the credit of their number and input
    # (``MachineCredit.base``): only defects are credited
    credit_base: dict[str, Any] | None = None
    memo: FoldMemo = field(default_factory=FoldMemo)

    @property
    def backward(self) -> bool:
        return self.direction == domains.BACKWARD

    def lot_count(self) -> int:
        """How many detection lots the analysis has."""
        return int(self.db.value("SELECT COUNT(*) FROM lots"))
