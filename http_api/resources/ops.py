"""``GET /metrics`` (Prometheus text) and ``GET /openapi.json`` (the API's description)."""

from __future__ import annotations

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from http_api.openapi import document
from http_api.services import Services
from pipeline.engine.metrics import RedisCollector


class MetricsResource:
    """The shared counters (jobs by event and state, stage seconds, rows written, stream bytes,
    rate-limit refusals), read from Redis at each scrape: the same figures from any process."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RedisCollector(services.redis, services.settings.stall_seconds))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


class OpenApiResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = document()
