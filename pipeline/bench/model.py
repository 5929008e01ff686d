"""What the benchmark measures, as plain data: one ``RunFigures`` per trace run on the real
stack, the limits, the floor and the baseline once per size, grouped in a ``SizeResult``. The
runner fills them (``pipeline/bench/run.py``), the limits, the floor and the baseline come from
``limits.py``, ``floor.py`` and ``baseline.py``; ``figures.py`` reads them per size,
``targets.py`` judges them, ``report.py`` turns them into the tables and ``BENCHMARKS.md``,
``chart.py`` into the PNG. Fields added later have defaults, so an older ``results.json``
still loads (``size_from_dict``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The stages of the benchmark's trace, in order.
STAGES = ("seed-resolve", "lineage", "events", "aggregation")


@dataclass
class StageFigure:
    """One stage of one run: wall seconds (from its stage_started to stage_finished event)
    and the rows it wrote."""

    seconds: float
    rows: int


@dataclass
class RssSample:
    """Resident memory (MB) of each worker process at ``t`` seconds after the job was
    submitted, and the stage the job was in then (``None``: queued or between stages)."""

    t: float
    stage: str | None
    worker_mb: dict[int, float]


@dataclass
class ResumeFigure:
    """A job failed in aggregation, then retried: how long the retry took, and how many source
    queries each stage issued during it (earlier stages must issue none)."""

    seconds: float
    queries_by_stage: dict[str, int]

    @property
    def earlier_stage_queries(self) -> int:
        return sum(n for stage, n in self.queries_by_stage.items() if stage != "aggregation")


@dataclass
class RunFigures:
    """Everything measured in one run of the trace at one size."""

    lots: int  # lots in the warehouse
    cids: int  # lots after lineage
    stages: dict[str, StageFigure]
    end_to_end_seconds: float
    domain_rows: dict[str, int]
    worker_peak_mb: dict[str, float]  # per worker process ("worker 1", "worker 2", ...)
    api_peak_mb: float  # largest gunicorn process while the whole result streams
    redis_bytes: int  # Redis memory the job's stored rows took
    stream_seconds: float
    stream_bytes: int
    stream_rows: int
    ttfb_ms: float
    page_first_ms: float  # a result page at offset 0 of the largest domain, to its last byte
    page_last_ms: float  # a result page near the end of the largest domain, to its last byte
    resume: ResumeFigure | None = None
    rss_series: list[RssSample] = field(default_factory=list)
    #: Per domain, the seconds its input batches took, added up over the worker processes
    #: (each batch records its own: fetch + store).
    domain_seconds: dict[str, float] = field(default_factory=dict)
    #: Share of the machine's CPU time taken by the hypervisor while the job ran (``None``:
    #: not measurable here).
    cpu_steal: float | None = None
    #: The page near the end: its size (the analysis is in every page) and the milliseconds a
    #: client takes to decode it (orjson), which the page times leave out (``None``: not
    #: measured, figures of an earlier benchmark that timed the decode with the fetch).
    page_bytes: int | None = None
    page_decode_ms: float | None = None
    #: The MSD page (``pipeline.bench.run.msd_page``): the analysis again under another
    #: loss-reason mask (its first detail call, seconds: the analysis alone), a detail page of
    #: 20 rows at the first and the last page (ms, to the last byte), and the CSV export
    #: (MB/s, and the API's peak MB while it streams). ``None``: not measured.
    reanalysis_seconds: float | None = None
    detail_first_ms: float | None = None
    detail_last_ms: float | None = None
    export_mb_per_s: float | None = None
    export_api_peak_mb: float | None = None
    #: The source queries each stage issued while the re-analysis ran (the probe's counts;
    #: earlier stages must issue none). ``None``: not measured.
    reanalysis_queries: dict[str, int] | None = None

    @property
    def reanalysis_earlier_queries(self) -> int | None:
        """Source queries by any stage but the aggregation during the re-analysis."""
        if self.reanalysis_queries is None:
            return None
        return sum(n for stage, n in self.reanalysis_queries.items() if stage != "aggregation")

    @property
    def rows_stored(self) -> int:
        return sum(self.domain_rows.values())

    @property
    def redis_mb_per_million_rows(self) -> float:
        return self.redis_bytes / 2**20 / max(self.rows_stored / 1e6, 1e-9)

    @property
    def events_rows_per_s(self) -> float:
        return self.stages["events"].rows / max(self.stages["events"].seconds, 1e-9)

    @property
    def stream_rows_per_s(self) -> float:
        return self.stream_rows / max(self.stream_seconds, 1e-9)

    @property
    def stream_mb_per_s(self) -> float:
        return self.stream_bytes / 2**20 / max(self.stream_seconds, 1e-9)

    @property
    def worker_peak(self) -> float:
        return max(self.worker_peak_mb.values(), default=0.0)


@dataclass
class LimitFigures:
    """The parts alone, on the same data: a bare ``fetchmany`` scan of each domain's query
    over the run's lots, on as many processes as the workers (rows/s over all, and per domain
    per process), and a bare Redis GET + decompress + msgpack unpack + JSON encode of the
    stored chunks in one thread (rows/s)."""

    scan_rows: dict[str, int]
    scan_seconds: dict[str, float]
    read_encode_rows: int
    read_encode_seconds: float
    #: Per domain, the seconds its scan tasks took, added up over the processes.
    scan_task_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def scan_rows_per_s(self) -> float:
        return sum(self.scan_rows.values()) / max(sum(self.scan_seconds.values()), 1e-9)

    @property
    def scan_rows_per_process_s(self) -> float | None:
        """Rows over the scan tasks' seconds added up (``None``: not recorded)."""
        seconds = sum(self.scan_task_seconds.values())
        return sum(self.scan_rows.values()) / seconds if seconds > 0 else None

    @property
    def read_encode_rows_per_s(self) -> float:
        return self.read_encode_rows / max(self.read_encode_seconds, 1e-9)


