"""What each detection lot's family used before the detection station (backward): the part of a
mid-section-defect analysis that no mask changes, kept so that the same trace under another
mask is analysed without its lineage and events being read again.

An analysis over every detection lot of a trace (no ``pj_types``/``packages`` mask; the loss
reasons do not matter: they decide defects, not use) records, per detection lot, its related
lots' count, its root, the machines (indices into the fold's machine list) and the material
(part, lot) pairs its family used, and its detail rows' shared fields as the detail pass encoded
them (the head: no mask changes them either). A later analysis of the same trace
(``MsdAggregator.set_family_use``) takes these instead of ``set_lineage`` and the event batches:
each lot then stands for its whole family, which is all the backward figures ask of it (MSD-11
counts a machine or material once per detection lot anyway), and its detail rows reuse the head
rather than build and encode it again.

Forward is not kept: which lots are the seeds of the forward re-keying depends on the loss-reason
mask, so a forward re-analysis folds the events again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.stages.msd.machines import Machine

#: One row per detection lot: (lot, related lots, root lot name, distinct machine indices
#: comma-joined, distinct materials as a JSON array of [part, lot] pairs, the detail rows'
#: shared fields as a JSON object left open: ``lots.head`` of ``pipeline.stages.msd.tables``).
COLUMNS = ("CONTAINERID", "RELATED_COUNT", "ROOT", "MACHINES", "MATERIALS", "HEAD")


@dataclass(frozen=True)
class FamilyUseMeta:
    """What the rows refer to: the machines by index, the material parts' descriptions, and
    whether the trace had its lineage (``genealogy_status``)."""

    machines: tuple[Machine, ...]
    descriptions: dict[str, str]
    lineage_given: bool

    def to_blob(self) -> dict[str, Any]:
        return {
            "columns": list(COLUMNS),
            "machines": [(m.group, m.name, m.equipment_id) for m in self.machines],
            "descriptions": self.descriptions,
            "lineage_given": self.lineage_given,
        }

    @classmethod
    def from_blob(cls, blob: dict[str, Any]) -> FamilyUseMeta | None:
        """The meta of a recorded family use; ``None`` when its rows are not of ``COLUMNS``
        (recorded by an earlier version: the analysis folds the lineage and events instead)."""
        if blob.get("columns") != list(COLUMNS):
            return None
        machines: Sequence[Sequence[str]] = blob["machines"]
        return cls(
            tuple(Machine(g, n, e) for g, n, e in machines),
            dict(blob["descriptions"]),
            bool(blob["lineage_given"]),
        )
