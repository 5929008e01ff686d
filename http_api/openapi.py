"""The OpenAPI 3.1 document (``GET /openapi.json``), generated.

Nothing here describes a field: the paths and operations come from the ``@operation``
declarations of the app's resources (``http_api.operation``); the schemas of bodies, query
strings, headers and answers from the pydantic models and TypedDicts those declarations name
(``http_api.models``); the error responses from the ``TraceError`` classes each operation may
answer (status, code, docstring). What this module adds is the frame: envelopes around the
answers, the path parameter, the shared headers, security, tags.

``tests/api/test_openapi.py`` holds the document to the app: its paths and methods equal the
routes and responders, it validates as OpenAPI 3.1, and schemathesis checks real answers against
it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from http_api.models.answers import ErrorEnvelope, SuccessEnvelope
from http_api.operation import JSON, Answer, ErrorSpec, Operation, operations_of
from pipeline.errors import TooManyRequests, TraceError, Unauthorized

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
VALIDATION: Literal["validation"] = "validation"
TITLE = "MES Trace Pipeline"
DESCRIPTION = """\
The dashboard's staged trace API: seed-resolve, lineage and events (each a job for the workers;
small requests answer with the result, big ones 202 with the job's urls), job status, result
pages and the NDJSON stream.

JSON answers come in envelopes: `{"success": true, "data": ...}` and
`{"success": false, "error": {"code": "UPPER_SNAKE", "message": "..."}, "meta"?: {...}}`; a
request refused for its input names every bad field in `meta.errors`. No answer is ever HTML,
not even the server's own (a request line or headers too large: 414, 431).

With TRACE_API_TOKEN set, every path but /healthz and /readyz needs
`Authorization: Bearer <token>`; without it, none does. Job endpoints and submissions are rate
limited per client (429 with Retry-After)."""
TAGS = [
    {"name": "trace", "description": "The staged endpoints: each submits a job."},
    {"name": "jobs", "description": "Job status, cancel, result pages, stream, event log."},
    {
        "name": "ops",
        "description": "Probes, metrics, this document; operators' job list, timeline, retry, "
        "purge and overview (/api/ops/).",
    },
]
PATH_PARAMETERS = {
    "job_id": {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The job's id (32 hex digits), as a submitting endpoint returned it.",
    }
}
HEADERS = {
    "Retry-After": ({"type": "integer", "minimum": 1}, "Seconds to wait before trying again."),
    "WWW-Authenticate": ({"type": "string"}, 'Always `Bearer realm="trace"`.'),
    "Cache-Control": ({"const": "no-cache"}, "The stream is never cached."),
    "X-Accel-Buffering": ({"const": "no"}, "Proxies must not buffer the stream."),
    "Content-Disposition": (
        {"type": "string", "pattern": "^attachment; filename="},
        "A download: `attachment; filename=defect_trace_<trace_query_id>.csv`.",
    ),
}
#: From a 202 to its job (for clients and stateful testers that follow links).
JOB_LINKS = {
    name: {"operationId": target, "parameters": {"job_id": "$response.body#/data/job_id"}}
    for name, target in (("status", "getJob"), ("result", "getJobResult"), ("stream", "streamJob"))
}


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every property (the names say it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def document() -> dict[str, Any]:
    """The document, as a fresh dict on each call (a caller may change what it got)."""
    return orjson.loads(_document_bytes())


@functools.cache
def _document_bytes() -> bytes:
    from http_api.routes import ROUTES  # the routes' resources import this module (ops)

    routes = [(path, operations_of(resource), resource) for path, resource in ROUTES.items()]
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for path, operations, resource in routes:
        item = {}
        for method, spec in operations.items():
            item[method] = _operation(path, spec, resource, schemas)
        paths[path] = item
    schemas.add(SuccessEnvelope)
    schemas.add(ErrorEnvelope)
    doc = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "0.1.0", "description": DESCRIPTION},
        "tags": TAGS,
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.build(),
            "headers": {
                name: {"required": True, "schema": schema, "description": text}
                for name, (schema, text) in HEADERS.items()
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "TRACE_API_TOKEN (needed only when it is set).",
                }
            },
        },
    }
    return orjson.dumps(doc)


class _Schemas:
    """The component schemas of every type the operations name, generated in one pass (shared
    definitions such as ``Domain`` appear once); a type is referenced by its name."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}
        self.inline: set[str] = set()  # query and header models: their fields are parameters

    def add(self, kind: Any) -> Schema:
        """A ``$ref`` to ``kind``'s schema (a model, TypedDict or named alias)."""
        name = _name_of(kind)
        self.types[name] = kind
        return {"$ref": REF.format(model=name)}

    def properties(self, model: type[BaseModel]) -> dict[str, tuple[Schema, bool]]:
        """``model``'s fields as (schema, required), by their name in the request; the schemas
        they refer to become components."""
        schema = model.model_json_schema(ref_template=REF, schema_generator=_Generator)
        self.types[model.__name__] = model  # generated with the rest: what it refers to is shared
        self.inline.add(model.__name__)
        required = set(schema.get("required", ()))
        return {n: (s, n in required) for n, s in schema.get("properties", {}).items()}

    def build(self) -> dict[str, Schema]:
        named = [(n, VALIDATION, TypeAdapter(t)) for n, t in self.types.items()]
        top, defs = TypeAdapter.json_schemas(named, ref_template=REF, schema_generator=_Generator)
        schemas = dict(defs.get("$defs", {}))
        for (name, _mode), schema in top.items():
            if schema.get("$ref") != REF.format(model=name):
                schemas[name] = schema
        for name in self.inline:
            schemas.pop(name, None)
        return dict(sorted(schemas.items()))


