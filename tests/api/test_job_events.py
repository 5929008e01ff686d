"""``GET /api/trace/job-events``: the job event log (``trace:events``) for monitors.

The newest events of a job that ran, paging with ``after``/``next``, the ``job`` filter,
waiting for a new event (and a wait that ends empty, also one longer than the store client's
Redis timeout), every bad parameter a 400 naming it, the token and the ``job`` rate bucket.
Real Redis (databases 12 and 13); events come from real jobs or ``lifecycle.record``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from http_api.services import Services
from pipeline.engine import lifecycle
from pipeline.request import TraceRequest
from tests.api.conftest import AppFactory
from tests.api.helpers import post_events

URL = "/api/trace/job-events"


def get(client: falcon.testing.TestClient, **params: Any) -> dict[str, Any]:
    """The answer's ``data`` (asserting a 200)."""
    answer = client.simulate_get(URL, params={k: str(v) for k, v in params.items()})
    assert answer.status_code == 200, answer.text
    assert answer.json["success"] is True
    data: dict[str, Any] = answer.json["data"]
    return data


def record(services: Services, event: str, job_id: str, **fields: Any) -> str:
    """Record an event as the engine does; its stream id."""
    lifecycle.record(services.redis, event, job_id, **fields)
    return lifecycle.latest(services.redis, 1)[-1][0]


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def test_the_newest_events_tell_a_finished_jobs_story_in_order(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, _ = make_app(TRACE_EVENT_LOG_MAX=5000)
    job_id = post_events(client, warehouse, 30).json["data"]["job_id"]
    deadline = time.monotonic() + 10  # `finished` is recorded just after the state changes
    while True:
        data = get(client)
        events = data["events"]
        if (events and events[-1]["event"] == "finished") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = [e["event"] for e in events]
    assert names[0] == "accepted" and names[-1] == "finished", names
    assert names.index("stage_started") < names.index("stage_finished")
    assert {e["job"] for e in events} == {job_id}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=id_key) and len(set(ids)) == len(ids)
    assert data["next"] == ids[-1]
    assert data["max_events"] == 5000
    finished = next(e for e in events if e["event"] == "stage_finished")
    assert finished["stage"] == "events" and int(finished["rows"]) > 0
    assert all(isinstance(e["at"], float) and abs(e["at"] - time.time()) < 60 for e in events)
    # count: the newest ones, still oldest first
    assert [e["id"] for e in get(client, count=2)["events"]] == ids[-2:]


def test_paging_with_after_and_next_returns_only_newer_events(make_app: AppFactory) -> None:
    client, services = make_app()
    assert get(client) == {"events": [], "next": "0", "max_events": 100_000}
    recorded = [record(services, "retry", "job-a", reason=f"try {n}") for n in range(5)]
    seen: list[str] = []
    after = "0"
    for want in (2, 2, 1, 0):
        data = get(client, after=after, count=2)
        page = [e["id"] for e in data["events"]]
        assert len(page) == want
        assert data["next"] == (page[-1] if page else after)
        seen += page
        after = data["next"]
    assert seen == recorded
    later = record(services, "finished", "job-a")
    data = get(client, after=after)
    assert [e["id"] for e in data["events"]] == [later] and data["next"] == later
    assert data["events"][0]["event"] == "finished"
    # Every field as recorded (strings), `at` a number.
    first = get(client, after="0", count=1)["events"][0]
    assert first["reason"] == "try 0" and first["job"] == "job-a"
    assert set(first) == {"id", "event", "job", "at", "reason"}


def test_the_job_filter_keeps_one_jobs_events_and_the_cursor_moves_on(
    make_app: AppFactory,
) -> None:
    client, services = make_app()
    ids = [record(services, "accepted", job) for job in ("a", "b", "b", "a", "b", "a")]
    data = get(client, after="0", count=3, job="a")
    assert [e["id"] for e in data["events"]] == [ids[0]]
    assert data["next"] == ids[2]  # the third entry read, though it is b's
    data = get(client, after=data["next"], count=3, job="a")
    assert [e["id"] for e in data["events"]] == [ids[3], ids[5]]
    assert data["next"] == ids[5]
    none = get(client, job="c")
    assert none["events"] == [] and none["next"] == ids[5]
    newest_b = get(client, count=3, job="b")  # without after: among the newest 3
    assert [e["id"] for e in newest_b["events"]] == [ids[4]]


