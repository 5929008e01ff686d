"""The OpenAPI 3.1 document of the API (``GET /openapi.json``).

``document()`` builds it fresh on each call, one section at a time: the shared schemas
(envelopes, enumerations, ``quality_meta``), the request bodies, the stage results, the job
documents, the NDJSON stream lines, the parameters, headers and error responses, then the
operations of every route of ``http_api.app.ROUTES``. Small helpers (``obj``, ``array``,
``string``, ...) keep each schema a few lines.

Field names are the dashboard contract's; the enumerations (profiles, domains, resolve types,
stations, job states, stages) come from the modules that validate them, so the document follows
the checks. The request schemas describe what a client should send; the API also checks what JSON
Schema cannot say (a date range's length, a wildcard's prefix) and answers 400 naming it.

``tests/api/test_openapi.py`` holds the document to the app: its paths and methods equal the
routes and responders, it validates as OpenAPI 3.1, and schemathesis checks real answers against
it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline import domains
from pipeline.engine.job import STAGES, STATES
from pipeline.engine.status import CONTRACT_STATES, STATUS_FIELDS
from pipeline.stages.seed_resolve import RESOLVE_TYPES
from pipeline.workcenters import DEFAULT_STATION, GROUP_NAMES

Schema = dict[str, Any]

NDJSON = "application/x-ndjson"
UPPER_SNAKE = "^[A-Z][A-Z0-9_]*$"  # error codes and warehouse column names
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
JOB_ID = "^[0-9a-f]{32}$"  # 128 random bits in hex (``JobRegistry.submit``)
STREAM_ID = "^[0-9]+(-[0-9]+)?$"  # a Redis stream entry id: milliseconds-sequence


# ---- schema helpers ---------------------------------------------------------------------------
def ref(name: str, kind: str = "schemas") -> Schema:
    """A reference to the component ``name`` (a schema unless ``kind`` says otherwise)."""
    return {"$ref": f"#/components/{kind}/{name}"}


def described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


def string(description: str = "", **keywords: Any) -> Schema:
    return described({"type": "string", **keywords}, description)


def integer(description: str = "", **keywords: Any) -> Schema:
    """A non-negative integer unless ``minimum`` says otherwise."""
    return described({"type": "integer", "minimum": 0, **keywords}, description)


def number(description: str = "") -> Schema:
    return described({"type": "number"}, description)


def boolean(description: str = "") -> Schema:
    return described({"type": "boolean"}, description)


def array(items: Schema, description: str = "", **keywords: Any) -> Schema:
    return described({"type": "array", "items": items, **keywords}, description)


def enum(values: Iterable[str], description: str = "") -> Schema:
    return string(description, enum=list(values))


def const(value: Any) -> Schema:
    return {"const": value}


def nullable(schema: Schema, description: str = "") -> Schema:
    return described({"anyOf": [schema, {"type": "null"}]}, description)


def obj(
    properties: dict[str, Schema], required: Iterable[str] = (), description: str = ""
) -> Schema:
    """An object with ``properties``; it may hold others (the contract welcomes extensions)."""
    schema: Schema = {"type": "object", "properties": properties}
    wanted = list(required)
    if wanted:
        schema["required"] = wanted
    return described(schema, description)


def mapping(values: Schema, description: str = "", keys: Schema | None = None) -> Schema:
    """An object used as a map: values of one schema (keys of ``keys`` when given)."""
    schema: Schema = {"type": "object", "additionalProperties": values}
    if keys:
        schema["propertyNames"] = keys
    return described(schema, description)


def success(data: Schema) -> Schema:
    """The success envelope with ``data`` of the given schema."""
    return {"allOf": [ref("SuccessEnvelope"), obj({"data": data})]}


def failure(meta: Schema) -> Schema:
    """The error envelope with ``meta`` of the given schema."""
    return {"allOf": [ref("ErrorEnvelope"), obj({"meta": meta}, ["meta"])]}


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# ---- shared schemas ---------------------------------------------------------------------------
def common_schemas() -> dict[str, Schema]:
    """The envelopes, the enumerations and what every result shares."""
    return {
        "SuccessEnvelope": obj(
            {
                "success": const(True),
                "data": {"description": "The answer (its schema is the operation's)."},
                "meta": obj({}, description="Optional metadata."),
            },
            ["success", "data"],
            "Every JSON success: HTTP 200, or 202 for an accepted background job.",
        ),
        "ErrorEnvelope": obj(
            {
                "success": const(False),
                "error": obj(
                    {
                        "code": string("UPPER_SNAKE error code.", pattern=UPPER_SNAKE),
                        "message": string("Human text (never a stack trace)."),
                    },
                    ["code", "message"],
                ),
                "meta": obj({}, description="Optional details (e.g. `job_status`)."),
            },
            ["success", "error"],
            "Every error, whatever its status.",
        ),
        "Profile": enum(domains.PROFILES, "The dashboard's query profile."),
        "Domain": enum(domains.DOMAINS, "An events domain."),
        "Direction": enum(
            domains.DIRECTIONS,
            "Lineage direction; by default forward for query_tool, else backward.",
        ),
        "Station": enum(GROUP_NAMES, "A workcenter group (the detection station)."),
        "JobState": enum(
            CONTRACT_STATES,
            "A job's status as the dashboard understands it (a cancelled job is `failed`).",
        ),
        "ServiceState": enum(STATES, "The service's own state of a job (`cancelled` too)."),
        "Stage": enum(STAGES, "A stage of a job."),
        "ContainerIds": array(
            string(minLength=1), "Container ids (CIDs); blanks and repeats are dropped.", minItems=1
        ),
        "QualityMeta": obj(
            {
                "status": enum(("complete", "partial", "truncated", "failed")),
                "scope": enum(("domain", "query")),
                "domain": ref("Domain"),
                "reasons": array(string()),
                "observed_rows": integer(),
                "max_rows": integer("The row guard that truncated the domain."),
                "failed_ranges": array(obj({"start": {}, "end": {}}, ["start", "end"])),
            },
            ["status", "scope", "reasons", "observed_rows"],
            "How complete a domain's (or the whole query's) rows are.",
        ),
        "Row": described(
            mapping({}, keys={"pattern": UPPER_SNAKE}),
            "A warehouse row: UPPER_CASE column names, timestamps `YYYY-MM-DD HH:MM:SS`.",
        ),
    }


# ---- request bodies ---------------------------------------------------------------------------
FRESH = boolean("Start a new job even when an equal request has one (default false).")


def by_name_params(profile: str) -> Schema:
    """Seeds named by ``values`` of one of the profile's resolve types."""
    values = array(
        string(minLength=1, pattern=r"\S"),
        "Names; `*` is a wildcard after at least TRACE_RESOLVE_MIN_PREFIX characters; "
        "gd_* values start with GD.",
        minItems=1,
    )
    types = enum(RESOLVE_TYPES[profile], "What the values are.")
    return obj({"resolve_type": types, "values": values}, ["resolve_type", "values"])


