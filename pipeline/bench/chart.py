"""The benchmark's PNG chart: (a) each worker process's resident memory over time in the largest
size's first run, shaded by stage; (b) rows per second per stage at each size. matplotlib is
imported only when a chart is drawn."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.bench import formats
from pipeline.bench.figures import by_size, median, stage_rows_per_s
from pipeline.bench.model import STAGES, SizeResult
from pipeline.bench.targets import WORKER_PEAK_GOAL_MB

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STAGE_COLORS = {
    "seed-resolve": "#9ecae1",
    "lineage": "#a1d99b",
    "events": "#fdd0a2",
    "aggregation": "#dadaeb",
}
OTHER_STAGE_COLOR = "#d9d9d9"


def write_chart(path: Path, results: Sequence[SizeResult]) -> None:
    """A PNG with two panels: (a) each worker's RSS over time in the largest size's first run,
    shaded by stage; (b) rows/s per stage, one bar per size (log scale when the rates span more
    than 30x). Draws with the Agg canvas directly: no display, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rss, ax_rate = fig.subplots(2, 1, height_ratios=[1.15, 1])
    _draw_rss(ax_rss, results)
    _draw_throughput(ax_rate, results)
    fig.suptitle("Trace pipeline benchmark", fontsize=14, fontweight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _stage_spans(samples: Sequence[tuple[float, str | None]]) -> list[tuple[str, float, float]]:
    """Contiguous runs of one stage as (stage, start, end): a sample's stage holds until the
    next sample."""
    spans: list[tuple[str, float, float]] = []
    for (t, stage), (t_next, _) in itertools.pairwise(samples):
        if stage is None:
            continue
        if spans and spans[-1][0] == stage and spans[-1][2] == t:
            spans[-1] = (stage, spans[-1][1], t_next)
        else:
            spans.append((stage, t, t_next))
    return spans


def _draw_rss(ax: Axes, results: Sequence[SizeResult]) -> None:
    from matplotlib.patches import Patch

    sized = [size for size in results if size.runs]
    largest = max(sized, key=lambda size: size.cids) if sized else None
    samples = sorted(largest.runs[0].rss_series, key=lambda s: s.t) if largest else []
    ax.set_xlabel("seconds since the job was submitted")
    ax.set_ylabel("resident memory (MB)")
    if largest is None or not samples:
        ax.set_title("(a) Worker resident memory over time", loc="left")
        ax.text(0.5, 0.5, "no RSS samples", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_title(
        f"(a) Worker resident memory over time: {largest.cids:,} CIDs, first run", loc="left"
    )
    spans = _stage_spans([(s.t, s.stage) for s in samples])
    for stage, start, end in spans:
        color = STAGE_COLORS.get(stage, OTHER_STAGE_COLOR)
        ax.axvspan(start, end, color=color, alpha=0.6, lw=0, zorder=0)
    times = [s.t for s in samples]
    pids = sorted({pid for s in samples for pid in s.worker_mb})
    for pid in pids:
        mb = [s.worker_mb.get(pid, math.nan) for s in samples]
        ax.plot(times, mb, lw=1.6, label=f"worker pid {pid}", zorder=2)
    ax.axhline(
        WORKER_PEAK_GOAL_MB,
        color="crimson",
        ls="--",
        lw=1.2,
        label=f"goal {WORKER_PEAK_GOAL_MB:.0f} MB",
        zorder=3,
    )
    if times[-1] > times[0]:
        ax.set_xlim(times[0], times[-1])
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    seen = {stage for stage, _, _ in spans}
    stages = [stage for stage in STAGES if stage in seen] + sorted(seen - set(STAGES))
    handles, _labels = ax.get_legend_handles_labels()
    handles += [
        Patch(color=STAGE_COLORS.get(stage, OTHER_STAGE_COLOR), alpha=0.6, label=stage)
        for stage in stages
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _draw_throughput(ax: Axes, results: Sequence[SizeResult]) -> None:
    sizes = [size for size in by_size(results) if size.runs]
    ax.set_title("(b) Throughput per stage (median over the runs)", loc="left")
    ax.set_ylabel("rows per second")
    if not sizes:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        return
    cmap = _colormap(len(sizes))
    width = 0.8 / len(sizes)
    rates: list[float] = []
    for i, size in enumerate(sizes):
        values = [median(size, stage_rows_per_s(stage)) for stage in STAGES]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(STAGES))]
        heights = [v if v is not None else math.nan for v in values]
        bars = ax.bar(xs, heights, width * 0.92, color=cmap[i], label=f"{size.cids:,} CIDs")
        ax.bar_label(
            bars,
            labels=[formats.compact(v) if v is not None else "" for v in values],
            fontsize="x-small",
            padding=2,
        )
        rates += [v for v in values if v is not None and v > 0]
    ax.set_xticks(range(len(STAGES)), list(STAGES))
    if rates and max(rates) / min(rates) > 30:
        ax.set_yscale("log")
        ax.set_ylabel("rows per second (log scale)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="size", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _colormap(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    return [viridis(0.15 + 0.7 * i / max(n - 1, 1)) for i in range(n)]
