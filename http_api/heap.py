"""Giving a worker's freed heap back to the system after a request with a big body.

What was measured (issue 17, ``tests/chaos/test_load.py``; README "Memory of the API"): a
gunicorn worker at 51 MB stayed at 106–158 MB after a few 19 MB bodies of 1M ids, although
tracemalloc showed Python holding 0.2 MB more than before. Parsing such a body makes 73 MB of
``str`` objects (orjson) and validating them peaked at 300 MB; all of it is freed when the
request ends, but glibc keeps freed pages in the arena of the thread that used them (gthread:
every thread may get its own arena) and returns them only from the top of a heap. So each
thread that once parsed a big body kept its high-water mark. ``malloc_trim(0)`` returns every
free page of every arena (156 → 77–126 MB in the same probe).

``note_body(nbytes)`` is called where a body is read (``http_api.body``); ``after_request()``
runs in the gunicorn worker once the answer is written (``http_api.server``), when the request's
objects are gone, and trims when this thread's request read at least ``TRIM_AFTER_BODY_BYTES``.
Trimming walks every arena under its lock (a few ms on a 150 MB heap), so small requests skip it.
Without glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

#: Bodies at least this big (bytes, 1 MiB: ~50,000 ids) are followed by a trim.
TRIM_AFTER_BODY_BYTES = 1 << 20

_request = threading.local()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def note_body(nbytes: int) -> None:
    """The request this thread serves read a body of ``nbytes`` bytes."""
    _request.body_bytes = max(nbytes, getattr(_request, "body_bytes", 0))


def trim() -> bool:
    """Return the free pages of every malloc arena to the system; False without glibc."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def after_request() -> None:
    """Trim when the request just served read a big body (see the module docstring)."""
    nbytes = getattr(_request, "body_bytes", 0)
    _request.body_bytes = 0
    if nbytes >= TRIM_AFTER_BODY_BYTES:
        trim()
