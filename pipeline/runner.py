"""Runs a whole trace in this process: seed resolve -> lineage -> events -> aggregation.

The stages are the plain functions of ``pipeline.stages``; this module only chains them, streams
every event batch to ``<out>/<domain>.ndjson`` (one JSON object per row, as the dashboard's stream
carries them) and feeds the mid-section-defect aggregator on the way. Event rows are never held
beyond one batch. The staged engine (Dramatiq actors with checkpoints, next) will run the same
functions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from pipeline import domains
from pipeline.config import Settings
from pipeline.errors import NoSeeds
from pipeline.request import TraceRequest
from pipeline.rows import RowBatch, batched
from pipeline.sources.base import Source
from pipeline.stages import seed_resolve
from pipeline.stages.events import fetch_events, lots_per_fetch
from pipeline.stages.lineage import trace_lineage
from pipeline.stages.lineage_document import payload
from pipeline.stages.lineage_graph import Lineage
from pipeline.stages.msd.attribution import machine_ids
from pipeline.stages.msd.detail import sorted_details
from pipeline.stages.msd.detection import prepare_aggregator
from pipeline.stages.msd.families import machine_families
from pipeline.stages.msd.folding import MsdAggregator
from pipeline.stages.msd.result import result

__all__ = ["Progress", "TraceRequest", "TraceSummary", "cid_groups", "ndjson", "run_trace"]


class Progress(Protocol):
    """What the runner reports; the CLI draws it as progress bars."""

    def start(self, stage: str, total: int | None) -> None: ...

    def advance(self, stage: str, units: int = 1, rows: int = 0) -> None: ...

    def finish(self, stage: str, note: str = "") -> None: ...


class _Silent:
    def start(self, stage: str, total: int | None) -> None:
        pass

    def advance(self, stage: str, units: int = 1, rows: int = 0) -> None:
        pass

    def finish(self, stage: str, note: str = "") -> None:
        pass


@dataclass
class TraceSummary:
    """What a trace produced, and where."""

    out_dir: Path
    seed_count: int = 0
    not_found: list[str] = field(default_factory=list)
    lineage_nodes: int = 0
    event_cids: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    aggregation: dict[str, Any] | None = None
    #: The demo's second trace, forward from 成型 (its aggregation), when run.
    forward: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "seed_count": self.seed_count,
            "not_found": self.not_found,
            "lineage_nodes": self.lineage_nodes,
            "event_cids": self.event_cids,
            "rows": self.rows,
            "seconds": self.seconds,
            "top_suspects": top_suspects(self.aggregation),
            "forward": forward_headline(self.forward),
        }


def run_trace(
    source: Source,
    request: TraceRequest,
    settings: Settings,
    out_dir: str | Path,
    progress: Progress | None = None,
) -> TraceSummary:
    """Run every stage of ``request``; write results under ``out_dir``; return a summary."""
    report = progress or _Silent()
    profile = request.profile
    direction = request.direction()
    out = Path(out_dir)
    summary = TraceSummary(out_dir=out)

    clock = time.perf_counter()
    report.start("seed-resolve", None)
    request.check(settings)
    seeds = seed_resolve.resolve(source, profile, request.params)
    summary.seed_count, summary.not_found = len(seeds.seeds), seeds.not_found
    summary.seconds["seed-resolve"] = time.perf_counter() - clock
    report.finish("seed-resolve", f"{len(seeds.seeds)} seeds")
    if not seeds.seeds and profile != domains.MID_SECTION_DEFECT:
        raise NoSeeds("no seed matched: nothing to trace", field="params.values")
    # Nothing is written before the request proved valid. An analysis whose detection station saw
    # no lot goes on: its answer is an empty result with zeroed KPIs, not an error.
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "seeds.json", seeds.payload())

    clock = time.perf_counter()
    report.start("lineage", None)
    lineage = (
        trace_lineage(
            source,
            seeds.container_ids,
            direction,
            max_depth=settings.lineage_max_depth,
            semantic=profile in domains.TREE_PROFILES,
        )
        if seeds.seeds
        else Lineage(direction, [], settings.lineage_max_depth)
    )
    with lineage:
        lineage_data = payload(lineage)
        cids = list(lineage.all_cids())
        summary.lineage_nodes, summary.event_cids = lineage.node_count(), len(cids)
    _write_json(out / "lineage.json", lineage_data)
    relations = lineage_data["ancestors" if direction == domains.BACKWARD else "descendants"]
    roots = lineage_data.get("seed_roots", {})
    del lineage, lineage_data  # from here on only the ids and the per-seed relations are needed
    summary.seconds["lineage"] = time.perf_counter() - clock
    report.finish("lineage", f"{summary.lineage_nodes} lots")

    aggregator = None
    if profile == domains.MID_SECTION_DEFECT:
        aggregator = prepare_aggregator(
            source, request.params, seeds.container_ids, direction, settings
        )
    with aggregator or nullcontext():
        if aggregator is not None:
            aggregator.set_lineage(relations.items(), roots)
        del seeds, relations, roots
        _events(source, request, settings, cids, out, aggregator, report, summary)
        if aggregator is not None:
            _aggregate(source, aggregator, out, report, summary)
    _write_json(out / "summary.json", summary.as_dict())
    return summary


def _events(
    source: Source,
    request: TraceRequest,
    settings: Settings,
    cids: list[str],
    out: Path,
    aggregator: MsdAggregator | None,
    report: Progress,
    summary: TraceSummary,
) -> None:
    clock = time.perf_counter()
    wanted = request.domains
    report.start("events", sum(len(cid_groups(d, cids, settings)) for d in wanted))
    for domain in wanted:
        summary.rows[domain] = _stream_domain(
            source, domain, cids, settings, out, aggregator, report
        )
    summary.seconds["events"] = time.perf_counter() - clock
    report.finish("events", f"{sum(summary.rows.values())} rows")


def _aggregate(
    source: Source, aggregator: MsdAggregator, out: Path, report: Progress, summary: TraceSummary
) -> None:
    clock = time.perf_counter()
    report.start("aggregation", None)
    fold = aggregator.finish()
    # first: it credits the machines; in the table's order, as a job stores them
    with open(out / "detail.ndjson", "wb") as fh, sorted_details(fold) as table:
        for row in table.json_rows():
            fh.write(row + b"\n")
    families = machine_families(source, machine_ids(fold))
    summary.aggregation = result(fold, families)
    _write_json(out / "aggregation.json", summary.aggregation)
    summary.seconds["aggregation"] = time.perf_counter() - clock
    report.finish("aggregation", f"{len(summary.aggregation['attribution'])} machines")


def _stream_domain(
    source: Source,
    domain: str,
    cids: list[str],
    settings: Settings,
    out: Path,
    aggregator: MsdAggregator | None,
    report: Progress,
) -> int:
    rows = 0
    with open(out / f"{domain}.ndjson", "wb") as fh:
        for group in cid_groups(domain, cids, settings):
            for batch in fetch_events(
                source, domain, group, jobs_probe_max=settings.jobs_probe_max
            ):
                fh.write(ndjson(batch))
                rows += len(batch)
                if aggregator is not None:
                    aggregator.add_events(domain, batch)
                report.advance("events", 0, len(batch))
            report.advance("events", 1)
    return rows


def cid_groups(domain: str, cids: list[str], settings: Settings) -> list[list[str]]:
    """The lot lists one domain is fetched by (``lots_per_fetch``): IN lists of at most
    ``in_list_size`` ids, or for jobs one pass over its table per ``jobs_scan_lots`` lots."""
    size = lots_per_fetch(domain, settings.in_list_size, settings.jobs_scan_lots)
    return list(batched(cids, size))


def ndjson(batch: RowBatch) -> bytes:
    """One JSON object per row, newline-terminated (rows become dicts only here, at the edge)."""
    columns, option = batch.columns, orjson.OPT_APPEND_NEWLINE
    return b"".join(
        orjson.dumps(dict(zip(columns, row, strict=True)), option=option) for row in batch.rows
    )


def forward_headline(aggregation: Mapping[str, Any] | None, n: int = 3) -> dict[str, Any]:
    """A forward analysis in brief: its amplification, downstream reject rate, and the ``n``
    largest (front reason, downstream reason) pairs of its reason matrix."""
    if not aggregation:
        return {}
    matrix = aggregation.get("by_front_downstream_reason_matrix") or {}
    rows, cols = matrix.get("rows") or [], matrix.get("cols") or []
    cells = matrix.get("cells") or []
    pairs = sorted(
        (
            (count, rows[r]["name"], cols[c]["name"])
            for r, line in enumerate(cells)
            for c, count in enumerate(line)
            if count and rows[r]["name"] != "其他" and cols[c]["name"] != "其他"
        ),
        reverse=True,
    )[:n]
    kpi = aggregation.get("kpi") or {}
    return {
        "amplification": aggregation.get("amplification"),
        "downstream_reject_rate": kpi.get("downstream_reject_rate"),
        "detection_lot_count": kpi.get("detection_lot_count"),
        "top_reason_pairs": [
            {"front": front, "downstream": down, "rejects": count} for count, front, down in pairs
        ],
    }


def top_suspects(aggregation: Mapping[str, Any] | None, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` machines of the backward attribution with the highest defect rate (then the
    most defects): the suspects (the attribution itself lists the most defects first)."""
    if not aggregation:
        return []
    ranked = sorted(
        aggregation.get("attribution", []), key=lambda r: (-r["DEFECT_RATE"], -r["DEFECT_QTY"])
    )
    return [
        {
            k: row[k]
            for k in (
                "WORKCENTER_GROUP",
                "EQUIPMENT_NAME",
                "EQUIPMENT_ID",
                "DETECTION_LOT_COUNT",
                "INPUT_QTY",
                "DEFECT_QTY",
                "DEFECT_RATE",
            )
        }
        for row in ranked[:n]
    ]


def _write_json(path: Path, data: Any) -> None:
    path.write_bytes(orjson.dumps(data))