def _name_of(kind: Any) -> str:
    return str(getattr(kind, "__name__", None) or kind)


def _operation(path: str, spec: Operation, resource: Any, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": spec.id, "summary": spec.summary}
    if spec.description:
        op["description"] = spec.description
    op["tags"] = [getattr(resource, "tag", "ops")]
    parameters = [PATH_PARAMETERS[n] for n in PATH_PARAMETERS if "{" + n + "}" in path]
    for model, where in ((spec.query, "query"), (spec.headers, "header")):
        if model is not None:
            for name, (schema, required) in schemas.properties(model).items():
                described = {"name": name, "in": where, "required": required}
                if "description" in schema:
                    described["description"] = schema.pop("description")
                parameters.append({**described, "schema": schema})
    if parameters:
        op["parameters"] = parameters
    if spec.body is not None:
        body = {"schema": schemas.add(spec.body)}
        op["requestBody"] = {"required": True, "content": {JSON: body}}
    if spec.open_access:
        op["security"] = []
    answers = {str(s): _answer(a, schemas) for s, a in spec.answers.items()}
    errors = list(spec.errors)
    if not spec.open_access:
        errors.append(Unauthorized)
    if getattr(resource, "rate_bucket", None):
        errors.append(TooManyRequests)
    answers.update(_error_responses(errors))
    op["responses"] = dict(sorted(answers.items()))
    return op


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    schema: Schema | None = None
    if answer.schema is not None:
        schema = schemas.add(answer.schema)
    elif answer.media == JSON:
        schema = {"type": "object"}
    if schema is not None and answer.enveloped:
        own: dict[str, Any] = {"type": "object", "properties": {"data": schema}}
        if answer.meta is not None:
            own["properties"]["meta"] = schemas.add(answer.meta)
            own["required"] = ["meta"]
        schema = {"allOf": [{"$ref": REF.format(model="SuccessEnvelope")}, own]}
    described["content"] = {answer.media: {"schema": schema} if schema is not None else {}}
    if answer.headers:
        described["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in answer.headers}
    if answer.job_links:
        described["links"] = JOB_LINKS
    return described


def _error_responses(errors: Iterable[ErrorSpec]) -> dict[str, Any]:
    """One response per status: every error class answered with it, by code and docstring."""
    by_status: dict[int, list[type[TraceError]]] = {}
    for spec in errors:
        kind, status = spec if isinstance(spec, tuple) else (spec, spec.status)
        if kind not in by_status.setdefault(status, []):
            by_status[status].append(kind)
    responses: dict[str, Any] = {}
    for status, kinds in sorted(by_status.items()):
        text = " ".join(f"`{k.code}`: {_first_line(k.__doc__)}" for k in kinds)
        response: dict[str, Any] = {
            "description": text,
            "content": {JSON: {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}},
        }
        headers = ["Retry-After"] if status in (429, 503) else []
        if status == 401:
            headers.append("WWW-Authenticate")
        if headers:
            response["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in headers}
        responses[str(status)] = response
    return responses


def _first_line(doc: str | None) -> str:
    """A docstring's first paragraph, on one line, in Markdown (``x`` -> `x`)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")
