"""What a stored part is made of: the manifest entry of each committed batch (its chunks' keys,
rows and CRC-32s), and the summaries of a job's parts and keys for operators.

``CheckpointStore`` (``pipeline.engine.store``) writes and reads them; the whole-result check
(``pipeline.engine.integrity``) and the page index (``pipeline.engine.pages``) read entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.engine import codec


@dataclass(frozen=True)
class ChunkRef:
    """One stored chunk: its key, how many of its rows count, its CRC-32."""

    key: str
    rows: int
    checksum: int


@dataclass(frozen=True)
class Entry:
    """The manifest entry of one committed batch."""

    batch: int
    chunks: tuple[ChunkRef, ...] = ()
    truncated: bool = False  # the domain's row guard cut this batch (or dropped it)
    note: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    def cut(self, keep: int) -> tuple[Entry, list[str]]:
        """This entry keeping only its first ``keep`` rows, and the chunk keys no longer used."""
        if keep >= self.rows:
            return self, []
        kept: list[ChunkRef] = []
        dropped: list[str] = []
        for ref in self.chunks:
            if keep <= 0:
                dropped.append(ref.key)
            else:
                kept.append(replace(ref, rows=min(ref.rows, keep)))
                keep -= ref.rows
        return replace(self, chunks=tuple(kept), truncated=True), dropped

    def to_bytes(self) -> bytes:
        return codec.pack(
            {
                "chunks": [(c.key, c.rows, c.checksum) for c in self.chunks],
                "truncated": self.truncated,
                "note": self.note,
            }
        )

    @classmethod
    def from_bytes(cls, batch: int, data: bytes) -> Entry:
        raw = codec.unpack(data)
        chunks = tuple(ChunkRef(k, r, c) for k, r, c in raw["chunks"])
        return cls(batch, chunks, bool(raw.get("truncated")), raw.get("note") or {})

    @staticmethod
    def chunk_keys(data: bytes) -> list[str]:
        """The chunk keys of an entry's bytes, nothing else decoded into objects (~2.5x faster
        than ``from_bytes``: the whole-result check reads every entry of a trace)."""
        return [chunk[0] for chunk in codec.unpack(data)["chunks"]]


@dataclass(frozen=True)
class PartSummary:
    """What one part of a job holds, for operators (``CheckpointStore.part_summaries``)."""

    batches: int  # committed batches
    chunks: int
    rows: int
    seconds: float  # worker seconds its batches took, added up (only the events stage notes them)


@dataclass(frozen=True)
class KeyTtls:
    """The TTLs of every key of a job (``CheckpointStore.key_ttls``), in seconds."""

    keys: int  # the job's hash and key set included
    min_seconds: int | None  # of the keys still there (None: none is)
    max_seconds: int | None
    gone: int  # registered, but expired or deleted
    without_ttl: int  # would never expire: a bug if not 0


def read_manifest(raw: dict[Any, Any]) -> dict[int, Entry]:
    """A manifest hash's entries, by batch number (in order)."""
    entries = {int(b): Entry.from_bytes(int(b), codec.as_bytes(d)) for b, d in raw.items()}
    return dict(sorted(entries.items()))
