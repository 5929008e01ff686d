"""Finding a finished mid-section-defect analysis again, for the page's detail table and export:
by the trace's ``trace_query_id``, or (a page restored without it) by its detection window; and
under the masks asked for, running the analysis again on the trace's checkpoints when no job
has those masks yet.

Three indexes, written when an analysis finishes (``JobRegistry.finish``), each a Redis string
with the job TTL: the trace's latest job (``keys.trace_query``), its latest job per set of masks
(``keys.analysis``), and a detection window's latest trace (``keys.trace_window``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.engine import keys
from pipeline.engine.job import Job
from pipeline.params import MASKS, TraceParams
from pipeline.request import EVENTS, TraceRequest


def masks_key(params: TraceParams) -> str:
    """A short digest of the masks (``loss_reasons``, ``pj_types``, ``packages``), sorted: equal
    for the same selection in any order."""
    masks = {name: sorted(getattr(params, name)) for name in MASKS}
    return hashlib.sha256(orjson.dumps(masks, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def window_key(stations: tuple[str, ...], start: Any, end: Any, direction: str) -> str:
    """The detection window's key: stations in process order, dates, direction."""
    return f"{','.join(stations)}|{start}|{end}|{direction}"


def index_writes(job: Job) -> Mapping[str, str]:
    """What a finished ``job`` indexes: ``{key: value}`` (nothing for a job without a trace
    id; an analysis also by its masks and, in date mode, by its window)."""
    trace = job.trace_query_id
    if not trace:
        return {}
    found = {keys.trace_query(trace): job.id}
    request = job.request
    if request.aggregates:
        params = request.params
        found[keys.analysis(trace, masks_key(params))] = job.id
        if params.detects(request.profile) and params.start_date and params.end_date:
            window = window_key(
                params.stations, params.start_date, params.end_date, request.direction()
            )
            found[keys.trace_window(window)] = trace
    return found


def reanalysis(trace_job: Job, masks: Mapping[str, tuple[str, ...]]) -> TraceRequest:
    """An analysis of ``trace_job``'s trace under ``masks``: its seeds, lineage and lots taken
    from that job, its committed events read in place (``events_of``), so only the analysis
    runs."""
    request = trace_job.request
    params = request.params.model_copy(update=dict(masks))
    return TraceRequest(
        profile=request.profile,
        params=params,
        domains=request.domains,
        kind=EVENTS,
        lineage_job_id=trace_job.id,
        events_of=trace_job.id,
    )
