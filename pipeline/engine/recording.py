"""A source that checkpoints every query it runs, for the stages whose work is a sequence of
queries (seed-resolve, lineage, the aggregation's own lookups).

Such a stage is deterministic: run again on the same checkpoints it asks the same queries in the
same order. So query number *n* of the stage is batch *n* of its part: when the manifest has it
(and the query text and binds match), its rows are read back from Redis instead of the source;
otherwise the query runs, its rows are stored chunk by chunk as they stream through, and the
batch is committed once the caller has read them all. A killed stage therefore re-asks the
source only for the queries it had not finished. A query already recorded in one of the parts
``reuse`` names (the aggregation's detection lots are seed-resolve's; a re-analysis's are the
trace's earlier analysis's, ``parts.PRIOR_QUERIES``) is read from there instead, and linked
into this stage's part as its batch *n* (the chunks shared, not copied).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from pipeline.engine.context import StageContext
from pipeline.engine.manifest import Entry
from pipeline.errors import SourceQueryError
from pipeline.rows import RowBatch
from pipeline.sources.base import Binds, Source


class RecordingSource(Source):
    """Wraps ``ctx.source``; records its queries under ``part`` of the job."""

    def __init__(
        self, ctx: StageContext, part: str, *, reuse: Sequence[str] = (), first: int = 0
    ) -> None:
        """``first``: the number of this source's first query (a stage whose queries run in
        several messages gives each its own numbers)."""
        inner = ctx.source
        super().__init__(fetch_rows=inner.fetch_rows, in_list_size=inner.in_list_size)
        self.dialect = inner.dialect  # type: ignore[misc]  # the wrapped source's SQL
        self.inner = inner
        self.ctx = ctx
        self.part = part
        self.reuse = tuple(reuse)
        self._reusable: dict[str, tuple[str, Entry]] | None = None
        self._next = first
        self._answer: Callable[[], Iterator[RowBatch]] | None = None

    def answer_next_with(self, rows: Callable[[], Iterator[RowBatch]]) -> None:
        """Answer the next query with ``rows()`` instead of the wrapped source, and record it as
        that query's answer: for rows that are exactly what the query would answer, produced
        another way (the detection window's lots, merged from its date ranges), so that whoever
        reuses this stage's queries finds them under the query they answer."""
        self._answer = rows

    def query(
        self, name: str, binds: Binds | None = None, *, fragments: Mapping[str, str] | None = None
    ) -> Iterator[RowBatch]:
        """Query ``name`` (see ``Source.query``), replayed from the checkpoints when recorded."""
        number, self._next = self._next, self._next + 1
        digest = hashlib.sha256(
            orjson.dumps(
                [name, dict(binds or {}), dict(fragments or {})],
                option=orjson.OPT_SORT_KEYS,
                default=str,
            )
        ).hexdigest()[:16]
        answer, self._answer = self._answer, None
        if answer is not None:
            return self._replay_or_run(number, digest, answer, asks_source=False)
        return self._replay_or_run(
            number, digest, lambda: self.inner.query(name, binds, fragments=fragments)
        )

    def _execute(self, text: str, binds: dict[str, Any]) -> Iterator[RowBatch]:
        raise NotImplementedError("RecordingSource runs whole queries through the wrapped source")

    def _replay_or_run(
        self,
        number: int,
        digest: str,
        run: Callable[[], Iterator[RowBatch]],
        *,
        asks_source: bool = True,
    ) -> Iterator[RowBatch]:
        ctx, job_id = self.ctx, self.ctx.job.id
        entry = ctx.store.entry(job_id, self.part, number)
        if entry is not None:
            if entry.note.get("query") != digest:
                raise SourceQueryError(
                    f"{self.part} query {number} differs from the recorded one: the stage "
                    "did not repeat itself, so its checkpoints cannot be reused"
                )
            yield from ctx.store.read_entry(job_id, self.part, entry)
            return
        earlier = self._recorded_earlier(digest)
        if earlier is not None:  # an earlier stage asked the very same: read its answer,
            # and keep it as this stage's query too (linked, not copied), so whoever reuses
            # this stage's queries finds every one of them here
            recorded = earlier[1]
            linked = ctx.store.link_entry(job_id, self.part, replace(recorded, batch=number))
            yield from ctx.store.read_entry(job_id, self.part, linked)
            return
        ctx.check_active()
        ctx.start_batch(self.part, number, query=asks_source)
        writer = ctx.store.writer(job_id, self.part, number, shared_columns=False)
        for batch in run():
            writer.add(batch)
            yield batch
        ctx.store.commit(job_id, self.part, writer.entry({"query": digest}))

    def _recorded_earlier(self, digest: str) -> tuple[str, Entry] | None:
        """The part and entry of a query with ``digest`` recorded by an earlier stage (one of
        ``reuse``), if any."""
        if self._reusable is None:
            self._reusable = {}
            for part in self.reuse:
                for entry in self.ctx.store.manifest(self.ctx.job.id, part).values():
                    recorded = entry.note.get("query")
                    if recorded:
                        self._reusable.setdefault(recorded, (part, entry))
        return self._reusable.get(digest)

    def close(self) -> None:
        """The wrapped source belongs to the worker; nothing to close here."""
