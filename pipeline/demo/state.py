"""What the demo simulation keeps: a ``Lot`` on its way, and ``FactoryState``: the random
generator, the clock, ids and names, the lot budget, the machines and the bounded pools.

``FactoryState`` is the base of the simulation's parts (``records.py``, ``genealogy.py``,
``route_walk.py``), which all read and change this one state; ``DemoFactory`` (``generator.py``)
puts them together.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.demo.clock import Clock
from pipeline.demo.writer import WarehouseWriter

_MASK64 = (1 << 64) - 1
_CID_MULTIPLIER = 0x9E3779B97F4A7C15  # odd, so counter -> id is a bijection (ids never collide)
#: Wafer containers count from here: their ids never collide with a lot's, and adding them
#: left every lot's id (and so the whole simulation) as it was.
_WAFER_COUNTER_BASE = 1 << 48


@dataclass(slots=True)
class Lot:
    cid: str
    name: str
    order: str  # work order (MFGORDERNAME / PJ_WORKORDER)
    wafer: str  # FIRSTNAME
    product: tuple[str, str, str, str, str]  # PRODUCTNAME, PRODUCTLINENAME, PJ_TYPE, FUNCTION, BOP
    qty: int
    clock: int  # seconds since START
    exposure: int  # bit i set: bad machine i is in this lot's path (itself or an ancestor)
    depth: int
    split_from: str | None = None
    original: str | None = None
    last_spec: str | None = None


class FactoryState:
    """The state of one simulation of ``lots`` lots into ``writer``, and its ids and names.

    Every random draw goes through ``rng`` (seeded once, here), in the order the simulation
    makes them: that order is what makes the same seed and size give the same data.
    """

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
        self._wafer_counter = _WAFER_COUNTER_BASE
        self._cid_salt = self.rng.getrandbits(64)
        self._seq: dict[str, int] = {}
        self.machines: dict[str, list[tuple[str, str]]] = {}
        self.bad: dict[str, int] = {}  # EQUIPMENTID -> exposure bit
        self.recent: dict[str, deque[tuple[str, str]]] = {}
        self.material_uses: dict[str, int] = {}
        self.merge_pool: dict[tuple[str, str], list[Lot]] = {}
        self.merge_target: dict[tuple[str, str], int] = {}
        self._wafer: str | None = None
        #: Lots waiting to walk, with the route step they start at (last in, first out).
        self._stack: list[tuple[Lot, int]] = []

    def next_seq(self, kind: str) -> int:
        self._seq[kind] = self._seq.get(kind, 0) + 1
        return self._seq[kind]

    def new_cid(self) -> str:
        self._cid_counter += 1
        return self._cid(self._cid_counter)

    def new_wafer_cid(self) -> str:
        """The id of a wafer container (from a counter range of its own)."""
        self._wafer_counter += 1
        return self._cid(self._wafer_counter)

    def _cid(self, counter: int) -> str:
        return f"{(counter * _CID_MULTIPLIER + self._cid_salt) & _MASK64:016x}"

    def yymm(self, clock: int) -> str:
        return self.time(clock)[2:7].replace("-", "")

    @property
    def budget(self) -> int:
        """Lots still to create (the run stops starting families at 0)."""
        return self.target - self.created

    def new_lot(self, **fields: object) -> Lot:
        self.created += 1
        return Lot(cid=self.new_cid(), **fields)  # type: ignore[arg-type]

    def finish(self, lot: Lot) -> None:
        """Write the lot's container row, as it stands where it stopped."""
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
