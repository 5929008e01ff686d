"""The upstream machines of the mid-section-defect analysis and what each is credited with.

A machine is credited (backward) with every detection lot whose family used it before the
detection station: the lot's input and defects. ``MachineCredit`` adds that up one lot at a time,
so the (lot, machine) pairs, millions in a big trace, are never grouped in SQL or held in
Python: only the totals per machine (the factory's few hundred) are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.stages.msd.pareto import Tally


@dataclass(frozen=True, slots=True)
class Machine:
    """An upstream machine: ``(group, name, equipment id)`` is its identity."""

    group: str
    name: str
    equipment_id: str


class MachineCredit:
    """What the backward attribution adds up per machine (by index) over the detection lots:
    their number, input and defects; which (workflow, package, PJ type, detection machine)
    profiles used each; and per group and per machine name, the lots that used any of its
    machines. Fed one lot at a time (``add``), with that lot's distinct machines."""

    def __init__(self, machines: Sequence[Machine]) -> None:
        n = len(machines)
        self.machines = machines
        #: Made from a recorded ``base`` (``from_base``): every lot's number and input are in;
        #: only defects are added (``add_defects``).
        self.based = False
        self.lots = [0] * n
        self.inputs: list[float] = [0] * n
        self.defects: list[float] = [0] * n
        self._groups = sorted({m.group for m in machines})
        self._names = sorted({m.name for m in machines})
        self._group_of = [self._groups.index(m.group) for m in machines]
        self._name_of = [self._names.index(m.name) for m in machines]
        # per group and per machine name: lots, input, defects (parallel lists, by index)
        self._per_group = _Totals(len(self._groups))
        self._per_name = _Totals(len(self._names))
        self._profiles: dict[tuple[Any, ...], set[int]] = {}

    def add(self, used: list[int], input_qty: float, defect_qty: float, profile: tuple) -> None:
        """Credit one detection lot (``used``: its distinct machine indices)."""
        lots, inputs = self.lots, self.inputs
        for m in used:
            lots[m] += 1
            inputs[m] += input_qty
        self._profiles.setdefault(profile, set()).update(used)
        self._credit(used, 1, input_qty, defect_qty)

    def add_defects(self, used: list[int], defect_qty: float) -> None:
        """Credit one detection lot's defects alone (a credit made ``from_base`` holds its
        number and input already)."""
        self._credit(used, 0, 0, defect_qty)

    def _credit(self, used: list[int], count: int, input_qty: float, defect_qty: float) -> None:
        """Each machine's defects, and its group's and name's lots, input and defects (a lot
        once per group and name, however many of its machines share them)."""
        defects = self.defects
        for m in used:
            defects[m] += defect_qty
        for totals, index_of in (
            (self._per_group, self._group_of),
            (self._per_name, self._name_of),
        ):
            totals.add(set(map(index_of.__getitem__, used)), count, input_qty, defect_qty)

    def base(self) -> dict[str, Any]:
        """What no loss-reason mask changes (lots, input, profiles per machine, group and
        name), to be recorded: ``from_base`` starts a credit of the same lots from it. Its sums
        were added in this credit's lot order: equal to any other order's for whole pieces."""
        return {
            "lots": self.lots,
            "inputs": self.inputs,
            "groups": self._per_group.base(self._groups),
            "names": self._per_name.base(self._names),
            "profiles": [[list(p), sorted(used)] for p, used in self._profiles.items()],
        }

    @classmethod
    def from_base(cls, machines: Sequence[Machine], base: dict[str, Any]) -> MachineCredit:
        """A credit of the lots a recorded ``base`` counted, their defects still to add (the
        same lots: a lot record read under no PJ-type or package mask)."""
        credit = cls(machines)
        credit.based = True
        credit.lots = list(base["lots"])
        credit.inputs = list(base["inputs"])
        for names, totals, rows in (
            (credit._groups, credit._per_group, base["groups"]),
            (credit._names, credit._per_name, base["names"]),
        ):
            at = {name: i for i, name in enumerate(names)}
            for name, count, input_qty in rows:
                totals.lots[at[name]], totals.inputs[at[name]] = count, input_qty
        credit._profiles = {tuple(p): set(used) for p, used in base["profiles"]}
        return credit

    def profiles(self, machine: int) -> list[tuple[Any, ...]]:
        """The profiles of the lots credited to ``machine``."""
        return [p for p, used in self._profiles.items() if machine in used]

    def by_group(self) -> dict[str, Tally]:
        return self._per_group.tallies(self._groups)

    def by_name(self) -> dict[str, Tally]:
        return self._per_name.tallies(self._names)


class _Totals:
    """Lots, input and defects per group (or machine name), by index: three lists, so a lot's
    credit is a few list additions (the credit runs once per detection lot)."""

    def __init__(self, n: int) -> None:
        self.lots: list[float] = [0] * n
        self.inputs: list[float] = [0] * n
        self.defects: list[float] = [0] * n

    def add(self, indices: set[int], count: int, input_qty: float, defect_qty: float) -> None:
        """One lot's credit to each of ``indices`` (``count`` 0: its defects alone)."""
        if count:
            lots, inputs = self.lots, self.inputs
            for i in indices:
                lots[i] += count
                inputs[i] += input_qty
        at = self.defects
        for i in indices:
            at[i] += defect_qty

    def base(self, names: list[str]) -> list[list[Any]]:
        """``[name, lots, input]`` per index (what ``MachineCredit.base`` records)."""
        return [list(row) for row in zip(names, self.lots, self.inputs, strict=True)]

    def tallies(self, names: list[str]) -> dict[str, Tally]:
        rows = zip(names, self.lots, self.inputs, self.defects, strict=True)
        return {n: Tally(i, d, int(c)) for n, c, i, d in rows if c}
