"""The mid-section-defect page's detail table and CSV export (``/api/mid-section-defect/
analysis/detail`` and ``/export``): the detail rows of the trace's analysis under the masks the
page asks for.

The trace is found by ``trace_query_id``, or by its detection window (stations, dates,
direction) when the page lost the id (a restored session): better than the old backend, which
answered 410 there. An analysis under other masks than any finished job's is run on the trace's
checkpoints (``pipeline.engine.analyses.reanalysis``: the analysis alone), waited for up to
``TRACE_SYNC_WAIT_SECONDS``. A trace no longer stored (expired, purged, damaged) is 410
``CACHE_EXPIRED``.
"""

from __future__ import annotations

import math
from typing import Any

import falcon
import orjson
from pydantic import ValidationError

from http_api.models.answers import DetailPage
from http_api.models.queries import DetailQuery, TraceWindowQuery
from http_api.msd_export import csv_chunks
from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from pipeline import domains
from pipeline.engine import codec, keys, parts
from pipeline.engine.analyses import masks_key, reanalysis, window_key
from pipeline.engine.detail_rows import detail_page
from pipeline.engine.job import FINISHED, Job
from pipeline.engine.results import ResultGone
from pipeline.engine.store import ChunkLost
from pipeline.errors import (
    CacheExpired,
    InvalidInput,
    ServiceUnavailable,
    TraceError,
)
from pipeline.params import TraceParams
from pipeline.validation import invalid_input

EXPORT = parts.AGGREGATION_EXPORT
CSV = "text/csv"
ERRORS = (InvalidInput, CacheExpired, ServiceUnavailable)


class _Analysed(Resource):
    """Finding the analysis a query names (see the module docstring)."""

    tag = "mid-section-defect"
    rate_bucket = "job"

    def analysis(self, query: TraceWindowQuery, masks: dict[str, tuple[str, ...]]) -> Job:
        """The finished analysis of the query's trace under ``masks``."""
        trace = self._trace_id(query)
        wanted = _params(masks)
        registry = self.services.runtime.registry
        found = self.services.redis.get(keys.analysis(trace, masks_key(wanted)))
        job = registry.load(codec.as_text(found)) if found else None
        if job is not None and self._whole(job):
            return job
        source = registry.stored_trace(trace)
        if source is None:
            raise _expired(trace)
        try:
            job, _ = self.services.runtime.submit(reanalysis(source, masks))
        except ChunkLost:  # a piece of the trace gone since it was found whole
            raise _expired(trace) from None
        job = self.services.wait_for(job, self.services.settings.sync_wait_seconds)
        if job.state == FINISHED:
            return job
        if job.error and job.error["code"] == ChunkLost.code:  # the same, found by the worker
            raise _expired(trace)
        if job.error:
            raise TraceError.from_code(job.error["code"], job.error["message"])
        raise ServiceUnavailable(
            f"the analysis under these masks is still running (job {job.id}); ask again",
            meta={"job_id": job.id},
        )

    def _trace_id(self, query: TraceWindowQuery) -> str:
        if query.trace_query_id:
            return query.trace_query_id
        try:
            params = TraceParams(
                station=query.station,
                start_date=query.start_date,
                end_date=query.end_date,
                direction=query.direction,
            )
        except ValidationError as error:
            raise invalid_input(error) from None
        window = window_key(params.stations, params.start_date, params.end_date, query.direction)
        found = self.services.redis.get(keys.trace_window(window))
        if found is None:
            raise CacheExpired(
                f"no stored trace of {window.replace('|', ' ')}: run the trace again"
            )
        return codec.as_text(found)

    def _whole(self, job: Job) -> bool:
        return job.state == FINISHED and self.services.runtime.registry.flaw(job) is None


class DetailResource(_Analysed):
    """``GET /api/mid-section-defect/analysis/detail``."""

    @operation(
        Operation(
            "msdDetail",
            "A page of the mid-section-defect detail table.",
            {200: Answer("The page, worst defect rate first.", DetailPage)},
            description="Backward rows are per lot and loss reason, forward rows per lot with "
            "a detection defect. Masks: `loss_reasons` comma-joined, `pj_types[]` and "
            "`packages[]` repeated (as the page sends them). Without `trace_query_id` the trace "
            "is found by its window (`station`, dates, `direction`).",
            query=DetailQuery,
            errors=ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, query: DetailQuery) -> None:
        masks = {
            "loss_reasons": tuple(query.loss_reasons),
            "pj_types": tuple(query.pj_types),
            "packages": tuple(query.packages),
        }
        job = self.analysis(query, masks)
        size = query.page_size
        try:
            page, found = detail_page(self.services.results, job.id, (query.page - 1) * size, size)
        except ResultGone:
            raise _expired(job.trace_query_id or "") from None
        pages = math.ceil(page.total / size)
        if job.request.direction() == domains.BACKWARD:
            pages = max(pages, 1)  # the old backend's: the page shows "1 of 1" when empty
        resp.media = {
            "success": True,
            "data": {
                "detail": [_row(row) for row in found],
                "pagination": {
                    "page": query.page,
                    "page_size": size,
                    "total_count": page.total,
                    "total_pages": pages,
                },
                "trace_query_id": job.trace_query_id,
            },
        }


class ExportResource(_Analysed):
    """``GET /api/mid-section-defect/export``: every detail row as CSV."""

    @operation(
        Operation(
            "msdExport",
            "The mid-section-defect detail table as a CSV file.",
            {
                200: Answer(
                    "CSV: a UTF-8 BOM, the direction's headers, \\r\\n line ends.",
                    str,
                    media=CSV,
                    enveloped=False,
                    headers=("Content-Disposition",),
                )
            },
            description="Every detail row under the `loss_reasons` mask (the page sends no "
            "Type or Package here), streamed a stored chunk at a time.",
            query=TraceWindowQuery,
            errors=ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, query: TraceWindowQuery) -> None:
        job = self.analysis(query, {"loss_reasons": tuple(query.loss_reasons)})
        reader = self.services.results
        try:
            page = reader.part_page(job.id, EXPORT, 0, 0)  # every chunk checked to exist
        except ResultGone:
            raise _expired(job.trace_query_id or "") from None
        rows = reader.part_chunks(EXPORT, page)
        resp.content_type = f"{CSV}; charset=utf-8"
        name = f"defect_trace_{job.trace_query_id}.csv"
        resp.set_header("Content-Disposition", f"attachment; filename={name}")
        resp.stream = csv_chunks(job.request.direction(), rows)


def _row(stored: bytes | dict[str, Any]) -> dict[str, Any]:
    """A stored detail row: its JSON object (a job stored before rows were kept encoded: the
    object itself)."""
    return orjson.loads(stored) if isinstance(stored, bytes) else stored


def _params(masks: dict[str, tuple[str, ...]]) -> TraceParams:
    try:
        return TraceParams(**masks)
    except ValidationError as error:
        raise invalid_input(error) from None


def _expired(trace: str) -> CacheExpired:
    return CacheExpired(f"the trace {trace} is no longer stored: run the trace again")
