"""The staged endpoints and the job endpoints, through Falcon's test client: envelopes, fields
and status codes of the contract (``../shared/reference/api-contract.md``)."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from http_api.services import Services
from pipeline.demo.factory import PRODUCT_TYPES
from pipeline.engine import keys, parts
from pipeline.engine.detail_rows import detail_page
from pipeline.request import TraceRequest
from pipeline.sources.sqlite import SqliteSource
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_ids, lot_names, ndjson, post_events, wait_status
from tests.engine.helpers import direct_rows, stable
from tests.support.faults import FAULTS_KEY, FaultySqliteSource
from tests.support.warehouse import rework

QUERY_TOOL = ("history", "materials", "rejects", "holds", "jobs")


def seed_resolve(client: falcon.testing.TestClient, names: list[str]) -> falcon.testing.Result:
    return client.simulate_post(
        "/api/trace/seed-resolve",
        json={"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": names}},
    )


def test_the_dashboards_flow_answers_each_stage_with_the_contracts_fields(
    client: falcon.testing.TestClient, warehouse: Path, api: tuple[object, Services]
) -> None:
    # Given lot names of the warehouse, and one that does not exist
    names = lot_names(warehouse, 8)
    # When the dashboard resolves them
    seeds = seed_resolve(client, [*names, "NO-SUCH-LOT"])
    # Then it gets the seeds, their ids and what matched nothing
    assert seeds.status_code == 200
    data = seeds.json["data"]
    assert seeds.json["success"] is True
    assert data["stage"] == "seed-resolve" and data["seed_count"] == 8
    assert {s["container_name"] for s in data["seeds"]} == set(names)
    assert set(data["seeds"][0]) == {"container_id", "container_name", "lot_id"}
    assert data["seed_container_ids"] == [s["container_id"] for s in data["seeds"]]
    assert data["not_found"] == ["NO-SUCH-LOT"]
    cids = data["seed_container_ids"]

    # When it asks for their lineage (query_tool: forward by default)
    lineage = client.simulate_post(
        "/api/trace/lineage", json={"profile": "query_tool", "container_ids": cids}
    )
    assert lineage.status_code == 200
    tree = lineage.json["data"]
    assert tree["stage"] == "lineage"
    assert {"roots", "children_map", "names", "total_nodes"} <= set(tree)
    descendants = set(cids)
    todo = list(cids)
    while todo:
        for child in tree["children_map"].get(todo.pop(), []):
            if child not in descendants:
                descendants.add(child)
                todo.append(child)

    # When it asks for the events of every lot
    body = {"profile": "query_tool", "container_ids": sorted(descendants), "domains": QUERY_TOOL}
    events = client.simulate_post("/api/trace/events", json=body)
    # Then a small request answers 200 with the full result: the source's rows, per domain
    assert events.status_code == 200
    result = events.json["data"]
    assert result["stage"] == "events" and result["aggregation"] is None
    assert list(result["results"]) == list(QUERY_TOOL)
    assert result["quality_meta"]["status"] == "complete"
    assert set(result["domain_quality_meta"]) == set(QUERY_TOOL)
    settings = api[1].settings
    with SqliteSource(warehouse) as source:
        expected = direct_rows(
            source,
            TraceRequest(
                profile="query_tool",
                params={},
                domains=QUERY_TOOL,
                container_ids=tuple(sorted(descendants)),
            ),
            settings,
        )
    for domain in QUERY_TOOL:
        page = result["results"][domain]
        assert page["count"] == page["total"] == len(page["data"]) == len(expected[domain])
        assert page["quality_meta"]["status"] == "complete"
        got = [stable(list(row), list(row.values())) for row in page["data"]]
        columns = list(page["data"][0]) if page["data"] else []
        assert got == [stable(columns, row) for row in expected[domain]]


def test_a_large_events_request_answers_202_and_its_job_serves_status_result_and_stream(
    make_app: AppFactory, warehouse: Path
) -> None:
    # Given a threshold of 50 lots
    client, _ = make_app(TRACE_ASYNC_CID_THRESHOLD=50)
    cids = lot_ids(warehouse, 120)
    # When the dashboard asks for the events of 120 lots
    answer = client.simulate_post(
        "/api/trace/events",
        json={"profile": "query_tool", "container_ids": cids, "domains": ["history", "holds"]},
    )
    # Then it gets 202 with the job's urls
    assert answer.status_code == 202
    data = answer.json["data"]
    assert data["stage"] == "events" and data["async"] is True
    job_id = data["job_id"]
    assert data["status_url"] == f"/api/trace/job/{job_id}"
    assert data["stream_url"] == f"/api/trace/job/{job_id}/stream"
    # And the job's status has the contract's fields until it finishes
    status = wait_status(client, job_id)
    assert status["status"] == "finished"
    assert {
        "job_id", "status", "profile", "cid_count", "domains", "progress", "created_at",
        "elapsed_seconds", "error", "stage", "completed_stages",
    } <= set(status)  # fmt: skip
    assert status["cid_count"] == 120 and status["domains"] == ["history", "holds"]
    assert isinstance(status["created_at"], int) and status["error"] is None
    assert status["completed_stages"] == ["events"]
    # And its result and stream are served
    result = client.simulate_get(f"/api/trace/job/{job_id}/result")
    assert result.status_code == 200
    assert result.json["data"]["results"]["history"]["total"] > 0
    stream = client.simulate_get(f"/api/trace/job/{job_id}/stream")
    assert stream.status_code == 200
    assert stream.headers["content-type"] == "application/x-ndjson"
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"


def test_prefer_respond_async_answers_202_at_once_even_for_a_small_request(
    client: falcon.testing.TestClient, warehouse: Path
) -> None:
    # Given a request far under the sync thresholds
    cids = lot_ids(warehouse, 5)
    body = {"profile": "query_tool", "container_ids": cids}
    # When the client asks for an asynchronous answer (RFC 7240), as the demo does to show progress
    prefer = {"Prefer": "wait=5, respond-async"}
    lineage = client.simulate_post("/api/trace/lineage", json=body, headers=prefer)
    events = client.simulate_post(
        "/api/trace/events", json={**body, "domains": ["holds"]}, headers=prefer
    )
    # Then both answer 202 with their jobs, and say the preference was applied
    for answer, stage in ((lineage, "lineage"), (events, "events")):
        assert answer.status_code == 202, answer.text
        assert answer.headers["preference-applied"] == "respond-async"
        assert answer.json["data"]["stage"] == stage
        assert wait_status(client, answer.json["data"]["job_id"])["status"] == "finished"
    # And without the header the same small lineage request is answered in full (200)
    plain = client.simulate_post("/api/trace/lineage", json=body)
    assert plain.status_code == 200 and "preference-applied" not in plain.headers


def test_the_same_request_is_served_by_the_same_job_unless_fresh(
    client: falcon.testing.TestClient, warehouse: Path
) -> None:
    names = lot_names(warehouse, 3)
    first = seed_resolve(client, names).json["data"]["job_id"]
    again = seed_resolve(client, list(reversed(names))).json["data"]["job_id"]
    assert again == first
    fresh = client.simulate_post(
        "/api/trace/seed-resolve",
        json={
            "profile": "query_tool",
            "params": {"resolve_type": "lot_id", "values": names},
            "fresh": True,
        },
    )
    assert fresh.status_code == 200 and fresh.json["data"]["job_id"] != first


def test_a_whole_trace_runs_as_one_job_from_seeds(
    client: falcon.testing.TestClient, warehouse: Path
) -> None:
    # When a whole trace is submitted
    answer = client.simulate_post(
        "/api/trace/jobs",
        json={
            "profile": "query_tool",
            "params": {"resolve_type": "lot_id", "values": lot_names(warehouse, 5)},
            "domains": ["history"],
        },
    )
    # Then it is accepted and runs every stage in the workers
    assert answer.status_code == 202
    status = wait_status(client, answer.json["data"]["job_id"])
    assert status["status"] == "finished"
    assert status["completed_stages"] == ["seed-resolve", "lineage", "events"]


def test_a_whole_analysis_streams_its_rows(client: falcon.testing.TestClient) -> None:
    # When a whole mid-section-defect trace is submitted (not the July client's seeds-only
    # events call, whose stream leaves the rows out)
    params = {"station": "測試", "start_date": "2026-06-01", "end_date": "2026-06-10"}
    answer = client.simulate_post(
        "/api/trace/jobs", json={"profile": "mid_section_defect", "params": params}
    )
    # Then its stream is offered with the rows, and its plan is the whole trace's
    assert answer.status_code == 202, answer.text[:300]
    data = answer.json["data"]
    assert data["stream_url"] == f"/api/trace/job/{data['job_id']}/stream"
    status = wait_status(client, data["job_id"])
    assert status["completed_stages"] == ["seed-resolve", "lineage", "events", "aggregation"]
    lines = ndjson(client.simulate_get(data["stream_url"]).text)
    assert any(line["type"] == "records" for line in lines)


def test_an_msd_events_request_with_its_lineage_gets_the_aggregation(
    client: falcon.testing.TestClient,
) -> None:
    # Given a mid-section-defect analysis resolved and traced backward
    params = {"station": "測試", "start_date": "2026-01-01", "end_date": "2026-12-31"}
    seeds = client.simulate_post(
        "/api/trace/seed-resolve", json={"profile": "mid_section_defect", "params": params}
    ).json["data"]
    assert seeds["seed_count"] > 0
    lineage = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "mid_section_defect", "container_ids": seeds["seed_container_ids"]},
    ).json["data"]
    cids = set(seeds["seed_container_ids"])
    for ancestors in lineage["ancestors"].values():
        cids.update(ancestors)
    body = {
        "profile": "mid_section_defect",
        "params": params,
        "container_ids": sorted(cids),
        "domains": ["upstream_history", "materials"],
        "seed_container_ids": seeds["seed_container_ids"],
    }
    # When the events are asked with the lineage inline, or naming the lineage job
    inline = client.simulate_post("/api/trace/events", json={**body, "lineage": lineage})
    named = client.simulate_post(
        "/api/trace/events", json={**body, "lineage_job_id": lineage["job_id"]}
    )
    # Then both carry the same aggregation, with the analysis' fields
    assert inline.status_code == named.status_code == 200
    aggregation = inline.json["data"]["aggregation"]
    assert aggregation is not None and "kpi" in aggregation
    assert named.json["data"]["aggregation"] == aggregation
    # And so does one that brings a lineage without this direction's map (or an empty one):
    # its job walks the lineage itself rather than analyse the seeds alone
    for partial in ({"seed_roots": lineage["seed_roots"]}, {"ancestors": {}}):
        walked = client.simulate_post(
            "/api/trace/events", json={**body, "lineage": partial, "fresh": True}
        )
        assert walked.status_code == 200, walked.text[:300]
        data = walked.json["data"]
        assert data["aggregation"] == aggregation
        status = wait_status(client, data["job_id"])
        assert status["completed_stages"] == ["lineage", "events", "aggregation"]
        assert status["query_id"] == lineage["query_id"]
        assert status["trace_query_id"] == inline.json["data"]["trace_query_id"]


def test_cancel_ends_a_waiting_job_and_a_finished_job_cannot_be_cancelled(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    finished = seed_resolve(client, lot_names(warehouse, 2)).json["data"]["job_id"]
    # Given a job that waits in its queue (the test worker is stopped)
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]
    answer = post_events(client, warehouse, 30)
    job_id = answer.json["data"]["job_id"]
    # When it is cancelled (twice: DELETE is idempotent)
    for _ in range(2):
        cancelled = client.simulate_delete(f"/api/trace/job/{job_id}")
        assert cancelled.status_code == 200
        status = cancelled.json["data"]
        # (the dashboard knows four statuses: a cancelled job is "failed", with a reason)
        assert (status["status"], status["state"]) == ("failed", "cancelled")
        assert status["error"] == "the job was cancelled"
    # Then its result is not to be had, and its status says so
    result = client.simulate_get(f"/api/trace/job/{job_id}/result")
    assert result.status_code == 409 and result.json["meta"] == {"job_status": "failed"}
    assert client.simulate_get(f"/api/trace/job/{job_id}").json["data"]["state"] == "cancelled"
    # And a finished job is not cancelled
    refused = client.simulate_delete(f"/api/trace/job/{finished}")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "JOB_NOT_CANCELLABLE"
    assert refused.json["meta"] == {"job_status": "finished"}


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/trace/seed-resolve", {"profile": "nope", "params": {}}, 400, "INVALID_PROFILE"),
        (
            "/api/trace/seed-resolve",
            {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": []}},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/seed-resolve",
            {"profile": "query_tool", "params": {"resolve_type": "bogus", "values": ["A"]}},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/lineage",
            {"profile": "query_tool", "container_ids": []},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/lineage",
            {"profile": "query_tool", "container_ids": ["a"], "params": {"direction": "up"}},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/events",
            {"profile": "query_tool", "domains": ["history"]},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/events",
            {"profile": "query_tool", "container_ids": ["a"]},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/events",
            {"profile": "query_tool", "container_ids": ["a"], "domains": ["history", "weather"]},
            400,
            "INVALID_PARAMS",
        ),
        (
            "/api/trace/events",
            {
                "profile": "query_tool",
                "container_ids": ["a"],
                "domains": ["history"],
                "lineage_job_id": "0" * 32,
            },
            404,
            "LINEAGE_JOB_NOT_FOUND",
        ),
        ("/api/trace/jobs", {"profile": "query_tool", "params": {}}, 400, "INVALID_PARAMS"),
        (  # an analysis without its dates is refused up front, not in its job
            "/api/trace/events",
            {
                "profile": "mid_section_defect",
                "container_ids": ["a"],
                "domains": ["upstream_history"],
                "seed_container_ids": ["a"],
            },
            400,
            "INVALID_PARAMS",
        ),
    ],
)
def test_bad_requests_get_the_contracts_code_and_a_message_naming_the_problem(
    client: falcon.testing.TestClient, path: str, body: dict[str, object], status: int, code: str
) -> None:
    answer = client.simulate_post(path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json["success"] is False
    assert answer.json["error"]["code"] == code and answer.json["error"]["message"]


def test_unknown_domains_are_named_in_the_message(client: falcon.testing.TestClient) -> None:
    answer = client.simulate_post(
        "/api/trace/events",
        json={"profile": "query_tool", "container_ids": ["a"], "domains": ["weather", "tides"]},
    )
    assert "weather" in answer.json["error"]["message"]


@pytest.mark.parametrize("body", [b"", b"[1, 2]", b"{not json", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_400(
    client: falcon.testing.TestClient, body: bytes
) -> None:
    answer = client.simulate_post(
        "/api/trace/events", body=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json["error"]["code"] == "INVALID_PARAMS"


def test_over_the_profiles_cid_limit_is_413_with_the_contracts_message(
    make_app: AppFactory,
) -> None:
    client, _ = make_app(TRACE_MAX_CIDS_QUERY_TOOL=100)
    answer = client.simulate_post(
        "/api/trace/events",
        json={
            "profile": "query_tool",
            "container_ids": [f"c{i}" for i in range(101)],
            "domains": ["history"],
        },
    )
    assert answer.status_code == 413
    assert answer.json["error"] == {
        "code": "CID_LIMIT_EXCEEDED",
        "message": "container_ids count (101) exceeds limit (100)",
    }


def test_unknown_jobs_are_404_and_unfinished_ones_409(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    for path in ("", "/result", "/stream"):
        missing = client.simulate_get(f"/api/trace/job/{'f' * 32}{path}")
        assert missing.status_code == 404 and missing.json["error"]["code"] == "JOB_NOT_FOUND"
    # A job that cannot run (its worker is stopped) stays queued
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]
    answer = post_events(client, warehouse, 20)
    job_id = answer.json["data"]["job_id"]
    for path in ("/result", "/stream"):
        early = client.simulate_get(f"/api/trace/job/{job_id}{path}")
        assert early.status_code == 409
        assert early.json["error"]["code"] == "JOB_NOT_COMPLETE"
        assert early.json["meta"] == {"job_status": "queued"}


def test_a_resolver_that_fails_on_the_service_side_is_seed_resolve_failed(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    # Given a warehouse whose lot lookup fails (bad SQL, say)
    _faulty(services, **{"fail:seeds/containers_in": "permanent"})
    # When the dashboard resolves lots
    answer = seed_resolve(client, lot_names(warehouse, 2))
    # Then it is told the resolver failed, and why, without a trace
    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "SEED_RESOLVE_FAILED"
    assert answer.json["meta"] == {"cause": "SOURCE_QUERY_FAILED"}
    assert "seeds/containers_in" in answer.json["error"]["message"]
    assert "Traceback" not in answer.text


def _faulty(services: Services, **faults: str) -> None:
    """The app's workers read the warehouse through a source obeying ``faults``."""
    services.runtime.use_source(FaultySqliteSource.for_settings(services.settings, services.redis))
    services.redis.hset(FAULTS_KEY, mapping=faults)


