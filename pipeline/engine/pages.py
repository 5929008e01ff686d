"""Seeking a row offset in a finished part without reading what comes before it.

A part's manifest says how many rows each chunk holds, but in batch order and one hash field per
batch, so finding row 4,999,000 from it means reading every entry. The page index is built once
per finished part: a sorted set with one member per chunk, scored by the offset of its first
row, plus an end marker scored by the part's row count. A page is then one ``ZREVRANGEBYSCORE``
(the chunk holding the first row) and one ``ZRANGEBYSCORE`` (the chunks up to the last row):
O(log n) whatever the offset, and only the chunks of the page are read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from pipeline.engine import codec, keys
from pipeline.engine.manifest import ChunkRef
from pipeline.engine.store import CheckpointStore

_END = codec.pack(["end"])


@dataclass(frozen=True)
class Located:
    """A chunk of a part: its place (``number``: 0-based among the part's chunks), its input
    batch and the offset of its first row in the part."""

    number: int
    batch: int
    start: int
    ref: ChunkRef


@dataclass(frozen=True)
class Page:
    """The chunks covering rows ``offset .. offset + count`` of a part holding ``total`` rows."""

    total: int
    offset: int
    count: int
    chunks: tuple[Located, ...]

    def slices(self) -> Iterator[tuple[Located, int, int]]:
        """Each chunk with the slice of its rows that belongs to the page."""
        end = self.offset + self.count
        for located in self.chunks:
            low = max(self.offset - located.start, 0)
            high = min(end - located.start, located.ref.rows)
            if high > low:
                yield located, low, high


class PageIndex:
    """The page index of finished parts (see the module docstring)."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.redis = store.redis

    def ensure(self, job_id: str, part: str) -> int:
        """Build the index of ``part`` unless it exists; return the part's row count. Call it
        only for a part whose stage finished (its manifest no longer changes)."""
        key = keys.page_index(job_id, part)
        found = self.redis.zscore(key, _END)
        if found is not None:
            return int(found)
        members: dict[bytes, float] = {}
        start = number = 0
        for entry in self.store.manifest(job_id, part).values():
            for ref in entry.chunks:
                if ref.rows:
                    members[_member(number, entry.batch, ref)] = start
                    start += ref.rows
                    number += 1
        members[_END] = start
        scratch = f"{key}:build:{secrets.token_hex(4)}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(scratch, members)
        pipe.rename(scratch, key)  # two builders write the same index: the last one wins
        self.store.register(pipe, job_id, key)
        pipe.execute()
        return start

    def page(self, job_id: str, part: str, offset: int, limit: int) -> Page:
        """The chunks of rows ``offset`` .. ``offset + limit`` (``limit`` 0: to the end)."""
        total = self.ensure(job_id, part)
        offset = max(offset, 0)
        count = max(min(total - offset, limit if limit > 0 else total), 0)
        if count == 0:
            return Page(total, offset, 0, ())
        key = keys.page_index(job_id, part)
        first = self.redis.zrevrangebyscore(key, offset, "-inf", start=0, num=1, withscores=True)
        low = first[0][1] if first else 0
        found = cast(
            "list[tuple[bytes, float]]",
            self.redis.zrangebyscore(key, low, f"({offset + count}", withscores=True),
        )
        chunks = tuple(
            _located(codec.as_bytes(member), int(score))
            for member, score in found
            if codec.as_bytes(member) != _END
        )
        return Page(total, offset, count, chunks)

    def locate(self, job_id: str, part: str, offsets: Iterable[int]) -> dict[int, Located]:
        """The chunk holding each row offset of ``offsets`` (one round trip); offsets past the
        part's end are left out."""
        total = self.ensure(job_id, part)
        wanted = sorted({offset for offset in offsets if 0 <= offset < total})
        key = keys.page_index(job_id, part)
        pipe = self.redis.pipeline(transaction=False)
        for offset in wanted:
            pipe.zrevrangebyscore(key, offset, "-inf", start=0, num=1, withscores=True)
        return {
            offset: _located(codec.as_bytes(found[0][0]), int(found[0][1]))
            for offset, found in zip(wanted, pipe.execute(), strict=True)
            if found
        }


def _member(number: int, batch: int, ref: ChunkRef) -> bytes:
    return codec.pack([number, batch, ref.key, ref.rows, ref.checksum])


def _located(member: bytes, start: int) -> Located:
    fields: list[Any] = codec.unpack(member)
    ref = ChunkRef(str(fields[2]), int(fields[3]), int(fields[4]))
    return Located(int(fields[0]), int(fields[1]), start, ref)
