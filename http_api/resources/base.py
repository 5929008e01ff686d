"""What every resource shares: the services it was built with, its OpenAPI tag, its rate-limit
bucket (``http_api.guards.RateLimit``: ``job`` for status, result, stream and the event log,
``submit`` for the POSTs, ``None`` for none)."""

from __future__ import annotations

from typing import ClassVar

from http_api.services import Services


class Resource:
    tag: ClassVar[str] = "ops"
    rate_bucket: ClassVar[str | None] = None

    def __init__(self, services: Services) -> None:
        self.services = services
