"""JSON written piece by piece: a big result leaves the API as a stream of bytes built from one
chunk of rows at a time, so the web process's memory never grows with the result.

orjson writes NaN and Infinity as ``null`` (a bare NaN would make the browser drop the line) and
``datetime`` in ISO form; rows come from the checkpoints already in the contract's forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=OPTIONS)


def line(value: Mapping[str, Any]) -> bytes:
    """One NDJSON line."""
    return orjson.dumps(value, option=OPTIONS | orjson.OPT_APPEND_NEWLINE)


def row_objects(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as the dashboard reads them: objects keyed by the upper-case column names."""
    return [dict(zip(columns, row, strict=False)) for row in rows]


def array(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """A JSON array from the encoded items of ``pieces`` (each a JSON array itself, whose items
    are spliced in: one encoded chunk of rows at a time)."""
    yield b"["
    first = True
    for piece in pieces:
        inner = piece[1:-1]
        if not inner:
            continue
        yield inner if first else b"," + inner
        first = False
    yield b"]"


def obj(fields: Iterable[tuple[str, Any]]) -> Iterator[bytes]:
    """A JSON object whose values are plain values or iterators of encoded bytes (written as
    they come)."""
    yield b"{"
    for at, (name, value) in enumerate(fields):
        yield (b"," if at else b"") + dumps(name) + b":"
        if isinstance(value, Iterator):
            yield from value
        else:
            yield dumps(value)
    yield b"}"


def envelope(data: Iterator[bytes]) -> Iterator[bytes]:
    """``{"success": true, "data": ...}`` around streamed data."""
    yield b'{"success":true,"data":'
    yield from data
    yield b"}"
