"""The documents the engine builds for the outside world, typed: a job's status with its
progress per stage, ``quality_meta`` and a stored job error. ``pipeline.engine.status`` fills
them; the API's OpenAPI document describes them from these same definitions."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypeAliasType, TypedDict

from pipeline.domains import Domain, Profile

#: A job's state as the dashboard understands it (a cancelled job is ``failed``).
JobState = TypeAliasType("JobState", Literal["queued", "started", "finished", "failed"])
#: The service's own state of a job.
ServiceState = TypeAliasType(
    "ServiceState", Literal["queued", "started", "finished", "failed", "cancelled"]
)
Stage = TypeAliasType("Stage", Literal["seed-resolve", "lineage", "events", "aggregation"])
#: Error codes: UPPER_SNAKE.
ErrorCode = Annotated[str, Field(pattern="^[A-Z][A-Z0-9_]*$")]
Count = Annotated[int, Field(ge=0)]


class FailedRange(TypedDict):
    """A run of lots whose rows are missing: first and last CID, and how many lots."""

    start: object
    end: object
    lots: NotRequired[Count]


class QualityMeta(TypedDict):
    """How complete a domain's (or the whole query's) rows are."""

    status: Literal["complete", "partial", "truncated", "failed"]
    scope: Literal["domain", "query"]
    domain: NotRequired[Domain]
    reasons: list[str]
    observed_rows: Count
    max_rows: NotRequired[Annotated[Count, Field(description="The row guard that cut it.")]]
    failed_ranges: NotRequired[list[FailedRange]]


class Progress(TypedDict):
    batches_done: Count
    batches_total: Annotated[Count | None, Field(description="Null while unknown.")]
    rows: Count


class StageProgress(Progress):
    """A stage's input batches done (and total, where known), rows written, runs."""

    runs: NotRequired[Count]
    completed: NotRequired[bool]
    domains: NotRequired[Annotated[dict[str, Progress], Field(description="Events: per domain.")]]


class JobError(TypedDict):
    """Why a job failed: its stage, the error's code and message."""

    stage: Stage | None
    code: ErrorCode
    message: str
    input: NotRequired[Annotated[bool, Field(description="The request was at fault.")]]


#: A job's lineage ``query_id`` (``TraceRequest.query_id``), as every answer carries it.
QueryId = Annotated[
    str | None,
    Field(
        description="The lineage `query_id` (a lineage's own; an analysis's, that of its "
        "detection lots' lineage)."
    ),
]
#: A job's ``trace_query_id`` (``pipeline.identities``), as every answer carries it.
TraceQueryId = Annotated[
    str | None,
    Field(
        description="The trace's id (profile, seed set, dates, stations, direction; never the "
        "masks): the key detail and export use. Set once the events are complete."
    ),
]


class JobStatus(TypedDict):
    """The contract's status document, plus the service's own state, queue, per-stage progress,
    failed domains and the error's detail."""

    job_id: str
    status: JobState
    state: ServiceState
    profile: Profile
    cid_count: Count
    domains: list[Domain]
    progress: Annotated[str, Field(description="One line: `events: 37/112 batches, 412 rows`.")]
    created_at: Annotated[int, Field(description="Epoch seconds.")]
    elapsed_seconds: Annotated[float, Field(description="One decimal.")]
    error: str | None
    stage: Annotated[Stage | None, Field(description="The current (or last) stage.")]
    completed_stages: list[Stage]
    queue: str
    stages: dict[str, StageProgress]
    failed_domains: list[Domain]
    error_detail: JobError | None
    query_id: QueryId
    trace_query_id: TraceQueryId
    quality_meta: Annotated[
        QualityMeta | None,
        Field(description="The query's quality (null for a job without events domains)."),
    ]
