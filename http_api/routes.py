"""Every route of the API: path -> resource class (``create_app`` builds each with the
services; the OpenAPI document is generated from their declared operations)."""

from __future__ import annotations

from http_api.resources.base import Resource
from http_api.resources.events_log import JobEventsResource
from http_api.resources.health import HealthResource, ReadyResource
from http_api.resources.job import JobResource, JobResultResource, JobStreamResource
from http_api.resources.monitor import MONITOR_ROUTES
from http_api.resources.msd_detail import DetailResource, ExportResource
from http_api.resources.msd_options import (
    ContainerFilterOptionsResource,
    LossReasonsResource,
    StationOptionsResource,
)
from http_api.resources.operators import (
    OpsJobResource,
    OpsJobsResource,
    OpsOverviewResource,
    OpsPurgeResource,
    OpsRetryResource,
)
from http_api.resources.ops import MetricsResource, OpenApiResource
from http_api.resources.trace import (
    EventsResource,
    JobsResource,
    LineageResource,
    SeedResolveResource,
)

ROUTES: dict[str, type[Resource]] = {
    "/healthz": HealthResource,
    "/readyz": ReadyResource,
    "/metrics": MetricsResource,
    "/openapi.json": OpenApiResource,
    "/api/trace/seed-resolve": SeedResolveResource,
    "/api/trace/lineage": LineageResource,
    "/api/trace/events": EventsResource,
    "/api/trace/jobs": JobsResource,
    "/api/trace/job/{job_id}": JobResource,
    "/api/trace/job/{job_id}/result": JobResultResource,
    "/api/trace/job/{job_id}/stream": JobStreamResource,
    "/api/trace/job-events": JobEventsResource,
    "/api/mid-section-defect/analysis/detail": DetailResource,
    "/api/mid-section-defect/export": ExportResource,
    "/api/mid-section-defect/station-options": StationOptionsResource,
    "/api/mid-section-defect/loss-reasons": LossReasonsResource,
    "/api/mid-section-defect/container-filter-options": ContainerFilterOptionsResource,
    "/api/ops/jobs": OpsJobsResource,
    "/api/ops/jobs/{job_id}": OpsJobResource,
    "/api/ops/jobs/{job_id}/retry": OpsRetryResource,
    "/api/ops/jobs/{job_id}/purge": OpsPurgeResource,
    "/api/ops/overview": OpsOverviewResource,
    **MONITOR_ROUTES,  # GET /monitor: the operators' page, and its files
}
