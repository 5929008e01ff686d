"""The operators' endpoints (``/api/ops/``) through the app, jobs run by the engine's real code
in a thread of the test process (``make_app``), on the API tests' Redis databases: the job list
and its filters, a job's stage timeline, retry, purge, the overview and their refusals.

A failing warehouse is the tests' fault-injecting SQLite source (``tests.support.faults``); the
real worker processes and gunicorn are ``test_ops_stack.py``'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dramatiq
import falcon.testing
import pytest
import redis

from http_api.app import create_app
from http_api.openapi import document
from http_api.services import Services
from pipeline.config import Settings
from pipeline.engine import keys
from pipeline.engine.broker import make_broker
from pipeline.engine.job import QUEUE
from pipeline.engine.messages import BrokerDispatcher
from pipeline.engine.runtime import Runtime
from pipeline.request import TraceRequest
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_ids, lot_names, post_events, wait_status
from tests.support.faults import FAULTS_KEY, FaultySqliteSource

OPS_PATHS = {
    "/api/ops/jobs": {"get"},
    "/api/ops/jobs/{job_id}": {"get"},
    "/api/ops/jobs/{job_id}/retry": {"post"},
    "/api/ops/jobs/{job_id}/purge": {"post"},
    "/api/ops/overview": {"get"},
}
UNKNOWN_JOB = "0" * 32  # an id whose creation second is long past the TTL: not found, not lost


def data(answer: falcon.testing.Result, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text[:500]
    return answer.json["data"]


def refused(answer: falcon.testing.Result, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text[:500]
    assert answer.json["success"] is False and answer.json["error"]["code"] == code
    return answer.json


def queued_job(services: Services, warehouse: Path, profile: str = "query_tool") -> str:
    """A job submitted to the registry and never sent (it stays queued)."""
    body = {"profile": profile, "container_ids": lot_ids(warehouse, 3), "domains": ["history"]}
    job, _ = services.runtime.registry.submit(TraceRequest.from_dict(body), fresh=True)
    return job.id


def failing(services: Services, query: str) -> redis.Redis:
    """The app's jobs read a warehouse whose ``query`` fails for good (until the fault goes)."""
    settings, client = services.settings, services.redis
    services.runtime.use_source(FaultySqliteSource.for_settings(settings, client))
    client.hset(FAULTS_KEY, f"fail:{query}", "permanent")
    return client


# ---- the list -----------------------------------------------------------------------------------
def test_the_job_list_is_newest_first_and_filters_by_state_profile_and_age(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app()
    finished = post_events(client, warehouse, 20).json["data"]["job_id"]
    client_redis = failing(services, "events/history")
    assert post_events(client, warehouse, 25).status_code == 500  # every domain failed
    failed_id = services.runtime.registry.ids(keys.FAILED)[0]
    client_redis.delete(FAULTS_KEY)
    queued = queued_job(services, warehouse)
    # When the operator lists every job
    jobs = data(client.simulate_get("/api/ops/jobs"))["jobs"]
    # Then they come newest first, each with its line
    assert [j["job_id"] for j in jobs] == [queued, failed_id, finished]
    line = jobs[2]
    assert line["kind"] == "events" and line["profile"] == "query_tool"
    assert line["state"] == "finished" and line["stage"] == "events"
    assert line["cids"] == 20 and line["rows"] > 0 and line["quality"] == "complete"
    assert line["elapsed_seconds"] >= 0 and line["created_at"] <= time.time()
    assert jobs[1]["quality"] == "failed" and jobs[1]["error"]["code"] == "SOURCE_QUERY_FAILED"
    assert jobs[0]["state"] == "queued" and jobs[0]["quality"] == "partial"

    def ids(query: str) -> list[str]:
        return [j["job_id"] for j in data(client.simulate_get(f"/api/ops/jobs?{query}"))["jobs"]]

    assert ids("state=failed") == [failed_id]
    assert ids("state=queued") == [queued]
    assert ids("state=finished") == [finished]
    assert ids("state=cancelled") == []
    assert ids("limit=2") == [queued, failed_id]
    assert ids("profile=query_tool&limit=500") == [queued, failed_id, finished]
    assert ids("profile=mid_section_defect") == []
    # A job created an hour ago (its creation time and index entry moved back) is older than
    # max_age_seconds=600, whatever the index it is found through
    hour_ago = time.time() - 3600
    client_redis.hset(keys.job(finished), "created_at", repr(hour_ago))
    client_redis.zadd(keys.RECENT, {finished: hour_ago})
    assert ids("max_age_seconds=600") == [queued, failed_id]
    assert ids("max_age_seconds=7200") == [queued, failed_id, finished]
    assert ids("state=finished&max_age_seconds=600") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=done", "state"),
        ("profile=everything", "profile"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("max_age_seconds=0", "max_age_seconds"),
        ("max_age_seconds=1h", "max_age_seconds"),
    ],
)
def test_bad_list_parameters_are_a_400_naming_the_field(
    client: falcon.testing.TestClient, query: str, field: str
) -> None:
    answer = client.simulate_get(f"/api/ops/jobs?{query}")
    assert answer.status_code == 400, answer.text
    if answer.json["error"]["code"] == "INVALID_PROFILE":  # the profile's own code and message
        assert "everything" in answer.json["error"]["message"]
        return
    assert answer.json["error"]["code"] == "INVALID_PARAMS"
    assert field in [e["field"] for e in answer.json["meta"]["errors"]], answer.json


