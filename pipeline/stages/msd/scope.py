"""Which detection rows a mid-section-defect trace looks at, and its seeds: the lots that
tracked in at one of the detection stations in a date window (or the lots named), as queries.

The params were checked when the request was built (``pipeline.params``); a scope only turns
them into the two detection queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pipeline.params import TraceParams
from pipeline.rows import RowBatch
from pipeline.sources.base import Source
from pipeline.stages.seeds import Seed
from pipeline.workcenters import require_group, station_filter


@dataclass(frozen=True)
class DetectionScope:
    """Detection stations (a row at any of them counts) and either a date window
    (``start_date`` <= track-in < ``end_date``, end exclusive) or a list of lots."""

    stations: tuple[str, ...]
    start_date: dt.date | None = None
    end_date: dt.date | None = None  # exclusive
    container_ids: tuple[str, ...] = ()

    @classmethod
    def window(cls, params: TraceParams) -> DetectionScope:
        """The detection window of checked params (both dates given; the end day included)."""
        assert params.start_date is not None and params.end_date is not None
        end = params.end_date + dt.timedelta(days=1)
        return cls(params.stations, params.start_date, end)

    @classmethod
    def lots(cls, params: TraceParams, cids: Iterable[str]) -> DetectionScope:
        """The lots named (container mode), at the params' stations, any day."""
        return cls(params.stations, container_ids=tuple(cids))

    def ranges(self, count: int) -> list[DetectionScope]:
        """This window cut at whole days into at most ``count`` consecutive ranges of as
        near the same number of days as can be (fewer when it has fewer days; ``[self]`` for a
        list of lots or ``count`` 1). Each lot tracked in within exactly one of them; a lot
        detected in two ranges is the latest range's in the window (``merge_ranges``)."""
        if self.container_ids or self.start_date is None or self.end_date is None:
            return [self]
        days = (self.end_date - self.start_date).days
        count = max(1, min(count, days))
        cuts = [self.start_date + dt.timedelta(days=days * i // count) for i in range(count + 1)]
        return [DetectionScope(self.stations, start, end) for start, end in pairwise(cuts)]

    def station_filter(self, column: str) -> tuple[str, dict[str, str]]:
        """The predicate (an OR over the stations) on ``column``, and its binds."""
        return station_filter(column, *(require_group(name) for name in self.stations))

    def lots_query(self, source: Source) -> Iterator[RowBatch]:
        """Detection lots (one row per lot) in this scope, sorted by lot name."""
        predicate, binds = self.station_filter("h.WORKCENTERNAME")
        if self.container_ids:
            return source.query_in(
                "msd/detection_lots",
                "cids",
                self.container_ids,
                binds,
                fragments={"station_filter": predicate, "scope": "h.CONTAINERID IN (:cids)"},
            )
        return source.query(
            "msd/detection_lots",
            {**binds, "start_date": self.start_date, "end_date": self.end_date},
            fragments={
                "station_filter": predicate,
                "scope": "h.TRACKINTIMESTAMP >= :start_date AND h.TRACKINTIMESTAMP < :end_date",
            },
        )

    def rejects_query(self, source: Source, cids: Iterable[str]) -> Iterator[RowBatch]:
        """Rejects of ``cids`` at the stations (per lot and loss reason), within the window."""
        predicate, station_binds = self.station_filter("r.WORKCENTERNAME")
        binds: dict[str, Any] = dict(station_binds)
        window = ""
        if not self.container_ids:
            window = " AND r.TXNDATE >= :start_date AND r.TXNDATE < :end_date"
            binds.update(start_date=self.start_date, end_date=self.end_date)
        return source.query_in(
            "msd/detection_rejects",
            "cids",
            cids,
            binds,
            fragments={"station_filter": predicate, "window": window},
        )


def detection_seeds(source: Source, params: TraceParams) -> Iterator[Seed]:
    """The seeds of a detection window, in lot-name order (the query sorts them), streamed:
    a date range may hold hundreds of thousands of lots. The analysis's masks (``pj_types``,
    ``packages``, ``loss_reasons``) never narrow them: they apply when the analysis reads the
    detection lots, so one seed set serves every mask."""
    scope = DetectionScope.window(params)
    for batch in scope.lots_query(source):
        cid_at, name_at = batch.index("CONTAINERID"), batch.index("CONTAINERNAME")
        for row in batch.rows:
            name = row[name_at] or row[cid_at]
            yield Seed(row[cid_at], name, name)
