"""One benchmark run on the real stack: a whole mid-section-defect trace (every lot tested at
測試 over the warehouse's whole date range, every event domain) submitted over HTTP to the API,
run by the worker processes, then read back as the dashboard reads it (result pages, the NDJSON
stream), with the workers' and the API's memory sampled all along.

The stack is ``pipeline.tools.stack.LocalStack`` with the benchmark's worker plugin
(``pipeline.bench.worker_plugin``: queries counted per stage, the aggregation failed on
demand) on the
benchmark's own Redis databases, which it flushes before each run.
"""

from __future__ import annotations

import datetime as dt
import http.client
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import redis

from pipeline import domains
from pipeline.bench import query_log
from pipeline.bench.model import STAGES, ResumeFigure, RssSample, RunFigures, StageFigure
from pipeline.bench.probe import FAIL_AGGREGATION_KEY, QUERIES_KEY
from pipeline.config import Settings
from pipeline.demo import info
from pipeline.engine import codec, keys, lifecycle, parts
from pipeline.engine.broker import make_broker
from pipeline.engine.job import EVENTS
from pipeline.engine.runtime import runtime_for
from pipeline.engine.store import CheckpointStore
from pipeline.tools import rss
from pipeline.tools.api_client import ApiClient, ApiError
from pipeline.tools.stack import LocalStack

STATION = "測試"
PAGE_ROWS = 100
PAGE_TRIES = 5
SAMPLE_SECONDS = 0.1
POLL_SECONDS = 0.2
JOB_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class BenchStack:
    """Where and how the benchmark runs: the warehouse, the Redis databases it owns, the
    worker's size, and where the workers record the queries of seed-resolve, lineage and the
    aggregation (``query_log``; ``None``: nowhere, and no floor for those stages)."""

    db: Path
    redis_url: str = "redis://127.0.0.1:6379"
    store_db: int = 7
    broker_db: int = 8
    processes: int = 2
    threads: int = 1
    query_log: Path | None = None

    def env(self) -> dict[str, str]:
        """The stack's settings: nothing truncated, no limit in the way of the measurement."""
        return {
            "TRACE_SOURCE_URL": f"sqlite:///{self.db.resolve()}",
            "TRACE_REDIS_URL": f"{self.redis_url}/{self.store_db}",
            "TRACE_BROKER_URL": f"{self.redis_url}/{self.broker_db}",
            "TRACE_MAX_ROWS_PER_DOMAIN": "100000000",
            "TRACE_MAX_CIDS_MID_SECTION_DEFECT": "2000000",
            "TRACE_RATE_LIMIT_REQUESTS": "1000000",
            "TRACE_SUBMIT_RATE_LIMIT_REQUESTS": "1000000",
            "TRACE_MSD_MAX_DAYS": "3650",
        }

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def store_url(self) -> str:
        """The URL of the store's database."""
        return f"{self.redis_url}/{self.store_db}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.store_url())

    def flush(self) -> None:
        for db in (self.store_db, self.broker_db):
            redis.Redis.from_url(f"{self.redis_url}/{db}").flushdb()

    def start(self, log_dir: Path) -> LocalStack:
        """The worker (with the probe) and the API, ready."""
        env = {**self.env(), "WORKER_MODULES": "pipeline.bench.worker_plugin"}
        if self.query_log is not None:
            env[query_log.QUERY_LOG_ENV] = str(self.query_log.resolve())
        stack = LocalStack(env, log_dir, processes=self.processes, threads=self.threads)
        return stack.start()


def trace_body(db: Path) -> dict[str, Any]:
    """The trace of the crash case: every lot tested at 測試 over the warehouse's dates."""
    meta = info.read_info(db)
    start = dt.date.fromisoformat(meta["start_date"])
    end = start + dt.timedelta(days=int(meta["span_days"]))
    return {
        "profile": domains.MID_SECTION_DEFECT,
        "params": {"station": STATION, "start_date": str(start), "end_date": str(end)},
        "domains": list(domains.DOMAINS),
        "fresh": True,
    }


