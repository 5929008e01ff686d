"""A job whose keys vanished before its TTL could end (a Redis restart without persistence,
an operator's purge) is answered as lost, 410 ``JOB_LOST``, so the client submits it again
instead of waiting; a job that may have expired stays 404. The loss is what a Redis restart
without persistence leaves: the store's database empty (``FLUSHDB``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pipeline.engine import keys
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_names, ndjson, post_events
from tests.api.test_trace_endpoints import seed_resolve


def _assert_lost(answer: Any, job_id: str) -> None:
    assert answer.status_code == 410, answer.text
    error = answer.json["error"]
    assert error["code"] == "JOB_LOST" and "submit the request again" in error["message"]
    assert answer.json["meta"] == {"job_id": job_id}


def test_every_job_endpoint_answers_410_job_lost_for_a_job_whose_keys_vanished(
    make_app: AppFactory, warehouse: Path
) -> None:
    # Given a finished job and a queued one (its worker stopped)
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    done = seed_resolve(client, lot_names(warehouse, 2)).json["data"]["job_id"]
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]
    queued = post_events(client, warehouse, 20).json["data"]["job_id"]
    # When Redis loses everything (restarted without persistence)
    services.redis.flushdb()
    # Then status, result, stream and cancel say lost, not "not found or expired"
    for job_id in (done, queued):
        for path in ("", "/result", "/stream", "/stream?follow=1"):
            _assert_lost(client.simulate_get(f"/api/trace/job/{job_id}{path}"), job_id)
        _assert_lost(client.simulate_delete(f"/api/trace/job/{job_id}"), job_id)


def test_a_job_that_may_have_expired_is_still_404(make_app: AppFactory, warehouse: Path) -> None:
    # Given jobs whose keys live 2 s
    client, services = make_app(TRACE_JOB_TTL_SECONDS=2)
    job_id = seed_resolve(client, lot_names(warehouse, 2)).json["data"]["job_id"]
    # When its keys expire (its id is then older than the TTL)
    deadline = time.monotonic() + 30
    while services.redis.exists(keys.job(job_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.1)  # the id's second is whole: past the TTL by its own count too
    # Then it is not found, or for its result expired (the index still names it): never lost
    status = client.simulate_get(f"/api/trace/job/{job_id}")
    assert status.status_code == 404 and status.json["error"]["code"] == "JOB_NOT_FOUND"
    result = client.simulate_get(f"/api/trace/job/{job_id}/result")
    assert result.status_code == 404 and result.json["error"]["code"] == "JOB_RESULT_EXPIRED"


def test_a_followed_stream_of_a_job_that_vanishes_ends_with_a_job_lost_line(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    # Given a queued job (no worker runs it) followed by a stream
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]
    job_id = post_events(client, warehouse, 20).json["data"]["job_id"]
    answers: list[Any] = []
    reader = threading.Thread(
        target=lambda: answers.append(
            client.simulate_get(f"/api/trace/job/{job_id}/stream", params={"follow": "1"})
        ),
        daemon=True,
    )
    reader.start()
    time.sleep(1)  # the stream waits for the first batch
    # When Redis loses the job's keys (restarted without persistence)
    services.redis.flushdb()
    # Then the stream ends, with an error line naming JOB_LOST, never with complete
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream never ended"
    lines = ndjson(answers[0].text)
    assert lines[0]["type"] == "meta"
    assert lines[-1]["type"] == "error" and lines[-1]["code"] == "JOB_LOST", lines[-1]
    assert all(line["type"] != "complete" for line in lines)
