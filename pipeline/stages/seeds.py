"""What seed-resolve produces: the seed lots, and the inputs that matched nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seed:
    """A resolved lot. ``lot_id`` and ``container_name`` are both the lot name (contract)."""

    container_id: str
    container_name: str
    lot_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            "container_id": self.container_id,
            "container_name": self.container_name,
            "lot_id": self.lot_id,
        }


@dataclass
class SeedResolution:
    """Seeds in input order (one per CID), the inputs that matched nothing, and per-input counts."""

    seeds: list[Seed]
    not_found: list[str]
    matches: dict[str, int] = field(default_factory=dict)

    @property
    def container_ids(self) -> list[str]:
        return [s.container_id for s in self.seeds]

    def payload(self) -> dict[str, Any]:
        """The contract's ``seed-resolve`` data."""
        return {
            "stage": "seed-resolve",
            "seeds": [s.as_dict() for s in self.seeds],
            "seed_count": len(self.seeds),
            "seed_container_ids": self.container_ids,
            "not_found": list(self.not_found),
        }
