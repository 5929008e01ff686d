"""The mid-section-defect analysis's own input: the detection lots and their rejects at the
detection station, folded into a fresh ``MsdAggregator`` (before lineage and events)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch
from pipeline.sources.base import Source
from pipeline.stages import seed_resolve
from pipeline.stages.aggregation import MsdAggregator
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
    ``seed_cids`` themselves) and their rejects; the caller sets the lineage next.

    Raises ``InvalidInput`` for bad params; source errors pass through.
    """
    station = params.get("station") or DEFAULT_STATION
    date_mode = not (params.get("resolve_type") or params.get("input_type"))
    seeds = list(seed_cids)
    if date_mode:
        scope = seed_resolve.detection_scope(
            station,
            params.get("start_date"),
            params.get("end_date"),
            max_days=settings.msd_max_days,
        )
        seed_set: set[str] | None = set(seeds)  # pj_types/packages may have narrowed the seeds
    else:
        scope = seed_resolve.DetectionScope(str(station), container_ids=tuple(seeds))
        seed_set = None
    aggregator = MsdAggregator(
        direction=direction,
        station=scope.station,
        loss_reasons=loss_reasons(params.get("loss_reasons")),
        date_mode=date_mode,
        top_n=settings.pareto_top_n,
    )
    for batch in scope.lots_query(source):
        if seed_set is not None:
            at = batch.index("CONTAINERID")
            batch = RowBatch(batch.columns, [r for r in batch.rows if r[at] in seed_set])
        aggregator.add_detection_lots(batch)
    detected = [lot.cid for lot in aggregator.lots]
    if detected:
        for batch in scope.rejects_query(source, detected):
            aggregator.add_detection_rejects(batch)
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