def test_a_domain_that_fails_gives_a_partial_result_naming_it(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    # Given a warehouse whose holds query fails for good
    _faulty(services, **{"fail:events/holds": "permanent"})
    # When the events of lots are asked for
    answer = post_events(client, warehouse, 40, ["history", "holds"])
    # Then the other domain is there, the failed one is empty and named, as the contract says
    assert answer.status_code == 200
    data = answer.json["data"]
    assert data["code"] == "EVENTS_PARTIAL_FAILURE"
    assert data["error"] == "one or more domains failed"
    assert data["failed_domains"] == ["holds"]
    assert data["results"]["holds"]["data"] == []
    assert data["results"]["holds"]["quality_meta"]["status"] == "failed"
    assert data["results"]["history"]["total"] > 0
    assert data["quality_meta"]["status"] == "partial"
    # And the stream warns before its complete line
    lines = ndjson(client.simulate_get(f"/api/trace/job/{data['job_id']}/stream").text)
    assert lines[-3] == {
        "type": "warning",
        "code": "EVENTS_PARTIAL_FAILURE",
        "failed_domains": ["holds"],
    }
    holds = [x for x in lines if x.get("domain") == "holds"]
    assert [x["type"] for x in holds] == ["domain_start", "domain_end"]
    assert holds[0]["total"] == 0 and holds[1]["count"] == 0
    assert lines[-1]["type"] == "complete"


def test_a_lineage_that_fails_on_the_service_side_is_lineage_failed(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    _faulty(services, **{"fail:lineage/split_children": "permanent"})
    answer = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "query_tool", "container_ids": lot_ids(warehouse, 3)},
    )
    assert answer.status_code == 500
    assert answer.json["error"]["code"] == "LINEAGE_FAILED"


