"""``GET /healthz`` (the process is up) and ``GET /readyz`` (it can serve: Redis, the broker
and the warehouse reachable, live workers seen, and a Redis that will not evict job keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from http_api.services import Services
from pipeline.engine.metrics import live_workers


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"success": True, "data": {"status": "ok"}}


class ReadyResource:
    """200 when every check passes, else 503 with each check's verdict."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {
            "redis": self._check(self._redis),
            "eviction": self._check(self._eviction),
            "broker": self._check(self._broker),
            "source": self._check(self._source),
            "workers": self._check(self._workers),
        }
        ready = all(c["ok"] for c in checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", str(self.services.settings.retry_after_seconds))
        data = {"status": "ready" if ready else "not ready", "checks": checks}
        if ready:
            resp.media = {"success": True, "data": data}
        else:
            resp.media = {
                "success": False,
                "error": {"code": "NOT_READY", "message": _failing(checks)},
                "meta": data,
            }

    @staticmethod
    def _check(probe: Callable[[], str]) -> dict[str, Any]:
        try:
            return {"ok": True, "detail": probe()}
        except Exception as error:  # every failure is a verdict here, never a 500
            return {"ok": False, "detail": f"{type(error).__name__}: {error}"}

    def _redis(self) -> str:
        self.services.redis.ping()
        return "ping ok"

    def _eviction(self) -> str:
        found = self.services.redis.config_get("maxmemory-policy")
        policy = {_text(k): _text(v) for k, v in found.items()}.get("maxmemory-policy")
        if policy != "noeviction":
            raise RuntimeError(
                f"maxmemory-policy is {policy!r}: Redis may evict job keys (set noeviction)"
            )
        return "noeviction"

    def _broker(self) -> str:
        broker = self.services.broker
        if broker is None:
            return "not configured (in-process dispatch)"
        client = getattr(broker, "client", None)
        if client is not None:  # Redis broker
            client.ping()
            return "redis ping ok"
        getattr(broker, "connection")  # RabbitMQ: opens (or reuses) the connection  # noqa: B009
        return "amqp connection ok"

    def _source(self) -> str:
        source = self.services.source()
        if source is None:
            return "not configured"
        source.ping()
        return f"{source.dialect} reachable"

    def _workers(self) -> str:
        alive = live_workers(self.services.redis, self.services.settings.stall_seconds)
        if alive < 1:
            raise RuntimeError("no worker heartbeat seen (start: dramatiq pipeline.actors)")
        return f"{alive} worker process(es) alive"


def _failing(checks: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{name}: {c['detail']}" for name, c in checks.items() if not c["ok"])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
