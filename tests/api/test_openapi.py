"""The OpenAPI document (``http_api.openapi``) against the app it describes.

* its paths and methods are exactly the app's routes and responders (a route added without
  documentation fails here); other methods get 405;
* ``GET /openapi.json`` serves it, and it is valid OpenAPI 3.1 (every Schema Object valid JSON
  Schema 2020-12, every ``$ref`` resolvable); its field names are the contract's;
* real answers of a dashboard session (200s, 202, NDJSON lines, errors) match it;
* schemathesis fuzzes every operation through the WSGI interface (and every POST with any JSON
  swapped in anywhere in a valid body): no 5xx, and every answer's status, content type,
  headers and body as documented, the token enforced.

The fuzzed app runs jobs in a thread of the test process (``make_app``); Redis databases 12 and
13 are flushed around each test.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.inspect
import falcon.testing
import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from http_api.app import ROUTES
from http_api.guards import OPEN_PATHS
from http_api.openapi import document
from pipeline.domains import RESOLVE_TYPE_NAMES
from pipeline.engine import keys
from pipeline.workcenters import GROUP_NAMES
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_names, ndjson, wait_status

TOKEN = "openapi-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPENAPI_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: The fuzzed app: a token (so ``ignored_auth`` can check it is enforced), rate limits out of the
#: way (429 is documented, but would hide the other answers), a short sync wait.
FUZZ_ENV = {
    "TRACE_API_TOKEN": TOKEN,
    "TRACE_RATE_LIMIT_REQUESTS": 1_000_000,
    "TRACE_RATE_LIMIT_PER_JOB_REQUESTS": 1_000_000,
    "TRACE_SUBMIT_RATE_LIMIT_REQUESTS": 1_000_000,
    "TRACE_SYNC_WAIT_SECONDS": 1,
}
#: What the fuzzer checks (undocumented methods: ``test_undocumented_methods_are_405``).
#: ``negative_data_rejection``: a request the document says is invalid gets a 4xx (the document
#: and the validation are one description). Not ``positive_data_acceptance``: some rules are
#: beyond JSON Schema (a date range's length, a wildcard's prefix), so schema-valid bodies may get
#: 400.
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


# ---- helpers ------------------------------------------------------------------------------------
def served_routes(app: falcon.App) -> dict[str, set[str]]:
    """Path -> the methods its resource implements (Falcon's own responders left out)."""
    return {
        route.path: {m.method.lower() for m in route.methods if not m.internal}
        for route in falcon.inspect.inspect_routes(app)
    }


def documented_routes(doc: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {m for m in item if m in OPENAPI_METHODS} for path, item in doc["paths"].items()}


def resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def children(node: Any) -> Iterable[tuple[Any, Any]]:
    """(key, value) of an object, (index, item) of a list, nothing for a scalar."""
    if isinstance(node, dict):
        return node.items()
    if isinstance(node, list):
        return enumerate(node)
    return ()


def walk(node: Any, path: str = "#") -> Iterator[tuple[str, Any]]:
    """Every (JSON pointer, value) of a JSON tree."""
    yield path, node
    for key, value in children(node):
        yield from walk(value, f"{path}/{key}")


def schema_objects(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every Schema Object: components, parameters, media types, headers."""
    for name, schema in doc["components"]["schemas"].items():
        yield f"#/components/schemas/{name}", schema
    for path, node in walk(doc):
        if path.startswith("#/components/schemas/"):
            continue
        if isinstance(node, dict) and isinstance(node.get("schema"), dict):
            yield f"{path}/schema", node["schema"]


def component_validator(doc: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    """A validator for the component schema ``name`` (its ``$ref`` resolved in ``doc``)."""
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


# ---- the document and the routes ----------------------------------------------------------------
def test_paths_and_methods_are_the_apps_routes_and_responders(make_app: AppFactory) -> None:
    client, _ = make_app()
    served = served_routes(client.app)
    assert set(served) == set(ROUTES)  # the introspection saw every route
    assert documented_routes(document()) == served


def test_an_undocumented_route_is_noticed(make_app: AppFactory) -> None:
    client, _ = make_app()

    class Extra:
        def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None: ...

        def on_put(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None: ...

    client.app.add_route("/api/trace/job/{job_id}/extra", Extra())
    served = served_routes(client.app)
    assert served["/api/trace/job/{job_id}/extra"] == {"get", "put"}
    assert served != documented_routes(document())


def test_undocumented_methods_are_405_and_options_lists_the_documented_ones(
    client: falcon.testing.TestClient,
) -> None:
    for path, methods in documented_routes(document()).items():
        url = path.replace("{job_id}", "0" * 32)
        allowed = {m.upper() for m in methods}
        options = client.simulate_options(url)
        assert options.status_code == 200, path
        assert set(options.headers["allow"].split(", ")) == allowed, path
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
            refused = client.simulate_request(method, url)
            assert refused.status_code == 405, (method, path)
            assert refused.json["error"]["code"] == "METHOD_NOT_ALLOWED"
            assert set(refused.headers["allow"].split(", ")) == allowed | {"OPTIONS"}


def test_each_call_builds_a_fresh_document() -> None:
    first = document()
    first["paths"].clear()
    first["components"]["schemas"]["Profile"]["enum"].append("x")
    second = document()
    assert second["paths"] and "x" not in second["components"]["schemas"]["Profile"]["enum"]


def test_openapi_json_serves_a_valid_openapi_3_1_document(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_API_TOKEN=TOKEN)
    assert client.simulate_get("/openapi.json").status_code == 401
    response = client.simulate_get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json
    assert served == orjson.loads(orjson.dumps(document()))
    assert served["openapi"].startswith("3.1.")

    # The OpenAPI 3.1 meta-schema (schemathesis validates with it on load) ...
    loaded = schemathesis.openapi.from_wsgi("/openapi.json", client.app, headers=AUTH)
    loaded.validate()
    # ... which leaves Schema Objects to JSON Schema 2020-12's own meta-schema.
    for where, schema in schema_objects(served):
        assert jsonschema_rs.meta.is_valid(schema), where
    for where, node in walk(served):
        if where.endswith("/$ref"):
            assert resolve(served, node) is not None, where
    operation_ids = [op["operationId"] for item in served["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_probes_and_the_monitor_page_are_open_and_everything_else_needs_the_token(
    make_app: AppFactory,
) -> None:
    doc = document()
    assert {"/healthz", "/readyz", "/monitor"} <= OPEN_PATHS
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for op in item.values():
            if path in OPEN_PATHS:  # probes, and the monitor page's files (they hold no data)
                assert op["security"] == [], path
            else:
                assert "security" not in op, path
                assert "401" in op["responses"], path
    client, _ = make_app(TRACE_API_TOKEN=TOKEN)
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/readyz").status_code in (200, 503)
    assert client.simulate_get("/monitor").status_code == 200
    assert client.simulate_get("/metrics").status_code == 401
    assert client.simulate_get("/metrics", headers=AUTH).status_code == 200


#: The contract's fields (api-contract.md) per schema: the document may add, never rename.
CONTRACT_FIELDS = {
    "SuccessEnvelope": "success data meta",
    "ErrorEnvelope": "success error meta",
    "Seed": "container_id container_name lot_id",
    "SeedResolveResult": "stage seeds seed_count seed_container_ids not_found cache_key",
    "LineageResult": "stage ancestors merges total_nodes total_ancestor_count roots seed_roots "
    "names parent_map merge_edges nodes edges children_map leaf_serials",
    "LineageNode": "container_id container_name mfgorder_name wafer_lot node_type",
    "LineageEdge": "from_cid to_cid edge_type",
    "EventsResult": "stage results aggregation quality_meta domain_quality_meta error code "
    "failed_domains",
    "DomainPage": "data count total quality_meta",
    "AcceptedJob": "stage async job_id status_url stream_url",
    "JobStatus": "job_id status profile cid_count domains progress created_at elapsed_seconds "
    "error stage completed_stages",
    "QualityMeta": "status scope domain reasons observed_rows max_rows failed_ranges",
    "MetaLine": "type job_id profile domains",
    "DomainStartLine": "type domain total quality_meta",
    "RecordsLine": "type domain batch count data",
    "DomainEndLine": "type domain count",
    "AggregationLine": "type data",
    "WarningLine": "type code failed_domains",
    "QualityMetaLine": "type quality_meta domain_quality_meta",
    "CompleteLine": "type total_records",
    "ErrorLine": "type message",
    "EventsRequest": "profile container_ids domains params seed_container_ids lineage cache_key",
    "LineageRequest": "profile container_ids params cache_key",
}
CONTRACT_PARAMS = (
    "resolve_type values station start_date end_date loss_reasons pj_types packages direction"
)
CONTRACT_ENUMS = {
    "Profile": "query_tool query_tool_reverse mid_section_defect",
    "Domain": "history materials rejects holds jobs upstream_history downstream_rejects",
    "Direction": "backward forward",
    "JobState": "queued started finished failed",
}


def test_schema_field_names_follow_the_contract() -> None:
    schemas = document()["components"]["schemas"]
    for name, fields in CONTRACT_FIELDS.items():
        assert set(fields.split()) <= set(schemas[name]["properties"]), name
    for name, values in CONTRACT_ENUMS.items():
        assert set(values.split()) <= set(schemas[name]["enum"]), name
    assert set(schemas["Profile"]["enum"]) == set(CONTRACT_ENUMS["Profile"].split())
    assert set(schemas["Domain"]["enum"]) == set(CONTRACT_ENUMS["Domain"].split())
    assert schemas["ErrorEnvelope"]["properties"]["error"] == {
        "$ref": "#/components/schemas/ErrorDetail"
    }
    assert schemas["ErrorDetail"]["required"] == ["code", "message"]
    assert schemas["QualityMeta"]["properties"]["status"]["enum"] == [
        "complete",
        "partial",
        "truncated",
        "failed",
    ]
    # The seed params: one object, the resolve types and stations as the code knows them.
    params = schemas["TraceParams"]["properties"]
    assert set(CONTRACT_PARAMS.split()) <= set(params)
    assert schemas["ResolveType"]["enum"] == list(RESOLVE_TYPE_NAMES)
    assert schemas["Station"]["enum"] == list(GROUP_NAMES)


# ---- real answers against the document ----------------------------------------------------------
class Session:
    """Calls through schemathesis (``Case``), each answer validated against the document."""

    def __init__(self, client: falcon.testing.TestClient) -> None:
        self.schema = schemathesis.openapi.from_dict(document())
        self.schema.app = client.app

    def call(
        self, method: str, path: str, status: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        case = self.schema[path][method].Case(headers={**AUTH, **(headers or {})}, **kw)
        response = case.call()
        case.validate_response(
            response,
            checks=[
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )
        assert response.status_code == status, response.text
        return response


def test_real_answers_match_the_document(make_app: AppFactory, warehouse: Path) -> None:
    client, services = make_app(TRACE_API_TOKEN=TOKEN)
    session = Session(client)
    doc = document()
    lines = component_validator(doc, "StreamLine")

    # The dashboard's three staged calls, answered in time (200).
    values = [*lot_names(warehouse, 3), "NO-SUCH-LOT"]
    seeds = {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": values}}
    found = session.call("POST", "/api/trace/seed-resolve", 200, body=seeds).json()["data"]
    assert found["not_found"] == ["NO-SUCH-LOT"]
    cids = found["seed_container_ids"]
    for profile in ("query_tool", "query_tool_reverse"):  # forward, backward
        session.call(
            "POST", "/api/trace/lineage", 200, body={"profile": profile, "container_ids": cids}
        )
    events = session.call(
        "POST",
        "/api/trace/events",
        200,
        body={"profile": "query_tool", "container_ids": cids, "domains": ["history", "holds"]},
    ).json()["data"]
    assert list(events["results"]) == ["history", "holds"]

    # A whole mid-section-defect trace in the background: 202, status, result, stream.
    trace = {
        "profile": "mid_section_defect",
        "params": {"start_date": "2026-01-01", "end_date": "2026-12-31"},
    }
    job_id = session.call("POST", "/api/trace/jobs", 202, body=trace).json()["data"]["job_id"]
    authorized = falcon.testing.TestClient(client.app, headers=AUTH)
    assert wait_status(authorized, job_id)["status"] == "finished"
    params = {"job_id": job_id}
    session.call("GET", "/api/trace/job/{job_id}", 200, path_parameters=params)
    result = session.call(
        "GET",
        "/api/trace/job/{job_id}/result",
        200,
        path_parameters=params,
        query={"domain": "upstream_history", "limit": 5},
    ).json()["data"]
    assert result["aggregation"] is not None
    stream = session.call("GET", "/api/trace/job/{job_id}/stream", 200, path_parameters=params)
    kinds = []
    for item in ndjson(stream.text):
        lines.validate(item)
        kinds.append(item["type"])
    assert kinds[0] == "meta" and kinds[-1] == "complete" and "aggregation" in kinds
    session.call("DELETE", "/api/trace/job/{job_id}", 409, path_parameters=params)

    # A seed-resolve job's result and stream.
    seed_job = found["job_id"]
    session.call("GET", "/api/trace/job/{job_id}/result", 200, path_parameters={"job_id": seed_job})
    stream = session.call(
        "GET", "/api/trace/job/{job_id}/stream", 200, path_parameters={"job_id": seed_job}
    )
    for item in ndjson(stream.text):
        lines.validate(item)

    # Errors.
    missing = {"job_id": "0" * 32}
    session.call("GET", "/api/trace/job/{job_id}", 404, path_parameters=missing)
    session.call("DELETE", "/api/trace/job/{job_id}", 404, path_parameters=missing)
    session.call("GET", "/api/trace/job/{job_id}/result", 404, path_parameters=missing)
    session.call(
        "GET", "/api/trace/job/{job_id}/stream", 400, path_parameters=missing, query={"follow": "x"}
    )
    session.call("POST", "/api/trace/events", 400, body={"profile": "query_tool", "domains": []})
    session.call("POST", "/api/trace/seed-resolve", 400, body={"profile": "nope", "params": {}})
    session.call("GET", "/metrics", 401, headers={"Authorization": "Bearer wrong"})
    services.redis.delete(keys.WORKERS)  # the test's worker thread stopped beating
    session.call("GET", "/readyz", 503)


def test_rate_limit_and_body_limit_answers_match_the_document(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=1, TRACE_MAX_BODY_BYTES=64)
    session = Session(client)
    params = {"job_id": "0" * 32}
    session.call("GET", "/api/trace/job/{job_id}", 404, path_parameters=params)
    limited = session.call("GET", "/api/trace/job/{job_id}", 429, path_parameters=params)
    assert int(limited.headers["retry-after"][0]) >= 1
    body = {"profile": "query_tool", "container_ids": ["X" * 100], "domains": ["history"]}
    session.call("POST", "/api/trace/events", 413, body=body)


# ---- fuzzing ------------------------------------------------------------------------------------
OPERATIONS = [
    pytest.param(path, method.upper(), id=f"{method.upper()} {path}")
    for path, item in document()["paths"].items()
    for method in item
]


def finished_jobs(client: falcon.testing.TestClient, warehouse: Path) -> list[str]:
    """Ids of finished jobs of each kind: seed-resolve, lineage, events, a whole MSD trace."""
    authorized = falcon.testing.TestClient(client.app, headers=AUTH)
    names = lot_names(warehouse, 3)
    seeds = {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": names}}
    found = authorized.simulate_post("/api/trace/seed-resolve", json=seeds).json["data"]
    cids = found["seed_container_ids"]
    bodies = {
        "/api/trace/lineage": {"profile": "query_tool_reverse", "container_ids": cids},
        "/api/trace/events": {
            "profile": "query_tool",
            "container_ids": cids,
            "domains": ["history", "holds", "jobs"],
        },
        "/api/trace/jobs": {
            "profile": "mid_section_defect",
            "params": {"start_date": "2026-01-01", "end_date": "2026-12-31"},
        },
    }
    ids = [found["job_id"]]
    for path, body in bodies.items():
        job_id = authorized.simulate_post(path, json=body).json["data"]["job_id"]
        assert wait_status(authorized, job_id)["status"] == "finished"
        ids.append(job_id)
    return ids


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_fuzzed_requests_get_documented_answers_and_no_server_error(
    make_app: AppFactory, warehouse: Path, path: str, method: str
) -> None:
    client, _ = make_app(**FUZZ_ENV)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.app, headers=AUTH)
    operation = schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, headers=AUTH),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=AUTH),
    )
    if "{job_id}" in path:  # random ids are all unknown: also ask about real jobs
        real = st.sampled_from(finished_jobs(client, warehouse)).flatmap(
            lambda job_id: operation.as_strategy(
                GenerationMode.POSITIVE, headers=AUTH, path_parameters={"job_id": job_id}
            )
        )
        cases = st.one_of(cases, real)
    checks = CHECKS
    if path == "/readyz":  # no worker runs in the tests: 503 NOT_READY is the expected answer
        checks = [c for c in CHECKS if c is not not_a_server_error]

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(cases)
    def fuzz(case: Any) -> None:
        response = case.call()
        if path == "/readyz":
            assert response.status_code in (200, 503)
        # headers=AUTH: the token is ours, not generated (an operation with header parameters
        # would otherwise have it counted as generated, and ignored_auth expect a 401)
        case.validate_response(response, checks=checks, headers=AUTH)

    fuzz()


# ---- type confusion in request bodies ------------------------------------------------------------
#: Any JSON value.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
Place = tuple[str | int, ...]


def places(node: Any, at: Place = ()) -> Iterator[Place]:
    """Where a JSON tree holds a value: every key of every object, every item of every list."""
    for key, value in children(node):
        yield (*at, key)
        yield from places(value, (*at, key))


def replaced(node: Any, at: Place, value: Any) -> Any:
    """A copy of ``node`` with ``value`` at ``at``."""
    if not at:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[at[0]] = replaced(node[at[0]], at[1:], value)  # type: ignore[index]
    return copy


#: The POSTs that read a body (the operators' retry and purge read none).
SUBMITS = [
    pytest.param(path, id=path)
    for path, item in document()["paths"].items()
    if "requestBody" in item.get("post", {})
]


@pytest.mark.parametrize("path", SUBMITS)
def test_any_json_anywhere_in_a_body_gets_a_documented_answer(
    make_app: AppFactory, path: str
) -> None:
    """A valid body with one value (a field, an item, at any depth) swapped for any JSON: an
    error the client can act on (or a success), never a 5xx, always as documented."""
    client, _ = make_app(**FUZZ_ENV)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.app, headers=AUTH)
    operation = schema[path]["POST"]

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(GenerationMode.POSITIVE, headers=AUTH))
        at = data.draw(st.sampled_from([(), *places(case.body)]), label="at")
        body = replaced(case.body, at, data.draw(JSON, label="value"))
        confused = operation.Case(headers=AUTH, body=body, media_type="application/json")
        confused.call_and_validate(checks=CHECKS)

    fuzz()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/trace/events",
            {"profile": "query_tool", "container_ids": ["A"], "domains": [["history"]]},
        ),
        (
            "/api/trace/jobs",
            {
                "profile": "query_tool",
                "params": {"resolve_type": "lot_id", "values": ["A"]},
                "domains": [{}],
            },
        ),
    ],
    ids=["events", "jobs"],
)
def test_domains_that_are_not_names_are_a_400(
    client: falcon.testing.TestClient, path: str, body: dict[str, Any]
) -> None:
    response = client.simulate_post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json["error"]["code"] == "INVALID_PARAMS"
