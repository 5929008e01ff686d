"""``GET /metrics`` (Prometheus text) and ``GET /openapi.json`` (the API's description)."""

from __future__ import annotations

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from http_api.openapi import document
from http_api.operation import TEXT, Answer, Operation, operation
from http_api.resources.base import Resource
from http_api.services import Services
from pipeline.engine.metrics import RedisCollector
from pipeline.errors import ServiceUnavailable


class MetricsResource(Resource):
    """The shared counters (jobs by event and state, stage seconds, rows written, stream bytes,
    rate-limit refusals) and the overview's gauges (queue depths, Redis memory and eviction
    policy, stalled jobs), read from Redis and the broker at each scrape: the same figures
    from any process."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RedisCollector(services.redis, services.settings, services.broker))

    @operation(
        Operation(
            "getMetrics",
            "Prometheus metrics (counters shared through Redis).",
            {200: Answer("Prometheus text format.", media=TEXT, enveloped=False)},
            errors=(ServiceUnavailable,),
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


class OpenApiResource(Resource):
    @operation(
        Operation(
            "getOpenApi",
            "This document.",
            {200: Answer("The OpenAPI 3.1 document.", enveloped=False)},
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = document()