# ---- the timeline -------------------------------------------------------------------------------
def test_the_timeline_of_a_finished_trace(make_app: AppFactory, warehouse: Path) -> None:
    client, services = make_app()
    body = {
        "profile": "query_tool",
        "params": {"resolve_type": "lot_id", "values": lot_names(warehouse, 4)},
        "domains": ["history", "materials"],
    }
    job_id = data(client.simulate_post("/api/trace/jobs", json=body), 202)["job_id"]
    status = wait_status(client, job_id)
    assert status["status"] == "finished"
    # When the operator opens the job
    line = data(client.simulate_get(f"/api/ops/jobs/{job_id}"))
    # Then every stage of its plan is there, in order, finished, timed, with its work
    assert line["kind"] == "trace" and line["state"] == "finished" and line["error"] is None
    stages = {s["stage"]: s for s in line["stages"]}
    assert [s["stage"] for s in line["stages"]] == ["seed-resolve", "lineage", "events"]
    for stage in line["stages"]:
        assert stage["state"] == "finished" and stage["runs"] >= 1
        assert line["created_at"] <= stage["started_at"] <= stage["finished_at"]
        assert stage["seconds"] == pytest.approx(
            stage["finished_at"] - stage["started_at"], abs=1e-3
        )
        assert stage["batch_starts"] >= stage["batches_done"] > 0 and stage["batch_errors"] == 0
        assert stage["retried_batches"] == []
    assert stages["seed-resolve"]["finished_at"] <= stages["lineage"]["started_at"]
    events = stages["events"]
    assert [d["domain"] for d in events["domains"]] == ["history", "materials"]
    for domain in events["domains"]:
        progress = status["stages"]["events"]["domains"][domain["domain"]]
        assert domain["state"] == "finished" and domain["quality"]["status"] == "complete"
        assert domain["batches_done"] == domain["batches_total"] == progress["batches_total"]
        assert domain["rows"] == progress["rows"] and domain["seconds"] >= 0
    assert events["rows"] == status["stages"]["events"]["rows"] > 0
    assert line["quality"]["status"] == "complete" and line["quality"]["scope"] == "query"
    # and the TTL of its keys: all alive, none without a TTL, the named ones each given
    ttl = services.settings.job_ttl_seconds
    stored = line["keys"]
    assert stored["count"] == services.redis.scard(keys.job_keys(job_id)) + 2
    assert stored["gone"] == stored["without_ttl"] == 0
    assert 0 < stored["min_ttl_seconds"] <= stored["max_ttl_seconds"] <= ttl
    named = {k["key"]: k for k in stored["named"]}
    assert named[keys.job(job_id)]["exists"] and 0 < named[keys.job(job_id)]["ttl_seconds"] <= ttl
    assert keys.manifest(job_id, "events:history") in named
    assert keys.progress(job_id) in named and not any(":chunk:" in k for k in named)


