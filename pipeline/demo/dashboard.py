"""The demo's trace, driven over HTTP the way the dashboard drives it, against a running API:
seed-resolve (200) -> lineage (202, polled) -> events with the aggregation (202, polled) ->
the NDJSON stream, written to a file as it arrives, and the MSD page's CSV export of its detail
table; then the lots detected at 成型 in the same window forward, as today's dashboard asks it
(the seeds alone and the lineage's ``query_id``), with its headline figures and its own CSV.

Lineage and events are asked with ``Prefer: respond-async`` so that even a small trace answers
202 at once and its progress (stage, batches, rows) can be drawn from the job status, as a
dashboard's progress bar would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from rich.progress import Progress, TaskID

from pipeline import domains
from pipeline.demo import factory
from pipeline.runner import TraceSummary
from pipeline.tools.api_client import ApiClient

STATION = "測試"
#: Where the forward trace detects: the demo warehouse plants a defect there that amplifies
#: downstream (測試 is the route's last station, with nothing after it).
FORWARD_STATION = factory.FORWARD_STATION
ASYNC = {"Prefer": "respond-async"}
#: Status polls start 0.2 s apart (a small job is done at once) and back off to 1.5 s: at most
#: ~45 a minute, inside the API's default 60 per client and minute (TRACE_RATE_LIMIT_REQUESTS).
FIRST_POLL_SECONDS = 0.2
POLL_SECONDS = 1.5
#: The longest one synchronous call (seed-resolve) may take before the demo gives up on it.
CALL_SECONDS = 300


class DemoFailed(RuntimeError):
    """The trace did not finish: the job failed or was cancelled, or a call was refused."""


class JobBars:
    """Progress bars drawn from a job's status document: one per stage, and for events one per
    domain (batches done of total, rows)."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, TaskID] = {}

    def bar(self, name: str, total: float | None = None) -> TaskID:
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(name, total=total, rows="")
        return self.tasks[name]

    def show(self, name: str, done: int, total: int | None, rows: str, finished: bool) -> None:
        task = self.bar(name)
        if finished:
            total = total or done or 1
            done = total
        self.bars.update(task, completed=done, total=total, rows=rows)

    def draw(self, status: Mapping[str, Any]) -> None:
        for stage, progress in status["stages"].items():
            if stage == "events":
                for domain, part in progress["domains"].items():
                    self.show(
                        f"events: {domain}",
                        part["batches_done"],
                        part["batches_total"],
                        f"{part['rows']:,} rows",
                        progress["completed"],
                    )
            elif stage != "seed-resolve":  # drawn by the call that ran it
                self.show(
                    stage,
                    progress["batches_done"],
                    None,
                    f"{progress['batches_done']:,} queries, {progress['rows']:,} rows",
                    progress["completed"],
                )


def wait_for_job(
    api: ApiClient,
    job_id: str,
    bars: JobBars,
    *,
    alive: Callable[[], None] = lambda: None,
    on_stage: Callable[[str | None], object] = lambda stage: None,
) -> dict[str, Any]:
    """Poll the job's status, drawing it, until it finishes; its last status. ``DemoFailed``
    when it fails or is cancelled. ``alive`` raises when the stack behind the API is gone;
    ``on_stage`` hears each stage the job enters."""
    stage: str | None = None
    pause = FIRST_POLL_SECONDS
    while True:
        alive()
        status: dict[str, Any] = api.json("GET", f"/api/trace/job/{job_id}")["data"]
        bars.draw(status)
        if status["stage"] != stage:
            stage = status["stage"]
            on_stage(stage)
        if status["state"] == "finished":
            return status
        if status["state"] not in ("queued", "started"):
            detail = status.get("error_detail") or {}
            raise DemoFailed(
                f"job {job_id} {status['state']}: {detail.get('code', '')} {status['error']}"
            )
        time.sleep(pause)
        pause = min(POLL_SECONDS, pause * 1.5)


