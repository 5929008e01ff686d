"""Every exit code of ``python -m pipeline``, in one place: what a script can act on.

The commands (``demo-data``, ``trace``, ``demo``): ``EXIT_OK`` 0, ``EXIT_FAILED`` 1,
``EXIT_INVALID`` 2 (bad input or usage), ``EXIT_CONFIG`` 3, ``EXIT_SOURCE`` 4 (the warehouse
could not answer). The ``jobs`` tooling has its own reading of some of them: ``EXIT_REFUSED`` 1
(e.g. retry of a job that is not failed), ``EXIT_USAGE`` 2, and two of its own: ``EXIT_NOT_FOUND``
5 (no such job, or it expired) and ``EXIT_UNAVAILABLE`` 6 (Redis or the broker cannot be
reached). argparse exits with 2 on bad flags, before any command runs.
"""

from __future__ import annotations

from pipeline.errors import ConfigError, InvalidInput, SourceError, TraceError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_CONFIG = 3
EXIT_SOURCE = 4

#: ``jobs``: the job is not in a state that allows it (the same number as ``EXIT_FAILED``).
EXIT_REFUSED = 1
#: ``jobs``: a verb given the wrong arguments (the same number as ``EXIT_INVALID``).
EXIT_USAGE = 2
EXIT_NOT_FOUND = 5
EXIT_UNAVAILABLE = 6

#: The error a command raised -> the exit code (the first class that matches).
EXIT_CODES: tuple[tuple[type[TraceError], int], ...] = (
    (InvalidInput, EXIT_INVALID),
    (ConfigError, EXIT_CONFIG),
    (SourceError, EXIT_SOURCE),
)


def exit_code(error: TraceError) -> int:
    """The exit code a script can act on for ``error`` (``EXIT_FAILED`` for any other)."""
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED
