"""The error tree: one root, one subclass per different reaction of a caller.

Every error carries an UPPER_SNAKE ``code`` (the API contract's error codes) and says whether a
retry could help (``retryable``). Driver errors never leave a source: they are converted at the seam
into ``SourceUnavailable`` (transient: retry the batch) or ``SourceQueryError`` (permanent: fail).
"""

from __future__ import annotations


class TraceError(Exception):
    """Root of every error this project raises on purpose."""

    code = "TRACE_ERROR"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(TraceError):
    """A setting is missing or malformed; nothing runs until it is fixed."""

    code = "CONFIG_ERROR"


class InvalidInput(TraceError):
    """The caller sent something unusable (HTTP 400). ``field`` names the offending part."""

    code = "INVALID_PARAMS"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class InvalidProfile(InvalidInput):
    """The profile is not one of the contract's profiles."""

    code = "INVALID_PROFILE"


class SourceError(TraceError):
    """The warehouse could not answer."""

    code = "SOURCE_ERROR"


class SourceUnavailable(SourceError):
    """Transient: connection lost, timeout, database busy. Retrying the same batch may succeed."""

    code = "SOURCE_UNAVAILABLE"
    retryable = True


class SourceQueryError(SourceError):
    """Permanent: bad SQL, missing table, unreadable file. Retrying cannot help."""

    code = "SOURCE_QUERY_FAILED"


class ServiceUnavailable(TraceError):
    """Redis or the broker cannot be reached: nothing was started; try again shortly (503)."""

    code = "SERVICE_UNAVAILABLE"
    retryable = True
