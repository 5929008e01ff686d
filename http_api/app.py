"""The WSGI application: ``create_app(settings, services)`` builds it with its dependencies
injected; ``get_app()`` reads the environment once (gunicorn: ``ops/gunicorn.conf.py`` names
``http_api.app:get_app()`` as its ``wsgi_app``)."""

from __future__ import annotations

from typing import Any

import falcon
import redis

from http_api.errors import (
    RedisDownHandler,
    TraceErrorHandler,
    handle_unexpected,
    serialize_error,
)
from http_api.guards import BodyLimit, RateLimit, TokenGuard
from http_api.resources.events_log import JobEventsResource
from http_api.resources.health import HealthResource, ReadyResource
from http_api.resources.job import JobResource, JobResultResource, JobStreamResource
from http_api.resources.ops import MetricsResource, OpenApiResource
from http_api.resources.trace import (
    EventsResource,
    JobsResource,
    LineageResource,
    SeedResolveResource,
)
from http_api.services import Services
from pipeline import logs
from pipeline.config import Settings
from pipeline.errors import TraceError

#: Every route: path -> resource factory (the OpenAPI test checks the document against these).
ROUTES = {
    "/healthz": lambda s: HealthResource(),
    "/readyz": ReadyResource,
    "/metrics": MetricsResource,
    "/openapi.json": lambda s: OpenApiResource(),
    "/api/trace/seed-resolve": SeedResolveResource,
    "/api/trace/lineage": LineageResource,
    "/api/trace/events": EventsResource,
    "/api/trace/jobs": JobsResource,
    "/api/trace/job/{job_id}": JobResource,
    "/api/trace/job/{job_id}/result": JobResultResource,
    "/api/trace/job/{job_id}/stream": JobStreamResource,
    "/api/trace/job-events": JobEventsResource,
}


def create_app(settings: Settings, services: Services | None = None) -> falcon.App:
    """The API with every route, the guards and the one error mapping."""
    services = services or Services.from_settings(settings)
    guards: list[Any] = [
        TokenGuard(settings.api_token),
        BodyLimit(settings.max_body_bytes),
        RateLimit(services.redis, settings),
    ]
    app = falcon.App(middleware=guards)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    # Falcon picks the most specific handler for an exception's class.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(redis.RedisError, RedisDownHandler(settings.retry_after_seconds))
    app.add_error_handler(TraceError, TraceErrorHandler(settings.retry_after_seconds))
    for path, factory in ROUTES.items():
        app.add_route(path, factory(services))
    return app


def get_app() -> falcon.App:
    """The API configured from the environment (read here, once); its log lines are logfmt
    (``pipeline.logs``)."""
    settings = Settings.from_env()
    logs.install(settings.log_level)
    return create_app(settings)
