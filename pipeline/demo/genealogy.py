"""The demo factory's genealogy: wafer lots (a LOT container named by the wafer lot id, which
the root lots cut from it carry as ``FIRSTNAME``), root lots, splits into child lots, GD rework
lots (``ORIGINALCONTAINERID``: the lot reworked) and merges into combined assembly lots
(``DW_MES_PJ_COMBINEDASSYLOTS``, with their packing box).

A part of ``DemoFactory`` (``generator.py``) on ``FactoryState`` (``state.py``). New lots go on
the state's stack with the route step they start at; the route walk (``route_walk.py``) takes
them from there.
"""

from __future__ import annotations

from pipeline.demo import factory as F
from pipeline.demo.state import FactoryState, Lot

P_SPLIT = (0.9, 0.5, 0.25)  # chance a lot at depth d splits
SPLIT_CHILDREN = ((2, 4), (2, 3), (2, 2))
P_FULL_SPLIT = 0.5  # the parent hands on all its qty and stops
P_MERGE = 0.12  # chance a lot arriving at marking joins a combined assembly lot
P_GD_REWORK = 0.004  # per step after molding
P_SHARED_WAFER = 0.2  # chance a root lot shares the previous root's wafer lot


class Genealogy(FactoryState):
    """Creates lots from other lots (or from nothing: roots) and records how they relate."""

    def new_root(self, clock: int, *, order_prefix: str = "GA") -> Lot:
        if self._wafer is None or self.rng.random() >= P_SHARED_WAFER:
            self._wafer = f"PS{self.yymm(clock)}{self.next_seq('wafer'):05d}"
            self.new_wafer(self._wafer)
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

    def new_wafer(self, name: str) -> None:
        """Write the wafer lot's own container: a LOT with no work order, product or history
        (the lineage's WAFER node). It is not one of the ``lots`` of the budget."""
        self.w.add(
            "DW_MES_CONTAINER",
            (self.new_wafer_cid(), name, "LOT", None, None, name, *(None,) * 9),
        )

    def plan_split(self, lot: Lot, start: int) -> tuple[int | None, bool]:
        """Whether ``lot``, walking from route step ``start``, splits: the step after which it
        does (``None``: it does not) and whether it hands on all its qty (a full split)."""
        if lot.depth >= len(P_SPLIT) or self.rng.random() >= P_SPLIT[lot.depth]:
            return None, False
        lo, hi = F.SPLIT_WINDOWS[lot.depth]
        if start > hi:  # already past its depth's window
            return None, False
        split_at = self.rng.randint(max(lo, start), hi)
        return split_at, self.rng.random() < P_FULL_SPLIT

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
