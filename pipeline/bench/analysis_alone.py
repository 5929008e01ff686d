"""``python -m pipeline.bench.analysis_alone``: the mid-section-defect analysis timed alone, in
one process, away from the stack's noise.

``ops/bench`` measures through the real stack (two worker processes, gunicorn, the broker): on
this machine one run's figures move by ±20 % from run to run, which hides a change of 5-10 % to
the analysis. This times only the analysis, in this process: it runs the benchmark's backward
trace (``pipeline.bench.run.trace_body``, the analysis's two domains) message by message here
(no broker, no worker), then the first analysis's messages alone, then ``--reanalyses``
re-analyses under one loss reason each (the reasons of the first result, in turn), as the MSD
page's detail call runs them (``pipeline.engine.analyses.reanalysis``, a job of its own each).

To compare two commits, run it from a checkout of each (``git worktree add``), alternating, two
runs each, on the same warehouse and Redis: the medians of one run's re-analyses (10K: 42
re-analyses; 114K: 7) moved by up to ~6 % between runs of one commit (2026-12-07), against
~20 % for the stack's single re-analysis. It flushes ``--store-db`` and ``--broker-db``
before it starts and leaves the jobs there (their TTL: an hour). Figures: wall seconds
(``time.perf_counter``); the first line of the output is JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from pipeline import domains
from pipeline.bench.run import BenchStack, trace_body
from pipeline.config import Settings
from pipeline.engine import analyses
from pipeline.engine.job import Job
from pipeline.engine.messages import MessageKey
from pipeline.engine.runtime import Runtime
from pipeline.request import TraceRequest

#: The store's TTL and a message's time limit here: long enough for a 1M trace in one process.
HOUR_SECONDS = 3600


@dataclass
class InProcess:
    """A dispatcher that keeps the messages sent; ``run`` runs them here, in order."""

    sent: list[tuple[str, MessageKey, bool]] = field(default_factory=list)

    def __call__(self, job: Job, messages: Sequence[MessageKey], *, resumed: bool = False) -> None:
        self.sent.extend((job.id, key, resumed) for key in messages)

    def run(
        self, runtime: Runtime, *, hold: str | None = None
    ) -> list[tuple[str, MessageKey, bool]]:
        """Run the sent messages (and those they send) but the ``hold`` stage's, which are
        returned, not run."""
        held = []
        while self.sent:
            job_id, key, resumed = self.sent.pop(0)
            if key.stage == hold:
                held.append((job_id, key, resumed))
            else:
                runtime.handle(job_id, key, resumed=resumed)
        return held


@dataclass(frozen=True)
class AnalysisTimes:
    """Seconds: the stages before the analysis, the first analysis, each re-analysis."""

    lots: int  # the trace's lots (CIDs)
    before_seconds: float
    first_seconds: float
    reanalysis_seconds: list[float]

    def summary(self) -> dict[str, object]:
        times = self.reanalysis_seconds
        return {
            **asdict(self),
            "reanalysis_median": statistics.median(times) if times else None,
            "reanalysis_min": min(times, default=None),
            "reanalysis_max": max(times, default=None),
        }


def measure(bench: BenchStack, reanalyses: int) -> AnalysisTimes:
    """The trace of ``bench``'s warehouse, then its analyses timed (see the module docstring).

    Raises ``RuntimeError`` when a job does not finish (its error in the message)."""
    bench.flush()
    env = {
        **bench.env(),
        "TRACE_JOB_TTL_SECONDS": str(HOUR_SECONDS),
        "TRACE_MESSAGE_TIME_LIMIT_SECONDS": str(HOUR_SECONDS),
    }
    dispatch = InProcess()
    runtime = Runtime(Settings.from_env(env), dispatch)
    body = trace_body(bench.db)
    body.pop("fresh")
    body["domains"] = list(domains.MSD_DOMAINS[domains.BACKWARD])
    began = time.perf_counter()
    job, _ = runtime.submit(TraceRequest.model_validate(body), fresh=True)
    held = dispatch.run(runtime, hold="aggregation")
    before = time.perf_counter() - began
    began = time.perf_counter()
    dispatch.sent[:0] = held
    dispatch.run(runtime)
    first = time.perf_counter() - began
    trace = _finished(runtime, job.id)
    reasons = _loss_reasons(runtime, trace)
    times = []
    for n in range(reanalyses if reasons else 0):
        request = analyses.reanalysis(trace, {"loss_reasons": (reasons[n % len(reasons)],)})
        began = time.perf_counter()
        again, _ = runtime.submit(request, fresh=True)
        dispatch.run(runtime)
        times.append(time.perf_counter() - began)
        _finished(runtime, again.id)
    return AnalysisTimes(trace.cid_count, before, first, times)


def _finished(runtime: Runtime, job_id: str) -> Job:
    job = runtime.registry.load(job_id)
    if job is None or job.state != "finished":
        state = job.state if job else "gone"
        raise RuntimeError(f"job {job_id} ended {state}: {job.error if job else ''}")
    return job


def _loss_reasons(runtime: Runtime, job: Job) -> list[str]:
    """The loss reasons of the job's analysis, most defects first."""
    document = runtime.store.get_json(job.id, "aggregation")
    analysis = orjson.loads(document) if document else {}
    return [r["name"] for r in analysis.get("charts", {}).get("by_loss_reason", [])]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pipeline.bench.analysis_alone", description=__doc__)
    p.add_argument(
        "--db", type=Path, required=True, help="a demo warehouse (python -m pipeline demo-data)"
    )
    p.add_argument("--redis", default="redis://127.0.0.1:6379", help="a Redis server's URL")
    p.add_argument("--store-db", type=int, default=7, help="the store's database (flushed)")
    p.add_argument("--broker-db", type=int, default=8, help="the broker's database (flushed)")
    p.add_argument("--reanalyses", type=int, default=20, help="re-analyses to time")
    args = p.parse_args(argv)
    bench = BenchStack(
        db=args.db, redis_url=args.redis, store_db=args.store_db, broker_db=args.broker_db
    )
    times = measure(bench, args.reanalyses)
    summary = times.summary()
    print(orjson.dumps(summary).decode())
    median = summary["reanalysis_median"] or 0
    print(
        f"{times.lots:,} lots: stages before {times.before_seconds:.2f} s, first analysis "
        f"{times.first_seconds:.2f} s, re-analysis median {median:.3f} s "
        f"of {len(times.reanalysis_seconds)}"
    )


if __name__ == "__main__":
    main()
