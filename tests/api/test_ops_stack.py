"""The operators' endpoints and ``/metrics`` on real processes: gunicorn and ``ops/worker``
(with the tests' fault-injecting warehouse, ``tests.support.faulty_worker``) on loopback, on a
Redis server of the module's own (every database of the shared one belongs to another module),
with an API token set.

A job failed by the warehouse is retried over HTTP and finished by the real workers; the
overview shows those workers and the broker's queues; and every metric the alert rules and the
Grafana dashboard read is one the real ``/metrics`` exports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from pipeline.tools.stack import LocalStack
from tests.api.conftest import API_ENV
from tests.api.helpers import lot_ids
from tests.support.alerting import dashboard_exprs, metric_names, rules
from tests.support.faults import FAULTS_KEY
from tests.support.redis_server import RedisServer, own_redis
from tests.support.served_stack import running_stack

STORE_DB, BROKER_DB = 0, 1  # of the module's own server
TOKEN = "ops-stack-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with own_redis(tmp_path_factory.mktemp("ops-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def store(ops_server: RedisServer) -> redis.Redis:
    return ops_server.client(STORE_DB)


@pytest.fixture(scope="module")
def stack(
    warehouse: Path, ops_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """One worker command (one process, two threads) and gunicorn, for the module."""
    env = {
        **API_ENV,
        "TRACE_REDIS_URL": f"{ops_server.url}/{STORE_DB}",
        "TRACE_BROKER_URL": f"{ops_server.url}/{BROKER_DB}",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_API_TOKEN": TOKEN,
        "WORKER_MODULES": "tests.support.faulty_worker",
    }
    with running_stack(env, tmp_path_factory.mktemp("ops-stack"), processes=1, threads=2) as stack:
        yield stack


def call(stack: LocalStack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, data = stack.api.request(method, path, body, headers=AUTH)
    return status, orjson.loads(data) if data.startswith(b"{") else data.decode()


def wait_state(stack: LocalStack, job_id: str, want: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, answer = call(stack, "GET", f"/api/trace/job/{job_id}")
        assert status == 200, answer
        if answer["data"]["state"] == want:
            return dict(answer["data"])
        assert time.monotonic() < deadline, f"job {job_id} still {answer['data']['state']}"
        time.sleep(0.1)


def test_a_failed_job_is_retried_over_http_and_the_workers_finish_it(
    stack: LocalStack, store: redis.Redis, warehouse: Path
) -> None:
    store.hset(FAULTS_KEY, "fail:events/holds", "permanent")
    body = {"profile": "query_tool", "container_ids": lot_ids(warehouse, 40), "domains": ["holds"]}
    status, answer = stack.api.request(
        "POST", "/api/trace/events", body, headers={**AUTH, "Prefer": "respond-async"}
    )
    assert status == 202, answer
    job_id = orjson.loads(answer)["data"]["job_id"]
    wait_state(stack, job_id, "failed")
    status, failed = call(stack, "GET", "/api/ops/jobs?state=failed&limit=5")
    assert status == 200 and [j["job_id"] for j in failed["data"]["jobs"]] == [job_id]
    status, line = call(stack, "GET", f"/api/ops/jobs/{job_id}")
    assert line["data"]["error"]["code"] == "SOURCE_QUERY_FAILED"
    assert line["data"]["stages"][0]["domains"][0]["state"] == "failed"
    # When the warehouse is back and the operator retries the job over HTTP
    store.delete(FAULTS_KEY)
    status, retried = call(stack, "POST", f"/api/ops/jobs/{job_id}/retry")
    assert status == 202, retried
    assert retried["data"]["status_url"] == f"/api/trace/job/{job_id}"
    # Then the workers finish it, whole
    done = wait_state(stack, job_id, "finished")
    assert done["quality_meta"]["status"] == "complete"
    status, line = call(stack, "GET", retried["data"]["timeline_url"])
    assert line["data"]["quality"]["status"] == "complete"
    assert line["data"]["stages"][0]["domains"][0]["state"] == "finished"
    # and a finished job can be purged, not retried
    status, again = call(stack, "POST", f"/api/ops/jobs/{job_id}/retry")
    assert status == 409 and again["error"]["code"] == "JOB_NOT_RETRYABLE"
    status, purged = call(stack, "POST", f"/api/ops/jobs/{job_id}/purge")
    assert status == 200 and purged["data"]["released_keys"] > 1
    assert store.exists(f"trace:job:{job_id}") == 0


def test_the_overview_shows_the_real_workers_and_queues(stack: LocalStack) -> None:
    status, answer = call(stack, "GET", "/api/ops/overview")
    assert status == 200, answer
    seen = answer["data"]
    alive = [w for w in seen["workers"] if w["alive"]]
    assert len(alive) == 1  # one worker process
    assert alive[0]["host"] and alive[0]["pid"]
    os.kill(alive[0]["pid"], 0)  # a process of this machine: the dramatiq worker
    assert {q["queue"]: q["broker"] for q in seen["queues"]} == {
        "trace": "redis",
        "trace_large": "redis",
    }
    assert all(q["ready"] == 0 and q["delayed"] == 0 and q["dead"] == 0 for q in seen["queues"])
    assert seen["redis"]["used_bytes"] > 0 and seen["redis"]["policy"] == "noeviction"
    assert seen["stalled_jobs"] == []
    # without the token: refused, in the envelope
    status, data = stack.api.request("GET", "/api/ops/overview")
    assert status == 401 and orjson.loads(data)["error"]["code"] == "UNAUTHORIZED"
    status, data = stack.api.request("POST", "/api/ops/jobs/" + "0" * 32 + "/retry")
    assert status == 401


def exported(text: str) -> set[str]:
    """Every metric name a scrape shows, as PromQL names it (a counter with its ``_total``),
    families without a sample yet included."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_the_alerts_and_the_dashboard_read_only_metrics_that_metrics_exports(
    stack: LocalStack,
) -> None:
    status, text = call(stack, "GET", "/metrics")
    assert status == 200
    names = exported(text)
    for gauge in (
        "trace_queue_messages",
        "trace_redis_memory_used_bytes",
        "trace_redis_memory_max_bytes",
        "trace_redis_eviction_policy",
        "trace_jobs_stalled",
        "trace_workers_alive",
        "trace_jobs_current",
    ):
        assert gauge in names, gauge
    in_rules = metric_names([rule["expr"] for rule in rules()])
    in_dashboard = metric_names(dashboard_exprs())
    assert in_rules and in_dashboard
    assert in_rules - names == set(), "alerts.yml names metrics /metrics does not export"
    assert in_dashboard - names == set(), "the dashboard reads metrics /metrics does not export"
