"""Machine families for the attribution's labels, looked up in the warehouse's resource table.

Only the label comes from here: the analysis itself is done before the look-up (the engine and
the runner ask for the families of the equipment ids the attribution names, then build the
result with them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pipeline.errors import SourceQueryError
from pipeline.sources.base import Source
from pipeline.stages.msd.pareto import UNKNOWN

log = logging.getLogger(__name__)


def machine_families(source: Source, equipment_ids: Iterable[str]) -> dict[str, str]:
    """``RESOURCEFAMILYNAME`` per equipment id, from ``DWH.DW_MES_RESOURCE``.

    The family only labels the attribution rows, and that table lies outside the trace's data
    model: when the warehouse refuses the query (no such table, no grant) every family reads
    ``(未知)`` and a warning is logged, rather than failing an analysis whose work is done.
    A transient error (``SourceUnavailable``) still propagates, so the stage is retried.
    """
    families: dict[str, str] = {}
    try:
        for batch in source.query_in("msd/resource_families", "ids", equipment_ids):
            families.update((rid, family) for rid, family in batch.rows if family)
    except SourceQueryError as error:
        log.warning("machine families unavailable, shown as %s: %s", UNKNOWN, error.message)
        return {}
    return families
