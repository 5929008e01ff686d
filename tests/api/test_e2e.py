"""End to end over real processes: ``gunicorn -c ops/gunicorn.conf.py`` and ``dramatiq
pipeline.actors`` on loopback (Redis databases 10 and 11, flushed around the test), driven over
HTTP the way the dashboard drives them: seed-resolve -> lineage -> events (202) -> status ->
NDJSON stream and result pages, every row checked against the stage functions run directly."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
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
from tests.api.conftest import API_ENV
from tests.engine.helpers import direct_rows, stable
from tests.support.redis_dbs import REDIS, clean_databases
from tests.support.warehouse import lots

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CONFIG = str(ROOT / "ops" / "gunicorn.conf.py")
STORE_DB, BROKER_DB = 10, 11
DOMAINS = ("history", "materials", "rejects", "holds", "jobs")
SEEDS = 30  # lot names resolved (with their descendants: 38 lots in the test warehouse)
PAGE = 37  # rows per result page: not a divisor of any chunk size, so pages straddle chunks
READY_SECONDS = 60
JOB_SECONDS = 45
STOP_SECONDS = 10

Rows = list[tuple[Any, ...]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
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
        "TRACE_SUBMIT_RATE_LIMIT_REQUESTS": "1000",
    }


@pytest.fixture
def e2e_redis() -> Iterator[redis.Redis]:
    yield from clean_databases(STORE_DB, BROKER_DB)


@dataclass
class Proc:
    """A command started in its own process group, its output in files."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def logs(self, tail: int = 4000) -> str:
        text = self.err.read_text(errors="replace")[-tail:]
        return f"--- {self.name} (pid {self.popen.pid}, exit {self.popen.poll()}) stderr:\n{text}"

    def stop(self) -> None:
        """SIGTERM the group; SIGKILL whatever of it is left after ``STOP_SECONDS``."""
        pgid = self.popen.pid
        deadline = time.monotonic() + STOP_SECONDS
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_SECONDS)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)  # the main process is gone, its children may still be closing
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self.popen.wait(timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start(name: str, argv: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Proc:
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: stop() reaches every process
        )
    return Proc(name, popen, out, err)


@dataclass
class Api:
    """A plain HTTP client of the served API (one connection per request)."""

    port: int
    procs: list[Proc] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(p.logs() for p in self.procs)

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = None if body is None else orjson.dumps(body)
            headers = {} if payload is None else {"Content-Type": "application/json"}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        status, data = self.request(method, path, body)
        assert status == expect, f"{method} {path} answered {status}: {data[:2000]!r}"
        return orjson.loads(data)

    def ndjson(self, path: str, timeout: float = JOB_SECONDS) -> list[dict[str, Any]]:
        status, data = self.request("GET", path, timeout=timeout)
        assert status == 200, f"GET {path} answered {status}: {data[:2000]!r}"
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture
def served(e2e_env: dict[str, str], e2e_redis: None, tmp_path: Path) -> Iterator[Api]:
    """gunicorn and one dramatiq worker, both ready (``/readyz`` 200); stopped at the end."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACE_", "GUNICORN_"))}
    base.pop("PYTHONPATH", None)
    api = Api(free_port())
    try:
        api.procs.append(
            start(
                "worker",
                [PYTHON, "-m", "dramatiq", "pipeline.actors", "--processes", "1", "--threads", "2"],
                {**base, **e2e_env, "PYTHONPATH": str(ROOT)},
                ROOT,
                tmp_path,
            )
        )
        # Started outside the repo, without PYTHONPATH: the config file alone finds the app.
        # Its control socket (gunicorn >= 25) goes to the test's directory, not ~/.gunicorn.
        api.procs.append(
            start(
                "gunicorn",
                [PYTHON, "-m", "gunicorn", "-c", CONFIG, "--bind", f"127.0.0.1:{api.port}"],
                {
                    **base,
                    **e2e_env,
                    "GUNICORN_WORKERS": "2",
                    "GUNICORN_THREADS": "4",
                    "XDG_RUNTIME_DIR": str(tmp_path),
                },
                tmp_path,
                tmp_path,
            )
        )
        wait_ready(api)
        yield api
    finally:
        for proc in reversed(api.procs):  # the API first, then the worker
            proc.stop()
        print(api.logs())  # shown by pytest when the test failed


def wait_ready(api: Api) -> None:
    deadline = time.monotonic() + READY_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        exited = [p for p in api.procs if p.popen.poll() is not None]
        if exited:
            pytest.fail(f"{exited[0].name} exited before the API was ready\n{api.logs()}")
        try:
            status, body = api.request("GET", "/readyz", timeout=5)
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if status == 200:
                return
            last = f"{status} {body.decode(errors='replace')}"
        time.sleep(0.25)
    pytest.fail(f"/readyz not 200 after {READY_SECONDS} s; last: {last}\n{api.logs()}")


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
            source, TraceRequest("query_tool", {}, DOMAINS, tuple(cids)), settings
        )
    assert all(expected[d] for d in ("history", "materials", "jobs")), "too few rows to prove much"
    for domain in DOMAINS:
        assert streamed[domain] == expected[domain], domain
    # and so do the result pages, and the stream followed while the job ran
    result_url = f"/api/trace/job/{job_id}/result"
    for domain in DOMAINS:
        assert paged_rows(api, result_url, domain) == expected[domain], domain
    assert stream_rows(follower.lines, followed=True) == expected
