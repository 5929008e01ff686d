"""Writing one input batch of a part as chunks: ``CheckpointStore.writer`` hands one out, and the
entry it makes is committed with ``CheckpointStore.commit`` (the chunks are written first, under
keys no reader knows of until then)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.engine import codec, keys
from pipeline.engine.manifest import ChunkRef, Entry
from pipeline.rows import RowBatch

if TYPE_CHECKING:  # the store hands writers out
    from pipeline.engine.store import CheckpointStore


class ChunkWriter:
    """Writes the row batches of one input batch as chunks (``add``: one round trip per chunk;
    ``add_all``: one for them all).

    With ``shared_columns`` the part's columns are stored once for all its batches; otherwise
    (recorded queries, whose columns differ) the entry's note carries them.
    """

    def __init__(
        self, store: CheckpointStore, job_id: str, part: str, batch: int, *, shared_columns: bool
    ) -> None:
        self.store, self.job_id, self.part, self.batch = store, job_id, part, batch
        self.shared_columns = shared_columns
        self.attempt = secrets.token_hex(4)
        self.refs: list[ChunkRef] = []
        self.columns: tuple[str, ...] = ()
        self.rows = 0

    def add(self, rows: RowBatch) -> None:
        """Store ``rows`` as the next chunk (an empty batch stores nothing)."""
        self.add_all([rows])

    def add_all(self, batches: Sequence[RowBatch]) -> None:
        """Store each of ``batches`` as the next chunk, in one round trip (empty ones store
        nothing)."""
        batches = [rows for rows in batches if rows.rows]
        if not batches:
            return
        store, job_id = self.store, self.job_id
        pipe = store.redis.pipeline(transaction=False)
        names: list[str] = []
        if self.shared_columns and not self.refs:
            columns_key = keys.columns(job_id, self.part)
            pipe.set(columns_key, codec.pack(list(batches[0].columns)), nx=True, ex=store.ttl)
            names.append(columns_key)
        refs: list[ChunkRef] = []
        for number, rows in enumerate(batches, len(self.refs)):
            data = codec.pack_rows(rows.rows)
            key = keys.chunk(job_id, self.part, self.batch, number, self.attempt)
            pipe.set(key, data, ex=store.ttl)
            names.append(key)
            refs.append(ChunkRef(key, len(rows.rows), codec.checksum(data)))
        store.register(pipe, job_id, *names)
        pipe.execute()
        self.refs += refs
        self.columns = batches[-1].columns
        self.rows += sum(len(rows.rows) for rows in batches)

    def entry(self, note: dict[str, Any] | None = None, *, truncated: bool = False) -> Entry:
        """The manifest entry of what was written (commit it with ``CheckpointStore.commit``)."""
        note = dict(note or {})
        if not self.shared_columns:
            note["columns"] = list(self.columns)
        return Entry(self.batch, tuple(self.refs), truncated, note)
