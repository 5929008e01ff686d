"""Protection applied to every request before a resource runs: the bearer token, the body size,
and the per-client rate limits (shared across gunicorn workers through Redis)."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import falcon
import redis

from http_api.body import too_large
from http_api.static_files import PAGE_PATHS
from pipeline.config import Settings
from pipeline.engine import keys, metrics
from pipeline.errors import TooManyRequests, Unauthorized

#: Paths anyone may call: load balancers and probes carry no token; the monitor page's files
#: hold no data (the page asks for the token and sends it with its API calls).
OPEN_PATHS = frozenset(("/healthz", "/readyz", *PAGE_PATHS))


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


#: Longest job id a per-job counter is keyed by (ids are 32 characters; a longer one is a 404,
#: but a flood of 8 KB ids must not make 8 KB keys).
MAX_JOB_ID_KEY = 64


@dataclass(frozen=True)
class Counter:
    """One fixed-window counter a request adds to: its Redis key, its limit, what it limits."""

    key: str
    limit: int
    scope: str  # the metric's ``bucket`` label
    what: str  # for the 429's message: "at most <limit> per <window> s <what>"


class RateLimit:
    """Fixed-window request counters in Redis, shared by every gunicorn worker: a request adds
    one to each counter it falls under, in one pipelined round trip, and is refused (429
    ``TOO_MANY_REQUESTS``, ``Retry-After`` the rest of the window) when any is over its limit.

    A resource names its bucket in ``rate_bucket``; resources without one are not limited.

    * ``submit`` (the POSTs): ``TRACE_SUBMIT_RATE_LIMIT_REQUESTS`` per client.
    * ``job`` (status, cancel, result, stream, the event log): ``TRACE_RATE_LIMIT_REQUESTS`` per
      client, all jobs together; and a request naming a job in its path also counts against
      ``TRACE_RATE_LIMIT_PER_JOB_REQUESTS`` per client and that job. A client may follow many
      jobs at once (the dashboard polls each stage's job every 3 s), a loop on one job is
      stopped at the per-job limit, and a flood over many jobs at the client's.

    Refused requests count too: a client that keeps flooding stays refused to the window's end.
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.window = settings.rate_limit_window_seconds
        self.limits = {
            "job": settings.rate_limit_requests,
            "submit": settings.submit_rate_limit_requests,
        }
        self.per_job = settings.rate_limit_per_job_requests
        self.trusted = settings.proxies

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        bucket = getattr(resource, "rate_bucket", None)
        if bucket is None or req.method == "OPTIONS":
            return
        job_id = params.get("job_id") if bucket == "job" else None
        now = time.time()
        window = int(now // self.window)
        over = self.hit(self.counters(bucket, client_address(req, self.trusted), job_id, window))
        if over is not None:
            metrics.count(self.redis, "rate_limited", bucket=over.scope)
            raise TooManyRequests(
                f"too many requests: at most {over.limit} per {self.window} s{over.what}",
                retry_after=max(1, int((window + 1) * self.window - now + 0.999)),
            )

    def counters(self, bucket: str, client: str, job_id: str | None, window: int) -> list[Counter]:
        """The counters a request of ``client`` to ``bucket`` (and job ``job_id``) adds to."""
        found = [Counter(keys.rate(bucket, client, window), self.limits[bucket], bucket, "")]
        if job_id is not None:
            job = job_id[:MAX_JOB_ID_KEY]
            key = keys.rate_per_job(client, job, window)
            found.append(Counter(key, self.per_job, "per_job", " to one job"))
        return found

    def hit(self, counters: list[Counter]) -> Counter | None:
        """Add one to each counter; the first one over its limit, or ``None``."""
        pipe = self.redis.pipeline(transaction=False)
        for counter in counters:
            pipe.incr(counter.key)
            pipe.expire(counter.key, self.window + 1)
        used = pipe.execute()[::2]
        return next((c for c, n in zip(counters, used, strict=True) if int(n) > c.limit), None)