def test_a_lineage_job_id_must_name_a_finished_lineage(
    client: falcon.testing.TestClient, warehouse: Path
) -> None:
    seeds = seed_resolve(client, lot_names(warehouse, 2)).json["data"]
    answer = client.simulate_post(
        "/api/trace/events",
        json={
            "profile": "query_tool",
            "domains": ["history"],
            "lineage_job_id": seeds["job_id"],  # a seed-resolve job: it has no lineage
        },
    )
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "LINEAGE_JOB_NOT_READY"


def test_the_query_tools_trees_come_with_wafer_tops_typed_nodes_and_parent_map(
    client: falcon.testing.TestClient, db: sqlite3.Connection
) -> None:
    # Given a lot reworked as a GD lot, and the wafer lot it was cut from
    gd, lot, wafer = rework(db)
    # When the query tool asks for the lot's tree as the dashboard does (no params)
    answer = client.simulate_post(
        "/api/trace/lineage", json={"profile": "query_tool", "container_ids": [lot]}
    )
    assert answer.status_code == 200, answer.text
    tree = answer.json["data"]
    # Then it is the forward tree, topped by the wafer: roots are what nothing points to
    incoming = {c for kids in tree["children_map"].values() for c in kids}
    assert tree["roots"] == sorted(set(tree["nodes"]) - incoming) and wafer in tree["roots"]
    assert tree["nodes"][wafer]["node_type"] == "WAFER" and tree["nodes"][gd]["node_type"] == "GD"
    edges = {(e["from_cid"], e["to_cid"], e["edge_type"]) for e in tree["edges"]}
    assert {(wafer, lot, "wafer_origin"), (lot, gd, "gd_rework_source")} <= edges
    assert lot in tree["children_map"][wafer] and gd in tree["children_map"][lot]
    # When the reverse query tool asks for the GD lot's tree, and for a lot without parents
    reverse = client.simulate_post(
        "/api/trace/lineage", json={"profile": "query_tool_reverse", "container_ids": [gd]}
    ).json["data"]
    alone = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "query_tool_reverse", "container_ids": ["ffffffffffffffff"]},
    ).json["data"]
    # Then both are backward trees with the parent_map they are drawn from, empty or not
    assert reverse["roots"] == [gd] and {lot, wafer} <= set(reverse["parent_map"][gd])
    assert "ancestors" in reverse and "children_map" not in reverse
    assert alone["parent_map"] == {} and alone["roots"] == ["ffffffffffffffff"]