def detection_params() -> Schema:
    """Mid-section-defect seeds: the detection lots at a station in a date range."""
    names = {"anyOf": [array(string()), string("Comma-separated.")]}
    date = string(format="date", pattern=ISO_DATE)
    return obj(
        {
            "station": {**ref("Station"), "default": DEFAULT_STATION},
            "start_date": described(date, "First day (inclusive)."),
            "end_date": described(date, "Last day; at most TRACE_MSD_MAX_DAYS days in all."),
            "loss_reasons": names,
            "pj_types": names,
            "packages": names,
            "direction": ref("Direction"),
        },
        ["start_date", "end_date"],
    )


def seed_request(extra: dict[str, Schema], description: str) -> Schema:
    """A request naming its seeds (seed-resolve, a whole trace): one shape per profile."""
    shapes = {
        domains.QUERY_TOOL: by_name_params(domains.QUERY_TOOL),
        domains.QUERY_TOOL_REVERSE: by_name_params(domains.QUERY_TOOL_REVERSE),
        domains.MID_SECTION_DEFECT: {
            "anyOf": [by_name_params(domains.MID_SECTION_DEFECT), detection_params()]
        },
    }
    return described(
        {
            "oneOf": [
                obj({"profile": const(p), "params": params, **extra}, ["profile", "params"])
                for p, params in shapes.items()
            ]
        },
        description,
    )


def request_schemas() -> dict[str, Schema]:
    """The bodies of the POSTs."""
    domain_list = array(ref("Domain"), "In the order the results should come.", minItems=1)
    events = obj(
        {
            "profile": ref("Profile"),
            "container_ids": ref("ContainerIds"),
            "domains": domain_list,
            "params": obj(
                {"direction": ref("Direction")},
                description="mid_section_defect: also the detection params (aggregation).",
            ),
            "seed_container_ids": array(string(), "mid_section_defect: the detection lots."),
            "lineage": obj({}, description="mid_section_defect: the seeds' lineage document."),
            "lineage_job_id": string(
                "mid_section_defect: a lineage job to take lots and map from."
            ),
            "fresh": FRESH,
        },
        ["profile", "domains"],
        "The events of the given lots (or of a lineage job's) per domain.",
    )
    events["anyOf"] = [{"required": ["container_ids"]}, {"required": ["lineage_job_id"]}]
    return {
        "SeedResolveRequest": seed_request(
            {"fresh": FRESH}, "Seeds from names (any profile) or a detection window (MSD)."
        ),
        "LineageRequest": obj(
            {
                "profile": ref("Profile"),
                "container_ids": ref("ContainerIds"),
                "params": obj({"direction": ref("Direction")}),
                "fresh": FRESH,
            },
            ["profile", "container_ids"],
            "The genealogy around the given lots.",
        ),
        "EventsRequest": events,
        "TraceJobRequest": seed_request(
            {"domains": described(domain_list, "Default: the profile's set."), "fresh": FRESH},
            "A whole trace from seeds: seed-resolve, lineage, events (and aggregation).",
        ),
    }


