"""The JSON answers, typed: the resources build them (mypy checks the shapes) and the OpenAPI
document describes them from these definitions. Field names are the dashboard contract's;
answers may carry more fields than listed (the contract welcomes extensions).

Big answers (result pages, streams) are written as bytes piece by piece (``http_api.render``);
their shapes are still these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypeAliasType, TypedDict

from pipeline.domains import Direction, Domain
from pipeline.engine.documents import (
    Count,
    ErrorCode,
    JobState,
    QualityMeta,
    QueryId,
    TraceQueryId,
)
from pipeline.engine.job_list import JobLine
from pipeline.params import SEED_KEY

UPPER_SNAKE = "^[A-Z][A-Z0-9_]*$"
STREAM_ID = "^[0-9]+(-[0-9]+)?$"
#: A warehouse row: UPPER_CASE column names, timestamps ``YYYY-MM-DD HH:MM:SS``.
Row = TypeAliasType(
    "Row",
    Annotated[
        dict[str, Any],
        WithJsonSchema(
            {
                "type": "object",
                "propertyNames": {"pattern": UPPER_SNAKE},
                "description": "A warehouse row: UPPER_CASE column names, timestamps "
                "`YYYY-MM-DD HH:MM:SS`.",
            }
        ),
    ],
)
JobId = Annotated[str, Field(pattern="^[0-9a-f]{32}$")]


# ---- envelopes -----------------------------------------------------------------------------------
class SuccessEnvelope(TypedDict):
    """Every JSON success: HTTP 200, or 202 for an accepted background job."""

    success: Literal[True]
    data: Annotated[Any, Field(description="The answer (its schema is the operation's).")]
    meta: NotRequired[dict[str, Any]]


class ErrorDetail(TypedDict):
    code: Annotated[ErrorCode, Field(description="UPPER_SNAKE error code.")]
    message: Annotated[str, Field(description="Human text (never a stack trace).")]


class FieldProblem(TypedDict):
    field: Annotated[str, Field(description="Where: `params.values[2]`.")]
    message: str


class ErrorMeta(TypedDict):
    """Details of an error, when it has some."""

    retry_after_seconds: NotRequired[Annotated[int, Field(ge=1)]]
    job_id: NotRequired[JobId]
    job_status: NotRequired[JobState]
    cause: NotRequired[Annotated[ErrorCode, Field(description="The job's own error code.")]]
    errors: NotRequired[
        Annotated[list[FieldProblem], Field(description="Every bad field (the first 20).")]
    ]


class ErrorEnvelope(TypedDict):
    """Every error, whatever its status."""

    success: Literal[False]
    error: ErrorDetail
    meta: NotRequired[ErrorMeta]


# ---- submissions ---------------------------------------------------------------------------------
#: A background job: poll ``status_url``, then read ``result_url`` or ``stream_url``. (The
#: functional form: ``async`` is a Python keyword.)
AcceptedJob = TypedDict(
    "AcceptedJob",
    {
        "stage": Literal["seed-resolve", "lineage", "events", "trace"],
        "async": Literal[True],
        "job_id": JobId,
        "status": JobState,
        "status_url": str,
        "stream_url": str,
        "result_url": str,
        "query_id": NotRequired[
            Annotated[str, Field(description="lineage: the `query_id` its result will carry.")]
        ],
    },
)
AcceptedJob.__doc__ = "A background job: poll `status_url`, then read `result_url` or `stream_url`."


class Seed(TypedDict):
    container_id: str
    container_name: str
    lot_id: str


class SeedResolveResult(TypedDict):
    stage: Literal["seed-resolve"]
    seeds: list[Seed]
    seed_count: Count
    seed_container_ids: list[str]
    not_found: Annotated[
        list[str],
        Field(
            description="Inputs that matched nothing (container mode: also those whose "
            "containers were never detected at the stations)."
        ),
    ]
    cache_key: Annotated[
        str,
        Field(
            pattern=SEED_KEY,
            description="An opaque, deterministic id of the seed request (profile and params "
            "without the masks loss_reasons, pj_types, packages; stations in any order). The "
            "dashboard echoes it in the lineage and events bodies, which ignore it.",
        ),
    ]
    job_id: NotRequired[JobId]


class LineageNode(TypedDict):
    container_id: str
    container_name: NotRequired[str | None]
    mfgorder_name: NotRequired[str | None]
    wafer_lot: NotRequired[str | None]
    node_type: NotRequired[
        Annotated[str | None, Field(description="WAFER, GC, GA, GD, LOT or UNKNOWN.")]
    ]


class LineageEdge(TypedDict):
    from_cid: str
    to_cid: str
    edge_type: Annotated[
        str, Field(description="split_from, merge_source, wafer_origin, gd_rework_source.")
    ]


CidLists = dict[str, list[str]]


class LineageResult(TypedDict):
    """Backward (ancestors, parent_map, ...) or forward (children_map, ...); optional keys are
    left out when empty, never `parent_map` of a backward answer. The query tool's trees
    (query_tool: forward, query_tool_reverse: backward) also link each lot to its wafer lot's
    container (`wafer_origin`) and each GD rework lot to the lot it reworks
    (`gd_rework_source`)."""

    stage: Literal["lineage"]
    total_nodes: Count
    roots: Annotated[
        list[str],
        Field(
            description="Backward: the seeds. Forward: the tops of the tree, the nodes no "
            "children_map link points to (wafers in the query tool's trees)."
        ),
    ]
    ancestors: NotRequired[Annotated[CidLists, Field(description="Each seed's ancestors.")]]
    merges: NotRequired[dict[str, Any]]
    total_ancestor_count: NotRequired[
        Annotated[Count, Field(description="Backward: distinct ancestors, seeds excluded.")]
    ]
    seed_roots: NotRequired[dict[str, str]]
    parent_map: NotRequired[
        Annotated[
            CidLists,
            Field(description="Backward, always (`{}` without parents): child -> parents."),
        ]
    ]
    merge_edges: NotRequired[CidLists]
    children_map: NotRequired[
        Annotated[
            CidLists,
            Field(
                description="Forward: parent -> children of splits, wafer_origin and "
                "gd_rework_source links (merges only in `edges`)."
            ),
        ]
    ]
    leaf_serials: NotRequired[CidLists]
    descendants: NotRequired[Annotated[CidLists, Field(description="Each seed's descendants.")]]
    names: NotRequired[dict[str, str | None]]
    nodes: NotRequired[dict[str, LineageNode]]
    edges: NotRequired[list[LineageEdge]]
    job_id: NotRequired[JobId]
    query_id: NotRequired[
        Annotated[
            str | None,
            Field(
                description="The id of this stored lineage: send it as the events request's "
                "`lineage_query_id`."
            ),
        ]
    ]


class DomainPage(TypedDict):
    data: list[Row]
    count: Annotated[Count, Field(description="Rows in this page.")]
    total: Annotated[Count, Field(description="Rows in the domain.")]
    offset: NotRequired[Count]
    quality_meta: QualityMeta


class ParetoItem(TypedDict):
    name: str
    input_qty: NotRequired[float]
    defect_qty: NotRequired[float]
    defect_rate: NotRequired[Annotated[float, Field(description="Percent, 4 decimals.")]]
    lot_count: NotRequired[Count]
    cumulative_pct: NotRequired[Annotated[float, Field(description="Percent, 2 decimals.")]]


class TrendDay(TypedDict):
    date: Annotated[str, Field(json_schema_extra={"format": "date"})]
    input_qty: NotRequired[float]
    defect_qty: NotRequired[float]
    defect_rate: NotRequired[float]
    lot_count: NotRequired[Count]


class DetectionLossReason(TypedDict):
    """Forward: one loss reason at detection (MSD-06)."""

    loss_reason: Annotated[str, Field(description="The reason, or `其他` for the rest past 10.")]
    reject_qty: Annotated[float, Field(description="Defects for that reason (pieces).")]
    input_qty: Annotated[
        float, Field(description="Detection input of the lots carrying it (pieces).")
    ]
    lot_count: Annotated[Count, Field(description="Lots carrying it (`其他`: their union).")]
    reject_rate: Annotated[
        float, Field(description="reject_qty / input_qty as a FRACTION 0..1, 6 decimals.")
    ]


class MatrixHeader(TypedDict):
    name: str
    total: Annotated[float, Field(description="Sum of the row's or column's cells (pieces).")]


class ReasonMatrix(TypedDict):
    """Forward: front (detection) x downstream loss reasons (MSD-09). Each downstream reject of
    a defect lot's family counts under every front reason of the defect lots it descends from,
    so rows may overlap. Rows and columns: Top 10 by total, then `其他`; all empty when nothing
    was rejected downstream."""

    rows: list[MatrixHeader]
    cols: list[MatrixHeader]
    cells: Annotated[list[list[float]], Field(description="Pieces, [row][col].")]
    row_pct: Annotated[
        list[list[float]],
        Field(description="Each cell's share of its row, percent, 2 decimals; 0 in an empty row."),
    ]


class Aggregation(TypedDict):
    """The mid-section-defect analysis (snake_case charts, UPPER_SNAKE attribution rows)."""

    direction: NotRequired[Direction]
    station: NotRequired[str]
    available_loss_reasons: NotRequired[list[str]]
    genealogy_status: NotRequired[
        Annotated[
            Literal["ready", "error"],
            Field(
                description="ready: the detection lots' genealogy was applied; error: it was "
                "not (`genealogy_error` says why)."
            ),
        ]
    ]
    genealogy_error: NotRequired[str]
    daily_trend: NotRequired[list[TrendDay]]
    container_mode_hint: NotRequired[str]
    kpi: Annotated[
        dict[str, float | str | None],
        Field(
            description="snake_case figures. Forward: detection_lot_count, "
            "detection_defect_qty, tracked_lot_count, downstream_stations_reached, "
            "downstream_total_reject, downstream_reject_rate (percent, 4 decimals)."
        ),
    ]
    charts: Annotated[dict[str, list[ParetoItem]], Field(description="Pareto charts.")]
    attribution: Annotated[list[Row], Field(description="Machines, UPPER_SNAKE fields.")]
    materials_attribution: NotRequired[
        Annotated[
            list[Row],
            Field(
                description="Backward: per material (part, lot), MATERIAL_KEY `part (lot)` (or "
                "`part`), MATERIAL_PART_NAME, MATERIAL_LOT_NAME, MATERIAL_PART_DESC, "
                "DETECTION_LOT_COUNT, INPUT_QTY, DEFECT_QTY, DEFECT_RATE; most defects first."
            ),
        ]
    ]
    detail_total_count: NotRequired[Count]
    amplification: NotRequired[
        Annotated[
            float | None,
            Field(
                description="Forward (MSD-07): the defect lots' downstream reject rate (theirs "
                "and their descendants', after the detection station) over their own detection "
                "defect rate, 6 decimals; the same cohort on both sides. null when no lot has a "
                "defect, 0.0 when nothing was rejected downstream."
            ),
        ]
    ]
    by_detection_loss_reason: NotRequired[list[DetectionLossReason]]
    by_front_downstream_reason_matrix: NotRequired[ReasonMatrix]


class EventsResult(TypedDict):
    """Events per domain (a page of each: `offset`, `limit`)."""

    stage: Literal["events"]
    job_id: NotRequired[JobId]
    query_id: NotRequired[QueryId]
    trace_query_id: NotRequired[TraceQueryId]
    results: dict[str, DomainPage]
    aggregation: Aggregation | None
    quality_meta: QualityMeta
    domain_quality_meta: dict[str, QualityMeta]
    error: NotRequired[
        Annotated[str, Field(description="When a domain failed: `one or more domains failed`.")]
    ]
    code: NotRequired[Literal["EVENTS_PARTIAL_FAILURE"]]
    failed_domains: NotRequired[list[Domain]]


class Pagination(TypedDict):
    page: Annotated[int, Field(ge=1)]
    page_size: Annotated[int, Field(ge=1, le=500)]
    total_count: Count
    total_pages: Annotated[
        Count, Field(description="Backward at least 1; forward 0 when there is no row.")
    ]


class DetailPage(TypedDict):
    """One page of the mid-section-defect detail table, worst defect rate first."""

    detail: Annotated[
        list[Row],
        Field(
            description="Backward: per lot and loss reason; forward: "
            "per lot with a detection defect."
        ),
    ]
    pagination: Pagination
    trace_query_id: str


#: A finished job's result: the document of its kind.
JobResult = TypeAliasType("JobResult", SeedResolveResult | LineageResult | EventsResult)


# ---- the job event log, probes -------------------------------------------------------------------
@with_config(ConfigDict(extra="allow"))  # the recorded fields: extra keys
class JobEvent(TypedDict):
    """A job's lifecycle event; its other fields (`stage`, `rows`, `seconds`, `reason`, ...)
    as recorded, as strings."""

    id: Annotated[str, Field(pattern=STREAM_ID, description="The event's stream id.")]
    event: Annotated[
        str,
        Field(
            description="accepted, stage_started, stage_finished, retry, domain_failed, "
            "failed, cancelled, finished or purged."
        ),
    ]
    job: Annotated[str, Field(description="The job's id.")]
    at: Annotated[float | None, Field(description="When it was recorded (epoch seconds).")]


class JobEventLog(TypedDict):
    events: Annotated[list[JobEvent], Field(description="Oldest first.")]
    next: Annotated[
        str,
        Field(
            pattern=STREAM_ID,
            description="Send it as `after` to read on: the id of the last event read (also "
            "when `job` left it out), else the `after` given, else `0`.",
        ),
    ]
    max_events: Annotated[
        int,
        Field(
            ge=1,
            description="The log keeps about this many events (TRACE_EVENT_LOG_MAX); older "
            "ones are dropped.",
        ),
    ]


# ---- the mid-section-defect page's option lists --------------------------------------------------
class StationOption(TypedDict):
    name: Annotated[str, Field(description="The workcenter group: a `params.station` value.")]
    label: Annotated[str, Field(description="Display text: the group's first workcenter pattern.")]
    order: Annotated[int, Field(ge=0, description="Process position (the list is sorted by it).")]


#: The station picker's options, in process order.
StationOptions = TypeAliasType("StationOptions", list[StationOption])


class LossReasons(TypedDict):
    loss_reasons: Annotated[
        list[str],
        Field(
            description="Distinct loss reasons of the warehouse's rejects, sorted; empty "
            "until a worker has read them."
        ),
    ]


class ContainerFilterOptions(TypedDict):
    """Each picker's values, sorted; empty until a worker has read them."""

    pj_types: list[str]
    packages: list[str]
    bops: list[str]
    pj_functions: list[str]