def test_events_of_a_lineage_job_use_its_lots_when_none_are_given(
    client: falcon.testing.TestClient, warehouse: Path
) -> None:
    seeds = seed_resolve(client, lot_names(warehouse, 4)).json["data"]
    lineage = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "query_tool", "container_ids": seeds["seed_container_ids"]},
    ).json["data"]
    answer = client.simulate_post(
        "/api/trace/events",
        json={"profile": "query_tool", "domains": ["history"], "lineage_job_id": lineage["job_id"]},
    )
    # (its size is known once that job is found: a small one waits and answers 200)
    assert answer.status_code == 200, answer.text
    status = wait_status(client, answer.json["data"]["job_id"])
    assert status["status"] == "finished"
    assert status["cid_count"] == lineage["total_nodes"]
    assert answer.json["data"]["results"]["history"]["total"] > 0


def test_a_lineage_job_without_its_stored_lot_list_is_refused_not_analysed_empty(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    # Given a finished lineage job whose lot list is not where this version reads it (a job
    # written by an older version stored it under another part name)
    seeds = seed_resolve(client, lot_names(warehouse, 4)).json["data"]
    lineage = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "query_tool", "container_ids": seeds["seed_container_ids"]},
    ).json["data"]
    services.redis.hdel(keys.progress(lineage["job_id"]), parts.rows(parts.CIDS))
    # When events name it, Then the request is refused: never an empty result that looks whole
    answer = client.simulate_post(
        "/api/trace/events",
        json={"profile": "query_tool", "domains": ["history"], "lineage_job_id": lineage["job_id"]},
    )
    assert answer.status_code == 409, answer.text
    assert answer.json["error"]["code"] == "LINEAGE_JOB_NOT_READY"
    assert "no stored lot list" in answer.json["error"]["message"]


