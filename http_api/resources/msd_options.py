"""The option lists of the mid-section-defect page (dashboard-contract §5, MSD-03 and MSD-05):
``GET /api/mid-section-defect/station-options``, ``/loss-reasons`` and
``/container-filter-options``.

Stations come from ``pipeline.workcenters`` (no warehouse). Loss reasons and the container
combinations come from the document a worker keeps in Redis (``pipeline.engine.options``): a cold
cache answers 200 with empty lists, as the old backend did, and asks a worker to fill it (once,
however many requests come meanwhile). The Type/Package cross-filter runs here over the cached
combinations (``pipeline.stages.msd.options.narrow``).

Rate limited with the job reads (bucket ``job``): the page calls them on load and after each
picker closes, a handful per analysis.
"""

from __future__ import annotations

import falcon

from http_api.models.answers import (
    ContainerFilterOptions,
    LossReasons,
    OptionsMeta,
    StationOption,
    StationOptions,
)
from http_api.models.queries import ContainerFilterQuery
from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from pipeline.engine.options import SCHEMA_VERSION
from pipeline.errors import InvalidInput, ServiceUnavailable
from pipeline.stages.msd.options import narrow
from pipeline.workcenters import GROUPS

#: Redis away is a 503, like every request.
_ERRORS = (ServiceUnavailable,)


class StationOptionsResource(Resource):
    """``GET /api/mid-section-defect/station-options``: the workcenter groups."""

    tag = "mid-section-defect"
    rate_bucket = "job"

    @operation(
        Operation(
            "getMsdStationOptions",
            "The detection stations: every workcenter group, in process order.",
            {200: Answer("The stations, sorted by `order`.", StationOptions)},
            description="`name` is what `params.station` takes; `label` the group's first "
            "workcenter pattern, as the old backend showed it (測試 shows as TMTT).",
            errors=_ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        stations: list[StationOption] = [
            {"name": g.name, "label": g.patterns[0], "order": g.order}
            for g in sorted(GROUPS, key=lambda g: g.order)
        ]
        resp.media = {"success": True, "data": stations}


class LossReasonsResource(Resource):
    """``GET /api/mid-section-defect/loss-reasons``: the loss reasons of the rejects."""

    tag = "mid-section-defect"
    rate_bucket = "job"

    @operation(
        Operation(
            "getMsdLossReasons",
            "The distinct loss reasons of the warehouse's rejects (cached by a worker).",
            {200: Answer("The loss reasons; empty while the cache is cold.", LossReasons)},
            description="A cold or stale cache asks a worker to read them again "
            "(TRACE_MSD_OPTIONS_TTL_SECONDS); a cold one answers an empty list meanwhile.",
            errors=_ERRORS,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        document = self.services.msd_options()
        reasons: LossReasons = {"loss_reasons": document["loss_reasons"] if document else []}
        resp.media = {"success": True, "data": reasons}


class ContainerFilterOptionsResource(Resource):
    """``GET /api/mid-section-defect/container-filter-options?selected=``: the Type/Package
    pickers' values, narrowed by each other's selection."""

    tag = "mid-section-defect"
    rate_bucket = "job"

    @operation(
        Operation(
            "getMsdContainerFilterOptions",
            "The Type/Package/BOP/function values of the containers, cross-filtered.",
            {
                200: Answer(
                    "Each dimension's values among the containers matching the other "
                    "dimensions' selection; empty lists while the cache is cold.",
                    ContainerFilterOptions,
                    meta=OptionsMeta,
                )
            },
            description="A dimension's own selection never narrows its own list; selected "
            "values no container has, and unknown keys, are ignored. A cold or stale cache "
            "asks a worker to read the warehouse again (TRACE_MSD_OPTIONS_TTL_SECONDS).",
            query=ContainerFilterQuery,
            errors=(InvalidInput, *_ERRORS),
        )
    )
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, query: ContainerFilterQuery
    ) -> None:
        document = self.services.msd_options()
        selection = query.selected.model_dump() if query.selected else None
        lists = narrow(document["containers"] if document else (), selection)
        answer: ContainerFilterOptions = {
            "pj_types": lists["pj_types"],
            "packages": lists["packages"],
            "bops": lists["bops"],
            "pj_functions": lists["pj_functions"],
        }
        meta: OptionsMeta = {
            "updated_at": document["updated_at"] if document else None,
            "schema_version": SCHEMA_VERSION,
        }
        resp.media = {"success": True, "data": answer, "meta": meta}