def test_a_failed_job_names_its_error_and_a_retry_finishes_it(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app()
    faults = failing(services, "events/materials")
    assert post_events(client, warehouse, 30, domains=["materials"]).status_code == 500
    job_id = services.runtime.registry.ids(keys.FAILED)[0]
    # The failed job's timeline: the events stage failed, the domain with it, the error's code
    line = data(client.simulate_get(f"/api/ops/jobs/{job_id}"))
    assert line["state"] == "failed" and line["failed_domains"] == ["materials"]
    assert line["error"]["code"] == "SOURCE_QUERY_FAILED" and line["error"]["stage"] == "events"
    events = line["stages"][0]
    runs = events["runs"]
    assert events["stage"] == "events" and events["state"] == "failed"
    assert events["finished_at"] >= events["started_at"]
    materials = events["domains"][0]
    assert materials["state"] == "failed" and materials["quality"]["status"] == "failed"
    assert materials["batch_errors"] >= 1
    assert materials["retried_batches"][0]["errors"] >= 1
    assert line["quality"]["status"] == "failed"
    # When the warehouse is back and the operator retries the job
    faults.delete(FAULTS_KEY)
    retried = data(client.simulate_post(f"/api/ops/jobs/{job_id}/retry"), 202)
    assert retried["job_id"] == job_id and retried["state"] == "queued"
    assert retried["status_url"] == f"/api/trace/job/{job_id}"
    # Then it finishes, whole, its events stage run twice
    assert wait_status(client, job_id)["status"] == "finished"
    line = data(client.simulate_get(retried["timeline_url"]))
    assert line["state"] == "finished" and line["quality"]["status"] == "complete"
    assert line["stages"][0]["runs"] > runs and line["error"] is None
    # and a job that did not fail cannot be retried
    again = refused(client.simulate_post(f"/api/ops/jobs/{job_id}/retry"), 409, "JOB_NOT_RETRYABLE")
    assert again["meta"]["job_status"] == "finished" and again["meta"]["job_id"] == job_id


# ---- purge --------------------------------------------------------------------------------------
def test_purge_releases_every_key_of_an_ended_job_and_refuses_an_active_one(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app()
    job_id = post_events(client, warehouse, 30, domains=["history", "holds"]).json["data"]["job_id"]
    registered = services.redis.smembers(keys.job_keys(job_id))
    assert len(registered) > 5
    # When the operator purges the finished job
    purged = data(client.simulate_post(f"/api/ops/jobs/{job_id}/purge"))
    # Then every key it had is gone, its hash and index entries too
    assert purged == {"job_id": job_id, "released_keys": len(registered) + 1}
    assert services.redis.exists(keys.job(job_id), keys.job_keys(job_id), *registered) == 0
    assert services.redis.zscore(keys.RECENT, job_id) is None
    # and the job is lost (its id says it cannot have expired), the event log says purged
    refused(client.simulate_get(f"/api/ops/jobs/{job_id}"), 410, "JOB_LOST")
    events = data(client.simulate_get(f"/api/trace/job-events?job={job_id}"))["events"]
    assert events[-1]["event"] == "purged" and events[-1]["keys"] == str(len(registered) + 1)
    # A queued job is refused: cancel it first; cancelled, it can be purged
    queued = queued_job(services, warehouse)
    answer = refused(
        client.simulate_post(f"/api/ops/jobs/{queued}/purge"), 409, "JOB_NOT_PURGEABLE"
    )
    assert answer["meta"]["job_status"] == "queued" and "cancel" in answer["error"]["message"]
    assert client.simulate_delete(f"/api/trace/job/{queued}").status_code == 200
    assert data(client.simulate_post(f"/api/ops/jobs/{queued}/purge"))["job_id"] == queued


def test_unknown_jobs_are_404_and_a_queued_one_cannot_be_retried(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app()
    refused(client.simulate_get(f"/api/ops/jobs/{UNKNOWN_JOB}"), 404, "JOB_NOT_FOUND")
    refused(client.simulate_post(f"/api/ops/jobs/{UNKNOWN_JOB}/retry"), 404, "JOB_NOT_FOUND")
    refused(client.simulate_post(f"/api/ops/jobs/{UNKNOWN_JOB}/purge"), 404, "JOB_NOT_FOUND")
    queued = queued_job(services, warehouse)
    answer = refused(
        client.simulate_post(f"/api/ops/jobs/{queued}/retry"), 409, "JOB_NOT_RETRYABLE"
    )
    assert answer["meta"]["job_status"] == "queued"
    line = data(client.simulate_get(f"/api/ops/jobs/{queued}"))
    assert [s["state"] for s in line["stages"]] == ["pending"]
    assert line["stages"][0]["seconds"] is None and line["quality"]["status"] == "partial"


# ---- the overview -------------------------------------------------------------------------------
def test_the_overview_shows_workers_redis_and_stalled_jobs(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app()
    settings = services.settings
    # The test's worker thread beats as this process; an older process beat long ago
    services.redis.zadd(keys.WORKERS, {"gone-host:4242": time.time() - 60})
    # A queued job nothing was heard of for a minute (its messages lost) is stalled
    stalled = queued_job(services, warehouse)
    services.redis.zadd(keys.RUNNING, {stalled: time.time() - 60})
    fresh = queued_job(services, warehouse, profile="query_tool_reverse")
    seen = data(client.simulate_get("/api/ops/overview"))
    workers = {w["id"]: w for w in seen["workers"]}
    assert workers["gone-host:4242"]["alive"] is False
    assert (
        workers["gone-host:4242"]["host"] == "gone-host"
        and workers["gone-host:4242"]["pid"] == 4242
    )
    assert workers["gone-host:4242"]["seconds_since_beat"] >= 59
    assert any(
        w["alive"] and w["seconds_since_beat"] <= settings.stall_seconds for w in workers.values()
    )
    # No broker in this app (its jobs run in a thread): the depths are unknown, and say why
    assert [q["queue"] for q in seen["queues"]] == ["trace", "trace_large"]
    assert all(q["ready"] is None and q["broker"] == "none" and q["detail"] for q in seen["queues"])
    memory = seen["redis"]
    assert memory["used_bytes"] > 0 and memory["policy"] == "noeviction" and not memory["evicts"]
    assert seen["resume_bound_seconds"] == settings.stall_seconds + settings.reaper_interval_seconds
    assert [j["job_id"] for j in seen["stalled_jobs"]] == [stalled]
    assert (
        seen["stalled_jobs"][0]["quiet_seconds"] >= 59
        and seen["stalled_jobs"][0]["state"] == "queued"
    )
    assert fresh not in [j["job_id"] for j in seen["stalled_jobs"]]


def test_queue_depths_come_from_the_redis_broker(
    api_redis: redis.Redis, warehouse: Path, api_env: dict[str, str]
) -> None:
    """Messages put in the broker's queues the way Dramatiq puts them: sent, sent with a delay
    (a retry's backoff), and dead-lettered by a consumer's nack; no worker takes them."""
    settings = Settings.from_env(api_env)
    broker = make_broker(settings)
    services = Services(settings, Runtime(settings, BrokerDispatcher(broker)), broker)
    client = falcon.testing.TestClient(create_app(settings, services))

    def message(queue: str) -> dramatiq.Message[Any]:
        return dramatiq.Message(
            queue_name=queue, actor_name="trace_events", args=(), kwargs={}, options={}
        )

    for _ in range(3):
        broker.enqueue(message(QUEUE))
    broker.enqueue(message(QUEUE), delay=600_000)
    broker.enqueue(message("trace_large"))
    consumer = broker.consume("trace_large", prefetch=1, timeout=1000)
    taken = next(m for m in consumer if m is not None)
    consumer.nack(taken)
    consumer.close()
    depths = {q["queue"]: q for q in data(client.simulate_get("/api/ops/overview"))["queues"]}
    assert depths["trace"] == {
        "queue": "trace",
        "broker": "redis",
        "ready": 3,
        "delayed": 1,
        "dead": 0,
    }
    assert depths["trace_large"] == {
        "queue": "trace_large",
        "broker": "redis",
        "ready": 0,
        "delayed": 0,
        "dead": 1,
    }
    # /metrics says the same, a gauge per queue and kind
    text = client.simulate_get("/metrics").text
    assert 'trace_queue_messages{kind="ready",queue="trace"} 3.0' in text
    assert 'trace_queue_messages{kind="delayed",queue="trace"} 1.0' in text
    assert 'trace_queue_messages{kind="dead",queue="trace_large"} 1.0' in text


# ---- the document and the token -----------------------------------------------------------------
def test_the_ops_endpoints_are_documented_and_need_the_token(make_app: AppFactory) -> None:
    paths = document()["paths"]
    for path, methods in OPS_PATHS.items():
        assert {m for m in paths[path] if m != "parameters"} == methods, path
        for method in methods:
            assert "401" in paths[path][method]["responses"], (path, method)
    assert "409" in paths["/api/ops/jobs/{job_id}/retry"]["post"]["responses"]
    assert "409" in paths["/api/ops/jobs/{job_id}/purge"]["post"]["responses"]
    client, _ = make_app(TRACE_API_TOKEN="ops-token")
    for path, methods in OPS_PATHS.items():
        url = path.replace("{job_id}", UNKNOWN_JOB)
        for method in methods:
            refused(client.simulate_request(method.upper(), url), 401, "UNAUTHORIZED")
            authorized = client.simulate_request(
                method.upper(), url, headers={"Authorization": "Bearer ops-token"}
            )
            assert authorized.status_code in (200, 404), (path, authorized.text)