# ---- results ----------------------------------------------------------------------------------
def result_schemas() -> dict[str, Schema]:
    """The stage documents (200 answers, job results) and the 202 answer."""
    job_id = string(pattern=JOB_ID)
    cid_lists = mapping(array(string()))
    return {
        "AcceptedJob": obj(
            {
                "stage": enum(("seed-resolve", "lineage", "events", "trace")),
                "async": const(True),
                "status": ref("JobState"),
                "job_id": job_id,
                "status_url": string(),
                "stream_url": string(),
                "result_url": string(),
            },
            ["stage", "async", "job_id", "status_url", "stream_url"],
            "A background job: poll `status_url`, then read `result_url` or `stream_url`.",
        ),
        "Seed": obj(
            {"container_id": string(), "container_name": string(), "lot_id": string()},
            ["container_id", "container_name", "lot_id"],
        ),
        "SeedResolveResult": obj(
            {
                "stage": const("seed-resolve"),
                "seeds": array(ref("Seed")),
                "seed_count": integer(),
                "seed_container_ids": array(string()),
                "not_found": array(string(), "Inputs that matched nothing."),
                "job_id": job_id,
            },
            ["stage", "seeds", "seed_count", "seed_container_ids", "not_found"],
        ),
        "LineageNode": obj(
            {
                "container_id": string(),
                "container_name": nullable(string()),
                "mfgorder_name": nullable(string()),
                "wafer_lot": nullable(string()),
                "node_type": nullable(string()),
            },
            ["container_id"],
        ),
        "LineageEdge": obj(
            {
                "from_cid": string(),
                "to_cid": string(),
                "edge_type": string("split_from, merge_source, wafer_origin, gd_rework_source."),
            },
            ["from_cid", "to_cid", "edge_type"],
        ),
        "LineageResult": obj(
            {
                "stage": const("lineage"),
                "total_nodes": integer(),
                "roots": array(string()),
                "ancestors": described(cid_lists, "Backward: each seed's ancestors, sorted."),
                "merges": obj({}),
                "total_ancestor_count": integer("Backward: distinct ancestors, seeds excluded."),
                "seed_roots": mapping(string(), "Backward: each seed's root container name."),
                "parent_map": cid_lists,
                "merge_edges": cid_lists,
                "children_map": described(cid_lists, "Forward: children per parent (splits)."),
                "leaf_serials": cid_lists,
                "descendants": described(cid_lists, "Forward: each seed's descendants."),
                "names": mapping(nullable(string())),
                "nodes": mapping(ref("LineageNode")),
                "edges": array(ref("LineageEdge")),
                "job_id": job_id,
            },
            ["stage", "total_nodes", "roots"],
            "Backward (ancestors, ...) or forward (children_map, ...); optional keys are left "
            "out when empty.",
        ),
        "DomainPage": obj(
            {
                "data": array(ref("Row")),
                "count": integer("Rows in this page."),
                "total": integer("Rows in the domain."),
                "offset": integer(),
                "quality_meta": ref("QualityMeta"),
            },
            ["data", "count", "total", "quality_meta"],
        ),
        "Aggregation": aggregation(),
        "EventsResult": obj(
            {
                "stage": const("events"),
                "job_id": job_id,
                "results": mapping(ref("DomainPage"), keys=ref("Domain")),
                "aggregation": nullable(ref("Aggregation")),
                "quality_meta": ref("QualityMeta"),
                "domain_quality_meta": mapping(ref("QualityMeta"), keys=ref("Domain")),
                "error": string("When a domain failed: `one or more domains failed`."),
                "code": const("EVENTS_PARTIAL_FAILURE"),
                "failed_domains": array(ref("Domain")),
            },
            ["stage", "results", "aggregation", "quality_meta", "domain_quality_meta"],
            "Events per domain (a page of each: `offset`, `limit`).",
        ),
        "JobResult": {
            "description": "A finished job's result: the document of its kind.",
            "oneOf": [ref("SeedResolveResult"), ref("LineageResult"), ref("EventsResult")],
        },
    }