def test_a_warehouse_away_during_seed_resolve_is_503_seed_resolve_failed(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_MAX_RETRIES=0)  # the test worker does not retry
    # Given a warehouse that does not answer the lot lookup
    _faulty(services, **{"transient:seeds/containers_in": "100"})
    # When the dashboard resolves lots
    answer = seed_resolve(client, lot_names(warehouse, 2))
    # Then it hears the contract's code, with a retry hint and the cause
    assert answer.status_code == 503, answer.text
    assert answer.json["error"]["code"] == "SEED_RESOLVE_FAILED"
    assert answer.json["meta"]["cause"] == "SOURCE_UNAVAILABLE"
    assert int(answer.headers["retry-after"]) == services.settings.retry_after_seconds


def test_with_no_worker_running_nothing_waits_and_seed_resolve_says_so(
    make_app: AppFactory, warehouse: Path
) -> None:
    # Given no worker process at all (the sync wait is 30 s in these tests)
    client, services = make_app()
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]
    services.redis.delete(keys.WORKERS)
    # When the dashboard resolves seeds and asks for a lineage
    began = time.monotonic()
    seeds = seed_resolve(client, lot_names(warehouse, 2))
    lineage = client.simulate_post(
        "/api/trace/lineage", json={"profile": "query_tool", "container_ids": lot_ids(warehouse, 2)}
    )
    # Then both answer at once: seed-resolve with 503 (a 202 would be polled for 30 min)...
    assert time.monotonic() - began < 10
    assert seeds.status_code == 503 and seeds.json["error"]["code"] == "SEED_RESOLVE_FAILED"
    assert "no worker" in seeds.json["error"]["message"]
    assert seeds.json["meta"]["job_status"] == "queued" and seeds.headers["retry-after"]
    # ... and lineage with a 202 whose job waits in the queue for a worker
    assert lineage.status_code == 202 and lineage.json["data"]["status"] == "queued"
    # And asking again joins the same seed-resolve job rather than queueing another
    again = seed_resolve(client, lot_names(warehouse, 2))
    assert again.json["meta"]["job_id"] == seeds.json["meta"]["job_id"]


