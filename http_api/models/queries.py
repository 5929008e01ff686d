"""Query strings and headers the resources read, typed (400 naming the parameter otherwise).

Query values arrive as text: integers are parsed, flags are ``1/true/yes`` or ``0/false/no``.
A parameter given twice is refused (its value would be a list), and so is an empty one where
its schema allows no empty text (``?count=``): what the document says is invalid is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from pipeline.domains import Domain, Profile
from pipeline.engine.documents import ServiceState
from pipeline.engine.job_list import DEFAULT_LIMIT, MAX_LIMIT
from pipeline.errors import InvalidInput

#: A Redis stream id: milliseconds, optionally ``-sequence`` (ASCII digits: Redis reads no others).
STREAM_ID = "^[0-9]+(-[0-9]+)?$"
MAX_ID_PART = 2**64 - 1
#: Events per job-events answer (``count``), and the longest ``wait`` (seconds); the API also
#: never holds a request longer than ``TRACE_SYNC_WAIT_SECONDS`` (kept under a proxy's timeout).
DEFAULT_EVENTS_COUNT = 100
MAX_EVENTS_COUNT = 1000
MAX_WAIT_SECONDS = 25

#: The oldest ``max_age_seconds`` of the job list (a week: no job is kept nearly that long).
MAX_AGE_SECONDS = 7 * 24 * 3600

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _flag(value: Any) -> Any:
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise PydanticCustomError("flag", "must be 0 or 1 (or true/false, yes/no)")


def _stream_id(value: Any) -> Any:
    """A stream id Redis accepts: each part an unsigned 64-bit number (a bigger one would be
    Redis's error, a 503, not the caller's 400)."""
    if value is None:
        return None
    parts = value.split("-") if isinstance(value, str) else []
    if not (1 <= len(parts) <= 2 and all(p.isascii() and p.isdigit() for p in parts)) or any(
        int(p) > MAX_ID_PART for p in parts
    ):
        raise PydanticCustomError(
            "stream_id",
            "must be a stream id such as 1700000000000-0 (a `next` of an earlier answer)",
        )
    return value


Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    WithJsonSchema({"type": "string", "enum": ["0", "1", "true", "false", "yes", "no"]}),
]
StreamId = Annotated[
    str | None,
    BeforeValidator(_stream_id),
    WithJsonSchema({"type": "string", "pattern": STREAM_ID}),
]


#: The largest integer every JSON reader takes exactly (2^53 - 1): an offset or limit past it is
#: no row of any job, and echoing it would not fit the answer's integers (orjson: 64 bits).
MAX_SAFE_INT = 2**53 - 1


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResultQuery(_Query):
    """``GET /api/trace/job/{job_id}/result``: a page of each domain."""

    domain: Domain | None = Field(None, description="Only this domain (default: all).")
    offset: int = Field(0, ge=0, le=MAX_SAFE_INT, description="First row of each domain's page.")
    limit: int = Field(0, ge=0, le=MAX_SAFE_INT, description="Rows per domain page; 0: no limit.")


class StreamQuery(_Query):
    """``GET /api/trace/job/{job_id}/stream``."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    follow: Flag = Field(False, description="Stream a running job as its batches commit.")
    records: Flag = Field(
        True,
        description="Send the rows (`records` lines). 0: only each domain's start and end (row "
        "counts), the aggregation and the quality: what an analysis's page reads. The 202 of "
        "a July-style analysis (seeds only) offers its stream so.",
    )
    start: str | None = Field(
        None,
        alias="from",
        pattern=r"^[a-z_]+:\d{1,15}$",
        description="Resume at `domain:batch` (a records line's `batch`).",
    )


class JobEventsQuery(_Query):
    """``GET /api/trace/job-events``: the job event log, page by page."""

    after: StreamId = Field(
        None,
        description="Only events after this stream id (an answer's `next`); default: the newest.",
    )
    count: int = Field(
        DEFAULT_EVENTS_COUNT, ge=1, le=MAX_EVENTS_COUNT, description="Events to read at most."
    )
    job: str | None = Field(
        None,
        description="Only this job's events (among those read: `next` still moves past the "
        "others).",
    )
    wait: int | None = Field(
        None,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="With `after`: seconds to wait for an event when none is there yet.",
    )

    @model_validator(mode="after")
    def _wait_needs_after(self) -> JobEventsQuery:
        if self.wait and self.after is None:
            raise InvalidInput(
                "wait needs after (the stream id to wait for events after)", field="wait"
            )
        return self


