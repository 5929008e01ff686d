"""The checkpoint store against real Redis (database 14): chunks, manifests, row limits, lost
chunks, TTLs and release, what a job holds (part summaries, key TTLs); and the codec that packs
rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
import redis

from pipeline.engine import codec, keys, parts
from pipeline.engine.manifest import ChunkRef, Entry, KeyTtls, PartSummary
from pipeline.engine.store import CheckpointStore, ChunkLost
from pipeline.rows import RowBatch

JOB = "0123456789abcdef0123456789abcdef"
PART = "events:history"
COLUMNS = ("CONTAINERID", "QTY")
TTL = 600


def make_rows(start: int, count: int) -> list[tuple[str, int]]:
    return [(f"C{i:05d}", i) for i in range(start, start + count)]


def write(store: CheckpointStore, batch: int, *sizes: int, start: int = 0) -> Entry:
    """Write input ``batch`` of ``PART`` as one chunk per size; rows numbered from ``start``."""
    chunks = []
    for size in sizes:
        chunks.append(RowBatch(COLUMNS, make_rows(start, size)))
        start += size
    return store.write_batch(JOB, PART, batch, chunks)


def all_rows(store: CheckpointStore, part: str = PART) -> list[tuple[object, ...]]:
    return [row for batch in store.read(JOB, part) for row in batch.rows]


def progress(client: redis.Redis, part: str = PART) -> tuple[int, int]:
    raw = client.hgetall(keys.progress(JOB))
    return int(raw[parts.done(part).encode()]), int(raw[parts.rows(part).encode()])


@pytest.fixture
def store(store_redis: redis.Redis) -> CheckpointStore:
    return CheckpointStore(store_redis, ttl_seconds=TTL)


def test_committed_batches_read_back_in_batch_order_whatever_the_commit_order(
    store: CheckpointStore,
) -> None:
    # Given batches 0, 1, 2 and 10 (two chunks each) committed in the order 2, 10, 0, 1
    for batch in (2, 10, 0, 1):
        entry = write(store, batch, 3, 2, start=batch * 100)
        store.commit(JOB, PART, entry)
    # When the part is read
    batches = list(store.read(JOB, PART))
    # Then every chunk carries the columns and rows come back in numeric batch order
    assert all(b.columns == COLUMNS for b in batches)
    assert all_rows(store) == [row for b in (0, 1, 2, 10) for row in make_rows(b * 100, 5)]
    assert [len(b) for b in batches] == [3, 2] * 4


def test_committing_a_batch_twice_keeps_the_first_entry_and_counts_it_once(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given batch 0 committed once with 5 rows
    first, added = store.commit(JOB, PART, write(store, 0, 5))
    assert added is True
    # When a second attempt of batch 0 (other rows, other chunk keys) is committed
    again, added_again = store.commit(JOB, PART, write(store, 0, 3, start=50))
    # Then it is not added, the first entry is returned, and the counters count it once
    assert added_again is False
    assert again == first
    assert progress(store_redis) == (1, 5)
    assert all_rows(store) == make_rows(0, 5)


def test_row_limit_cuts_commits_to_exactly_the_limit_and_drops_unused_chunks(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a limit of 10 rows and batch 0 of 8 rows committed (within the limit)
    entry0, _ = store.commit(JOB, PART, write(store, 0, 4, 4), row_limit=10)
    assert (entry0.rows, entry0.truncated) == (8, False)
    # When batch 1 (three chunks of 3) and, once the part is full, batch 2 are committed
    written1 = write(store, 1, 3, 3, 3, start=100)
    entry1, _ = store.commit(JOB, PART, written1, row_limit=10)
    written2 = write(store, 2, 5, start=200)
    entry2, _ = store.commit(JOB, PART, written2, row_limit=10)
    # Then batch 1 keeps the 2 rows of room in its first chunk and its other chunks are deleted
    assert (entry1.rows, entry1.truncated) == (2, True)
    assert [c.key for c in entry1.chunks] == [written1.chunks[0].key]
    assert store_redis.exists(written1.chunks[0].key) == 1
    assert store_redis.exists(*(c.key for c in written1.chunks[1:])) == 0
    # And batch 2 keeps no rows, its chunk deleted
    assert (entry2.rows, entry2.truncated, entry2.chunks) == (0, True, ())
    assert store_redis.exists(written2.chunks[0].key) == 0
    # And the part reads exactly 10 rows, as the manifest and counters say
    assert all_rows(store) == make_rows(0, 8) + make_rows(100, 2)
    assert store.entry(JOB, PART, 1) == entry1
    assert progress(store_redis) == (3, 10)


def test_read_raises_chunk_lost_naming_part_and_batch_for_a_missing_chunk(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given batches 0 and 1 committed, and the second chunk of batch 1 gone (expired, evicted)
    store.commit(JOB, PART, write(store, 0, 2))
    entry, _ = store.commit(JOB, PART, write(store, 1, 2, 2))
    lost = entry.chunks[1].key
    store_redis.delete(lost)
    # When the part is read, Then ChunkLost names the part, the batch and the chunk
    with pytest.raises(ChunkLost, match=r"events:history batch 1: .* is missing") as caught:
        all_rows(store)
    assert (caught.value.part, caught.value.batch, caught.value.key) == (PART, 1, lost)
    assert caught.value.code == "CHUNK_LOST"


def test_read_raises_chunk_lost_for_a_chunk_that_fails_its_checksum(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a committed chunk whose bytes were replaced by other (well-formed) rows
    entry, _ = store.commit(JOB, PART, write(store, 3, 4))
    key = entry.chunks[0].key
    store_redis.set(key, codec.pack_rows(make_rows(900, 4)))
    # When the batch is read, Then the checksum catches it
    with pytest.raises(ChunkLost, match="fails its checksum") as caught:
        store.read_batch(JOB, PART, 3)
    assert (caught.value.part, caught.value.batch, caught.value.key) == (PART, 3, key)


@pytest.mark.parametrize(
    ("low", "high"), [(0, 7), (0, 100), (3, 5), (6, 7), (5, 5), (0, 0), (4, 100), (7, 9)]
)
def test_a_range_of_a_chunk_is_the_same_rows_as_a_slice_of_the_whole_chunk(
    store: CheckpointStore, store_redis: redis.Redis, low: int, high: int
) -> None:
    # Given a committed chunk of 10 rows of which only the first 7 are counted (a row limit cut
    # the entry after the chunk was written)
    entry = write(store, 0, 10).cut(7)[0]
    store.commit(JOB, PART, entry)
    ref = entry.chunks[0]
    whole = store.read_chunk(PART, 0, ref)
    assert len(whole) == 7
    # When a page reads rows low..high of it, Then it gets exactly that slice of counted rows
    assert store.read_chunk_range(PART, 0, ref, low, high) == whole[low:high]
    # And a damaged chunk is caught by a range read too
    store_redis.set(ref.key, codec.pack_rows(make_rows(900, 10)))
    with pytest.raises(ChunkLost, match="fails its checksum"):
        store.read_chunk_range(PART, 0, ref, low, high)


def test_every_job_key_carries_the_ttl_touch_refreshes_them_and_release_removes_them(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a committed batch of two chunks and a blob
    entry, _ = store.commit(JOB, PART, write(store, 0, 2, 2))
    store.put_blob(JOB, "summary", {"rows": 4})
    written = {
        *(c.key for c in entry.chunks),
        keys.columns(JOB, PART),
        keys.manifest(JOB, PART),
        keys.progress(JOB),
        keys.blob(JOB, "summary"),
    }
    registered = {m.decode() for m in store_redis.smembers(keys.job_keys(JOB))}
    # Then every key written is registered, and all of them (the key set too) carry the TTL
    assert registered == written
    everything = [*written, keys.job_keys(JOB)]
    assert all(0 < store_redis.ttl(k) <= TTL for k in everything)
    # When the job is touched with a longer TTL, Then every key has the new one
    store.touch(JOB, ttl_seconds=5000)
    assert all(4990 < store_redis.ttl(k) <= 5000 for k in everything)
    # When the job is released, Then every registered key and the key set are gone
    assert store.release(JOB) == len(written)
    assert store_redis.exists(*everything) == 0


def test_write_rows_cuts_batches_and_keeps_the_committed_ones_on_a_rerun(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given an earlier run that committed only batch 0 (rows 0-3) of a size-4 output
    part = parts.CIDS
    rows = make_rows(0, 10)
    first = store.write_batch(JOB, part, 0, [RowBatch(COLUMNS, rows[:4])])
    store.commit(JOB, part, first)
    # When write_rows runs over all 10 rows
    count = store.write_rows(JOB, part, COLUMNS, iter(rows), 4)
    # Then it reports 3 batches of 4, 4 and 2 rows, with batch 0 untouched (no new chunk)
    assert count == 3
    manifest = store.manifest(JOB, part)
    assert {b: e.rows for b, e in manifest.items()} == {0: 4, 1: 4, 2: 2}
    assert manifest[0].chunks == first.chunks
    prefix = f"{keys.job(JOB)}:chunk:{part}:0:"
    members = {m.decode() for m in store_redis.smembers(keys.job_keys(JOB))}
    assert {m for m in members if m.startswith(prefix)} == {first.chunks[0].key}
    assert all_rows(store, part) == rows
    assert store.read_batch(JOB, part, 2) == rows[8:]
    assert progress(store_redis, part) == (3, 10)


def test_part_summaries_count_each_parts_committed_batches_chunks_rows_and_noted_seconds(
    store: CheckpointStore,
) -> None:
    # Given two committed batches of PART whose notes carry the seconds they took, a third
    # batch written but never committed, a part of the stage's own output (no seconds) and a blob
    store.commit(JOB, PART, replace(write(store, 0, 3, 2), note={"seconds": 1.25}))
    store.commit(JOB, PART, replace(write(store, 1, 4, start=100), note={"seconds": 0.5}))
    write(store, 2, 7, start=200)
    store.write_rows(JOB, "lineage:cids", COLUMNS, iter(make_rows(0, 10)), 4)
    store.put_blob(JOB, "summary", {"rows": 19})
    # When an operator asks what the job holds
    summaries = store.part_summaries(JOB)
    # Then each part counts only its committed batches, sorted by part name
    assert summaries == {
        PART: PartSummary(batches=2, chunks=3, rows=9, seconds=1.75),
        "lineage:cids": PartSummary(batches=3, chunks=3, rows=10, seconds=0.0),
    }
    assert list(summaries) == sorted(summaries)
    # And a job that holds nothing has no parts
    assert store.part_summaries("f" * 32) == {}


def test_key_ttls_cover_every_job_key_and_name_the_gone_and_the_immortal(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a job hash, a committed batch of two chunks and a blob, all with the job's TTL
    store_redis.hset(keys.job(JOB), "state", "finished")
    store_redis.expire(keys.job(JOB), TTL)
    entry, _ = store.commit(JOB, PART, write(store, 0, 2, 2))
    store.put_blob(JOB, "summary", {"rows": 4})
    registered = store_redis.scard(keys.job_keys(JOB))
    # Then every key is counted (the job hash and the key set too), all alive with the TTL
    ttls = store.key_ttls(JOB)
    assert (ttls.keys, ttls.gone, ttls.without_ttl) == (registered + 2, 0, 0)
    assert ttls.min_seconds is not None and ttls.max_seconds is not None
    assert 0 < ttls.min_seconds <= ttls.max_seconds <= TTL
    # When one chunk is gone and the blob lost its TTL
    store_redis.delete(entry.chunks[0].key)
    store_redis.persist(keys.blob(JOB, "summary"))
    # Then both are named, and still counted
    assert store.key_ttls(JOB).keys == registered + 2
    assert (store.key_ttls(JOB).gone, store.key_ttls(JOB).without_ttl) == (1, 1)
    # And a job without keys has its hash and key set counted, both gone
    assert store.key_ttls("f" * 32) == KeyTtls(
        keys=2, min_seconds=None, max_seconds=None, gone=2, without_ttl=0
    )


def test_codec_packs_decimals_and_dates_as_contract_values_and_rows_come_back_as_tuples() -> None:
    # Given a row of Oracle-style values
    row = (
        Decimal("42"),
        Decimal("3.00"),
        Decimal("2.5"),
        dt.datetime(2026, 1, 2, 3, 4, 5, 678),
        dt.date(2026, 1, 2),
        "LOT-1",
        None,
    )
    # When it is packed as a chunk and unpacked
    rows = codec.unpack_rows(codec.pack_rows([row, ("x",)]))
    # Then numbers are JSON numbers, dates are contract text, and rows are tuples
    assert rows == [(42, 3, 2.5, "2026-01-02 03:04:05", "2026-01-02", "LOT-1", None), ("x",)]
    assert all(type(r) is tuple for r in rows)
    assert [type(v) for v in rows[0][:3]] == [int, int, float]
    # And a packed document keeps the same conversions
    assert codec.unpack(codec.pack({"at": dt.date(2026, 3, 4), "n": Decimal("7")})) == {
        "at": "2026-03-04",
        "n": 7,
    }


CHUNKS = (ChunkRef("a", 3, 11), ChunkRef("b", 3, 22), ChunkRef("c", 3, 33))


@pytest.mark.parametrize(
    ("keep", "kept", "dropped"),
    [
        pytest.param(0, (), ["a", "b", "c"], id="keep-0"),
        pytest.param(3, (("a", 3),), ["b", "c"], id="chunk-edge"),
        pytest.param(4, (("a", 3), ("b", 1)), ["c"], id="mid-chunk"),
        pytest.param(8, (("a", 3), ("b", 3), ("c", 2)), [], id="last-chunk"),
    ],
)
def test_entry_cut_keeps_the_first_rows_and_names_the_chunks_no_longer_used(
    keep: int, kept: tuple[tuple[str, int], ...], dropped: list[str]
) -> None:
    # Given an entry of three chunks of 3 rows
    entry = Entry(5, CHUNKS, note={"k": 1})
    # When it is cut to ``keep`` rows
    cut, gone = entry.cut(keep)
    # Then the first ``keep`` rows stay (checksums kept), the rest of the chunks are named
    assert [(c.key, c.rows) for c in cut.chunks] == list(kept)
    assert all(c.checksum == {"a": 11, "b": 22, "c": 33}[c.key] for c in cut.chunks)
    assert cut.rows == keep
    assert gone == dropped
    assert (cut.batch, cut.truncated, cut.note) == (5, True, {"k": 1})


@pytest.mark.parametrize("keep", [9, 10, 1000])
def test_entry_cut_at_or_past_its_rows_leaves_it_unchanged(keep: int) -> None:
    # Given an entry of 9 rows
    entry = Entry(5, CHUNKS)
    # When it is cut to at least 9 rows, Then it is unchanged and not truncated
    assert entry.cut(keep) == (entry, [])
    assert entry.cut(keep)[0].truncated is False


def test_numbers_json_cannot_carry_are_stored_as_floats_or_null() -> None:
    # Given an Oracle NUMBER(38) past 64 bits and a non-finite Decimal
    rows = [(Decimal("1e30"), Decimal("Infinity"), Decimal("NaN"), Decimal("-12"))]
    # Then they pack (as a float, null, null) and small integers stay integers
    assert codec.unpack_rows(codec.pack_rows(rows)) == [(1e30, None, None, -12)]


def test_dropping_a_part_keeps_the_chunks_it_linked_from_another_part_of_the_job(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a batch of one part linked, as batch 3, into another part of the same job (the
    # aggregation's queries link the seed-resolve query they reuse)
    entry, _ = store.commit(JOB, PART, write(store, 0, 2, 2))
    other = "aggregation:q"
    store.link_entry(JOB, other, replace(entry, batch=3))
    assert [row for b in store.read(JOB, other) for row in b.rows] == make_rows(0, 4)
    # When the other part is dropped (its stage runs again)
    store.drop_part(JOB, other)
    # Then the linked chunks are still there for the part that wrote them
    assert store.finished(JOB, other) == set()
    assert store_redis.exists(*(c.key for c in entry.chunks)) == 2
    assert all_rows(store) == make_rows(0, 4)


def test_linking_a_part_commits_every_batch_once_in_a_few_round_trips(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a part of 40 committed batches, one cut by the row guard
    for batch in range(40):
        store.commit(JOB, PART, write(store, batch, 2, start=batch * 10))
    store.commit(JOB, PART, write(store, 40, 5, start=900), row_limit=80 + 3)
    other_job = "f" * 32
    # When it is linked into another job, twice (a retried submission)
    commands_before = int(store_redis.info("stats")["total_commands_processed"])
    rows = store.link_part(JOB, other_job, PART)
    commands = int(store_redis.info("stats")["total_commands_processed"]) - commands_before
    again = store.link_part(JOB, other_job, PART)
    # Then the other job reads the same rows, its counters count each batch once
    assert rows == again == 83
    assert [r for b in store.read(other_job, PART) for r in b.rows] == all_rows(store)
    raw = store_redis.hgetall(keys.progress(other_job))
    assert int(raw[parts.done(PART).encode()]) == 41
    assert int(raw[parts.rows(PART).encode()]) == 83
    assert int(raw[parts.truncated(PART).encode()]) == 1
    # ... in a few round trips, not a transaction per batch (41 batches, 41 chunks)
    assert commands < 41 * 4, commands


def history_like_rows(count: int) -> list[tuple[object, ...]]:
    """Rows shaped like the history domain's: repeated lots, stations, machines and times."""
    return [
        (
            f"GA{i // 40:07d}",
            f"LOT-{i // 40:06d}",
            ("DB", "WB", "MOLD", "TEST")[i % 4],
            f"EQ-{i % 37:03d}",
            f"2026-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00",
            Decimal(25 + i % 3),
            None,
        )
        for i in range(count)
    ]


