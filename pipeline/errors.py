"""The error tree: one root, one class per different reaction of a caller.

Every error carries an UPPER_SNAKE ``code`` (the API contract's error codes), the HTTP ``status``
the API answers it with, and whether a retry of the same work could help (``retryable``, for the
workers). ``http_api.errors`` renders any of them as the contract's envelope, in one place; the
class alone decides the answer. Driver errors never leave a source: they are converted at the seam
into ``SourceUnavailable`` (transient: retry the batch) or ``SourceQueryError`` (permanent: fail).

A job that failed stores its error's code; ``TraceError.from_code`` turns it back into the class
that code belongs to (every subclass registers its code when it is defined).
"""

from __future__ import annotations

from typing import Any, ClassVar


class TraceError(Exception):
    """Root of every error this project raises on purpose: a bug of ours unless a subclass says
    otherwise (HTTP 500)."""

    code: ClassVar[str] = "TRACE_ERROR"
    #: The HTTP status of the answer.
    status: ClassVar[int] = 500
    #: Whether running the same work again may succeed (a worker retries it).
    retryable: ClassVar[bool] = False
    #: Whether the caller's input is at fault (a job that failed with it is not retried in bulk).
    bad_input: ClassVar[bool] = False

    _by_code: ClassVar[dict[str, type[TraceError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TraceError._by_code.setdefault(cls.code, cls)

    def __init__(
        self,
        message: str,
        *,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: Details for the client (the envelope's ``meta``).
        self.meta: dict[str, Any] = dict(meta or {})
        #: Extra response headers (``WWW-Authenticate``, ...).
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def from_code(cls, code: str, message: str, *, bad_input: bool = False) -> TraceError:
        """The error a failed job stored (its ``code`` and ``message``), as an instance of the
        class of that code; a code no class owns (``INTERNAL_ERROR``, a time limit, ...) is a
        plain ``TraceError`` carrying it (a 400 when ``bad_input``, else a 500)."""
        known = cls._by_code.get(code)
        if known is not None:
            return known(message)
        error = (InvalidInput if bad_input else TraceError)(message)
        error.code = code  # type: ignore[misc]  # an instance keeps the stored code
        return error


# ---- the caller's input --------------------------------------------------------------------------
class InvalidInput(TraceError):
    """The request is unusable: a field is missing, of the wrong type or out of range (each
    named in ``meta.errors``, as a path such as ``params.values[2]``).

    ``field`` is the path of the (first) offending part."""

    code = "INVALID_PARAMS"
    status = 400
    bad_input = True

    def __init__(
        self, message: str, *, field: str | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, meta=meta)
        self.field = field


class InvalidProfile(InvalidInput):
    """The profile is not one of the contract's profiles."""

    code = "INVALID_PROFILE"


class NoSeeds(InvalidInput):
    """A query-tool trace whose seeds matched no lot: there is nothing to trace."""

    code = "NO_SEEDS"


class NoDetectionRecords(InvalidInput):
    """A mid-section-defect seed-resolve in container mode: none of the containers the values
    name was ever detected (tracked in) at the detection stations, so there is nothing to
    analyse (the message names the stations)."""

    code = "NO_DETECTION_RECORDS"
    status = 404


class CidLimitExceeded(InvalidInput):
    """The trace reaches more lots than its profile allows (``TRACE_MAX_CIDS_<PROFILE>``)."""

    code = "CID_LIMIT_EXCEEDED"
    status = 413


class LineageJobNotFound(InvalidInput):
    """``lineage_job_id`` names no job (unknown, or expired)."""

    code = "LINEAGE_JOB_NOT_FOUND"
    status = 404


class LineageJobNotReady(InvalidInput):
    """``lineage_job_id`` names a job whose lineage has not finished, or whose lots are no
    longer stored (run its lineage again)."""

    code = "LINEAGE_JOB_NOT_READY"
    status = 409


class PayloadTooLarge(InvalidInput):
    """The request body is larger than ``TRACE_MAX_BODY_BYTES``."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RequestTooLarge(InvalidInput):
    """The request line or its headers are larger than the server reads (answered by the
    gunicorn worker before the app sees the request)."""

    code = "REQUEST_TOO_LARGE"
    status = 431


class UriTooLong(RequestTooLarge):
    """The request line (method, path and query) is longer than the server reads."""

    code = "URI_TOO_LONG"
    status = 414


class MalformedRequest(InvalidInput):
    """Not an HTTP request the server can read (a bad request line or header)."""

    code = "BAD_REQUEST"


# ---- who is asking, how often --------------------------------------------------------------------
class Unauthorized(TraceError):
    """``TRACE_API_TOKEN`` is set and the request carries no valid bearer token."""

    code = "UNAUTHORIZED"
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="trace"'})


class TooManyRequests(TraceError):
    """This client's rate limit for the window is spent; ``retry_after`` seconds until the
    window ends."""

    code = "TOO_MANY_REQUESTS"
    status = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# ---- jobs ----------------------------------------------------------------------------------------
class JobNotFound(TraceError):
    """No job has this id (unknown, or expired)."""

    code = "JOB_NOT_FOUND"
    status = 404


class JobLost(TraceError):
    """The job is missing although its id says it was created less than ``TRACE_JOB_TTL_SECONDS``
    ago: it did not expire, its keys were lost (Redis restarted without persistence, or an
    operator purged it). Nothing of it will come back: submit the request again."""

    code = "JOB_LOST"
    status = 410

    @classmethod
    def of(cls, job_id: str) -> JobLost:
        """The answer about job ``job_id`` (one wording for the API, streams and the CLI)."""
        return cls(
            f"job {job_id} was lost: it is missing though created within the job TTL, so it did "
            "not expire (Redis lost its keys, or an operator purged it); submit the request again",
            meta={"job_id": job_id},
        )


class ResultExpired(TraceError):
    """The job's result is gone (expired, released or evicted); its id is still known."""

    code = "JOB_RESULT_EXPIRED"
    status = 404


class ResultDamaged(TraceError):
    """A piece of the job's result is gone or failed its checksum while the job itself is
    still known: it is refused before the first byte (a client that trusts every 200 must
    never get a short result); the request submitted again starts a new job."""

    code = "JOB_RESULT_DAMAGED"
    status = 410


class CacheExpired(TraceError):
    """The mid-section-defect page's trace is no longer stored (expired, purged, damaged, or
    never run): the page runs the trace again."""

    code = "CACHE_EXPIRED"
    status = 410


class JobNotComplete(TraceError):
    """The job has not finished (``meta.job_status`` says where it is)."""

    code = "JOB_NOT_COMPLETE"
    status = 409


class JobNotCancellable(TraceError):
    """The job has already ended: only queued or started jobs can be cancelled."""

    code = "JOB_NOT_CANCELLABLE"
    status = 409


class JobNotRetryable(TraceError):
    """Only a failed job, or a finished one with failed events domains, can be retried
    (``meta.job_status`` says where this one is)."""

    code = "JOB_NOT_RETRYABLE"
    status = 409


class JobNotPurgeable(TraceError):
    """The job is queued or started: cancel it first, then purge it."""

    code = "JOB_NOT_PURGEABLE"
    status = 409


class StageFailed(TraceError):
    """A seed-resolve, lineage or aggregation that failed on the service's side, as the
    contract names it (the subclasses); ``meta.cause`` is the job's own code, and the status is
    the cause's (503 when the warehouse or Redis was away, 400 for bad input, else 500)."""

    code = "STAGE_FAILED"

    def __init__(self, message: str, *, status: int = 500, meta: dict[str, Any] | None = None):
        super().__init__(message, meta=meta)
        self.status = status  # type: ignore[misc]  # the cause's, per instance

    @classmethod
    def because(cls, cause: TraceError) -> StageFailed:
        """This failure, caused by ``cause`` (its message, status and code as ``meta.cause``)."""
        return cls(cause.message, status=cause.status, meta={"cause": cause.code})


class SeedResolveFailed(StageFailed):
    """Seed-resolve failed on the service's side, or did not finish within the sync wait."""

    code = "SEED_RESOLVE_FAILED"


class LineageFailed(StageFailed):
    """The lineage failed on the service's side."""

    code = "LINEAGE_FAILED"


class AggregationFailed(StageFailed):
    """The events request's mid-section-defect aggregation failed (the old system's code)."""

    code = "EVENTS_AGGREGATION_FAILED"


# ---- the service ---------------------------------------------------------------------------------
class ConfigError(TraceError):
    """A setting is missing or malformed; nothing runs until it is fixed."""

    code = "CONFIG_ERROR"


class InternalError(TraceError):
    """A bug: nobody planned for it. Its message names the exception (the log has the trace)."""

    code = "INTERNAL_ERROR"


class ServiceUnavailable(TraceError):
    """Redis or the broker cannot be reached: nothing was started; try again shortly (503)."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True


class NotReady(ServiceUnavailable):
    """A readiness check failed (``meta`` holds every check's verdict)."""

    code = "NOT_READY"


class SourceError(TraceError):
    """The warehouse could not answer."""

    code = "SOURCE_ERROR"


class SourceUnavailable(SourceError):
    """Transient: connection lost, timeout, database busy. Retrying the same batch may succeed."""

    code = "SOURCE_UNAVAILABLE"
    status = 503
    retryable = True


class SourceQueryError(SourceError):
    """Permanent: bad SQL, missing table, unreadable file. Retrying cannot help."""

    code = "SOURCE_QUERY_FAILED"


class SourceNotFound(SourceQueryError):
    """The embedded warehouse file does not exist."""

    code = "SOURCE_NOT_FOUND"
