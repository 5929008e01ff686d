"""The WSGI application: ``create_app(settings, services)`` builds it with its dependencies
injected; ``get_app()`` reads the environment once (gunicorn: ``ops/gunicorn.conf.py`` names
``http_api.app:get_app()`` as its ``wsgi_app``)."""

from __future__ import annotations

from typing import Any

import falcon

from http_api import errors
from http_api.guards import BodyLimit, RateLimit, TokenGuard
from http_api.routes import ROUTES
from http_api.services import Services
from pipeline import logs
from pipeline.config import Settings

__all__ = ["ROUTES", "create_app", "get_app"]


def create_app(settings: Settings, services: Services | None = None) -> falcon.App:
    """The API with every route, the guards and the one error mapping (``http_api.errors``)."""
    services = services or Services.from_settings(settings)
    guards: list[Any] = [
        TokenGuard(settings.api_token),
        BodyLimit(settings.max_body_bytes),
        RateLimit(services.redis, settings),
    ]
    app = falcon.App(middleware=guards)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app, settings.retry_after_seconds)
    for path, resource in ROUTES.items():
        app.add_route(path, resource(services))
    return app


def get_app() -> falcon.App:
    """The API configured from the environment (read here, once); its log lines are logfmt
    (``pipeline.logs``)."""
    settings = Settings.from_env()
    logs.install(settings.log_level)
    return create_app(settings)
