"""What the CLI shows people: progress bars, a trace's report tables (or its JSON summary), the
services' peak memory; and where a run's results go by default."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipeline.runner import TraceSummary, forward_headline, top_suspects
from pipeline.tools.rss import PeakRss

RESULTS_DIR = Path("var/results")


def add_result_options(p: argparse.ArgumentParser) -> None:
    """``--out`` and ``--json``, as every command that reports a trace has them."""
    p.add_argument("--out", type=Path, help="results directory (default var/results/<time>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def results_dir(out: Path | None) -> Path:
    """``out``, or a new directory under ``RESULTS_DIR`` named for the local time."""
    return out or RESULTS_DIR / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def progress_bars(console: Console) -> Progress:
    """Bars with a description, done/total, a free ``rows`` field and the elapsed time."""
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]}"),
        TimeElapsedColumn(),
        console=console,
    )


class StageBars:
    """Draws the runner's progress: one bar per stage."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}

    def start(self, stage: str, total: int | None) -> None:
        self.tasks[stage] = self.bars.add_task(stage, total=total, rows="")
        self.rows[stage] = 0

    def advance(self, stage: str, units: int = 1, rows: int = 0) -> None:
        self.rows[stage] += rows
        self.bars.update(self.tasks[stage], advance=units, rows=f"{self.rows[stage]:,} rows")

    def finish(self, stage: str, note: str = "") -> None:
        task = self.tasks[stage]
        total = self.bars.tasks[task].total or 1
        self.bars.update(task, total=total, completed=total, rows=note)


def report(
    summary: TraceSummary,
    console: Console,
    *,
    as_json: bool,
    truth: list[dict[str, Any]] | None = None,
) -> None:
    """A trace's summary on stdout: JSON, or tables (lots per stage, rows per domain, the top
    suspect machines, marked when ``truth`` planted them) and where the results are."""
    if as_json:
        sys.stdout.write(
            orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return
    out = Console()
    stages = Table(title="Lots per stage")
    stages.add_column("stage")
    stages.add_column("lots", justify="right")
    stages.add_column("seconds", justify="right")
    stages.add_row(
        "seed-resolve", f"{summary.seed_count:,}", f"{summary.seconds.get('seed-resolve', 0):.2f}"
    )
    stages.add_row(
        "lineage", f"{summary.lineage_nodes:,}", f"{summary.seconds.get('lineage', 0):.2f}"
    )
    stages.add_row("events", f"{summary.event_cids:,}", f"{summary.seconds.get('events', 0):.2f}")
    if "aggregation" in summary.seconds:
        stages.add_row("aggregation", "", f"{summary.seconds['aggregation']:.2f}")
    out.print(stages)
    rows = Table(title="Rows per domain")
    rows.add_column("domain")
    rows.add_column("rows", justify="right")
    for domain, count in summary.rows.items():
        rows.add_row(domain, f"{count:,}")
    out.print(rows)
    suspects = top_suspects(summary.aggregation)
    if suspects:
        planted = {t["EQUIPMENTID"] for t in truth or [] if t["KIND"] == "bad_machine"}
        table = Table(title="Top suspect machines (upstream of the detection station)")
        for column in ("rank", "group", "machine", "lots", "input", "defects", "defect rate %"):
            table.add_column(column, justify="right" if column != "group" else "left")
        if planted:
            table.add_column("planted?")
        for rank, row in enumerate(suspects, 1):
            cells = [
                str(rank),
                row["WORKCENTER_GROUP"],
                row["EQUIPMENT_NAME"],
                f"{row['DETECTION_LOT_COUNT']:,}",
                f"{row['INPUT_QTY']:,}",
                f"{row['DEFECT_QTY']:,}",
                f"{row['DEFECT_RATE']:.4f}",
            ]
            if planted:
                cells.append("yes" if row["EQUIPMENT_ID"] in planted else "")
            table.add_row(*cells)
        out.print(table)
        if planted:
            found = sum(1 for row in suspects[: len(planted)] if row["EQUIPMENT_ID"] in planted)
            out.print(
                f"Planted bad machines among the top {len(planted)}: {found} of {len(planted)}"
            )
    forward = forward_headline(summary.forward)
    if forward:
        amplification = forward["amplification"]
        out.print(
            f"Forward (lots with defects at 成型, downstream): amplification "
            f"{'—' if amplification is None else f'{amplification:.3f}'}, downstream reject "
            f"rate {forward['downstream_reject_rate'] or 0:.4f} %"
        )
        if forward["top_reason_pairs"]:
            pairs = Table(title="Top reason pairs (defect at detection -> reject downstream)")
            for column in ("front reason", "downstream reason", "rejects"):
                pairs.add_column(column, justify="right" if column == "rejects" else "left")
            for pair in forward["top_reason_pairs"]:
                pairs.add_row(pair["front"], pair["downstream"], f"{pair['rejects']:,}")
            out.print(pairs)
    if summary.not_found:
        out.print(f"Not found: {', '.join(summary.not_found[:20])}")
    out.print(
        f"Results: {summary.out_dir.resolve()}/ "
        f"({', '.join(sorted(p.name for p in summary.out_dir.iterdir()))})"
    )


def report_memory(memory: PeakRss, console: Console) -> None:
    """The peak resident memory of each service (its largest process, and all of them), MB."""
    table = Table(title="Peak resident memory during the trace (MB)")
    for column in ("service", "largest process", "all its processes"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for name, peak in memory.process_peak_kb.items():
        table.add_row(name, f"{peak / 1024:,.0f}", f"{memory.total_peak_kb[name] / 1024:,.0f}")
    console.print(table)