class OptionsMeta(TypedDict):
    updated_at: Annotated[
        str | None,
        Field(
            description="When a worker read them from the warehouse (ISO 8601 UTC); null "
            "when the cache is cold."
        ),
    ]
    schema_version: Annotated[int, Field(description="Version of the cached document.")]


class Health(TypedDict):
    status: Literal["ok"]


class Check(TypedDict):
    ok: bool
    detail: str


class Readiness(TypedDict):
    status: Literal["ready", "not ready"]
    checks: Annotated[dict[str, Check], Field(description="redis, eviction, broker, source, ...")]


# ---- operators (/api/ops/) ---------------------------------------------------------------------
# The list lines, the timeline and the overview are the engine's documents
# (pipeline.engine.job_list, .timeline, .overview); these are the answers around them.
class JobList(TypedDict):
    """Jobs newest first (``GET /api/ops/jobs``)."""

    jobs: list[JobLine]


class RetryAccepted(TypedDict):
    """A retried job, queued again at its failed stage: follow it at ``status_url``."""

    job_id: JobId
    state: Annotated[
        Literal["queued"],
        Field(description="As the retry left it (a worker may start it at once)."),
    ]
    status_url: str
    timeline_url: str


class Purged(TypedDict):
    """A purged job: every key of it released (``UNLINK``), its hash included."""

    job_id: JobId
    released_keys: Count