@dataclass
class FloorFigures:
    """Each stage's bare warehouse reads (the aggregation's also its store reads) on the same data,
    measured once per size after the runs (``pipeline.bench.floor``): the wall seconds, the
    reads made (queries; for the aggregation its queries and its stored chunks) and the rows
    they returned.
    A stage can be no faster than its floor; the run's ``end to end`` no faster than their
    sum."""

    seconds: dict[str, float]
    reads: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float | None:
        """The floor of the whole trace: the four stages' floors added up (``None`` when one
        is missing)."""
        if any(stage not in self.seconds for stage in STAGES):
            return None
        return sum(self.seconds[stage] for stage in STAGES)


@dataclass
class BaselineFigure:
    """The old approach on the same data (every row in a list of dicts, one JSON document),
    in a subprocess under a memory cap: its time and peak memory, or why it did not finish."""

    finished: bool
    seconds: float | None
    peak_mb: float | None
    rows: int | None
    reason: str = ""


@dataclass
class SizeResult:
    """All runs at one size, with the limits and the baseline measured on the same data."""

    lots: int  # lots in the warehouse
    runs: list[RunFigures]
    limits: LimitFigures | None = None
    baseline: BaselineFigure | None = None
    target_cids: int = 0  # the size asked for: lots after lineage
    floor: FloorFigures | None = None

    @property
    def cids(self) -> int:
        """Lots after lineage: the median over the runs (the size asked for before any run)."""
        traced = sorted(run.cids for run in self.runs)
        return traced[len(traced) // 2] if traced else self.target_cids


def size_from_dict(raw: dict[str, Any]) -> SizeResult:
    """A ``SizeResult`` from its ``dataclasses.asdict`` form (``results.json``)."""
    runs = []
    for run in raw.get("runs", []):
        resume = run.get("resume")
        runs.append(
            RunFigures(
                **{
                    **run,
                    "stages": {k: StageFigure(**v) for k, v in run["stages"].items()},
                    "resume": ResumeFigure(**resume) if resume else None,
                    "rss_series": [RssSample(**s) for s in run.get("rss_series", [])],
                }
            )
        )
    limits, baseline, floor = raw.get("limits"), raw.get("baseline"), raw.get("floor")
    return SizeResult(
        lots=raw["lots"],
        runs=runs,
        limits=LimitFigures(**limits) if limits else None,
        baseline=BaselineFigure(**baseline) if baseline else None,
        target_cids=raw.get("target_cids", 0),
        floor=FloorFigures(**floor) if floor else None,
    )


@dataclass
class Comparison:
    """Figures of an earlier version of the service (``ops/bench --before FILE``): what it
    was (``label``, ``commit``), what changed since (``changes``, Markdown) and its results."""

    label: str
    commit: str
    changes: str
    results: list[SizeResult]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Comparison:
        return cls(
            label=raw["label"],
            commit=raw["commit"],
            changes=raw.get("changes", ""),
            results=[size_from_dict(size) for size in raw["results"]],
        )
