"""Protection: per-client rate limits shared through Redis, the bearer token, the body size
limit, and 503 (never a hang, never a 500) when Redis is away."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from http_api.app import create_app
from http_api.services import Services
from pipeline.config import Settings
from pipeline.engine import metrics
from pipeline.engine.runtime import Runtime
from tests.api.conftest import AppFactory, ThreadDispatcher


def test_status_result_and_stream_share_one_limit_per_client_answering_429(
    make_app: AppFactory,
) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=3, TRACE_RATE_LIMIT_WINDOW_SECONDS=60)
    job = "a" * 32
    codes = [
        client.simulate_get(f"/api/trace/job/{job}{path}").status_code
        for path in ("", "/result", "/stream")
    ]
    assert codes == [404, 404, 404]
    refused = client.simulate_get(f"/api/trace/job/{job}")
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "TOO_MANY_REQUESTS"
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60 and refused.json["meta"] == {"retry_after_seconds": wait}
    # Another client is not affected; nor is health
    other = client.simulate_get(f"/api/trace/job/{job}", remote_addr="10.1.2.3")
    assert other.status_code == 404
    assert client.simulate_get("/healthz").status_code == 200


def test_the_limit_is_shared_by_every_app_process_through_redis(make_app: AppFactory) -> None:
    # Two apps stand for two gunicorn workers
    first, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=2)
    second, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=2)
    assert first.simulate_get("/api/trace/job/x").status_code == 404
    assert second.simulate_get("/api/trace/job/x").status_code == 404
    assert first.simulate_get("/api/trace/job/x").status_code == 429
    assert second.simulate_get("/api/trace/job/x").status_code == 429


def test_each_job_has_its_own_limit_within_the_clients_limit(make_app: AppFactory) -> None:
    # Given 2 requests per client and job, 5 per client over all jobs
    client, services = make_app(TRACE_RATE_LIMIT_REQUESTS=5, TRACE_RATE_LIMIT_PER_JOB_REQUESTS=2)
    first, second, third, fourth = (c * 32 for c in "abcd")
    # When one job is asked a third time (status, result and stream count together)
    codes = [client.simulate_get(f"/api/trace/job/{first}{p}").status_code for p in ("", "/result")]
    assert codes == [404, 404]
    refused = client.simulate_get(f"/api/trace/job/{first}/stream")
    # Then that job is refused to that client, with the envelope and Retry-After
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "TOO_MANY_REQUESTS"
    assert refused.json["error"]["message"].endswith("at most 2 per 60 s to one job")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # And another job is not refused, nor is the same job to another client
    assert client.simulate_get(f"/api/trace/job/{second}").status_code == 404
    other = client.simulate_get(f"/api/trace/job/{first}", remote_addr="10.1.2.3")
    assert other.status_code == 404
    # When the client goes on over other jobs past its own limit (the refusal counted too)
    assert client.simulate_get(f"/api/trace/job/{third}").status_code == 404
    flooded = client.simulate_get(f"/api/trace/job/{fourth}")
    # Then it is refused whatever the job
    assert flooded.status_code == 429
    assert flooded.json["error"]["message"].endswith("at most 5 per 60 s")
    assert client.simulate_get("/api/trace/job-events").status_code == 429
    # And each refusal is counted under what refused it
    refusals = {
        dict(labels)["bucket"]: value
        for (name, labels), value in metrics.snapshot(services.redis).items()
        if name == "rate_limited"
    }
    assert refusals == {"per_job": 1, "job": 2}


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=1, TRACE_TRUSTED_PROXIES="10.0.0.1")

    def status(remote: str, forwarded: str) -> int:
        return client.simulate_get(
            "/api/trace/job/x", remote_addr=remote, headers={"X-Forwarded-For": forwarded}
        ).status_code

    # Behind the proxy, each forwarded client has its own allowance
    assert status("10.0.0.1", "192.168.0.7") == 404
    assert status("10.0.0.1", "192.168.0.8") == 404
    assert status("10.0.0.1", "192.168.0.7") == 429
    # A direct client cannot escape its limit by sending the header
    assert status("172.16.0.5", "1.1.1.1") == 404
    assert status("172.16.0.5", "2.2.2.2") == 429


def test_submissions_have_their_own_limit(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_SUBMIT_RATE_LIMIT_REQUESTS=1)
    body = {"profile": "query_tool", "container_ids": [], "domains": ["history"]}
    assert client.simulate_post("/api/trace/events", json=body).status_code == 400
    assert client.simulate_post("/api/trace/events", json=body).status_code == 429
    assert client.simulate_get("/api/trace/job/x").status_code == 404  # the job bucket is apart


def test_with_a_token_every_endpoint_but_health_needs_it(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_API_TOKEN="s3cret")
    for path in ("/api/trace/job/x", "/metrics", "/openapi.json"):
        refused = client.simulate_get(path)
        assert refused.status_code == 401, path
        assert refused.json["error"]["code"] == "UNAUTHORIZED"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    wrong = client.simulate_get("/api/trace/job/x", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.simulate_get("/api/trace/job/x", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 404
    post = client.simulate_post("/api/trace/events", json={})
    assert post.status_code == 401
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/readyz").status_code in (200, 503)  # open, whatever its verdict


def test_a_body_over_the_limit_is_413_and_nothing_is_submitted(
    make_app: AppFactory, api_redis: object
) -> None:
    client, services = make_app(TRACE_MAX_BODY_BYTES=1000)
    body = {"profile": "query_tool", "container_ids": [f"lot-{i}" for i in range(200)],
            "domains": ["history"]}  # fmt: skip
    refused = client.simulate_post("/api/trace/events", json=body)
    assert refused.status_code == 413
    assert refused.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "1000" in refused.json["error"]["message"]
    assert services.runtime.registry.ids("trace:jobs:recent") == []


def test_an_id_list_no_profile_allows_is_413_before_it_is_validated(
    make_app: AppFactory, api_redis: object
) -> None:
    # Given limits of 10 / 20 / 30 lots per profile
    client, services = make_app(
        TRACE_MAX_CIDS_QUERY_TOOL=10,
        TRACE_MAX_CIDS_QUERY_TOOL_REVERSE=20,
        TRACE_MAX_CIDS_MID_SECTION_DEFECT=30,
    )
    # When a list longer than the largest comes, even with items of the wrong type
    ids: list[object] = [None] * 31
    for path, field in (
        ("/api/trace/events", "container_ids"),
        ("/api/trace/lineage", "container_ids"),
        ("/api/trace/events", "seed_container_ids"),
    ):
        body = {"profile": "query_tool", "container_ids": ["A"], "domains": ["history"]}
        refused = client.simulate_post(path, json={**body, field: ids})
        # Then it is refused for its length (the model would have named 31 wrong types)
        assert refused.status_code == 413, refused.text
        assert refused.json["error"]["code"] == "CID_LIMIT_EXCEEDED"
        assert f"{field} count (31)" in refused.json["error"]["message"]
    # And a list within it is judged by its profile's limit after blanks and repeats go
    repeated = {"profile": "query_tool", "container_ids": ["A", "B"] * 12, "domains": ["history"]}
    assert client.simulate_post("/api/trace/events", json=repeated).status_code != 413
    over = {**repeated, "container_ids": [f"L{i}" for i in range(11)]}
    refused = client.simulate_post("/api/trace/events", json=over)
    assert (refused.status_code, refused.json["error"]["code"]) == (413, "CID_LIMIT_EXCEEDED")
    assert "(10)" in refused.json["error"]["message"]
    assert len(services.runtime.registry.ids("trace:jobs:recent")) == 1


def _app_against(redis_url: str, warehouse: Path, **extra: str) -> falcon.testing.TestClient:
    settings = Settings.from_env(
        {
            "TRACE_REDIS_URL": redis_url,
            "TRACE_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/13",
            "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
            "TRACE_REDIS_TIMEOUT_SECONDS": "1",
            **extra,
        }
    )
    dispatcher = ThreadDispatcher()
    runtime = Runtime(settings, dispatcher)
    dispatcher.runtime = runtime
    return falcon.testing.TestClient(create_app(settings, Services(settings, runtime)))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_redis_down_is_503_with_retry_after(warehouse: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _app_against(f"redis://127.0.0.1:{port}/12", warehouse)
    for answer in (
        client.simulate_get("/api/trace/job/x"),
        client.simulate_post(
            "/api/trace/events",
            json={"profile": "query_tool", "container_ids": ["a"], "domains": ["history"]},
        ),
    ):
        assert answer.status_code == 503
        assert answer.json["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert answer.headers["retry-after"] == "30"
        assert "Traceback" not in answer.text


def test_a_hung_redis_is_503_within_the_timeout_not_a_hang(
    warehouse: Path, silent_port: int
) -> None:
    client = _app_against(f"redis://127.0.0.1:{silent_port}/12", warehouse)
    started = time.monotonic()
    answer = client.simulate_get("/api/trace/job/x")
    assert answer.status_code == 503
    assert time.monotonic() - started < 10