def test_a_seed_resolve_not_done_in_time_answers_202_and_its_result_follows(
    make_app: AppFactory, warehouse: Path
) -> None:
    # Given a service that waits for no job (as if each took longer than the sync wait)
    client, _ = make_app(TRACE_SYNC_WAIT_SECONDS=0)
    # When seeds are resolved
    accepted = seed_resolve(client, lot_names(warehouse, 3))
    # Then the answer is async with a status_url, and the result is at {status_url}/result
    assert accepted.status_code == 202, accepted.text
    data = accepted.json["data"]
    assert data["async"] is True and data["stage"] == "seed-resolve"
    assert wait_status(client, data["job_id"])["status"] == "finished"
    result = client.simulate_get(data["status_url"] + "/result")
    assert result.status_code == 200
    assert result.json["data"]["seed_count"] == 3
    assert result.json["data"]["stage"] == "seed-resolve"


def test_a_lineage_job_fetches_no_domains_and_says_so(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, _ = make_app(TRACE_LINEAGE_ASYNC_SEEDS=1)
    accepted = client.simulate_post(
        "/api/trace/lineage", json={"profile": "query_tool", "container_ids": lot_ids(warehouse, 3)}
    )
    assert accepted.status_code == 202
    job_id = accepted.json["data"]["job_id"]
    assert wait_status(client, job_id)["domains"] == []
    meta = ndjson(client.simulate_get(f"/api/trace/job/{job_id}/stream").text)[0]
    assert meta["type"] == "meta" and meta["domains"] == []


def test_an_aggregation_that_fails_is_events_aggregation_failed(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    # Given a mid-section-defect analysis whose rejects lookup (aggregation) is broken
    _faulty(services, **{"fail:msd/detection_rejects": "permanent"})
    params = {"station": "測試", "start_date": "2026-01-01", "end_date": "2026-12-31"}
    seeds = client.simulate_post(
        "/api/trace/seed-resolve", json={"profile": "mid_section_defect", "params": params}
    ).json["data"]
    lineage = client.simulate_post(
        "/api/trace/lineage",
        json={"profile": "mid_section_defect", "container_ids": seeds["seed_container_ids"]},
    ).json["data"]
    # When the dashboard asks for the events with the aggregation
    answer = client.simulate_post(
        "/api/trace/events",
        json={
            "profile": "mid_section_defect",
            "params": params,
            "domains": ["upstream_history", "materials"],
            "seed_container_ids": seeds["seed_container_ids"],
            "lineage_job_id": lineage["job_id"],
        },
    )
    # Then it hears the old system's code for it, with the cause
    assert answer.status_code == 500, answer.text
    assert answer.json["error"]["code"] == "EVENTS_AGGREGATION_FAILED"
    assert answer.json["meta"] == {"cause": "SOURCE_QUERY_FAILED"}


def msd_seeds(client: falcon.testing.TestClient, **params: object) -> falcon.testing.Result:
    return client.simulate_post(
        "/api/trace/seed-resolve", json={"profile": "mid_section_defect", "params": params}
    )


def test_container_mode_answers_the_detected_containers_and_404_when_there_are_none(
    api: tuple[falcon.testing.TestClient, Services], warehouse: Path
) -> None:
    client, services = api
    # Given lot names, sent as the July dashboard does (container mode, two stations)
    names = lot_names(warehouse, 30)
    found = msd_seeds(
        client, mode="container", resolve_type="lot_id", values=names, station="測試,成型"
    )
    # Then the seeds are the ones detected at a station, and the rest are not found
    assert found.status_code == 200
    data = found.json["data"]
    assert 0 < data["seed_count"] == len(data["seeds"]) == len(data["seed_container_ids"])
    assert sorted([s["container_name"] for s in data["seeds"]] + data["not_found"]) == sorted(names)
    # When nothing they name was ever detected there
    none = msd_seeds(client, mode="container", resolve_type="lot_id", values=["NO-SUCH-LOT"])
    # Then the answer is 404 NO_DETECTION_RECORDS in the envelope, naming the station
    assert none.status_code == 404
    assert none.json["success"] is False
    assert none.json["error"]["code"] == "NO_DETECTION_RECORDS"
    assert "測試" in none.json["error"]["message"]
    # And the job says failed, with that code, caused by the input
    (job_id,) = [
        j
        for j in services.runtime.registry.ids(keys.RECENT)
        if (job := services.runtime.registry.load(j)) and job.error
    ]
    status = client.simulate_get(f"/api/trace/job/{job_id}").json["data"]
    assert status["status"] == "failed"
    assert status["error_detail"]["code"] == "NO_DETECTION_RECORDS"
    # A date range with no detection is an answer: 200, no seeds
    empty = msd_seeds(client, start_date="2001-01-01", end_date="2001-01-31")
    assert empty.status_code == 200 and empty.json["data"]["seed_count"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "lots", "resolve_type": "lot_id", "values": ["A"]}, "params.mode"),
        ({"mode": "container", "values": ["A"]}, "params.resolve_type"),
        (
            {"station": "測試,QA", "start_date": "2026-01-01", "end_date": "2026-01-02"},
            "params.station[1]",
        ),
        ({"start_date": "2026-01-02", "end_date": "2026-01-01"}, "params.start_date"),
        ({"start_date": "2024-01-01", "end_date": "2026-01-01"}, "params.end_date"),
    ],
)
def test_bad_msd_seed_params_are_400_naming_the_field(
    client: falcon.testing.TestClient, params: dict[str, object], field: str
) -> None:
    answer = msd_seeds(client, **params)
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "INVALID_PARAMS"
    assert field in answer.json["error"]["message"]


