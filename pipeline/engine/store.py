"""The checkpoint store: a job's rows as compressed msgpack chunks in Redis (``codec``), and a
manifest per part.

A *part* is one output of a stage (``events:history``, ``cids``, ``seed-resolve:q``...,
named in ``pipeline.engine.parts``). Its input is cut into numbered *batches*; a batch's rows are
written as chunks (one per fetched batch of rows, columns stored once per part), then the batch
is *committed*: its manifest entry (chunk keys, rows per chunk, CRC-32 per chunk) is added to the
part's manifest hash. Only committed batches count: a stage that starts again skips them, and
readers only see them. A batch that died half-written leaves chunks no manifest names (they carry
the TTL and go with the job).

Every key is registered in the job's key set and carries the job's TTL; ``touch`` refreshes them
all and ``release`` unlinks them (non-blocking deletes) without any ``SCAN``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import redis

from pipeline.engine import codec, keys, parts
from pipeline.engine.chunk_writer import ChunkWriter
from pipeline.engine.manifest import ChunkRef, Entry, KeyTtls, PartSummary, read_manifest
from pipeline.errors import TraceError
from pipeline.rows import RowBatch, batched

#: Keys per pipelined round trip when refreshing or releasing a job's keys.
KEY_BATCH = 500


class ChunkLost(TraceError):
    """A committed chunk is gone (expired, evicted) or no longer matches its checksum."""

    code = "CHUNK_LOST"

    def __init__(self, part: str, batch: int, key: str, why: str) -> None:
        super().__init__(f"{part} batch {batch}: {f'chunk {key} ' if key else ''}{why}")
        self.part, self.batch, self.key = part, batch, key


class CheckpointStore:
    """Chunks, manifests and small documents of jobs, in one Redis database."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    # ---- writing ---------------------------------------------------------------------------
    def register(self, pipe: Any, job_id: str, *names: str) -> None:
        """Queue, on ``pipe``, the TTL of ``names`` and their entry in the job's key set."""
        for name in names:
            pipe.expire(name, self.ttl)
        pipe.sadd(keys.job_keys(job_id), *names)
        pipe.expire(keys.job_keys(job_id), self.ttl)

    def writer(
        self, job_id: str, part: str, batch: int, *, shared_columns: bool = True
    ) -> ChunkWriter:
        """A writer for the chunks of input ``batch`` of ``part`` (see ``ChunkWriter``)."""
        return ChunkWriter(self, job_id, part, batch, shared_columns=shared_columns)

    def write_batch(self, job_id: str, part: str, batch: int, batches: Iterable[RowBatch]) -> Entry:
        """Store every row batch of ``batches`` as chunks of input ``batch`` (one round trip);
        return the entry to ``commit``."""
        writer = self.writer(job_id, part, batch)
        writer.add_all(list(batches))
        return writer.entry()

    def commit(
        self, job_id: str, part: str, entry: Entry, *, row_limit: int | None = None
    ) -> tuple[Entry, bool]:
        """Add ``entry`` to the manifest unless its batch is there already; with ``row_limit``
        keep the part's committed rows within it (the entry is cut, and says so).

        Returns the entry as committed (or the one already there) and whether this call added
        it. Atomic against concurrent commits to the same part.
        """
        manifest_key = keys.manifest(job_id, part)
        progress_key = keys.progress(job_id)
        field_name = str(entry.batch)
        outcome: dict[str, Any] = {}

        def attempt(pipe: Any) -> None:
            existing = pipe.hget(manifest_key, field_name)
            if existing is not None:
                outcome.update(
                    entry=Entry.from_bytes(entry.batch, codec.as_bytes(existing)), added=False
                )
                pipe.multi()
                return
            final, dropped = entry, list[str]()
            if row_limit is not None:
                committed = int(pipe.hget(progress_key, parts.rows(part)) or 0)
                final, dropped = entry.cut(max(0, row_limit - committed))
            pipe.multi()
            pipe.hset(manifest_key, field_name, final.to_bytes())
            pipe.hincrby(progress_key, parts.done(part), 1)
            pipe.hincrby(progress_key, parts.rows(part), final.rows)
            if final.truncated:  # readers learn it from the counters, not the whole manifest
                pipe.hincrby(progress_key, parts.truncated(part), 1)
            self.register(pipe, job_id, manifest_key, progress_key)
            if dropped:
                pipe.unlink(*dropped)
            outcome.update(entry=final, added=True)

        self.redis.transaction(attempt, manifest_key)
        return outcome["entry"], outcome["added"]

    def put_blob(self, job_id: str, name: str, value: Any) -> None:
        """Store one small document (a stage's summary) under ``name``."""
        key = keys.blob(job_id, name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key, codec.pack(value), ex=self.ttl)
        self.register(pipe, job_id, key)
        pipe.execute()

    def put_json(self, job_id: str, name: str, document: bytes) -> None:
        """Store a JSON document (``pipeline.rows.to_json``) that readers send on as it is
        (``get_json``): encoded once, by the writer."""
        key = keys.json_doc(job_id, name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(key, document, ex=self.ttl)
        self.register(pipe, job_id, key)
        pipe.execute()

    def write_rows(
        self,
        job_id: str,
        part: str,
        columns: tuple[str, ...],
        rows: Iterable[Any],
        size: int,
        *,
        chunk_rows: int | None = None,
    ) -> int:
        """Store a stage's own output (not a query's): ``rows`` cut into batches of ``size``,
        each committed as batch 0, 1, ... (already committed ones are kept), one chunk per
        batch, or with ``chunk_rows`` chunks of that many rows (for a part read a few rows at a
        time: a chunk is decompressed whole), written in one round trip. Returns batches."""
        done = self.finished(job_id, part)
        batch = -1
        for batch, chunk in enumerate(batched(rows, size)):
            if batch in done:
                continue
            pieces = batched(chunk, chunk_rows or len(chunk))
            entry = self.write_batch(job_id, part, batch, (RowBatch(columns, p) for p in pieces))
            self.commit(job_id, part, entry)
        return batch + 1

    def copy_part(self, from_job: str, to_job: str, part: str) -> int:
        """Copy the committed rows of ``part`` of ``from_job`` into ``to_job``, batch for batch
        and one chunk at a time; returns the rows copied. ``ChunkLost`` when ``from_job``'s
        part lost batches or chunks (nothing short is copied as if it were whole)."""
        columns = self.columns(from_job, part)
        rows = 0
        for entry in self._whole_manifest(from_job, part).values():
            if self.entry(to_job, part, entry.batch) is not None:
                rows += entry.rows
                continue
            writer = self.writer(to_job, part, entry.batch)
            for chunk in self.read_entry(from_job, part, entry, columns):
                writer.add(chunk)
            self.commit(to_job, part, writer.entry(entry.note, truncated=entry.truncated))
            rows += writer.rows
        return rows

    def link_part(
        self,
        from_job: str,
        to_job: str,
        part: str,
        *,
        into: str | None = None,
        then: Iterable[str] = (),
    ) -> int:
        """Commit ``from_job``'s entries of ``part`` to ``to_job`` (its part ``into``, by default
        the same name; ``then``: more of ``from_job``'s parts whose entries follow, numbered on
        after them, so ``into`` holds them all) as they are: the chunks stay
        ``from_job``'s keys (not copied, not registered to ``to_job``: releasing it leaves
        them), so a reader of ``to_job`` reads ``from_job``'s bytes; each chunk's TTL is raised
        to the store's, so they live as long as ``to_job``. Returns the rows linked. Gone all
        the same (evicted, purged), ``to_job``'s result is damaged and refused like any
        other. ``ChunkLost`` when ``from_job``'s part lost batches (nothing is linked)."""
        into = into or part
        entries = list(self._whole_manifest(from_job, part).values())
        for more in then:
            start = max((e.batch for e in entries), default=-1) + 1
            following = self._whole_manifest(from_job, more).values()
            entries += [replace(e, batch=start + n) for n, e in enumerate(following)]
        columns = self.redis.get(keys.columns(from_job, part))
        if columns is not None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(keys.columns(to_job, into), columns, nx=True, ex=self.ttl)
            self.register(pipe, to_job, keys.columns(to_job, into))
            pipe.execute()
        linked = self.link_entries(to_job, into, entries)
        return sum(e.rows for e in linked.values())

    def link_entry(self, to_job: str, part: str, entry: Entry) -> Entry:
        """Commit one ``entry`` (of any job and part; its ``batch`` is the number it gets here)
        to ``to_job``'s ``part`` as ``link_part`` does. Returns the entry as committed (the one
        already there, if any)."""
        return self.link_entries(to_job, part, [entry])[entry.batch]

    def link_entries(self, to_job: str, part: str, entries: list[Entry]) -> dict[int, Entry]:
        """Commit ``entries`` (of any job and part, numbered as they are to be here) to
        ``to_job``'s ``part``, their chunks shared (TTL raised to the store's), in one
        transaction: batches already there are kept, and counted once. Returns the given
        batches as the part holds them, by number."""
        manifest_key, progress_key = keys.manifest(to_job, part), keys.progress(to_job)
        held: dict[int, Entry] = {}

        def attempt(pipe: Any) -> None:
            held.clear()
            existing = {int(b): e for b, e in pipe.hgetall(manifest_key).items()}
            added = [e for e in entries if e.batch not in existing]
            held.update({e.batch: e for e in added})
            held.update(
                (b, Entry.from_bytes(b, codec.as_bytes(existing[b])))
                for b in {e.batch for e in entries} & existing.keys()
            )
            pipe.multi()
            if not added:
                return
            pipe.hset(manifest_key, mapping={str(e.batch): e.to_bytes() for e in added})
            pipe.hincrby(progress_key, parts.done(part), len(added))
            pipe.hincrby(progress_key, parts.rows(part), sum(e.rows for e in added))
            if cut := sum(e.truncated for e in added):
                pipe.hincrby(progress_key, parts.truncated(part), cut)
            self.register(pipe, to_job, manifest_key, progress_key)
            for ref in (ref for e in added for ref in e.chunks):  # as long as to_job now
                pipe.expire(ref.key, self.ttl, gt=True)

        self.redis.transaction(attempt, manifest_key)
        return dict(held)

    # ---- reading ---------------------------------------------------------------------------
    def entry(self, job_id: str, part: str, batch: int) -> Entry | None:
        data = self.redis.hget(keys.manifest(job_id, part), str(batch))
        return None if data is None else Entry.from_bytes(batch, codec.as_bytes(data))

    def finished(self, job_id: str, part: str) -> set[int]:
        """Numbers of the committed batches of ``part``."""
        return {int(b) for b in self.redis.hkeys(keys.manifest(job_id, part))}

    def manifest(self, job_id: str, part: str) -> dict[int, Entry]:
        """Every committed entry of ``part``, by batch number (in order)."""
        return read_manifest(self.redis.hgetall(keys.manifest(job_id, part)))

    def columns(self, job_id: str, part: str) -> tuple[str, ...]:
        data = self.redis.get(keys.columns(job_id, part))
        return () if data is None else tuple(codec.unpack(codec.as_bytes(data)))

    def read_entry(
        self, job_id: str, part: str, entry: Entry, columns: tuple[str, ...] | None = None
    ) -> Iterator[RowBatch]:
        """The rows of one committed batch, chunk by chunk (one GET per chunk).

        Raises ``ChunkLost`` for a chunk that is gone or fails its checksum.
        """
        if columns is None:
            columns = tuple(entry.note.get("columns") or self.columns(job_id, part))
        for ref in entry.chunks:
            yield RowBatch(columns, self.read_chunk(part, entry.batch, ref))

    def read_chunk(self, part: str, batch: int, ref: ChunkRef) -> list[tuple[Any, ...]]:
        """The counted rows of one chunk; raises ``ChunkLost`` when it is gone, fails its
        checksum or cannot be decoded."""
        data = self._chunk_bytes(part, batch, ref)
        try:
            rows = codec.unpack_rows(data)
        except codec.UndecodableChunk as err:
            raise ChunkLost(part, batch, ref.key, f"cannot be decoded ({err})") from err
        return rows[: ref.rows] if ref.rows < len(rows) else rows

    def read_chunk_range(
        self, part: str, batch: int, ref: ChunkRef, low: int, high: int
    ) -> list[tuple[Any, ...]]:
        """Counted rows ``low`` .. ``high`` of one chunk (a result page), building only those;
        raises ``ChunkLost`` like ``read_chunk``."""
        return self.read_chunk_ranges(part, [(batch, ref, low, high)])[0]

    def read_chunk_ranges(
        self, part: str, ranges: Sequence[tuple[int, ChunkRef, int, int]]
    ) -> list[list[tuple[Any, ...]]]:
        """``read_chunk_range`` of each (batch, ref, low, high) of ``ranges``, the chunks got in
        one round trip; raises ``ChunkLost`` like it."""
        found = self.redis.mget([ref.key for _, ref, _, _ in ranges]) if ranges else []
        read = []
        for (batch, ref, low, high), data in zip(ranges, found, strict=True):
            checked = self._checked(part, batch, ref, data)
            try:
                read.append(codec.unpack_row_range(checked, low, min(high, ref.rows)))
            except codec.UndecodableChunk as err:
                raise ChunkLost(part, batch, ref.key, f"cannot be decoded ({err})") from err
        return read

    def _chunk_bytes(self, part: str, batch: int, ref: ChunkRef) -> bytes:
        """The stored bytes of a chunk, checked against its checksum."""
        return self._checked(part, batch, ref, self.redis.get(ref.key))

    @staticmethod
    def _checked(part: str, batch: int, ref: ChunkRef, found: Any) -> bytes:
        """A chunk's bytes as read (``found``), checked to be there and to match its checksum."""
        if found is None:
            raise ChunkLost(part, batch, ref.key, "is missing (expired or evicted)")
        data = codec.as_bytes(found)
        if codec.checksum(data) != ref.checksum:
            raise ChunkLost(part, batch, ref.key, "fails its checksum")
        return data

    def read(self, job_id: str, part: str) -> Iterator[RowBatch]:
        """Every committed row of ``part`` in batch order, one chunk at a time. Raises
        ``ChunkLost`` before the first row when the manifest holds fewer batches than were
        committed to the part (evicted or cut: read as it is, it would be fewer rows, or
        none, that look whole), and at a chunk gone or failing its checksum."""
        columns = self.columns(job_id, part)
        for entry in self._whole_manifest(job_id, part).values():
            yield from self.read_entry(job_id, part, entry, columns)

    def _whole_manifest(self, job_id: str, part: str) -> dict[int, Entry]:
        """``manifest``, checked against the part's count of committed batches (read in one
        transaction with it: a commit adds to both at once)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(keys.manifest(job_id, part))
        pipe.hget(keys.progress(job_id), parts.done(part))
        raw, done = pipe.execute()
        held = read_manifest(raw)
        committed = int(done or 0)
        if len(held) < committed:
            gone = min(set(range(committed)) - held.keys(), default=len(held))
            why = f"is gone from the manifest ({len(held)} of {committed} committed batches left)"
            raise ChunkLost(part, gone, "", why)
        return held

    def read_batch(self, job_id: str, part: str, batch: int) -> list[tuple[Any, ...]]:
        """The rows of one committed batch (a batch of a stage's own output: small)."""
        entry = self.entry(job_id, part, batch)
        if entry is None:
            raise KeyError(f"{part} batch {batch} is not committed")
        return [row for rows in self.read_entry(job_id, part, entry) for row in rows.rows]

    def get_blob(self, job_id: str, name: str) -> Any:
        data = self.redis.get(keys.blob(job_id, name))
        return None if data is None else codec.unpack(codec.as_bytes(data))

    def get_json(self, job_id: str, name: str) -> bytes | None:
        """The JSON bytes ``put_json`` stored (``None`` when gone)."""
        data = self.redis.get(keys.json_doc(job_id, name))
        return None if data is None else codec.as_bytes(data)

    # ---- lifetime --------------------------------------------------------------------------
    def _job_keys(self, job_id: str) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        for name in self.redis.sscan_iter(keys.job_keys(job_id), count=KEY_BATCH):
            batch.append(name)
            if len(batch) == KEY_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def touch(self, job_id: str, ttl_seconds: int | None = None) -> None:
        """Give every key of the job a fresh TTL (the job hash included)."""
        ttl = self.ttl if ttl_seconds is None else ttl_seconds
        for batch in self._job_keys(job_id):
            pipe = self.redis.pipeline(transaction=False)
            for name in batch:
                pipe.expire(name, ttl)
            pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        pipe.expire(keys.job_keys(job_id), ttl)
        pipe.expire(keys.job(job_id), ttl)
        pipe.execute()

    def drop_part(self, job_id: str, part: str) -> None:
        """Forget ``part`` of the job: its chunks, manifest, columns, page index and progress
        counters (a retry that changes a stage's input drops the outputs computed from it)."""
        manifest = self.manifest(job_id, part)
        own = keys.chunk_prefix(job_id, part)  # linked chunks are another part's: kept
        chunks = [ref.key for e in manifest.values() for ref in e.chunks if ref.key.startswith(own)]
        for start in range(0, len(chunks), KEY_BATCH):
            self.redis.unlink(*chunks[start : start + KEY_BATCH])
        pipe = self.redis.pipeline(transaction=False)
        pipe.unlink(
            keys.manifest(job_id, part), keys.columns(job_id, part), keys.page_index(job_id, part)
        )
        pipe.hdel(keys.progress(job_id), parts.done(part), parts.rows(part), parts.truncated(part))
        pipe.execute()

    def drop_linked(self, job_id: str, part: str) -> None:
        """Drop ``part`` of the job when it holds entries linked from another job's part, before
        the job writes the part itself: ``write_rows`` keeps committed batches (a resumed
        run's own), and linked ones may differ from what the job would write."""
        own = keys.chunk_prefix(job_id, part)
        entries = self.manifest(job_id, part).values()
        if any(not ref.key.startswith(own) for entry in entries for ref in entry.chunks):
            self.drop_part(job_id, part)

    def release(self, job_id: str) -> int:
        """Unlink every key of the job but its hash (its status stays readable until its TTL).
        Returns the keys released."""
        count = 0
        for batch in self._job_keys(job_id):
            self.redis.unlink(*batch)
            count += len(batch)
        self.redis.unlink(keys.job_keys(job_id))
        return count

    # ---- for operators: what a job holds ------------------------------------------------------
    def part_summaries(self, job_id: str) -> dict[str, PartSummary]:
        """Per checkpointed part of the job, by part name: its committed batches, their chunks
        and rows, and the seconds they took. Parts are found through the job's key set (no
        ``SCAN``); one ``HGETALL`` per part."""
        prefix = keys.manifest(job_id, "")
        summaries: dict[str, PartSummary] = {}
        for name in self.redis.sscan_iter(
            keys.job_keys(job_id), match=f"{prefix}*", count=KEY_BATCH
        ):
            manifest_key = codec.as_text(name)
            entries = [
                Entry.from_bytes(int(batch), codec.as_bytes(data))
                for batch, data in self.redis.hgetall(manifest_key).items()
            ]
            seconds = sum((float(e.note.get("seconds") or 0) for e in entries), 0.0)
            summaries[manifest_key[len(prefix) :]] = PartSummary(
                batches=len(entries),
                chunks=sum(len(e.chunks) for e in entries),
                rows=sum(e.rows for e in entries),
                seconds=round(seconds, 3),
            )
        return dict(sorted(summaries.items()))

    def key_ttls(self, job_id: str) -> KeyTtls:
        """The TTLs of every key the job registered, its hash and key set included: the
        shortest and longest, how many are already gone, how many have none (would never
        expire). Pipelined, ``KEY_BATCH`` keys per round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.ttl(keys.job(job_id))
        pipe.ttl(keys.job_keys(job_id))
        ttls = [int(t) for t in pipe.execute()]
        for batch in self._job_keys(job_id):
            pipe = self.redis.pipeline(transaction=False)
            for name in batch:
                pipe.ttl(name)
            ttls += [int(t) for t in pipe.execute()]
        alive = [t for t in ttls if t >= 0]
        return KeyTtls(
            keys=len(ttls),
            min_seconds=min(alive) if alive else None,
            max_seconds=max(alive) if alive else None,
            gone=sum(1 for t in ttls if t == -2),
            without_ttl=sum(1 for t in ttls if t == -1),
        )
