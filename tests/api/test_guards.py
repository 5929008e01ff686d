"""Protection: per-client rate limits shared through Redis (on gunicorn too: 10 dashboards
polling from one address get through, a flood does not), the bearer token, the body size limit,
and 503 (never a hang, never a 500) when Redis is away."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import falcon.testing
import pytest

from http_api.app import create_app
from http_api.services import Services
from pipeline.config import (
    DEFAULT_RATE_LIMIT_PER_JOB_REQUESTS,
    DEFAULT_RATE_LIMIT_REQUESTS,
    DEFAULT_RATE_LIMIT_WINDOW_SECONDS,
    Settings,
)
from pipeline.engine import metrics
from pipeline.engine.runtime import Runtime
from pipeline.tools.stack import LocalStack, StackError
from tests.api.conftest import API_ENV, AppFactory, ThreadDispatcher
from tests.chaos.served import Answer, Client
from tests.support.redis_dbs import REDIS, clean_databases
from tests.support.warehouse import lots


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


# ---- the limits on the real server: the dashboard's polling gets through, a flood does not ----
#: The window of the served tests: the defaults' 60 s shrunk 15 times, every interval with it,
#: so the ratio of polls to limits is the defaults' (the limits themselves are the defaults).
SERVED_WINDOW = 4
SHRINK = DEFAULT_RATE_LIMIT_WINDOW_SECONDS / SERVED_WINDOW
POLL_SECONDS = 3 / SHRINK  # the dashboard's 3 s
TRACES = 10  # the issue's: dashboards tracing at once from one address
POLL_WINDOWS = 3  # each poller polls at least this many windows
#: The old system's limit, one bucket of 60 per 60 s for every job: the pollers' load must be
#: more than it, or the test would prove nothing.
OLD_SHARED_LIMIT = 60
SERVED_DBS = (7, 8)


@pytest.fixture(scope="module")
def served(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """gunicorn (two workers) and ``ops/worker`` with the default limits and the shrunk window."""
    store, broker = SERVED_DBS
    env = {k: v for k, v in API_ENV.items() if "RATE_LIMIT" not in k}
    env.update(
        TRACE_REDIS_URL=f"{REDIS}/{store}",
        TRACE_BROKER_URL=f"{REDIS}/{broker}",
        TRACE_SOURCE_URL=f"sqlite:///{warehouse}",
        TRACE_RATE_LIMIT_WINDOW_SECONDS=str(SERVED_WINDOW),
    )
    for _ in clean_databases(store, broker):
        stack = LocalStack(env, tmp_path_factory.mktemp("guards"), processes=1, threads=2)
        try:
            try:
                stack.start(60)
            except StackError as error:
                pytest.fail(str(error))
            yield stack
        finally:
            stack.stop()


def submit(client: Client, cids: list[str]) -> str:
    body = {"profile": "query_tool", "container_ids": cids, "domains": ["history", "materials"]}
    answer = client.json("POST", "/api/trace/events", body, headers={"Prefer": "respond-async"})
    assert answer.status == 202, answer.body[:500]
    return str(answer.json()["data"]["job_id"])


def poll_like_the_dashboard(client: Client, job_id: str, seen: list[tuple[float, int]]) -> str:
    """The status at once, then every ``POLL_SECONDS`` until the job ended (and at least
    ``POLL_WINDOWS`` windows passed), then its result, as the dashboard does; it stops at the
    first answer that is not 200 (the dashboard never retries). The job's last status."""
    until = time.monotonic() + POLL_WINDOWS * SERVED_WINDOW
    deadline = time.monotonic() + 60
    state = "unknown"
    while time.monotonic() < deadline:
        answer = client.send("GET", f"/api/trace/job/{job_id}")
        seen.append((time.time(), answer.status))
        if answer.status != 200:
            return f"{answer.status}: {answer.body[:300]!r}"
        state = answer.json()["data"]["status"]
        if state not in ("queued", "started") and time.monotonic() >= until:
            result = client.send("GET", f"/api/trace/job/{job_id}/result")
            seen.append((time.time(), result.status))
            return state if result.status == 200 else f"result {result.status}"
        time.sleep(POLL_SECONDS)
    return f"still {state} after 60 s"


