"""How rows and small documents are stored: msgpack, rows as arrays (columns kept apart), with a
CRC-32 per chunk so a damaged or replaced chunk is noticed on read. Values are stored in the
contract's forms (``pipeline.rows.contract_value``).

A chunk of rows is its msgpack compressed as one zstd frame at ``ZSTD_LEVEL``; measured on the
demo warehouse's chunks (5,000 rows, all domains, 2026-12-06): msgpack alone 142 B/row, zstd-3
22 B/row (6.4x), compressing 2.4M rows/s and decompressing 8M rows/s, against msgpack's own
unpack at 1.2M rows/s (README "Stored chunks"). Chunks stored before compression (plain msgpack,
still linked by re-analyses of older traces) are read as they are: a zstd frame starts with
``ZSTD_MAGIC``, which no msgpack array does. Small documents (manifest entries, summaries) stay
plain msgpack."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from typing import Any

import msgpack
import zstandard

from pipeline.rows import contract_value

#: zstd's own default level. Measured (README "Stored chunks"): level 1 is 2 % larger and
#: compresses 1.4x faster (not yet tried in the benchmark), level 6 is 10 % smaller but
#: compresses 3.5x slower (in the workers, on every row), lz4 is 1.5x larger.
ZSTD_LEVEL = 3
#: The first four bytes of a zstd frame.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UndecodableChunk(ValueError):
    """Stored bytes that are not a chunk this codec wrote (cut short, overwritten)."""


class _Codecs(threading.local):
    """One zstd compressor and decompressor per thread (neither may be shared by threads at
    once); each holds its working memory (~1 MB at level 3) for the thread's life."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_codecs = _Codecs()


def pack(value: Any) -> bytes:
    """msgpack bytes of ``value`` (tuples become arrays)."""
    return msgpack.packb(value, use_bin_type=True, default=contract_value)


def unpack(data: bytes) -> Any:
    """The value of ``pack`` bytes; arrays come back as lists."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def pack_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """One chunk: the rows as msgpack arrays, compressed (one zstd frame, its size in it)."""
    return _codecs.compressor.compress(pack(rows))


def _rows_msgpack(data: bytes) -> bytes:
    """The msgpack of a stored chunk (decompressed, or as it is when stored plain)."""
    if data[:4] != ZSTD_MAGIC:
        return data
    try:
        return _codecs.decompressor.decompress(data)
    except zstandard.ZstdError as err:
        raise UndecodableChunk(f"zstd: {err}") from err


def unpack_rows(data: bytes) -> list[tuple[Any, ...]]:
    """The rows of a chunk, as tuples. Raises ``UndecodableChunk`` for bytes no chunk has."""
    try:
        return list(msgpack.unpackb(_rows_msgpack(data), raw=False, use_list=False))
    except (ValueError, msgpack.UnpackException) as err:  # ExtraData, FormatError: ValueErrors
        raise UndecodableChunk(str(err)) from err


def unpack_row_range(data: bytes, low: int, high: int) -> list[tuple[Any, ...]]:
    """Rows ``low`` .. ``high`` of a chunk, as tuples: the chunk is decompressed whole (~0.6 ms
    for 5,000 rows), the rows before ``low`` are skipped without being built (a 100-row page of
    a 5,000-row chunk costs ~1 ms instead of ~10) and nothing after ``high`` is read. Raises
    ``UndecodableChunk`` like ``unpack_rows``."""
    plain = _rows_msgpack(data)
    try:
        unpacker = msgpack.Unpacker(raw=False, use_list=False, max_buffer_size=max(len(plain), 1))
        unpacker.feed(plain)
        count = unpacker.read_array_header()
        low, high = max(low, 0), min(high, count)
        for _ in range(low):
            unpacker.skip()
        return [unpacker.unpack() for _ in range(max(high - low, 0))]
    except (ValueError, msgpack.UnpackException) as err:  # OutOfData is one too
        raise UndecodableChunk(str(err)) from err


def checksum(data: bytes) -> int:
    """CRC-32 of stored bytes (detects a damaged or replaced chunk, not an attacker)."""
    return zlib.crc32(data)


def as_bytes(value: object) -> bytes:
    """A value read from the store's Redis client (which never decodes responses)."""
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes from Redis, got {type(value).__name__}")
    return value


def as_text(value: object) -> str:
    """A Redis response as text (ids, field names)."""
    return as_bytes(value).decode()