def test_chunks_are_stored_compressed_and_read_back_the_same_rows(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given 5,000 history-like rows written as one chunk
    rows = history_like_rows(5000)
    entry, _ = store.commit(JOB, PART, store.write_batch(JOB, PART, 0, [RowBatch(COLUMNS, rows)]))
    ref = entry.chunks[0]
    stored = store_redis.get(ref.key)
    assert stored is not None
    # Then Redis holds a zstd frame, at most a fifth of the rows' msgpack
    assert stored[:4] == codec.ZSTD_MAGIC
    assert len(stored) * 5 <= len(msgpack_of(rows))
    # And every read gives the rows back: whole, a range, through the part
    back = store.read_chunk(PART, 0, ref)
    assert back == codec.unpack_rows(msgpack_of(rows))
    assert store.read_chunk_range(PART, 0, ref, 4990, 5000) == back[4990:]
    assert all_rows(store) == back


def test_a_chunk_stored_before_compression_still_reads(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a committed chunk whose bytes are plain msgpack (written before chunks were
    # compressed; a re-analysis links such chunks of an earlier trace), checksum and all
    rows = make_rows(0, 12)
    plain = msgpack_of(rows)
    key = keys.chunk(JOB, PART, 0, 0, "old")
    store_redis.set(key, plain, ex=TTL)
    store.commit(JOB, PART, Entry(0, (ChunkRef(key, 12, codec.checksum(plain)),)))
    # When it is read, whole or a range, Then the rows come back
    ref = store.manifest(JOB, PART)[0].chunks[0]
    assert all_rows(store) == rows
    assert store.read_chunk_range(PART, 0, ref, 3, 5) == rows[3:5]


def test_a_damaged_compressed_chunk_is_a_lost_chunk_not_a_crash(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a committed chunk whose zstd frame was cut short, its checksum matching the cut
    # bytes (damage the checksum cannot see)
    entry, _ = store.commit(JOB, PART, write(store, 0, 50))
    ref = entry.chunks[0]
    cut = bytes(store_redis.get(ref.key) or b"")[:-9]
    store_redis.set(ref.key, cut)
    damaged = replace(ref, checksum=codec.checksum(cut))
    # When it is read, Then ChunkLost says it cannot be decoded
    for read in (
        lambda: store.read_chunk(PART, 0, damaged),
        lambda: store.read_chunk_range(PART, 0, damaged, 0, 5),
    ):
        with pytest.raises(ChunkLost, match="cannot be decoded"):
            read()


def msgpack_of(rows: list[tuple[object, ...]]) -> bytes:
    """The rows as plain msgpack, the way chunks were stored before compression."""
    import msgpack

    return msgpack.packb(rows, use_bin_type=True, default=codec.contract_value)


def test_a_manifest_evicted_or_cut_is_a_lost_chunk_not_fewer_rows(
    store: CheckpointStore, store_redis: redis.Redis
) -> None:
    # Given a part of three committed batches
    for batch in range(3):
        store.commit(JOB, PART, write(store, batch, 10, start=batch * 10))
    assert len(all_rows(store)) == 30
    # When a batch is gone from its manifest, Then reading it raises ChunkLost naming that batch
    # (it read the 20 rows left, which looked whole)
    store_redis.hdel(keys.manifest(JOB, PART), "1")
    with pytest.raises(ChunkLost, match="batch 1: is gone from the manifest"):
        all_rows(store)
    # And with the whole manifest gone (it read as a part with no rows at all)
    store_redis.delete(keys.manifest(JOB, PART))
    with pytest.raises(ChunkLost, match="0 of 3 committed batches left"):
        all_rows(store)
