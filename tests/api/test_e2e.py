"""End to end over real processes: ``gunicorn -c ops/gunicorn.conf.py`` and ``ops/worker``
(``dramatiq pipeline.actors``) on loopback, started by ``pipeline.tools.stack`` as the demo starts
them (Redis databases 10 and 11, flushed around the module), driven over HTTP the way the
dashboard drives them: seed-resolve -> lineage -> events (202) -> status -> NDJSON stream and
result pages, every row checked against the stage functions run directly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from pipeline.config import Settings
from pipeline.request import TraceRequest
from pipeline.sources.sqlite import SqliteSource
from pipeline.tools.api_client import ApiClient
from pipeline.tools.stack import LocalStack, StackError
from tests.api.conftest import API_ENV
from tests.engine.helpers import direct_rows, stable
from tests.support.redis_dbs import REDIS, clean_databases
from tests.support.warehouse import lots

STORE_DB, BROKER_DB = 10, 11
DOMAINS = ("history", "materials", "rejects", "holds", "jobs")
SEEDS = 30  # lot names resolved (with their descendants: 38 lots in the test warehouse)
PAGE = 37  # rows per result page: not a divisor of any chunk size, so pages straddle chunks
READY_SECONDS = 60
JOB_SECONDS = 45
STOP_SECONDS = 10

Rows = list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def e2e_env(warehouse: Path) -> dict[str, str]:
    """The API tests' settings on databases 10/11; small IN lists so each domain has several
    batches; 202 for any events call over 10 lots; rate limits out of the test's way."""
    return {
        **API_ENV,
        "TRACE_REDIS_URL": f"{REDIS}/{STORE_DB}",
        "TRACE_BROKER_URL": f"{REDIS}/{BROKER_DB}",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_IN_LIST_SIZE": "20",
        "TRACE_JOBS_PROBE_MAX": "20",
        "TRACE_EVENTS_GROUP_BATCHES": "1",
        "TRACE_ASYNC_CID_THRESHOLD": "10",
        "TRACE_RATE_LIMIT_REQUESTS": "100000",
        "TRACE_RATE_LIMIT_PER_JOB_REQUESTS": "100000",
        "TRACE_SUBMIT_RATE_LIMIT_REQUESTS": "1000",
    }


@pytest.fixture(scope="module")
def e2e_redis() -> Iterator[redis.Redis]:
    yield from clean_databases(STORE_DB, BROKER_DB)


@dataclass(frozen=True)
class Api(ApiClient):
    """The served API, with the stack's logs for failure messages."""

    stack: LocalStack = field(compare=False)

    def logs(self) -> str:
        return self.stack.logs()

    def ndjson(self, path: str, timeout: float = JOB_SECONDS) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines(path, timeout=timeout) if line.strip()]