def aggregation() -> Schema:
    """The mid-section-defect analysis (snake_case charts, UPPER_SNAKE attribution rows)."""
    figures = {
        "input_qty": number(),
        "defect_qty": number(),
        "defect_rate": number("Percent, 4 decimals."),
        "lot_count": integer(),
    }
    pareto = obj(
        {"name": string(), **figures, "cumulative_pct": number("Percent, 2 decimals.")}, ["name"]
    )
    day = obj({"date": string(format="date"), **figures}, ["date"])
    return obj(
        {
            "direction": ref("Direction"),
            "station": string(),
            "available_loss_reasons": array(string()),
            "genealogy_status": enum(("ready", "error")),
            "daily_trend": array(day),
            "container_mode_hint": string(),
            "kpi": mapping({"type": ["number", "string", "null"]}, "snake_case figures."),
            "charts": mapping(array(pareto), "Pareto charts (by station, machine, ...)."),
            "attribution": array(ref("Row"), "Machines, UPPER_SNAKE fields."),
            "material_attribution": array(ref("Row")),
            "detail_total_count": integer(),
        },
        ["kpi", "charts", "attribution"],
        "The mid-section-defect analysis.",
    )


# ---- jobs -------------------------------------------------------------------------------------
def job_schemas() -> dict[str, Schema]:
    """The status document and its parts."""
    counts = {
        "batches_done": integer(),
        "batches_total": nullable(integer(), "Null while unknown."),
        "rows": integer(),
    }
    return {
        "StageProgress": obj(
            {
                **counts,
                "runs": integer(),
                "completed": boolean(),
                "domains": mapping(obj(counts, counts), "Events: per domain."),
            },
            counts,
        ),
        "JobError": obj(
            {
                "stage": nullable(ref("Stage")),
                "code": string(pattern=UPPER_SNAKE),
                "message": string(),
                "input": boolean("The request was at fault."),
            },
            ["code", "message"],
        ),
        "JobStatus": obj(
            {
                "job_id": string(pattern=JOB_ID),
                "status": ref("JobState"),
                "state": ref("ServiceState"),
                "profile": ref("Profile"),
                "cid_count": integer(),
                "domains": array(ref("Domain")),
                "progress": string("One line, e.g. `events: 37/112 batches, 412,000 rows`."),
                "created_at": integer("Epoch seconds."),
                "elapsed_seconds": number("One decimal."),
                "error": nullable(string()),
                "stage": nullable(ref("Stage"), "The current (or last) stage."),
                "completed_stages": array(ref("Stage")),
                "queue": string(),
                "stages": mapping(ref("StageProgress"), keys=ref("Stage")),
                "failed_domains": array(ref("Domain")),
                "error_detail": nullable(ref("JobError")),
            },
            STATUS_FIELDS,
        ),
        "JobEvent": {
            **obj(
                {
                    "id": string("The event's stream id.", pattern=STREAM_ID),
                    "event": string(
                        "accepted, stage_started, stage_finished, retry, domain_failed, "
                        "failed, cancelled, finished or purged."
                    ),
                    "job": string("The job's id."),
                    "at": nullable(number(), "When it was recorded (epoch seconds)."),
                },
                ["id", "event", "job", "at"],
                "A job's lifecycle event; its other fields (`stage`, `rows`, `seconds`, "
                "`reason`, ...) as recorded, as strings.",
            ),
            "additionalProperties": string(),
        },
        "JobEventLog": obj(
            {
                "events": array(ref("JobEvent"), "Oldest first."),
                "next": string(
                    "Send it as `after` to read on: the id of the last event read (also when "
                    "`job` left it out), else the `after` given, else `0`.",
                    pattern=STREAM_ID,
                ),
                "max_events": integer(
                    "The log keeps about this many events (TRACE_EVENT_LOG_MAX); older ones are "
                    "dropped.",
                    minimum=1,
                ),
            },
            ["events", "next", "max_events"],
        ),
    }


