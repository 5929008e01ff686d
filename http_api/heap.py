"""The API process's heap: what keeps a gunicorn worker's memory flat after big requests.

What was measured (issue 17; README "Memory of the API"): a worker at 51 MB stayed at
106-226 MB after bodies of 1M ids, though tracemalloc showed Python holding 0.2 MB more than
before: every object was freed, the allocators kept the pages. Three causes, three remedies:

* **pymalloc arenas.** orjson makes a 1M-id list as 1M small ``str`` objects (73 MB) in
  pymalloc's 1 MiB arenas; an arena goes back to the system only when every object in it is
  gone, and the few that outlive the request (made meanwhile by other threads) pin dozens of
  them. The API runs with ``PYTHONMALLOC=malloc`` (``pipeline/tools/stack.py``, the systemd
  unit), so small objects come from glibc, which can give back any free page: parsing and
  validating 200K ids was no slower (52 vs 62 ms median).
* **glibc arenas per thread.** Each gthread thread may get its own malloc arena (up to 8 per
  core), each keeping its high-water mark: ``limit_arenas`` (``ops/gunicorn.conf.py``, before
  the workers fork) caps them at ``API_MALLOC_ARENAS`` unless ``MALLOC_ARENA_MAX`` is set.
* **Freed pages kept in an arena.** ``after_request()`` runs in the gunicorn worker once an
  answer is written (``http_api.server``) and calls ``malloc_trim(0)`` when that request read a
  body of at least ``TRIM_AFTER_BODY_BYTES`` (``note_body``, from ``http_api.body``). Trimming
  walks every arena under its lock (milliseconds), so small requests skip it.

Without glibc (musl, macOS) the functions here do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable

#: Bodies at least this big (bytes, 1 MiB: ~50,000 ids) are followed by a trim.
TRIM_AFTER_BODY_BYTES = 1 << 20
#: glibc malloc arenas per API process (arenas; glibc's default is 8 per core).
API_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h

_request = threading.local()


def _libc(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(
            ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name
        )
        return function
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _libc("malloc_trim")
_MALLOPT = _libc("mallopt")


def limit_arenas(count: int = API_MALLOC_ARENAS) -> bool:
    """Cap this process's (and its future children's) malloc arenas at ``count``, unless the
    environment's ``MALLOC_ARENA_MAX`` already chose; call it before threads start. True when
    the cap was set."""
    if _MALLOPT is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(_MALLOPT(_M_ARENA_MAX, count))


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