class Sampler(threading.Thread):
    """Samples the worker processes' RSS and the job's stage every ``SAMPLE_SECONDS``."""

    def __init__(self, worker_main: int, client: redis.Redis) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.worker_main = worker_main
        self.client = client
        self.job_id: str | None = None
        self.began = time.monotonic()
        self.samples: list[RssSample] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_SECONDS):
            stage = None
            if self.job_id is not None:
                raw = self.client.hget(keys.job(self.job_id), "stage")
                stage = codec.as_text(raw) if raw else None
            sizes = {pid: rss.rss_kb(pid) / 1024 for pid in rss.children(self.worker_main)}
            self.samples.append(RssSample(time.monotonic() - self.began, stage, sizes))

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        self.start()
        try:
            yield self
        finally:
            self.halt.set()
            self.join()


def cpu_times() -> list[int]:
    """The machine's CPU time counters (``/proc/stat``: user, nice, system, idle, iowait, irq,
    softirq, steal, ...), in clock ticks; empty where there is no ``/proc``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            return [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return []


def steal_share(before: list[int], after: list[int]) -> float | None:
    """The share of CPU time the hypervisor took from this machine between two ``cpu_times``
    (``steal``): timings taken while it is high are slower than the machine can be."""
    if len(before) < 8 or len(after) < 8:
        return None
    deltas = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(deltas[:8])
    return deltas[7] / total if total > 0 else None


def wait_job(client: redis.Redis, job_id: str, states: tuple[str, ...]) -> str:
    """Poll the job's state until it is one of ``states``; the state."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        raw = client.hget(keys.job(job_id), "state")
        state = codec.as_text(raw) if raw else "gone"
        if state in states or state in ("failed", "cancelled", "gone"):
            return state
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"job {job_id} did not end in {JOB_TIMEOUT_SECONDS} s")


def stage_figures(client: redis.Redis, job_id: str) -> dict[str, StageFigure]:
    """Each stage's seconds and rows, from the job's stage_finished events."""
    found: dict[str, StageFigure] = {}
    for _, event in lifecycle.latest(client, 10_000):
        if event.get("job") == job_id and event["event"] == lifecycle.STAGE_FINISHED:
            found[event["stage"]] = StageFigure(float(event["seconds"]), int(event["rows"]))
    return found


@dataclass
class PageTiming:
    """A result page: milliseconds from the request to its last byte (the median of
    ``PAGE_TRIES``), its size, and the milliseconds a client then takes to decode it."""

    ms: float
    size: int
    decode_ms: float


def timed_page(api: ApiClient, path: str) -> PageTiming:
    """Time a 200 GET of ``path`` to its last byte, ``PAGE_TRIES`` times (each on a new
    connection, as a browser's first request); the decode is timed apart, once per try."""
    times, decodes, size = [], [], 0
    for _ in range(PAGE_TRIES):
        began = time.perf_counter()
        status, data = api.request("GET", path)
        times.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise ApiError("GET", path, status, data)
        began = time.perf_counter()
        orjson.loads(data)
        decodes.append((time.perf_counter() - began) * 1000)
        size = len(data)
    return PageTiming(statistics.median(times), size, statistics.median(decodes))