@pytest.fixture(scope="module")
def served(
    e2e_env: dict[str, str], e2e_redis: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """``ops/worker`` (one process, two threads) and gunicorn (two workers, started outside
    the repo without PYTHONPATH: the config file alone finds the app), both ready (``/readyz``
    200); stopped after the module's tests (one stack for them all: a start costs seconds)."""
    stack = LocalStack(e2e_env, tmp_path_factory.mktemp("e2e"), processes=1, threads=2)
    try:
        try:
            stack.start(READY_SECONDS)
        except StackError as error:
            pytest.fail(str(error))
        yield Api("127.0.0.1", stack.port, stack)
    finally:
        stack.stop()
        print(stack.logs())  # shown by pytest when the test failed


# ---- the dashboard's flow ---------------------------------------------------------------------
def resolve_and_trace(api: Api, warehouse: Path) -> list[str]:
    """seed-resolve then lineage, as the dashboard calls them: the seeds and every lot below
    them by ``children_map`` (seeds first, then descendants in walk order)."""
    names = lots(warehouse, "CONTAINERNAME", SEEDS)
    seeds = api.json(
        "POST",
        "/api/trace/seed-resolve",
        {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": names}},
    )["data"]
    assert seeds["seed_count"] == SEEDS and seeds["not_found"] == []
    seed_cids = seeds["seed_container_ids"]
    lineage = api.json(
        "POST", "/api/trace/lineage", {"profile": "query_tool", "container_ids": seed_cids}
    )["data"]
    children = lineage["children_map"]
    cids = list(seed_cids)
    seen = set(cids)
    for cid in cids:  # grows while walked: breadth first
        for child in children.get(cid, ()):
            if child not in seen:
                seen.add(child)
                cids.append(child)
    assert len(cids) > len(seed_cids), "the seeds have no descendants: a weak test"
    assert seen <= set(lineage["nodes"])
    return cids


def wait_finished(api: Api, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        data: dict[str, Any] = api.json("GET", status_url)["data"]
        if data["status"] == "finished":
            return data
        assert data["status"] in ("queued", "started"), f"job ended {data}\n{api.logs()}"
        assert time.monotonic() < deadline, f"job not finished in {JOB_SECONDS} s: {data}"
        time.sleep(0.2)


def stream_rows(lines: list[dict[str, Any]], *, followed: bool) -> dict[str, Rows]:
    """Each domain's rows of an NDJSON stream, after checking the contract's line order: meta;
    per domain domain_start, records..., domain_end; quality_meta; complete."""
    types = [line["type"] for line in lines]
    assert lines[0]["type"] == "meta" and lines[0]["domains"] == list(DOMAINS), types
    assert lines[0]["follow"] is followed
    at = 1
    rows: dict[str, Rows] = {}
    for domain in DOMAINS:
        start = lines[at]
        assert (start["type"], start["domain"]) == ("domain_start", domain), types
        at += 1
        got: Rows = []
        batch = 0
        while lines[at]["type"] == "records":
            records = lines[at]
            assert (records["domain"], records["batch"]) == (domain, batch)
            assert records["count"] == len(records["data"]) > 0
            got += [stable(list(row), tuple(row.values())) for row in records["data"]]
            batch += 1
            at += 1
        end = lines[at]
        assert (end["type"], end["domain"], end["count"]) == ("domain_end", domain, len(got))
        # A followed stream may start before the domain's total is known.
        assert start["total"] == len(got) or (followed and start["total"] is None)
        rows[domain] = got
        at += 1
    assert types[at:] == ["quality_meta", "complete"], types
    quality = lines[at]["domain_quality_meta"]
    assert {d: quality[d]["observed_rows"] for d in DOMAINS} == {d: len(rows[d]) for d in DOMAINS}
    assert lines[-1]["total_records"] == sum(len(r) for r in rows.values())
    return rows


def paged_rows(api: Api, result_url: str, domain: str) -> Rows:
    """Every row of ``domain`` from pages of ``PAGE`` rows."""
    rows: Rows = []
    offset = 0
    while True:
        data = api.json("GET", f"{result_url}?domain={domain}&offset={offset}&limit={PAGE}")
        results = data["data"]["results"]
        assert list(results) == [domain]
        page = results[domain]
        assert page["offset"] == offset and page["count"] == len(page["data"])
        rows += [stable(list(row), tuple(row.values())) for row in page["data"]]
        offset += page["count"]
        if offset >= page["total"]:
            assert offset == page["total"]
            return rows
        assert page["count"] == PAGE, f"short page before the end: {page['count']} at {offset}"


class Follower(threading.Thread):
    """Reads a ``?follow=1`` stream to its end in the background."""

    def __init__(self, api: Api, path: str) -> None:
        super().__init__(name="follow-stream", daemon=True)
        self.api, self.path = api, path
        self.lines: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.lines = self.api.ndjson(self.path)
        except BaseException as error:  # reported by the test
            self.error = error


def test_the_dashboards_flow_over_gunicorn_and_a_dramatiq_worker(
    served: Api, warehouse: Path, e2e_env: dict[str, str]
) -> None:
    api = served
    # Given the lots the dashboard found: seeds resolved from lot names, plus their descendants
    cids = resolve_and_trace(api, warehouse)
    assert len(cids) > int(e2e_env["TRACE_ASYNC_CID_THRESHOLD"])
    # When it asks for their events: over the threshold, so 202 with the job's urls
    accepted = api.json(
        "POST",
        "/api/trace/events",
        {"profile": "query_tool", "container_ids": cids, "domains": list(DOMAINS)},
        expect=202,
    )["data"]
    assert accepted["async"] is True and accepted["status"] in ("queued", "started", "finished")
    job_id = accepted["job_id"]
    assert accepted["status_url"] == f"/api/trace/job/{job_id}"
    assert accepted["stream_url"] == f"/api/trace/job/{job_id}/stream"
    # ... follows the stream at once, while the job runs ...
    follower = Follower(api, accepted["stream_url"] + "?follow=1")
    follower.start()
    # ... and polls the status until the job is finished
    status = wait_finished(api, accepted["status_url"])
    assert status["cid_count"] == len(cids) and status["domains"] == list(DOMAINS)
    follower.join(timeout=STOP_SECONDS)
    assert not follower.is_alive(), "the followed stream did not end after the job finished"
    assert follower.error is None, f"followed stream: {follower.error!r}\n{api.logs()}"

    # Then the stream of the finished job keeps the contract's order and counts
    streamed = stream_rows(api.ndjson(accepted["stream_url"]), followed=False)
    # and carries exactly the rows the stage functions return for these lots
    settings = Settings.from_env(e2e_env)
    with SqliteSource(warehouse) as source:
        expected = direct_rows(
            source,
            TraceRequest(
                profile="query_tool", params={}, domains=DOMAINS, container_ids=tuple(cids)
            ),
            settings,
        )
    assert all(expected[d] for d in ("history", "materials", "jobs")), "too few rows to prove much"
    for domain in DOMAINS:
        assert streamed[domain] == expected[domain], domain
    # and so do the result pages, and the stream followed while the job ran
    result_url = f"/api/trace/job/{job_id}/result"
    for domain in DOMAINS:
        assert paged_rows(api, result_url, domain) == expected[domain], domain
    assert stream_rows(follower.lines, followed=True) == expected


# ---- what gunicorn answers itself ---------------------------------------------------------------
def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``request`` as it is; the answer's status, headers and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, orjson.loads(body)


#: Requests gunicorn refuses before the app sees them, and what it must answer.
REFUSED = [
    (b"GET /api/trace/job/" + b"x" * 10_240 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "URI_TOO_LONG"),
    (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"y" * 10_240 + b"\r\n\r\n",
        431,
        "REQUEST_TOO_LARGE",
    ),
    (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "BAD_REQUEST"),
]


def test_what_gunicorn_refuses_itself_is_the_json_envelope_never_html(served: Api) -> None:
    # Given the real server, When requests it cannot take come (a 10 KB path, a 10 KB header,
    # garbage), Then each answer is the contract's JSON envelope with a status of its own
    for request_bytes, status, code in REFUSED:
        answer_status, headers, body = raw_answer(served.port, request_bytes)
        assert (answer_status, headers["content-type"]) == (status, "application/json"), code
        assert body["success"] is False and body["error"]["code"] == code
        assert body["error"]["message"]
    # And the server still serves
    assert served.json("GET", "/healthz")["data"] == {"status": "ok"}
