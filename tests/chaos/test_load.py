"""Load (issue 17): concurrent traces of mixed sizes, dashboard pollers (every 3 s) and NDJSON
streamers, each client from its own loopback address (its own rate-limit counters, production
limits), against the real stack (gunicorn, a 2 x 2 worker) on a private Redis; then the hostile
requests against the same gunicorn. All jobs finish, every stream completes and equals the
pages, no answer is a 5xx, and every API process stays <= ``API_RSS_LIMIT_MB`` (RSS of each
API and worker process before/after in the trial). CI: 4 traces, 10 pollers, 3 streamers;
``ops/chaos``: 20, 50, 10, within 5 minutes."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipeline.demo.generator import generate
from tests.chaos.conftest import RedisServer
from tests.chaos.hostile import hostile_requests
from tests.chaos.reliability import Trial, scale
from tests.chaos.served import (
    Client,
    api_processes,
    client_address,
    raw,
    rss_mb,
    stack_env,
    started,
    worker_processes,
)
from tests.conftest import WAREHOUSE_LOTS, WAREHOUSE_SEED
from tests.support.warehouse import lots

TRACES, POLLERS, STREAMERS = scale(4, 20), scale(10, 50), scale(3, 10)
BOUND_SECONDS = scale(90, 300)
POLL_SECONDS = 3  # the dashboard's
SIZES = (20, 3000, 150, 1000, 400)  # lots per trace, in turn
DOMAINS = ["history", "materials", "rejects", "holds", "jobs"]
#: The issue's ceiling for each API process after the load and the hostile input (MB).
API_RSS_LIMIT_MB = 128
MAX_BODY_BYTES = 64 << 20  # the default
#: The hostile list is sent this many times (4 bodies of 1M ids took a worker from 51 to 158 MB).
HOSTILE_ROUNDS = 2


class Load:
    """What the clients saw: statuses, failures, finished jobs, compared rows."""

    def __init__(self, port: int, deadline: float) -> None:
        self.port, self.deadline = port, deadline
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.requests = 0
        self.rows_compared = 0

    def client(self, n: int) -> Client:
        return Client(self.port, client_address(n))

    def seen(self, status: int, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            if status >= 500:
                self.failures.append(f"{what}: {status}")

    def failed(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)

    def run(self, name: str, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except Exception as error:  # reported by the test
                self.failed(f"{name}: {type(error).__name__}: {error}")

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    # ---- the clients ------------------------------------------------------------------------
    def submit(self, n: int, cids: list[str], job_ids: list[str]) -> None:
        body = {"profile": "query_tool", "container_ids": cids, "domains": DOMAINS, "fresh": True}
        answer = self.client(n).json(
            "POST", "/api/trace/events", body, headers={"Prefer": "respond-async"}
        )
        self.seen(answer.status, f"submit {len(cids)} lots")
        assert answer.status == 202, answer.body[:500]
        job_ids[n] = answer.json()["data"]["job_id"]

    def poll(self, n: int, job_id: str, finished: dict[str, str]) -> None:
        """As the dashboard: the status every 3 s until the job ends."""
        client = self.client(n)
        while time.monotonic() < self.deadline:
            answer = client.send("GET", f"/api/trace/job/{job_id}")
            self.seen(answer.status, "status")
            if answer.status == 200:
                state = answer.json()["data"]["status"]
                if state not in ("queued", "started"):
                    finished[job_id] = state
                    return
            time.sleep(POLL_SECONDS)
        self.failed(f"poller {n}: job {job_id} not ended in time")

    def stream(self, n: int, job_id: str) -> None:
        """Follow the job's stream to its end, then read every domain's pages: equal rows."""
        client = self.client(n)
        lines = [
            orjson.loads(line)
            for line in client.lines(f"/api/trace/job/{job_id}/stream?follow=1", timeout=60)
        ]
        self.seen(200, "stream")
        assert lines[-1]["type"] == "complete", lines[-1]
        streamed: dict[str, list[Any]] = {d: [] for d in DOMAINS}
        for line in lines:
            if line["type"] == "records":
                streamed[line["domain"]] += line["data"]
        assert lines[-1]["total_records"] == sum(len(rows) for rows in streamed.values())
        for domain in DOMAINS:
            answer = client.send("GET", f"/api/trace/job/{job_id}/result?domain={domain}&limit=0")
            self.seen(answer.status, "result page")
            assert answer.status == 200, answer.body[:500]
            page = answer.json()["data"]["results"][domain]["data"]
            assert page == streamed[domain], f"{domain}: stream != pages"
            with self.lock:
                self.rows_compared += len(page)


def test_load_finishes_everything_without_5xx_and_keeps_api_memory_flat(
    trial: Trial, private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path
) -> None:
    # Given the real stack, warmed up by one small trace, its processes' RSS noted
    stack = started(
        stack_env(warehouse, private_redis().url),
        tmp_path / "logs",
        processes=2,
        threads=2,
        api_workers=2,
    )
    try:
        began = time.monotonic()
        load = Load(stack.port, began + BOUND_SECONDS)
        api_names = list(api_processes(stack))
        everyone = {**api_processes(stack), **worker_processes(stack)}
        warm: list[str] = [""]
        load.submit(0, lots(warehouse, "CONTAINERID", 20), warm)
        load.poll(0, warm[0], {})
        before = rss_mb(everyone)

        # When the traces start together, the pollers poll them and the streamers follow them
        job_ids = [""] * TRACES
        submitters = [
            load.run(
                f"submit-{n}",
                lambda n=n: load.submit(
                    n, lots(warehouse, "CONTAINERID", SIZES[n % len(SIZES)], skip=n * 7), job_ids
                ),
            )
            for n in range(TRACES)
        ]
        for thread in submitters:
            thread.join()
        assert all(job_ids), load.failures
        finished: dict[str, str] = {}
        clients = [
            load.run(f"poll-{n}", lambda n=n: load.poll(TRACES + n, job_ids[n % TRACES], finished))
            for n in range(POLLERS)
        ] + [
            load.run(
                f"stream-{n}", lambda n=n: load.stream(TRACES + POLLERS + n, job_ids[n % TRACES])
            )
            for n in range(STREAMERS)
        ]
        for thread in clients:
            thread.join(max(1.0, load.deadline - time.monotonic()))
        load_seconds = time.monotonic() - began

        # And then the hostile requests come to the same gunicorn
        hostile = hostile_requests(MAX_BODY_BYTES) * HOSTILE_ROUNDS
        for n, request in enumerate(hostile):
            answer = raw(stack.port, request.request, client_address(200 + n))
            load.seen(answer.status, f"hostile: {request.name}")
        time.sleep(1)  # the last answers written, their threads idle
        after = rss_mb(everyone)
    finally:
        stack.stop()

    trial.jobs = sum(state == "finished" for state in finished.values())
    trial.inputs = load.requests
    trial.rows_compared = load.rows_compared
    trial.failures += load.failures
    for name in everyone:
        trial.rss(name, before[name], after[name])
    trial.notes.append(
        f"{TRACES} traces of {min(SIZES)}-{max(SIZES)} lots x 5 domains, {POLLERS} pollers "
        f"(every {POLL_SECONDS} s), {STREAMERS} streamers, from "
        f"{TRACES + POLLERS + STREAMERS} client addresses: done in {load_seconds:.0f} s; then "
        f"{len(hostile)} hostile requests. Answers: {dict(sorted(load.statuses.items()))}"
    )
    # Then every job finished, every stream equalled the pages, no answer was a 5xx
    assert not load.failures, "\n".join(load.failures) + "\n" + stack.logs()[-3000:]
    assert finished == dict.fromkeys(job_ids, "finished"), finished
    assert load.rows_compared > 0
    # And each API process stays under the ceiling
    assert len(api_names) == 3, api_names  # the master and its two workers
    assert all(after[name] <= API_RSS_LIMIT_MB for name in api_names), (before, after)


# ---- status answers under load (the dashboard gives up silently on a status call over 15 s) ----
#: The issue's figure: status p99 <= 50 ms with this many jobs running. Measured and reported
#: (RELIABILITY.md), not asserted: a timed assertion would fail on a busy machine, not on slow code.
STATUS_JOBS = 20
STATUS_GOAL_MS = 50
#: Each job's status is asked this often (s): 3x the dashboard's polling, for more samples.
STATUS_POLL_SECONDS = 1.0
#: Lots per job, and of the warehouse they come from (full: a warehouse of its own, ~6 s to
#: build, so that the 20 jobs run together for a while; CI: the test warehouse, ~10 s of jobs).
STATUS_LOTS = scale(3000, 10_000)
STATUS_WAREHOUSE_LOTS = scale(WAREHOUSE_LOTS, 20_000)


class StatusTimes:
    """Status answers' times (ms, from sending the request on a new connection to the last byte),
    each with the number of jobs running (queued or started) when it was asked."""

    def __init__(self, job_ids: list[str]) -> None:
        self.lock = threading.Lock()
        self.running = set(job_ids)
        self.samples: list[tuple[int, float]] = []
        self.failures: list[str] = []

    def poll(self, client: Client, job_id: str, deadline: float, offset: float = 0.0) -> None:
        """Poll ``job_id`` every ``STATUS_POLL_SECONDS`` from ``offset`` s on, until it ends."""
        time.sleep(offset)
        while time.monotonic() < deadline:
            with self.lock:
                running = len(self.running)
            began = time.perf_counter()
            answer = client.send("GET", f"/api/trace/job/{job_id}", timeout=15)
            ms = (time.perf_counter() - began) * 1000
            with self.lock:
                self.samples.append((running, ms))
            if answer.status != 200:
                with self.lock:
                    self.failures.append(f"status of {job_id}: {answer.status}")
                return
            state = answer.json()["data"]["status"]
            if state not in ("queued", "started"):
                with self.lock:
                    self.running.discard(job_id)
                    if state != "finished":
                        self.failures.append(f"{job_id} ended {state}")
                return
            time.sleep(STATUS_POLL_SECONDS)
        with self.lock:
            self.failures.append(f"{job_id} not ended in time")

    def summary(self, least_running: int) -> tuple[str, int]:
        """``p50 / p99 / max ms (n)`` of the samples asked with at least ``least_running`` jobs
        running; and n."""
        times = sorted(ms for running, ms in self.samples if running >= least_running)
        if len(times) < 2:
            return f"{len(times)} samples", len(times)
        cuts = statistics.quantiles(times, n=100, method="inclusive")
        text = (
            f"p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, max {times[-1]:.1f} ms (n={len(times)})"
        )
        return text, len(times)


def test_status_answers_while_20_jobs_run_are_measured(
    trial: Trial, private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path
) -> None:
    # Given the real stack (gunicorn 2 workers, a 2 x 2 worker) and 20 traces submitted at once
    if STATUS_WAREHOUSE_LOTS != WAREHOUSE_LOTS:
        warehouse = tmp_path / "warehouse.db"
        generate(warehouse, lots=STATUS_WAREHOUSE_LOTS, seed=WAREHOUSE_SEED)
    stack = started(
        stack_env(warehouse, private_redis().url),
        tmp_path / "logs",
        processes=2,
        threads=2,
        api_workers=2,
    )
    try:
        deadline = time.monotonic() + scale(120, 300)
        body = {"profile": "query_tool", "domains": DOMAINS, "fresh": True}
        job_ids = []
        for n in range(STATUS_JOBS):
            cids = lots(warehouse, "CONTAINERID", STATUS_LOTS, skip=n * 7)
            answer = Client(stack.port, client_address(n)).json(
                "POST",
                "/api/trace/events",
                {**body, "container_ids": cids},
                headers={"Prefer": "respond-async"},
            )
            assert answer.status == 202, answer.body[:500]
            job_ids.append(answer.json()["data"]["job_id"])
        # When each job's status is polled until it ends, each poller from its own address and
        # on its own clock (dashboards are not in step: the pollers' first calls are spread over
        # one poll interval, not fired at the same instant)
        times = StatusTimes(job_ids)
        spread = STATUS_POLL_SECONDS / STATUS_JOBS
        pollers = [
            threading.Thread(
                target=times.poll,
                args=(Client(stack.port, client_address(n)), job_id, deadline, n * spread),
                daemon=True,
            )
            for n, job_id in enumerate(job_ids)
        ]
        for thread in pollers:
            thread.start()
        for thread in pollers:
            thread.join(max(1.0, deadline - time.monotonic()))
    finally:
        stack.stop()

    # Then every status was answered and every job finished; the times are reported
    all_running, _ = times.summary(STATUS_JOBS)
    any_running, _ = times.summary(1)
    trial.jobs = STATUS_JOBS - len(times.running)
    trial.inputs = len(times.samples)
    trial.failures += times.failures
    half_running, n_half = times.summary(STATUS_JOBS // 2)
    trial.notes.append(
        f"status GETs (new connection each, every {STATUS_POLL_SECONDS:g} s per job, "
        f"{STATUS_JOBS} client addresses) while {STATUS_JOBS} jobs of {STATUS_LOTS:,} lots x 5 "
        f"domains ran (a 2 x 2 worker, 2 gunicorn workers): {all_running}; with >= "
        f"{STATUS_JOBS // 2} running: {half_running}; with any: {any_running} (the goal: p99 <= "
        f"{STATUS_GOAL_MS} ms with {STATUS_JOBS} running)"
    )
    assert not times.failures, "\n".join(times.failures) + "\n" + stack.logs()[-3000:]
    # (the queue serves the jobs about in order, so all 20 run together only at first: the
    # first small ones end within seconds; half of them run for most of the trial)
    assert n_half >= STATUS_JOBS, "too few statuses asked while the jobs ran: nothing measured"
