"""Protection applied to every request before a resource runs: the bearer token, the body size,
and the per-client rate limits (shared across gunicorn workers through Redis)."""

from __future__ import annotations

import hmac
import time
from typing import Any

import falcon
import redis

from http_api.body import too_large
from pipeline.config import Settings
from pipeline.engine import keys, metrics
from pipeline.errors import TooManyRequests, Unauthorized

#: Paths anyone may call (load balancers and probes carry no token).
OPEN_PATHS = frozenset(("/healthz", "/readyz"))


class TokenGuard:
    """With ``TRACE_API_TOKEN`` set, every path but ``OPEN_PATHS`` needs
    ``Authorization: Bearer <token>`` (401 otherwise)."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.token or req.path in OPEN_PATHS:
            return
        scheme, _, given = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token
        ):
            raise Unauthorized("a valid bearer token is required (Authorization: Bearer <token>)")


class BodyLimit:
    """A declared body over ``TRACE_MAX_BODY_BYTES`` is refused (413) before it is read;
    ``read_body`` enforces the same limit on bodies without a length."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_length is not None and req.content_length > self.max_bytes:
            raise too_large(self.max_bytes)


def client_address(req: falcon.Request, trusted: frozenset[str]) -> str:
    """The client: the connection's address, or the first untrusted address of
    ``X-Forwarded-For`` when the connection comes from a trusted proxy."""
    remote = req.remote_addr or "unknown"
    if remote not in trusted:
        return remote
    hops = [h.strip() for h in (req.get_header("X-Forwarded-For") or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return remote


class RateLimit:
    """Fixed-window request counters per client and bucket in Redis (one ``INCR`` per request).

    A resource names its bucket in ``rate_bucket`` (``job``: status, result, stream;
    ``submit``: the POSTs); resources without one are not limited.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.window = settings.rate_limit_window_seconds
        self.limits = {
            "job": settings.rate_limit_requests,
            "submit": settings.submit_rate_limit_requests,
        }
        self.trusted = settings.proxies

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        bucket = getattr(resource, "rate_bucket", None)
        if bucket is None or req.method == "OPTIONS":
            return
        wait = self.hit(bucket, client_address(req, self.trusted))
        if wait:
            metrics.count(self.redis, "rate_limited", bucket=bucket)
            raise TooManyRequests(
                f"too many requests: at most {self.limits[bucket]} per {self.window} s",
                retry_after=wait,
            )

    def hit(self, bucket: str, client: str) -> int:
        """Count one request; 0 when allowed, else the seconds until the window ends."""
        now = time.time()
        window = int(now // self.window)
        key = keys.rate(bucket, client, window)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.window + 1)
        used = int(pipe.execute()[0])
        if used <= self.limits[bucket]:
            return 0
        return max(1, int((window + 1) * self.window - now + 0.999))
