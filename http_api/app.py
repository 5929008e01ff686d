"""The WSGI application: ``create_app(settings)`` builds it with its dependencies injected;
``get_app()`` reads the environment once (for gunicorn: ``http_api.app:get_app()``)."""

from __future__ import annotations

import falcon

from http_api.errors import handle_trace_error, serialize_error
from http_api.resources.health import HealthResource
from pipeline.config import Settings
from pipeline.errors import TraceError


def create_app(settings: Settings) -> falcon.App:
    """The API with every route and the one error mapping. Resources get what they need from
    ``settings`` here (health needs nothing; the trace routes will take the store and broker)."""
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(TraceError, handle_trace_error)
    app.add_route("/healthz", HealthResource())
    return app


def get_app() -> falcon.App:
    """The API configured from the environment (read here, once)."""
    return create_app(Settings.from_env())