def test_the_seed_answer_carries_a_cache_key_of_the_seed_request_and_later_bodies_accept_it(
    client: falcon.testing.TestClient,
) -> None:
    window = {"start_date": "2026-06-01", "end_date": "2026-06-03"}
    # Given the same seed request with the stations in another order and with the masks
    plain = msd_seeds(client, station="測試,成型", **window).json["data"]
    other = msd_seeds(
        client,
        station=["成型", "測試"],
        pj_types=["SBD"],
        packages=["X"],
        loss_reasons=["Y"],
        **window,
    ).json["data"]
    # Then both carry the same opaque, deterministic cache_key (and the same seeds)
    key = plain["cache_key"]
    assert re.fullmatch(r"seed-[0-9a-f]{16}", key)
    assert other["cache_key"] == key
    assert other["seed_container_ids"] == plain["seed_container_ids"]
    # while another window, or another station, is another key
    later = msd_seeds(client, station="測試,成型", start_date="2026-06-01", end_date="2026-06-04")
    assert later.json["data"]["cache_key"] != key
    assert msd_seeds(client, station="測試", **window).json["data"]["cache_key"] != key
    # And the job's /result says the same
    result = client.simulate_get(f"/api/trace/job/{plain['job_id']}/result")
    assert result.status_code == 200 and result.json["data"]["cache_key"] == key
    # And lineage and events bodies take it back (ignored: it changes nothing)
    seeds = plain["seed_container_ids"][:5]
    body = {"profile": "mid_section_defect", "container_ids": seeds}
    lineage = client.simulate_post("/api/trace/lineage", json={**body, "cache_key": key})
    assert lineage.status_code == 200
    assert (
        client.simulate_post("/api/trace/lineage", json={**body, "cache_key": None}).json["data"][
            "job_id"
        ]
        == lineage.json["data"]["job_id"]
    )
    events = client.simulate_post(
        "/api/trace/events",
        json={**body, "domains": ["upstream_history"], "cache_key": key},
    )
    assert events.status_code == 200
    wrong = client.simulate_post("/api/trace/lineage", json={**body, "cache_key": 7})
    assert wrong.status_code == 400 and "cache_key" in wrong.json["error"]["message"]


