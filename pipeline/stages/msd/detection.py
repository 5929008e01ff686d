"""The mid-section-defect analysis's own input: the detection lots and their rejects at the
detection station, folded into a fresh ``MsdAggregator`` (before lineage and events)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.sources.base import Source
from pipeline.stages import seed_resolve
from pipeline.stages.msd.folding import MsdAggregator
from pipeline.workcenters import DEFAULT_STATION


def check_params(params: Mapping[str, Any], settings: Settings) -> None:
    """The checks ``prepare_aggregator`` makes before any query (``InvalidInput`` naming the
    problem): an events request that will aggregate is refused at once, not in its job."""
    if not (params.get("resolve_type") or params.get("input_type")):
        seed_resolve.detection_scope(
            params.get("station") or DEFAULT_STATION,
            params.get("start_date"),
            params.get("end_date"),
            max_days=settings.msd_max_days,
        )
    loss_reasons(params.get("loss_reasons"))


def prepare_aggregator(
    source: Source,
    params: Mapping[str, Any],
    seed_cids: Iterable[str],
    direction: str,
    settings: Settings,
) -> MsdAggregator:
    """An aggregator holding the detection lots of ``params`` (a date range at a station, or the
    ``seed_cids`` themselves) and their rejects; the caller sets the lineage next, and closes it.
    ``seed_cids`` is read once (streamed, in date mode).

    Raises ``InvalidInput`` for bad params; source errors pass through.
    """
    station = params.get("station") or DEFAULT_STATION
    date_mode = not (params.get("resolve_type") or params.get("input_type"))
    if date_mode:
        scope = seed_resolve.detection_scope(
            station,
            params.get("start_date"),
            params.get("end_date"),
            max_days=settings.msd_max_days,
        )
    else:  # the lots typed in: an IN list per batch, so they are held (a request's worth)
        scope = seed_resolve.DetectionScope(str(station), container_ids=tuple(seed_cids))
    aggregator = MsdAggregator(
        direction=direction,
        station=scope.station,
        loss_reasons=loss_reasons(params.get("loss_reasons")),
        date_mode=date_mode,
        top_n=settings.pareto_top_n,
        cache_mb=settings.scratch_cache_mb,
    )
    try:
        if date_mode:  # pj_types/packages may have narrowed the seeds
            aggregator.restrict_to(seed_cids)
        for batch in scope.lots_query(source):
            aggregator.add_detection_lots(batch)
        if aggregator.lot_count():
            for batch in scope.rejects_query(source, aggregator.detection_cids()):
                aggregator.add_detection_rejects(batch)
    except BaseException:
        aggregator.close()
        raise
    return aggregator


def loss_reasons(value: object) -> list[str]:
    """The ``loss_reasons`` param as a list (a list, or one comma-separated string)."""
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise InvalidInput("loss_reasons must be a list of strings", field="loss_reasons")
    return [str(v).strip() for v in value if str(v).strip()]