def test_wait_returns_an_event_recorded_meanwhile(make_app: AppFactory) -> None:
    client, services = make_app()
    after = record(services, "accepted", "job-a")
    recorder = threading.Timer(0.5, lambda: record(services, "finished", "job-a"))
    started = time.monotonic()
    recorder.start()
    try:
        data = get(client, after=after, wait=5)
    finally:
        recorder.join()
    elapsed = time.monotonic() - started
    assert [e["event"] for e in data["events"]] == ["finished"]
    assert data["next"] == data["events"][0]["id"] != after
    assert 0.4 < elapsed < 4


def test_a_wait_with_nothing_new_ends_empty_after_the_wait(make_app: AppFactory) -> None:
    client, services = make_app()
    after = record(services, "accepted", "job-a")
    started = time.monotonic()
    data = get(client, after=after, wait=1)
    elapsed = time.monotonic() - started
    assert data["events"] == [] and data["next"] == after
    assert 0.9 < elapsed < 3
    # wait=0 does not block (XREAD BLOCK 0 would wait forever)
    started = time.monotonic()
    assert get(client, after=after, wait=0)["events"] == []
    assert time.monotonic() - started < 1


def test_a_wait_longer_than_the_redis_timeout_is_not_a_503(make_app: AppFactory) -> None:
    """The store's client gives up on a command after TRACE_REDIS_TIMEOUT_SECONDS; a wait
    longer than that is still a wait, not "Redis is away"."""
    client, services = make_app(TRACE_REDIS_TIMEOUT_SECONDS=1)
    after = record(services, "accepted", "job-a")
    started = time.monotonic()
    data = get(client, after=after, wait=2)
    assert data["events"] == [] and 1.9 < time.monotonic() - started < 4


def test_a_wait_never_outlasts_the_sync_wait(make_app: AppFactory) -> None:
    client, services = make_app(TRACE_SYNC_WAIT_SECONDS=1)
    after = record(services, "accepted", "job-a")
    started = time.monotonic()
    assert get(client, after=after, wait=25)["events"] == []
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"count": "many"}, "count"),
        ({"count": "-1"}, "count"),
        ({"count": "0"}, "count"),
        ({"count": "1001"}, "count"),
        ({"after": "yesterday"}, "after"),
        ({"after": "1-2-3"}, "after"),
        ({"after": "-5"}, "after"),
        ({"after": "٣-0"}, "after"),  # a digit, but not one Redis reads
        ({"after": f"{2**64}-0"}, "after"),  # past what Redis accepts
        ({"after": "0", "wait": "soon"}, "wait"),
        ({"after": "0", "wait": "26"}, "wait"),
        ({"after": "0", "wait": "-1"}, "wait"),
        ({"wait": "1"}, "wait"),  # wait needs after
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    client: falcon.testing.TestClient, params: dict[str, str], name: str
) -> None:
    answer = client.simulate_get(URL, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json["success"] is False
    assert answer.json["error"]["code"] == "INVALID_PARAMS"
    assert answer.json["error"]["message"].startswith((f"{name} ", f"{name}:")), answer.json


def test_the_largest_stream_id_is_accepted(client: falcon.testing.TestClient) -> None:
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert get(client, after=top) == {"events": [], "next": top, "max_events": 100_000}


def test_the_token_is_needed(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_API_TOKEN="s3cret")
    refused = client.simulate_get(URL)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "UNAUTHORIZED"
    allowed = client.simulate_get(URL, headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200, allowed.text


def test_it_shares_the_job_rate_limit_with_status_reads(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=2)
    assert client.simulate_get(URL).status_code == 200
    assert client.simulate_get(f"/api/trace/job/{'0' * 32}").status_code == 404
    limited = client.simulate_get(URL)
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert limited.json["error"]["code"] == "TOO_MANY_REQUESTS"


def test_a_request_waiting_for_a_job_is_answered_as_the_job_ends(make_app: AppFactory) -> None:
    """A synchronous wait (a trace's ``wait``, the MSD detail's re-analysis) looks at the job
    only now and then; the job's end, written to the job event log, wakes it at once."""
    _, services = make_app()
    registry = services.runtime.registry
    job, _ = registry.submit(TraceRequest(profile="query_tool", container_ids=["CID-WAIT"]))
    assert registry.start_stage(job.id, "lineage")

    def end_the_job() -> None:
        time.sleep(0.3)
        registry.finish(job.id)

    ender = threading.Thread(target=end_the_job)
    ender.start()
    began = time.monotonic()
    # When the request looks at the job every 10 s only
    ended = services.wait_for(job, 30, look_every=10)
    waited = time.monotonic() - began
    ender.join()
    # Then it is answered as the job finishes, long before its next look
    assert ended.state == "finished"
    assert 0.25 < waited < 5, waited