def test_ten_dashboards_polling_from_one_address_get_no_429(
    served: LocalStack, warehouse: Path
) -> None:
    # Given 10 traces submitted from one address
    client = Client(served.port, "127.0.0.5")
    job_ids = [
        submit(client, lots(warehouse, "CONTAINERID", 60, skip=60 * n)) for n in range(TRACES)
    ]
    # When each is polled as the dashboard polls it, all at once
    seen: list[tuple[float, int]] = []
    with ThreadPoolExecutor(TRACES) as pool:
        states = list(pool.map(lambda j: poll_like_the_dashboard(client, j, seen), job_ids))
    ended = dict(zip(job_ids, states, strict=True))
    # Then every poll and result was answered 200, and every trace finished
    assert Counter(status for _, status in seen) == {200: len(seen)}, ended
    assert ended == dict.fromkeys(job_ids, "finished")
    # And the load was what the dashboards send, more than the old shared limit allowed
    per_window = Counter(int(at // SERVED_WINDOW) for at, _ in seen)
    assert max(per_window.values()) > OLD_SHARED_LIMIT, per_window


def flood(client: Client, paths: Iterator[str], seconds: float) -> tuple[int, Answer | None]:
    """GETs of ``paths`` from 8 threads until one is refused (429) or ``seconds`` passed: the
    requests sent and the first refusal."""
    lock = threading.Lock()
    refused: list[Answer] = []
    sent = 0
    deadline = time.monotonic() + seconds

    def hammer() -> None:
        nonlocal sent
        while not refused and time.monotonic() < deadline:
            with lock:
                path = next(paths)
                sent += 1
            answer = client.send("GET", path)
            if answer.status == 429:
                with lock:
                    refused.append(answer)
            else:
                assert answer.status in (200, 404), (answer.status, answer.body[:300])

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(hammer) for _ in range(8)]:
            done.result()
    return sent, (refused[0] if refused else None)


def test_a_flood_from_one_address_still_gets_429(served: LocalStack, warehouse: Path) -> None:
    job_id = submit(Client(served.port, "127.0.0.6"), lots(warehouse, "CONTAINERID", 20))
    # When one address hammers one job
    sent, refused = flood(
        Client(served.port, "127.0.0.7"),
        itertools.repeat(f"/api/trace/job/{job_id}"),
        3 * SERVED_WINDOW,
    )
    # Then it is refused at the limit per job, with the envelope and Retry-After
    assert refused is not None, f"{sent} requests to one job, none refused"
    assert refused.json()["error"]["code"] == "TOO_MANY_REQUESTS"
    assert refused.json()["error"]["message"].endswith(
        f"at most {DEFAULT_RATE_LIMIT_PER_JOB_REQUESTS} per {SERVED_WINDOW} s to one job"
    )
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= SERVED_WINDOW and refused.json()["meta"] == {"retry_after_seconds": wait}
    # When another address floods many jobs, each once
    ids = (f"{n:032x}" for n in itertools.count())
    sent, refused = flood(
        Client(served.port, "127.0.0.8"), (f"/api/trace/job/{i}" for i in ids), 3 * SERVED_WINDOW
    )
    # Then it is refused at the client's limit
    assert refused is not None, f"{sent} requests to as many jobs, none refused"
    assert sent > DEFAULT_RATE_LIMIT_REQUESTS
    assert refused.json()["error"]["message"].endswith(
        f"at most {DEFAULT_RATE_LIMIT_REQUESTS} per {SERVED_WINDOW} s"
    )
    assert "retry-after" in refused.headers
    # And a third address following the job is served meanwhile
    assert Client(served.port, "127.0.0.9").send("GET", f"/api/trace/job/{job_id}").status == 200