def stream(api: ApiClient, path: str) -> tuple[float, float, int, int]:
    """Read the whole NDJSON stream: (ms to the first byte, seconds, bytes, rows); the rows
    come from its ``complete`` line."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=600)
    try:
        began = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, response.status
        first = response.read1(1 << 20)
        ttfb = (time.perf_counter() - began) * 1000
        size, tail = len(first), first[-4096:]
        while chunk := response.read1(1 << 20):
            size += len(chunk)
            tail = (tail + chunk)[-4096:]
        seconds = time.perf_counter() - began
    finally:
        conn.close()
    last = orjson.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    assert last["type"] == "complete", last
    return ttfb, seconds, size, int(last["total_records"])


def run_once(bench: BenchStack, stack: LocalStack, lots: int) -> tuple[RunFigures, str]:
    """One timed run of the trace; its figures and job id (its keys stay for the limits, its
    seed-resolve, lineage and aggregation queries in ``bench.query_log``/job id for the floor)."""
    bench.flush()
    if bench.query_log is not None:
        query_log.clear(bench.query_log)
    client = bench.client()
    used_before = int(client.info("memory")["used_memory"])
    api = stack.api
    worker = stack.procs[0].popen.pid
    ticks = cpu_times()
    with Sampler(worker, client).running() as sampler:
        accepted = api.json("POST", "/api/trace/jobs", trace_body(bench.db), expect=202)["data"]
        sampler.job_id = job_id = accepted["job_id"]
        state = wait_job(client, job_id, ("finished",))
    steal = steal_share(ticks, cpu_times())
    if state != "finished":
        raise RuntimeError(f"job {job_id} ended {state}\n{stack.logs()}")
    if bench.query_log is not None:
        query_log.seal(bench.query_log, job_id)
    job = {codec.as_text(k): codec.as_text(v) for k, v in client.hgetall(keys.job(job_id)).items()}
    end_to_end = float(job["finished_at"]) - float(job["created_at"])
    used_after = int(client.info("memory")["used_memory"])
    status = api.json("GET", accepted["status_url"])["data"]
    rows = {d: p["rows"] for d, p in status["stages"]["events"]["domains"].items()}
    largest = max(rows, key=lambda d: rows[d])
    result = f"/api/trace/job/{job_id}/result?domain={largest}&limit={PAGE_ROWS}"
    first = timed_page(api, f"{result}&offset=0")
    last = timed_page(api, f"{result}&offset={max(rows[largest] - PAGE_ROWS, 0)}")
    gunicorn = stack.procs[1].popen.pid
    with rss.PeakRss({"api": gunicorn}) as memory:
        ttfb, seconds, size, streamed = stream(api, accepted["stream_url"])
    peaks: dict[int, float] = {}
    for sample in sampler.samples:
        for pid, mb in sample.worker_mb.items():
            peaks[pid] = max(peaks.get(pid, 0.0), mb)
    figures = RunFigures(
        lots=lots,
        cids=int(status["cid_count"]),
        stages=stage_figures(client, job_id),
        end_to_end_seconds=end_to_end,
        domain_rows=rows,
        worker_peak_mb={f"worker {n}": mb for n, mb in enumerate(peaks.values(), 1)},
        api_peak_mb=memory.process_peak_kb["api"] / 1024,
        redis_bytes=used_after - used_before,
        stream_seconds=seconds,
        stream_bytes=size,
        stream_rows=streamed,
        ttfb_ms=ttfb,
        page_first_ms=first.ms,
        page_last_ms=last.ms,
        page_bytes=last.size,
        page_decode_ms=last.decode_ms,
        rss_series=sampler.samples,
        cpu_steal=steal,
    )
    msd_page(api, job_id, largest, figures, gunicorn, client)
    stored = CheckpointStore(client, bench.settings().job_ttl_seconds).part_summaries(job_id)
    figures.domain_seconds = {
        d: stored[parts.events(d)].seconds for d in rows if parts.events(d) in stored
    }
    missing = [s for s in STAGES if s not in figures.stages]
    if missing:
        raise RuntimeError(f"job {job_id}: no stage_finished event for {missing}")
    return figures, job_id


def answered(api: ApiClient, path: str) -> Any:
    """The JSON of a 200 GET of ``path``, asked again while the API answers 503 with a
    ``retry_after_seconds`` (an analysis still running past the request's wait: at 1M CIDs a
    re-analysis outlasts it). It asks every ``POLL_SECONDS``, not after the hint's 30 s, so the
    time to the answer is the analysis's own; asking again starts no other job. ``ApiError``
    for any other status, ``TimeoutError`` after ``JOB_TIMEOUT_SECONDS``."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        status, data = api.request("GET", path)
        if status == 200:
            return orjson.loads(data)
        retry = status == 503 and b"retry_after_seconds" in data
        if not retry:
            raise ApiError("GET", path, status, data)
        if time.monotonic() > deadline:
            raise TimeoutError(f"GET {path} still answered 503 after {JOB_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)


def msd_page(
    api: ApiClient,
    job_id: str,
    domain: str,
    figures: RunFigures,
    api_pid: int,
    client: redis.Redis,
) -> None:
    """What the MSD page does once the trace is done, timed into ``figures``: the detail table
    under another loss-reason mask (the first call runs the analysis again on the trace's
    checkpoints; the probe's per-stage query counts, reset before it, say which stages asked
    the warehouse meanwhile), its first and last page, and the CSV export."""
    status = api.json("GET", f"/api/trace/job/{job_id}")["data"]
    trace = status.get("trace_query_id")
    if not trace:  # the page could not ask for its detail: a defect, not a figure to leave out
        raise RuntimeError(f"job {job_id} finished without a trace_query_id")
    page = api.json("GET", f"/api/trace/job/{job_id}/result?domain={domain}&limit=1")["data"]
    reasons = [
        r["name"] for r in (page["aggregation"] or {}).get("charts", {}).get("by_loss_reason", [])
    ]
    detail = f"/api/mid-section-defect/analysis/detail?trace_query_id={trace}&page_size=20"
    if reasons:
        client.delete(QUERIES_KEY)
        began = time.perf_counter()
        answered(api, f"{detail}&loss_reasons={quote(reasons[0])}")
        figures.reanalysis_seconds = time.perf_counter() - began
        counted = client.hgetall(QUERIES_KEY)
        figures.reanalysis_queries = {codec.as_text(k): int(v) for k, v in counted.items()}
    first = api.json("GET", detail)["data"]["pagination"]
    figures.detail_first_ms = timed_page(api, f"{detail}&page=1").ms
    figures.detail_last_ms = timed_page(api, f"{detail}&page={first['total_pages']}").ms
    conn = http.client.HTTPConnection(api.host, api.port, timeout=600)
    try:
        with rss.PeakRss({"api": api_pid}) as memory:
            began = time.perf_counter()
            conn.request("GET", f"/api/mid-section-defect/export?trace_query_id={trace}")
            response = conn.getresponse()
            size = 0
            while chunk := response.read1(1 << 20):
                size += len(chunk)
            seconds = time.perf_counter() - began
    finally:
        conn.close()
    figures.export_mb_per_s = size / 2**20 / max(seconds, 1e-9)
    figures.export_api_peak_mb = memory.process_peak_kb["api"] / 1024


def measure_resume(bench: BenchStack, stack: LocalStack) -> ResumeFigure:
    """A job failed in aggregation (the probe fails its queries), then retried: the retry's
    seconds and the source queries each stage issued during it. The events' are the queries of
    batches committed before the retry (asked again: redone work); the batches the failure
    kept from being fetched at all (the analysis runs beside the domains it does not read, and
    its failure stops them) are fetched by the retry for the first time, not counted."""
    bench.flush()
    client = bench.client()
    client.set(FAIL_AGGREGATION_KEY, 1)
    accepted = stack.api.json("POST", "/api/trace/jobs", trace_body(bench.db), expect=202)["data"]
    job_id = accepted["job_id"]
    state = wait_job(client, job_id, ("failed",))
    if state != "failed":
        raise RuntimeError(f"job {job_id} should have failed in aggregation; it is {state}")
    client.delete(FAIL_AGGREGATION_KEY, QUERIES_KEY)
    settings = bench.settings()
    runtime = runtime_for(settings, make_broker(settings))
    store, registry = runtime.store, runtime.registry
    job = registry.load(job_id)
    assert job is not None
    committed = {parts.events(d): store.finished(job_id, parts.events(d)) for d in job.domains}
    asked = registry.queries(job_id)
    began = time.monotonic()
    if not runtime.retry(job_id):
        raise RuntimeError(f"job {job_id} could not be retried")
    state = wait_job(client, job_id, ("finished",))
    seconds = time.monotonic() - began
    if state != "finished":
        raise RuntimeError(f"the retry of job {job_id} ended {state}")
    queries = {codec.as_text(k): int(v) for k, v in client.hgetall(QUERIES_KEY).items()}
    if queries.pop(EVENTS, 0):  # counted: those of batches committed before the retry
        redone = 0
        for name, count in registry.queries(job_id).items():
            part, _, batch = name.rpartition(":")
            if batch.isdigit() and int(batch) in committed.get(part, ()):
                redone += count - asked.get(name, 0)
        if redone:
            queries[EVENTS] = redone
    return ResumeFigure(seconds, queries)


def job_cids(bench: BenchStack, job_id: str) -> list[str]:
    """The lots of a finished job (its lineage's), as stored."""
    store = CheckpointStore(bench.client(), ttl_seconds=3600)
    return [str(row[0]) for batch in store.read(job_id, parts.CIDS) for row in batch.rows]
