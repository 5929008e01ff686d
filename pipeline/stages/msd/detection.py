"""The mid-section-defect analysis's own input: the detection lots and their rejects at the
detection stations, folded into a fresh ``MsdAggregator`` (before lineage and events)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pipeline import domains
from pipeline.config import Settings
from pipeline.params import TraceParams
from pipeline.sources.base import Source
from pipeline.stages.msd.folding import MsdAggregator
from pipeline.stages.msd.lot_record import LotRecordMeta
from pipeline.stages.msd.scope import DetectionScope


def prepare_aggregator(
    source: Source,
    params: TraceParams,
    seed_cids: Iterable[str],
    direction: str,
    settings: Settings,
) -> MsdAggregator:
    """An aggregator holding the detection lots of ``params`` (a date range at the stations,
    or the ``seed_cids`` themselves) and their rejects; the caller sets the lineage next, and
    closes it. ``seed_cids`` is read once (streamed, in date mode). In date mode the
    ``pj_types``/``packages`` masks keep only the detection lots of those types/packages (the
    seeds are never narrowed by them); the lots named in container mode are taken as they are
    (the dashboard hides those masks there). ``params`` come checked (``pipeline.params``);
    source errors pass through.
    """
    date_mode = params.detects(domains.MID_SECTION_DEFECT)
    # Container mode: the lots typed in, an IN list per batch, so they are held (a request's
    # worth of them).
    scope = DetectionScope.window(params) if date_mode else DetectionScope.lots(params, seed_cids)
    aggregator = _aggregator(params, direction, settings)
    try:
        if date_mode:  # the seeds given: an events request may name fewer than the window's
            aggregator.restrict_to(seed_cids)
        for batch in scope.lots_query(source):
            aggregator.add_detection_lots(batch)
        if aggregator.detected_count():
            for batch in scope.rejects_query(source, aggregator.detection_cids()):
                aggregator.add_detection_rejects(batch)
    except BaseException:
        aggregator.close()
        raise
    return aggregator


def recorded_aggregator(
    params: TraceParams,
    rows: Iterable[Sequence[Any]],
    meta: LotRecordMeta,
    settings: Settings,
) -> MsdAggregator:
    """A backward aggregator holding the detection lots of a trace's lot record (``rows`` of
    ``lot_record.COLUMNS``, streamed) under this analysis's masks, their families' use already
    in: the caller finishes it, and closes it. Nothing is asked of a source."""
    aggregator = _aggregator(params, domains.BACKWARD, settings)
    try:
        aggregator.add_recorded_lots(rows, meta)
    except BaseException:
        aggregator.close()
        raise
    return aggregator


def _aggregator(params: TraceParams, direction: str, settings: Settings) -> MsdAggregator:
    """An empty aggregator of ``params``: its stations and masks (``pj_types``/``packages`` in
    date mode only: the dashboard hides them in container mode)."""
    date_mode = params.detects(domains.MID_SECTION_DEFECT)
    return MsdAggregator(
        direction=direction,
        stations=params.stations,
        loss_reasons=params.loss_reasons,
        pj_types=params.pj_types if date_mode else (),
        packages=params.packages if date_mode else (),
        date_mode=date_mode,
        top_n=settings.pareto_top_n,
        cache_mb=settings.scratch_cache_mb,
    )