class OpsJobsQuery(_Query):
    """``GET /api/ops/jobs``: the operator's job list, newest first."""

    state: ServiceState | None = Field(None, description="Only jobs in this state.")
    profile: Profile | None = Field(None, description="Only jobs of this profile.")
    max_age_seconds: int | None = Field(
        None, ge=1, le=MAX_AGE_SECONDS, description="Only jobs created at most this long ago."
    )
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Jobs to list at most (newest first)."
    )


class SubmitHeaders(_Query):
    """The headers a submitting endpoint reads."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    prefer: str | None = Field(
        None,
        alias="Prefer",
        description="`respond-async` (RFC 7240): answer 202 at once whatever the request's "
        "size, for a client that polls the job itself (e.g. to show progress); the answer then "
        "carries `Preference-Applied: respond-async`.",
    )

    @property
    def respond_async(self) -> bool:
        """Whether the client prefers 202 at once (``Prefer: respond-async``)."""
        return any(
            p.split("=")[0].strip().lower() == "respond-async"
            for p in (self.prefer or "").split(",")
        )


def _joined(value: Any) -> Any:
    """Names given comma-joined (``a,b``), repeated, or both; blanks dropped."""
    items = value if isinstance(value, list) else [value]
    return [n.strip() for item in items for n in str(item).split(",") if n.strip()]


#: Names as the MSD page sends them: comma-joined, or the parameter repeated.
JoinedNames = Annotated[
    list[str],
    BeforeValidator(_joined),
    WithJsonSchema({"type": "string", "description": "Comma-joined names (or repeated)."}),
]
ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"


class TraceWindowQuery(_Query):
    """Which mid-section-defect trace: its ``trace_query_id``, or (a page restored without it)
    its detection window."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    trace_query_id: str | None = Field(
        None, max_length=100, description="The events answer's `trace_query_id`."
    )
    start_date: str | None = Field(None, pattern=ISO_DAY, description="Without an id: the window.")
    end_date: str | None = Field(None, pattern=ISO_DAY)
    station: str | None = Field(None, max_length=500, description="Comma-joined stations.")
    direction: Literal["backward", "forward"] = "backward"
    loss_reasons: JoinedNames = Field(
        [], description="Comma-joined loss reasons counted as defects (default: all)."
    )

    @model_validator(mode="after")
    def _found_by_something(self) -> TraceWindowQuery:
        if not self.trace_query_id and not (self.start_date and self.end_date):
            raise PydanticCustomError(
                "trace", "give trace_query_id, or start_date and end_date (with station)"
            )
        return self


class DetailQuery(TraceWindowQuery):
    """``GET /api/mid-section-defect/analysis/detail``: one page of the detail table."""

    pj_types: JoinedNames = Field([], alias="pj_types[]", description="PJ types (repeated).")
    packages: JoinedNames = Field([], alias="packages[]", description="Packages (repeated).")
    page: int = Field(1, ge=1, le=MAX_SAFE_INT, description="1-based.")
    page_size: int = Field(200, ge=1, le=500, description="Rows per page.")


class ContainerSelection(BaseModel):
    """What the MSD page's Type/Package pickers have selected (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pj_types: list[str] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    bops: list[str] = Field(default_factory=list)
    pj_functions: list[str] = Field(default_factory=list)


def _json_text(value: Any) -> Any:
    """``selected`` arrives as URL-encoded JSON text; empty text is no selection."""
    if not isinstance(value, str):
        return value  # given twice (a list): refused as not an object
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise PydanticCustomError(
            "json_text",
            'must be URL-encoded JSON such as {{"pj_types": ["TVS"]}} ({reason})',
            {"reason": str(error)},
        ) from None


class ContainerFilterQuery(_Query):
    """``GET /api/mid-section-defect/container-filter-options``."""

    selected: Annotated[
        ContainerSelection | None,
        BeforeValidator(_json_text),
        WithJsonSchema(
            {
                "type": "string",
                "description": "URL-encoded JSON object `{pj_types?, packages?, bops?, "
                "pj_functions?}`, each a list of strings: the pickers' selection. Each "
                "dimension's list is narrowed by the others' selection, never its own.",
            }
        ),
    ] = None