# ---- the NDJSON stream ------------------------------------------------------------------------
def line(kind: str, properties: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    return obj({"type": const(kind), **properties}, ["type", *required])


def stream_schemas() -> dict[str, Schema]:
    """One schema per kind of line, and ``StreamLine``: any of them."""
    domain, quality = ref("Domain"), ref("QualityMeta")
    code = string(pattern=UPPER_SNAKE)
    lines = [
        line(
            "meta",
            {
                "job_id": string(),
                "profile": ref("Profile"),
                "domains": array(domain),
                "follow": boolean(),
            },
            ["job_id", "profile", "domains"],
        ),
        line(
            "domain_start",
            {"domain": domain, "total": integer(), "quality_meta": quality},
            ["domain", "total", "quality_meta"],
        ),
        line(
            "records",
            {
                "domain": domain,
                "batch": integer("Resume after it with `from=domain:batch+1`."),
                "count": integer(),
                "data": array(ref("Row")),
            },
            ["domain", "batch", "count", "data"],
        ),
        line("domain_end", {"domain": domain, "count": integer()}, ["domain", "count"]),
        line("aggregation", {"data": ref("Aggregation")}, ["data"]),
        line("warning", {"code": code, "failed_domains": array(domain)}, ["code"]),
        line(
            "quality_meta",
            {"quality_meta": quality, "domain_quality_meta": mapping(quality)},
            ["quality_meta", "domain_quality_meta"],
        ),
        line(
            "result",
            {
                "stage": enum(("seed-resolve", "lineage")),
                "data": {"oneOf": [ref("SeedResolveResult"), ref("LineageResult")]},
            },
            ["stage", "data"],
        ),
        line("complete", {"total_records": integer()}, ["total_records"]),
        line(
            "error",
            {"code": code, "message": string(), "domain": string(), "batch": integer()},
            ["message"],
        ),
    ]
    schemas = {f"{_camel(s['properties']['type']['const'])}Line": s for s in lines}
    schemas["StreamLine"] = {
        "description": "A line of the NDJSON stream. Events: meta; per domain domain_start, "
        "records..., domain_end; aggregation?; warning?; quality_meta; complete (or error). "
        "Seed-resolve and lineage jobs: meta, result, complete.",
        "oneOf": [ref(name) for name in schemas],
    }
    return schemas


def _camel(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


# ---- probes -----------------------------------------------------------------------------------
def ops_schemas() -> dict[str, Schema]:
    check = obj({"ok": boolean(), "detail": string()}, ["ok", "detail"])
    return {
        "Health": obj({"status": const("ok")}, ["status"]),
        "Readiness": obj(
            {
                "status": enum(("ready", "not ready")),
                "checks": mapping(check, "redis, eviction, broker, source, workers."),
            },
            ["status", "checks"],
        ),
    }


# ---- parameters, headers, responses -----------------------------------------------------------
def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def parameters() -> dict[str, Any]:
    return {
        "JobId": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "schema": string(pattern=JOB_ID),
            "description": "The job's id, as a submitting endpoint returned it.",
        },
        "ResultDomain": query("domain", ref("Domain"), "Only this domain (default: all)."),
        "Offset": query("offset", integer(default=0), "First row of each domain's page."),
        "Limit": query("limit", integer(default=0), "Rows per domain page; 0: no limit."),
        "Follow": query(
            "follow", boolean(), "Stream a running job as its batches commit (also 1/0, yes/no)."
        ),
        "From": query(
            "from",
            string(pattern=r"^[a-z_]+:\d+$"),
            "Resume at `domain:batch` (a records line's `batch`).",
        ),
        "Prefer": {
            "name": "Prefer",
            "in": "header",
            "schema": string(),
            "description": "`respond-async` (RFC 7240): answer 202 at once whatever the "
            "request's size, for a client that polls the job itself (e.g. to show progress); "
            "the answer then carries `Preference-Applied: respond-async`.",
        },
        "EventsAfter": query(
            "after",
            string(pattern=STREAM_ID),
            "Only events after this stream id (an answer's `next`); default: the newest.",
        ),
        "EventsCount": query(
            "count", integer(minimum=1, maximum=1000, default=100), "Events to read at most."
        ),
        "EventsJob": query(
            "job",
            string(),
            "Only this job's events (among those read: `next` still moves past the others).",
        ),
        "EventsWait": query(
            "wait",
            integer(maximum=25),
            "With `after`: seconds to wait for an event when none is there yet.",
        ),
    }


HEADERS = {
    "Retry-After": (integer(minimum=1), "Seconds to wait before trying again."),
    "WWW-Authenticate": (string(), 'Always `Bearer realm="trace"`.'),
    "Cache-Control": (const("no-cache"), "The stream is never cached."),
    "X-Accel-Buffering": (const("no"), "Proxies must not buffer the stream."),
}


def headers() -> dict[str, Any]:
    return {
        name: {"required": True, "schema": schema, "description": description}
        for name, (schema, description) in HEADERS.items()
    }


def with_headers(response: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**response, "headers": {n: ref(n, "headers") for n in names}}


def error_response(description: str, meta: Schema | None = None) -> dict[str, Any]:
    """An error: the error envelope (with ``meta`` of the given schema)."""
    return {
        "description": description,
        "content": json_content(failure(meta) if meta else ref("ErrorEnvelope")),
    }


RETRY_META = obj({"retry_after_seconds": integer(minimum=1)}, ["retry_after_seconds"])
STATE_META = obj({"job_status": ref("JobState")}, ["job_status"])

#: The shared error responses: name -> (status, response).
ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "BadRequest": (
        "400",
        error_response(
            "INVALID_PARAMS or INVALID_PROFILE (or another fault of the input its job found), "
            "the message naming the problem."
        ),
    ),
    "Unauthorized": (
        "401",
        with_headers(
            error_response("UNAUTHORIZED: TRACE_API_TOKEN is set and no valid bearer token came."),
            "WWW-Authenticate",
        ),
    ),
    "JobNotFound": ("404", error_response("JOB_NOT_FOUND: unknown or expired job id.")),
    "JobGone": (
        "404",
        error_response("JOB_NOT_FOUND, or JOB_RESULT_EXPIRED: the result is gone (expired)."),
    ),
    "JobNotComplete": (
        "409",
        error_response("JOB_NOT_COMPLETE: the job has not finished.", STATE_META),
    ),
    "PayloadTooLarge": (
        "413",
        error_response(
            "PAYLOAD_TOO_LARGE (over TRACE_MAX_BODY_BYTES), or CID_LIMIT_EXCEEDED: "
            "`container_ids count (N) exceeds limit (M)`."
        ),
    ),
    "TooManyRequests": (
        "429",
        with_headers(
            error_response("TOO_MANY_REQUESTS: this client's rate limit is spent.", RETRY_META),
            "Retry-After",
        ),
    ),
    "InternalError": (
        "500",
        error_response("INTERNAL_ERROR, or the job failed for a reason of the service."),
    ),
    "StageUnavailable": (
        "503",
        with_headers(
            error_response(
                "SERVICE_UNAVAILABLE (Redis or the broker down), or SEED_RESOLVE_FAILED / "
                "LINEAGE_FAILED / EVENTS_AGGREGATION_FAILED: the warehouse was away "
                "(`meta.cause`), or (seed-resolve) the "
                "job did not finish in time (`meta.job_id`, `meta.job_status`).",
                obj(
                    {
                        "retry_after_seconds": integer(minimum=1),
                        "cause": string(pattern=UPPER_SNAKE),
                        "job_id": string(pattern=JOB_ID),
                        "job_status": ref("JobState"),
                    },
                    ["retry_after_seconds"],
                ),
            ),
            "Retry-After",
        ),
    ),
    "ServiceUnavailable": (
        "503",
        with_headers(
            error_response(
                "SERVICE_UNAVAILABLE (Redis or the broker down) or SOURCE_UNAVAILABLE.", RETRY_META
            ),
            "Retry-After",
        ),
    ),
}


