"""``GET /healthz`` (the process is up) and ``GET /readyz`` (it can serve: Redis, the broker
and the warehouse reachable, live workers seen, and a Redis that will not evict job keys)."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from http_api.models.answers import Check, Health, Readiness
from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from pipeline.engine.metrics import live_workers
from pipeline.engine.overview import eviction_policy, evicts
from pipeline.errors import NotReady


class HealthResource(Resource):
    @operation(
        Operation(
            "getHealth",
            "The process is up.",
            {200: Answer("Always.", Health)},
            open_access=True,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        health: Health = {"status": "ok"}
        resp.media = {"success": True, "data": health}


class ReadyResource(Resource):
    """200 when every check passes, else 503 ``NOT_READY`` with each check's verdict."""

    @operation(
        Operation(
            "getReadiness",
            "The service can serve: Redis (noeviction), broker, warehouse, live workers.",
            {200: Answer("Every check passed.", Readiness)},
            errors=(NotReady,),
            open_access=True,
        )
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {
            "redis": self._check(self._redis),
            "eviction": self._check(self._eviction),
            "broker": self._check(self._broker),
            "source": self._check(self._source),
            "workers": self._check(self._workers),
        }
        if all(c["ok"] for c in checks.values()):
            ready: Readiness = {"status": "ready", "checks": checks}
            resp.media = {"success": True, "data": ready}
            return
        failing = "; ".join(f"{name}: {c['detail']}" for name, c in checks.items() if not c["ok"])
        raise NotReady(failing, meta={"status": "not ready", "checks": checks})

    @staticmethod
    def _check(probe: Callable[[], str]) -> Check:
        try:
            return {"ok": True, "detail": probe()}
        except Exception as error:  # every failure is a verdict here, never a 500
            return {"ok": False, "detail": f"{type(error).__name__}: {error}"}

    def _redis(self) -> str:
        self.services.redis.ping()
        return "ping ok"

    def _eviction(self) -> str:
        policy = eviction_policy(self.services.redis)
        if evicts(policy):
            raise RuntimeError(
                f"maxmemory-policy is {policy!r}: Redis may evict job keys (set noeviction)"
            )
        return policy

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
