"""The monitor page in a real browser against a real stack: gunicorn and ``ops/worker`` (with the
fault-injecting source, ``tests.support.faults``) on a Redis server of the module's own (every
database of the shared one belongs to another test module), a token set.

An operator opens ``/monitor`` (it asks for the token once), watches a job advance through its
stages, retries a failed job by clicking, cancels a running one and purges it; screenshots of the
page (a job running, a job failed) are kept in ``var/test-artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from selenium import webdriver

from pipeline.tools.stack import LocalStack
from tests.browser.conftest import ARTIFACTS
from tests.browser.page import MonitorPage
from tests.chaos.served import stack_env
from tests.support.faults import FAULTS_KEY
from tests.support.redis_server import RedisServer, own_redis
from tests.support.served_stack import running_stack
from tests.support.warehouse import lots

TOKEN = "monitor-browser-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Each query of the watched job waits this long: every stage lasts long enough to be seen.
SLOW_MS = 2000
STAGES = ["seed-resolve", "lineage", "events"]


@pytest.fixture(scope="module")
def monitor_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with own_redis(tmp_path_factory.mktemp("monitor-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    warehouse: Path, monitor_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    env = stack_env(
        warehouse,
        monitor_redis.url,
        TRACE_API_TOKEN=TOKEN,
        WORKER_MODULES="tests.support.faulty_worker",
        TRACE_RATE_LIMIT_REQUESTS="100000",  # the page and the test share an address
        TRACE_RATE_LIMIT_PER_JOB_REQUESTS="100000",
    )
    log_dir = tmp_path_factory.mktemp("monitor")
    with running_stack(env, log_dir, processes=1, threads=4, api_workers=1) as stack:
        yield stack


def submit(stack: LocalStack, warehouse: Path, n: int, skip: int) -> str:
    """A whole query-tool trace of ``n`` lots (seed-resolve, lineage, events: history)."""
    body = {
        "profile": "query_tool",
        "params": {
            "resolve_type": "lot_id",
            "values": lots(warehouse, "CONTAINERNAME", n, skip=skip),
        },
        "domains": ["history", "materials"],
    }
    status, answer = stack.api.request("POST", "/api/trace/jobs", body, headers=AUTH)
    assert status == 202, answer
    return str(orjson.loads(answer)["data"]["job_id"])


def api_state(stack: LocalStack, job_id: str) -> Any:
    status, answer = stack.api.request("GET", f"/api/trace/job/{job_id}", headers=AUTH)
    return orjson.loads(answer)["data"]["state"] if status == 200 else status


def test_an_operator_watches_retries_cancels_and_purges_jobs_in_the_page(
    stack: LocalStack, monitor_redis: RedisServer, warehouse: Path, browser: webdriver.Chrome
) -> None:
    faults: redis.Redis = monitor_redis.client(0)
    page = MonitorPage(browser, f"http://127.0.0.1:{stack.port}", explain=stack.logs)
    page.open(TOKEN)

    # ---- a running job advances through its stages, live -------------------------------------
    for query in ("seeds/containers_in", "lineage/containers", "events/history"):
        faults.hset(FAULTS_KEY, f"delay_ms:{query}", SLOW_MS)
    watched = submit(stack, warehouse, 20, skip=0)
    page.wait(lambda: page.job(watched), 10, "the new job in the list")
    page.select(watched)
    seen: list[str] = []
    deadline = time.monotonic() + 40
    while (job := page.job(watched)) is None or job["state"] != "finished":
        if job and job["stage"] and (not seen or seen[-1] != job["stage"]):
            seen.append(job["stage"])
            if job["stage"] == "events":  # mid-run: bars growing, batches under way
                page.screenshot(ARTIFACTS / "monitor-running.png")
        assert time.monotonic() < deadline, f"{watched} not finished: {job}, seen {seen}"
        time.sleep(0.1)
    faults.delete(FAULTS_KEY)
    assert seen == STAGES, f"stages seen in the list: {seen}"
    # its Gantt strip shows each stage finished; its timeline each stage with rows
    page.wait(lambda: {b["stage"] for b in page.gantt_bars(watched)} >= set(STAGES), 5, "bars")
    assert {b["state"] for b in page.gantt_bars(watched) if b["stage"] in STAGES} == {"finished"}
    rows = page.wait(
        lambda: (r := page.stage_rows()) and all(x["state"] == "finished" for x in r) and r,
        10,
        "the stage timeline finished",
    )
    assert [r["stage"] for r in rows] == STAGES
    assert page.count('[data-testid="rate-bar"]') == 2  # rows/s of history and materials

    # ---- a failed job is retried from the page ---------------------------------------------
    faults.hset(FAULTS_KEY, "fail:lineage/containers", "permanent")
    failing = submit(stack, warehouse, 10, skip=100)
    page.wait(lambda: page.state_of(failing) == "failed", 30, "the job failed")
    page.select(failing)
    page.wait(lambda: "SOURCE_QUERY_FAILED" in page.text("job-error"), 10, "the error's code")
    assert "lineage" in page.text("job-error")
    page.wait(lambda: page.count('[data-testid="stage-row"][data-state="failed"]'), 5, "failed row")
    page.screenshot(ARTIFACTS / "monitor-failed.png")
    faults.delete(FAULTS_KEY)
    outcome, shown = page.act("retry")
    assert outcome == "ok", shown
    page.wait(lambda: page.state_of(failing) == "finished", 30, "the retried job finished")
    assert api_state(stack, failing) == "finished"

    # ---- a running job is cancelled, then purged ----------------------------------------------
    faults.hset(FAULTS_KEY, "delay_ms:seeds/containers_in", 4000)
    doomed = submit(stack, warehouse, 10, skip=200)
    page.wait(lambda: page.job(doomed), 10, "the job to cancel in the list")
    page.select(doomed)
    outcome, shown = page.act("cancel")
    assert outcome == "ok", shown
    page.wait(lambda: page.state_of(doomed) == "cancelled", 10, "the job cancelled")
    assert api_state(stack, doomed) == "cancelled"
    faults.delete(FAULTS_KEY)
    outcome, shown = page.act("purge")
    assert outcome == "ok" and "keys released" in shown, shown
    page.wait(lambda: page.state_of(doomed) is None, 10, "the purged job gone from the list")
    assert api_state(stack, doomed) in (404, 410)
    assert page.uncaught_errors() == []