def errors(*names: str) -> dict[str, Any]:
    """References to shared error responses, keyed by their status."""
    return {ERRORS[n][0]: ref(n, "responses") for n in names}


def ok(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(success(schema))}


# ---- operations -------------------------------------------------------------------------------
def operation(
    operation_id: str,
    summary: str,
    answers: dict[str, Any],
    *,
    description: str = "",
    params: Iterable[str] = (),
    body: str = "",
    open_access: bool = False,
) -> dict[str, Any]:
    """One operation; ``params`` and ``body`` name components."""
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = [ref(n, "parameters") for n in params]
    if body:
        op["requestBody"] = {"required": True, "content": json_content(ref(body))}
    if open_access:
        op["security"] = []
    op["responses"] = dict(sorted(answers.items()))
    return op


def tagged(tag: str, routes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for methods in routes.values():
        for op in methods.values():
            op["tags"] = [tag]
    return routes


def ops_paths() -> dict[str, dict[str, Any]]:
    ready = ok(ref("Readiness"), "Every check passed.")
    not_ready = with_headers(
        error_response("NOT_READY: a check failed (every verdict in `meta`).", ref("Readiness")),
        "Retry-After",
    )
    metrics = {"description": "Prometheus text format.", "content": {"text/plain": {}}}
    spec = {"description": "The OpenAPI 3.1 document.", "content": json_content(obj({}))}
    return {
        "/healthz": {
            "get": operation(
                "getHealth",
                "The process is up.",
                {"200": ok(ref("Health"), "Always.")},
                open_access=True,
            )
        },
        "/readyz": {
            "get": operation(
                "getReadiness",
                "The service can serve: Redis (noeviction), broker, warehouse, live workers.",
                {"200": ready, "503": not_ready},
                open_access=True,
            )
        },
        "/metrics": {
            "get": operation(
                "getMetrics",
                "Prometheus metrics (counters shared through Redis).",
                {"200": metrics, **errors("Unauthorized", "ServiceUnavailable")},
            )
        },
        "/openapi.json": {
            "get": operation(
                "getOpenApi", "This document.", {"200": spec, **errors("Unauthorized")}
            )
        },
    }


SYNC = (
    " A request under its size threshold waits for its job up to TRACE_SYNC_WAIT_SECONDS and "
    "answers 200 with the result; a bigger or slower one answers 202 with the job's urls. An "
    "equal request is served by the same job unless `fresh` is true."
)
#: From a 202 to its job (for clients and stateful testers that follow links).
JOB_LINKS = {
    name: {"operationId": target, "parameters": {"job_id": "$response.body#/data/job_id"}}
    for name, target in (("status", "getJob"), ("result", "getJobResult"), ("stream", "streamJob"))
}


def submit(
    operation_id: str,
    summary: str,
    body: str,
    result: str,
    description: str,
    extra: dict[str, Any] | None = None,
    *,
    accepts: bool = True,
    params: Iterable[str] = (),
) -> dict[str, Any]:
    """A submitting POST: 200 with ``result`` (if any) when its job finished in time, else 202
    (unless not ``accepts``)."""
    accepted = {
        "description": "Accepted: the job runs in the workers.",
        "content": json_content(success(ref("AcceptedJob"))),
        "links": JOB_LINKS,
    }
    answers = {
        **({"202": accepted} if accepts else {}),
        **errors(
            "BadRequest",
            "Unauthorized",
            "PayloadTooLarge",
            "TooManyRequests",
            "InternalError",
            "ServiceUnavailable",
        ),
        **(extra or {}),
    }
    if result:
        answers["200"] = ok(ref(result), "The job finished in time: its result.")
    return {
        "post": operation(
            operation_id, summary, answers, description=description, body=body, params=params
        )
    }


def trace_paths() -> dict[str, dict[str, Any]]:
    lineage_job = {
        "404": error_response("LINEAGE_JOB_NOT_FOUND: `lineage_job_id` names no job."),
        "409": error_response("LINEAGE_JOB_NOT_READY: that job's lineage has not finished."),
    }
    return {
        "/api/trace/seed-resolve": submit(
            "seedResolve",
            "Stage 1: the seed lots.",
            "SeedResolveRequest",
            "SeedResolveResult",
            "Seeds from lot ids, work orders, wafer lots, serial numbers, GD orders or ids; "
            "mid_section_defect also from the detection lots at a station in a date range. It "
            "waits for its job up to TRACE_SYNC_WAIT_SECONDS and answers 200 (never 202: the "
            "contract has none here); a resolve not done by then, or with no worker running, "
            "answers 503 SEED_RESOLVE_FAILED with Retry-After (the same request again joins "
            "the job). A failure of the service is SEED_RESOLVE_FAILED (`meta.cause`: the job's "
            "code): 503 when the warehouse was away, else 500.",
            {"503": ref("StageUnavailable", "responses")},
            accepts=False,
        ),
        "/api/trace/lineage": submit(
            "lineage",
            "Stage 2: the genealogy of the given lots.",
            "LineageRequest",
            "LineageResult",
            "Past TRACE_LINEAGE_ASYNC_SEEDS lots it always answers 202. A failure of the "
            "service is LINEAGE_FAILED (`meta.cause`: the job's code): 503 when the warehouse "
            "was away, else 500." + SYNC,
            {"503": ref("StageUnavailable", "responses")},
            params=("Prefer",),
        ),
        "/api/trace/events": submit(
            "events",
            "Stage 3: the events of the given lots per domain.",
            "EventsRequest",
            "EventsResult",
            "Past TRACE_ASYNC_CID_THRESHOLD lots it always answers 202. A mid_section_defect "
            "request with its detection lots also gets the aggregation; an aggregation that "
            "failed is EVENTS_AGGREGATION_FAILED (`meta.cause`: the job's code): 503 when the "
            "warehouse was away, 400 for bad input, else 500." + SYNC,
            {**lineage_job, "503": ref("StageUnavailable", "responses")},
            params=("Prefer",),
        ),
        "/api/trace/jobs": submit(
            "submitTrace",
            "A whole trace from seeds, in the workers (always 202).",
            "TraceJobRequest",
            "",
            "seed-resolve, lineage, events and (mid_section_defect) the aggregation.",
        ),
    }


def job_paths() -> dict[str, dict[str, Any]]:
    job = "/api/trace/job/{job_id}"
    limited = ("Unauthorized", "TooManyRequests", "ServiceUnavailable")
    stream = with_headers(
        {
            "description": "NDJSON: one StreamLine per line.",
            "content": {NDJSON: {"schema": ref("StreamLine")}},
        },
        "Cache-Control",
        "X-Accel-Buffering",
    )
    not_cancellable = error_response("JOB_NOT_CANCELLABLE: the job has already ended.", STATE_META)
    return {
        job: {
            "get": operation(
                "getJob",
                "A job's status (the dashboard polls it until finished or failed).",
                {"200": ok(ref("JobStatus"), "The status."), **errors("JobNotFound", *limited)},
                params=["JobId"],
            ),
            "delete": operation(
                "cancelJob",
                "Cancel a queued or started job (its checkpoints are released).",
                {
                    "200": ok(ref("JobStatus"), "Cancelled: the status afterwards."),
                    "409": not_cancellable,
                    **errors("JobNotFound", *limited),
                },
                params=["JobId"],
            ),
        },
        job + "/result": {
            "get": operation(
                "getJobResult",
                "A finished job's result (events: a page of each domain).",
                {
                    "200": ok(ref("JobResult"), "The result document of the job's kind."),
                    **errors("BadRequest", "JobGone", "JobNotComplete", *limited),
                },
                params=["JobId", "ResultDomain", "Offset", "Limit"],
            )
        },
        job + "/stream": {
            "get": operation(
                "streamJob",
                "A finished job's result as NDJSON (with `follow`, a running one's).",
                {"200": stream, **errors("BadRequest", "JobGone", "JobNotComplete", *limited)},
                params=["JobId", "Follow", "From"],
                description="Domains come in the request's order. A failure mid-stream ends "
                "with an `error` line instead of `complete`.",
            )
        },
        "/api/trace/job-events": {
            "get": operation(
                "getJobEvents",
                "The job event log (accepted, stages, retries, failures, finished, ...).",
                {
                    "200": ok(ref("JobEventLog"), "The events read (maybe none)."),
                    **errors("BadRequest", *limited),
                },
                params=["EventsAfter", "EventsCount", "EventsJob", "EventsWait"],
                description="Without `after`: the newest `count` events, oldest first. With "
                "`after`: the events after that id; with `wait`, the answer waits up to that "
                "many seconds (at most TRACE_SYNC_WAIT_SECONDS) for one to come. Page on with "
                "`after=next`. The log is capped at `max_events` entries, oldest dropped first.",
            )
        },
    }


# ---- the document -----------------------------------------------------------------------------
DESCRIPTION = """\
The dashboard's staged trace API: seed-resolve, lineage and events (each a job for the workers;
small requests answer with the result, big ones 202 with the job's urls), job status, result
pages and the NDJSON stream.

JSON answers come in envelopes: `{"success": true, "data": ...}` and
`{"success": false, "error": {"code": "UPPER_SNAKE", "message": "..."}, "meta"?: {...}}`.

With TRACE_API_TOKEN set, every path but /healthz and /readyz needs
`Authorization: Bearer <token>`; without it, none does. Job endpoints and submissions are rate
limited per client (429 with Retry-After)."""


def fresh(tree: Any) -> Any:
    """A copy of a JSON tree sharing no dict or list with it, nor within itself (the helpers
    reuse pieces such as ``FRESH``; a caller may change the document it got)."""
    if isinstance(tree, dict):
        return {key: fresh(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [fresh(value) for value in tree]
    return tree


def document() -> dict[str, Any]:
    """The document (a fresh dict each call, sharing nothing with another)."""
    schemas: dict[str, Schema] = {}
    for section in (
        common_schemas,
        request_schemas,
        result_schemas,
        job_schemas,
        stream_schemas,
        ops_schemas,
    ):
        schemas.update(section())
    return fresh(
        {
            "openapi": "3.1.0",
            "info": {"title": "MES Trace Pipeline", "version": "0.1.0", "description": DESCRIPTION},
            "tags": [
                {"name": "trace", "description": "The staged endpoints: each submits a job."},
                {"name": "jobs", "description": "Job status, cancel, result pages, stream."},
                {"name": "ops", "description": "Probes, metrics, this document."},
            ],
            "security": [{"bearerAuth": []}],
            "paths": {
                **tagged("ops", ops_paths()),
                **tagged("trace", trace_paths()),
                **tagged("jobs", job_paths()),
            },
            "components": {
                "schemas": schemas,
                "parameters": parameters(),
                "headers": headers(),
                "responses": {name: response for name, (_, response) in ERRORS.items()},
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "TRACE_API_TOKEN (needed only when it is set).",
                    }
                },
            },
        }
    )