def run(
    api: ApiClient,
    window: tuple[str, str],
    out_dir: Path,
    bars: Progress,
    *,
    alive: Callable[[], None] = lambda: None,
    fresh: bool = True,
) -> TraceSummary:
    """Trace the lots tested at 測試 in ``window`` (mid-section defect, backward, every domain)
    through ``api``; the stream goes to ``out_dir/trace.ndjson``. ``fresh``: new jobs, not the
    result of an equal request finished minutes ago. The summary's ``seconds`` are as the
    client saw them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = TraceSummary(out_dir=out_dir)
    job_bars = JobBars(bars)
    profile = domains.MID_SECTION_DEFECT
    params = {"station": STATION, "start_date": window[0], "end_date": window[1]}

    began = time.monotonic()
    task = job_bars.bar("seed-resolve")
    seeds = api.json(
        "POST",
        "/api/trace/seed-resolve",
        {"profile": profile, "params": params, "fresh": fresh},
        timeout=CALL_SECONDS,
    )["data"]
    seed_cids = seeds["seed_container_ids"]
    bars.update(task, total=1, completed=1, rows=f"{len(seed_cids):,} detection lots")
    summary.seed_count, summary.not_found = len(seed_cids), seeds["not_found"]
    summary.seconds["seed-resolve"] = time.monotonic() - began
    if not seed_cids:
        raise DemoFailed(f"no lot was tested at {STATION} from {window[0]} to {window[1]}")

    began = time.monotonic()
    accepted = api.json(
        "POST",
        "/api/trace/lineage",
        {"profile": profile, "container_ids": seed_cids, "fresh": fresh},
        expect=202,
        headers=ASYNC,
    )["data"]
    lineage = wait_for_job(api, accepted["job_id"], job_bars, alive=alive)
    summary.lineage_nodes = lineage["cid_count"]  # the lots the lineage reached
    summary.seconds["lineage"] = time.monotonic() - began

    began = time.monotonic()
    marks: dict[str, float] = {}
    accepted = api.json(
        "POST",
        "/api/trace/events",
        {
            "profile": profile,
            "params": params,
            "domains": list(domains.DOMAINS),
            "seed_container_ids": seed_cids,
            "lineage_job_id": accepted["job_id"],
            "fresh": fresh,
        },
        expect=202,
        headers=ASYNC,
    )["data"]
    status = wait_for_job(
        api,
        accepted["job_id"],
        job_bars,
        alive=alive,
        on_stage=lambda stage: marks.setdefault(stage or "", time.monotonic()),
    )
    ended = time.monotonic()
    split = marks.get("aggregation", ended)  # (a poll may miss a short aggregation: 0 s)
    summary.seconds["events"] = split - began
    if "aggregation" in status["stages"]:
        summary.seconds["aggregation"] = ended - split
    summary.event_cids = status["cid_count"]

    began = time.monotonic()
    total = sum(p["rows"] for p in status["stages"]["events"]["domains"].values())
    task = bars.add_task("stream to trace.ndjson", total=total or 1, rows="")
    written = 0
    trace_id: str | None = None
    with (out_dir / "trace.ndjson").open("wb") as out:
        for raw in api.lines(accepted["stream_url"]):
            out.write(raw)
            written += len(raw)
            line = orjson.loads(raw)
            kind = line["type"]
            if kind == "records":
                bars.update(task, advance=line["count"], rows=f"{written / 1e6:,.1f} MB")
            elif kind == "domain_end":
                summary.rows[line["domain"]] = line["count"]
            elif kind == "meta":
                trace_id = line.get("trace_query_id")
            elif kind == "aggregation":
                summary.aggregation = line["data"]
            elif kind == "error":
                raise DemoFailed(f"the stream ended in an error: {line}")
    bars.update(task, total=total or 1, completed=total or 1)
    summary.seconds["stream"] = time.monotonic() - began
    if summary.aggregation is not None:
        (out_dir / "aggregation.json").write_bytes(orjson.dumps(summary.aggregation))
    if trace_id:
        export(api, trace_id, out_dir / "detail.csv")
    summary.forward = forward(api, params, out_dir, bars, job_bars, alive=alive)
    return summary


def export(api: ApiClient, trace_id: str, path: Path) -> None:
    """The MSD page's CSV export of the trace, written to ``path`` as it arrives."""
    with path.open("wb") as out:
        for raw in api.lines(f"/api/mid-section-defect/export?trace_query_id={trace_id}"):
            out.write(raw)


def forward(
    api: ApiClient,
    params: Mapping[str, Any],
    out_dir: Path,
    bars: Progress,
    job_bars: JobBars,
    *,
    alive: Callable[[], None],
) -> dict[str, Any] | None:
    """The lots detected at ``FORWARD_STATION`` in the same window, traced forward as today's
    dashboard asks it: the seeds alone with the lineage's ``query_id``, the service expanding
    them to their descendants; its stream without rows (the page reads none), its detail CSV
    beside the backward one. (Forward from 測試, the last station, reaches nothing.)"""
    profile = domains.MID_SECTION_DEFECT
    forward_params = {**params, "station": FORWARD_STATION, "direction": domains.FORWARD}
    seeds = api.json(
        "POST",
        "/api/trace/seed-resolve",
        {"profile": profile, "params": forward_params},
        expect=(200, 202),
        timeout=CALL_SECONDS,
    )["data"]
    if seeds.get("async"):
        wait_for_job(api, seeds["job_id"], job_bars, alive=alive)
        seeds = api.json("GET", seeds["status_url"] + "/result")["data"]
    seed_cids = seeds["seed_container_ids"]
    if not seed_cids:
        return None
    body = {"profile": profile, "params": forward_params, "container_ids": seed_cids}
    accepted = api.json("POST", "/api/trace/lineage", body, expect=202, headers=ASYNC)["data"]
    wait_for_job(api, accepted["job_id"], job_bars, alive=alive)
    accepted = api.json(
        "POST",
        "/api/trace/events",
        {
            **body,
            "seed_container_ids": seed_cids,
            "domains": list(domains.MSD_DOMAINS[domains.FORWARD]),
            "lineage_query_id": accepted["query_id"],
        },
        expect=202,
        headers=ASYNC,
    )["data"]
    wait_for_job(api, accepted["job_id"], job_bars, alive=alive)
    task = bars.add_task("forward: aggregation", total=1, rows="")
    aggregation: dict[str, Any] | None = None
    trace_id: str | None = None
    for raw in api.lines(accepted["stream_url"]):
        line = orjson.loads(raw)
        if line["type"] == "meta":
            trace_id = line.get("trace_query_id")
        elif line["type"] == "aggregation":
            aggregation = line["data"]
        elif line["type"] == "error":
            raise DemoFailed(f"the forward stream ended in an error: {line}")
    bars.update(task, completed=1)
    if aggregation is not None:
        (out_dir / "aggregation-forward.json").write_bytes(orjson.dumps(aggregation))
    if trace_id:
        export(api, trace_id, out_dir / "detail-forward.csv")
    return aggregation
