"""Operations endpoints: readiness (Redis, eviction policy, broker, source, workers) and the
Prometheus metrics; and a broker that is down answering 503."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from http_api.app import create_app
from http_api.services import Services
from pipeline.config import Settings
from pipeline.engine import keys
from pipeline.engine.broker import make_broker
from pipeline.engine.leases import LeaseBook
from pipeline.engine.messages import BrokerDispatcher
from pipeline.engine.runtime import Runtime
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_names, post_events


def test_ready_needs_a_live_worker(make_app: AppFactory) -> None:
    client, services = make_app()
    services.redis.delete(keys.WORKERS)  # the test's worker thread beats; say it stopped
    # No worker has sent a heartbeat: not ready, and the answer says which check failed
    answer = client.simulate_get("/readyz")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    checks = answer.json["meta"]["checks"]
    assert checks["redis"]["ok"] and checks["source"]["ok"] and not checks["workers"]["ok"]
    assert "workers" in answer.json["error"]["message"]
    # A worker process beats (as every dramatiq worker does): ready
    LeaseBook(services.redis).renew()
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json["data"]["status"] == "ready"


@pytest.fixture
def evicting_redis(api_redis: redis.Redis) -> Iterator[None]:
    """Redis switched to an eviction policy for one test (restored after)."""
    before = api_redis.config_get("maxmemory-policy")["maxmemory-policy"]
    api_redis.config_set("maxmemory-policy", "allkeys-lru")
    yield
    api_redis.config_set("maxmemory-policy", before)


def test_a_redis_that_may_evict_job_keys_is_not_ready(
    make_app: AppFactory, evicting_redis: None
) -> None:
    client, services = make_app()
    LeaseBook(services.redis).renew()
    answer = client.simulate_get("/readyz")
    assert answer.status_code == 503
    assert "allkeys-lru" in answer.json["meta"]["checks"]["eviction"]["detail"]


def test_metrics_count_jobs_stage_rows_streams_and_refusals(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=3)
    answer = post_events(client, warehouse, 30)
    job_id = answer.json["data"]["job_id"]
    streamed = client.simulate_get(f"/api/trace/job/{job_id}/stream")
    for _ in range(3):
        client.simulate_get(f"/api/trace/job/{job_id}")
    text = client.simulate_get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("trace_jobs_total", (("event", "accepted"),))] == 1
    assert samples[("trace_jobs_total", (("event", "finished"),))] == 1
    assert samples[("trace_stage_runs_total", (("stage", "events"),))] == 1
    assert samples[("trace_stage_seconds_total", (("stage", "events"),))] > 0
    rows = answer.json["data"]["results"]["history"]["total"]
    assert samples[("trace_rows_written_total", (("part", "events:history"),))] == rows
    assert samples[("trace_stream_bytes_total", ())] == len(streamed.content)
    assert samples[("trace_rate_limited_total", (("bucket", "job"),))] == 1
    assert samples[("trace_jobs_current", (("state", "active"),))] == 0


def test_a_broker_that_is_down_is_503_and_the_job_says_why(
    api_redis: redis.Redis, warehouse: Path, api_env: dict[str, str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings.from_env(
        {
            **api_env,
            "TRACE_BROKER_URL": f"redis://127.0.0.1:{port}/13",
            "TRACE_REDIS_TIMEOUT_SECONDS": "1",
        }
    )
    broker = make_broker(settings)
    services = Services(settings, Runtime(settings, BrokerDispatcher(broker)), broker)
    client = falcon.testing.TestClient(create_app(settings, services))
    answer = client.simulate_post(
        "/api/trace/seed-resolve",
        json={
            "profile": "query_tool",
            "params": {"resolve_type": "lot_id", "values": lot_names(warehouse, 2)},
        },
    )
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert answer.json["error"]["code"] == "SERVICE_UNAVAILABLE"
    # The job that could not be sent is failed (a retry of the request starts a new one)
    job_id = services.runtime.registry.ids("trace:jobs:recent")[0]
    job = services.runtime.registry.load(job_id)
    assert job is not None and job.state == "failed"
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503 and not ready.json["meta"]["checks"]["broker"]["ok"]
