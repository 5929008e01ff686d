"""The dashboard's July 2026 front end, as a test client: what it sends and what it reads, written
from ``../shared/reference/dashboard-contract.md`` (citations are the contract's aliases).

It trusts the service the way that client does: a body with ``async: true`` and a ``status_url``
is followed (poll, then for events the stream when there is a ``stream_url``, else and for the
other stages ``{status_url}/result``: UTP:312, 368, 439-523),
anything else is the stage's result (no branching on 200 vs 202, UTP:296); it never retries a
404/409/429/5xx (POLL:52-96), except the query tool's lineage POST on 429 (LOT:243-255); a status
call over 15 s ends the trace silently (``Abandoned``); stream lines of type ``error``,
``complete`` and ``domain_end`` are ignored, so a stream that ends in an error looks finished
(UTP:470-511). A test that drives the service with it sees what the dashboard would show.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

#: The client's own timeouts (API:5, UTP:9, POLL:68).
STAGE_TIMEOUT = 360.0
STATUS_TIMEOUT = 15.0
#: Status polls are 3 s apart (POLL:3); tests may shorten it, keeping the loop the same.
POLL_SECONDS = 3.0
POLL_GIVE_UP = 30 * 60.0  # POLL:4
#: The MSD domain sets (UTP:13-17).
MSD_DOMAINS = {
    "backward": ["upstream_history", "materials"],
    "forward": ["upstream_history", "downstream_rejects"],
}


class StageError(Exception):
    """What the page would show: a non-2xx answer (API:81-102) or a failed job (POLL:82-86)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Abandoned(Exception):
    """A call outran the client's timeout: the dashboard aborts and shows nothing (UTP:533-536)."""