def test_another_mask_re_runs_the_analysis_alone_on_the_traces_checkpoints(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    registry = services.runtime.registry
    params = {"station": "測試", "start_date": "2026-06-01", "end_date": "2026-06-30"}

    def trace(extra: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The July client's three calls (seeds only in events)."""
        body = {"profile": "mid_section_defect", "params": {**params, **extra}}
        seeds = client.simulate_post("/api/trace/seed-resolve", json=body).json["data"]
        cids = seeds["seed_container_ids"]
        lineage = client.simulate_post(
            "/api/trace/lineage", json={**body, "container_ids": cids}
        ).json["data"]
        events = client.simulate_post(
            "/api/trace/events",
            json={
                **body,
                "container_ids": cids,
                "seed_container_ids": cids,
                "domains": ["upstream_history", "materials"],
                "lineage_query_id": lineage["query_id"],
            },
        )
        assert events.status_code == 200, events.text[:500]
        return seeds, lineage, events.json["data"]

    # Given a trace analysed with every loss reason
    seeds, lineage, whole = trace({})
    reasons = {i["name"]: i["defect_qty"] for i in whole["aggregation"]["charts"]["by_loss_reason"]}
    reason = max(reasons, key=lambda r: reasons[r])
    # When it is asked again with one loss reason (the page's mask)
    masked_seeds, masked_lineage, masked = trace({"loss_reasons": [reason]})
    # Then seed-resolve and lineage are the same jobs, and the events job of the same trace
    # fetched nothing; nor did the analysis: the trace's detection rows and rejects are the
    # same under any mask, read back from what the trace's own analysis recorded
    assert masked_seeds["job_id"] == seeds["job_id"]
    assert masked_lineage["job_id"] == lineage["job_id"]
    assert masked["trace_query_id"] == whole["trace_query_id"]
    job = registry.load(masked["job_id"])
    assert job is not None and job.request.events_of == whole["job_id"]
    assert registry.queries(masked["job_id"]) == {}
    assert any(
        not tag.startswith(parts.AGGREGATION_QUERIES) for tag in registry.queries(whole["job_id"])
    )
    # And the numbers are the mask's: that reason's defects only, over the same lots
    kpi, masked_kpi = whole["aggregation"]["kpi"], masked["aggregation"]["kpi"]
    assert masked_kpi["total_defect_qty"] == reasons[reason] < kpi["total_defect_qty"]
    assert masked_kpi["lot_count"] == kpi["lot_count"]
    assert masked["quality_meta"]["status"] == "complete"
    # And its events rows are the trace's, read in place
    for domain in ("upstream_history", "materials"):
        rows = client.simulate_get(
            f"/api/trace/job/{masked['job_id']}/result", params={"domain": domain, "limit": 0}
        ).json["data"]["results"][domain]
        first = client.simulate_get(
            f"/api/trace/job/{whole['job_id']}/result", params={"domain": domain, "limit": 0}
        ).json["data"]["results"][domain]
        assert rows["total"] == first["total"] > 0 and rows["data"] == first["data"]
    # And a re-analysis of that re-analysis under a PJ-type mask (the lots kept differ, so
    # the detection rows are filtered, not queried again) asks at most the machine families
    # of the lots it keeps
    typed_masks = {"loss_reasons": [reason], "pj_types": [PRODUCT_TYPES[0][0]]}
    _, _, typed = trace(typed_masks)
    assert typed["trace_query_id"] == whole["trace_query_id"]
    assert len(registry.queries(typed["job_id"])) <= 1, registry.queries(typed["job_id"])
    assert typed["aggregation"]["kpi"]["lot_count"] < kpi["lot_count"]
    # And both re-analyses took the lot record of the trace's first analysis (not its
    # detection rows, lineage and events again), and their numbers are those of the same
    # analysis run afresh from the warehouse
    store = services.runtime.store
    for again, masks in ((masked, {"loss_reasons": [reason]}), (typed, typed_masks)):
        assert store.get_blob(again["job_id"], parts.LOT_RECORD_META) is not None
        assert store.finished(again["job_id"], parts.AGGREGATION_LOT_RECORD)
        fresh = client.simulate_post(
            "/api/trace/events",
            json={
                "profile": "mid_section_defect",
                "params": {**params, **masks},
                "container_ids": seeds["seed_container_ids"],
                "seed_container_ids": seeds["seed_container_ids"],
                "domains": ["upstream_history", "materials"],
                "lineage_query_id": lineage["query_id"],
                "fresh": True,
            },
        )
        assert fresh.status_code == 200, fresh.text[:300]
        assert registry.load(fresh.json["data"]["job_id"]).request.events_of is None
        assert fresh.json["data"]["aggregation"] == again["aggregation"]
        # and so are their detail rows (the re-analysis's naming the record's heads) and export
        # cells, byte for byte, in the same order
        jobs = (again["job_id"], fresh.json["data"]["job_id"])
        detail = [detail_page(services.results, job, 0, 0)[1] for job in jobs]
        assert detail[0] == detail[1] and detail[0]
        stored = [list(store.read(job, parts.AGGREGATION_EXPORT)) for job in jobs]
        assert [b.rows for b in stored[0]] == [b.rows for b in stored[1]]
        assert sum(len(b.rows) for b in stored[0]) > 0