@dataclass
class JulyClient:
    """The dashboard at ``host:port``; ``poll_seconds`` is its status-poll interval."""

    host: str
    port: int
    poll_seconds: float = POLL_SECONDS
    #: Every answer's status code, in order (a test checks no 429 came).
    statuses: list[int] = field(default_factory=list)

    # ---- transport (API:81-133, 202-271) --------------------------------------------------
    def _send(
        self, method: str, path: str, body: Any, timeout: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Accept": "application/json"}
            payload = None
            if body is not None:
                payload = orjson.dumps(body)
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.statuses.append(response.status)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except TimeoutError as error:
            raise Abandoned(f"{method} {path} took over {timeout} s") from error
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None, timeout: float = 90.0) -> Any:
        """The answer's ``data`` (or the raw body when it has none, UTP:63-68); ``StageError``
        for any non-2xx."""
        status, _headers, data = self._send(method, path, body, timeout)
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            raw = {"message": data.decode(errors="replace")}
        if not 200 <= status < 300:
            raise _error(status, raw)
        if isinstance(raw, dict) and raw.get("success") is True and "data" in raw:
            return raw["data"]
        return raw

    # ---- a stage, followed the client's way (UTP:285-523) ----------------------------------
    def stage(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a stage; follow it when the answer is async; its final result."""
        payload = self.call("POST", path, body, timeout=STAGE_TIMEOUT)
        if not (payload.get("async") is True and payload.get("status_url")):
            return payload  # type: ignore[no-any-return]
        self.poll(payload["status_url"])
        if path.endswith("/events") and payload.get("stream_url"):  # seeds, lineage: /result
            result = self.stream(payload["stream_url"])
        else:
            result = self.call("GET", payload["status_url"] + "/result", timeout=STAGE_TIMEOUT)
        result.setdefault("_accepted", payload)
        return result  # type: ignore[no-any-return]

    def poll(self, status_url: str) -> dict[str, Any]:
        """GET the status at once, then every ``poll_seconds``, until ``finished`` or
        ``completed``; ``failed`` raises ``JOB_FAILED`` (POLL:52-96)."""
        deadline = time.monotonic() + POLL_GIVE_UP
        while True:
            status = self.call("GET", status_url, timeout=STATUS_TIMEOUT)
            state = status.get("status")
            if state in ("finished", "completed"):
                return status  # type: ignore[no-any-return]
            if state == "failed":
                raise StageError(200, "JOB_FAILED", status.get("error") or "非同步查詢失敗")
            if time.monotonic() > deadline:
                raise StageError(0, "JOB_POLL_TIMEOUT", "polling timed out")
            time.sleep(self.poll_seconds)

    def stream(self, stream_url: str) -> dict[str, Any]:
        """The NDJSON stream read as UTP:439-514 reads it (``error``/``complete`` ignored)."""
        status, _headers, data = self._send("GET", stream_url, None, timeout=STAGE_TIMEOUT)
        if status != 200:
            raise StageError(
                status, "STREAM_FAILED", f"Stream request failed: HTTP {status} {data[:200]!r}"
            )
        result: dict[str, Any] = {
            "stage": "events",
            "results": {},
            "aggregation": None,
            "quality_meta": None,
            "domain_quality_meta": {},
        }
        for text in data.split(b"\n"):
            try:
                line = orjson.loads(text.strip())
            except orjson.JSONDecodeError:
                continue
            kind = line.get("type") if isinstance(line, dict) else None
            if kind == "meta":
                result["query_id"] = line.get("query_id")
                result["trace_query_id"] = line.get("trace_query_id")
            elif kind == "domain_start":
                domain = line["domain"]
                result["results"][domain] = {
                    "data": [],
                    "count": 0,
                    "total": line.get("total"),
                    "quality_meta": line.get("quality_meta"),
                }
                result["domain_quality_meta"][domain] = line.get("quality_meta")
            elif kind == "records" and line.get("domain") in result["results"]:
                domain_result = result["results"][line["domain"]]
                domain_result["data"].extend(line.get("data") or [])
                domain_result["count"] = len(domain_result["data"])
            elif kind == "aggregation":
                result["aggregation"] = line.get("data")
            elif kind == "quality_meta":
                result["quality_meta"] = line.get("quality_meta")
                result["domain_quality_meta"] = line.get("domain_quality_meta") or {}
            elif kind == "warning":
                result["error"] = line.get("code")
                result["failed_domains"] = line.get("failed_domains")
            elif kind == "full_result":
                result.update(line.get("data") or {})
        return result

    # ---- the pages' flows -----------------------------------------------------------------
    def msd_trace(self, params: Mapping[str, Any]) -> MsdTrace:
        """The mid-section-defect page's three stages (UTP:283-408): seeds, lineage (its
        ``query_id`` kept), events with the seeds only and ``lineage_query_id``."""
        profile = "mid_section_defect"
        seed = self.stage("/api/trace/seed-resolve", {"profile": profile, "params": params})
        seeds = _seed_ids(seed)
        trace = MsdTrace(seed=seed, seeds=seeds)
        if not seeds:
            return trace  # UTP:325-328: the flow stops, no error
        cache_key = seed.get("cache_key")
        trace.lineage = self.stage(
            "/api/trace/lineage",
            {"profile": profile, "container_ids": seeds, "cache_key": cache_key, "params": params},
        )
        accepted = trace.lineage.get("_accepted") or {}
        query_id = trace.lineage.get("query_id") or accepted.get("query_id")
        body: dict[str, Any] = {
            "profile": profile,
            "container_ids": seeds,
            "domains": MSD_DOMAINS[params.get("direction", "backward")],
            "cache_key": cache_key,
            "params": params,
            "seed_container_ids": seeds,
        }
        if query_id:
            body["lineage_query_id"] = query_id
        trace.lineage_query_id = query_id
        trace.events = self.stage("/api/trace/events", body)
        return trace

    def tree(self, profile: str, container_ids: Iterable[str]) -> dict[str, Any]:
        """The query tool's lineage call (LOT:225-255, REV:239-269): a 429 is waited out up to
        3 times (``Retry-After``, else 2^attempt, clamped to 1..30 s)."""
        body = {"profile": profile, "container_ids": list(container_ids)}
        for attempt in range(4):
            try:
                return self.stage("/api/trace/lineage", body)
            except StageError as error:
                if error.status != 429 or attempt == 3:
                    raise
                time.sleep(min(max(2.0**attempt, 1.0), 30.0))
        raise AssertionError("unreachable")


@dataclass
class MsdTrace:
    """What the MSD page holds after a trace."""

    seed: dict[str, Any]
    seeds: list[str]
    lineage: dict[str, Any] = field(default_factory=dict)
    lineage_query_id: str | None = None
    events: dict[str, Any] = field(default_factory=dict)

    @property
    def aggregation(self) -> dict[str, Any] | None:
        return self.events.get("aggregation")

    @property
    def trace_query_id(self) -> str | None:
        return self.events.get("trace_query_id")


def _seed_ids(seed: Mapping[str, Any]) -> list[str]:
    """``seed_container_ids`` (deduplicated), else ``seeds[].container_id`` (UTP:76-105)."""
    ids = seed.get("seed_container_ids") or [s.get("container_id") for s in seed.get("seeds") or ()]
    return list(dict.fromkeys(i for i in ids if i))


def _error(status: int, raw: Any) -> StageError:
    """The message and code the page would show (API:81-102)."""
    body = raw if isinstance(raw, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        return StageError(status, error.get("code") or body.get("code"), error.get("message", ""))
    message = error if isinstance(error, str) else body.get("message") or f"HTTP {status}"
    return StageError(status, body.get("code"), message)
