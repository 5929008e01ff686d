"""Hand-written hostile requests, each with the 4xx it must get as a JSON envelope: wrong types,
huge bodies (declared and sent), 1M CIDs, unicode and control characters, SQL metacharacters,
hostile job ids, and what gunicorn refuses before the app. Sent to the real gunicorn by
``test_hostile`` and, for its memory figures, by ``test_load``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import orjson

JOB = "/api/trace/job/"


@dataclass(frozen=True)
class Hostile:
    name: str
    request: bytes  # the whole HTTP/1.1 request, sent as it is
    status: int  # the answer it must get
    code: str  # its error code


def http_request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def post(path: str, body: object, status: int, code: str, name: str) -> Hostile:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Hostile(name, http_request("POST", path, data), status, code)


def events(ids: object, **more: object) -> dict[str, object]:
    return {"profile": "query_tool", "container_ids": ids, "domains": ["history"], **more}


def hostile_requests(max_body_bytes: int) -> list[Hostile]:
    """Every hostile request; ``max_body_bytes`` is the stack's ``TRACE_MAX_BODY_BYTES``."""
    million = [f"{i:016X}" for i in range(1_000_000)]
    bad = "INVALID_PARAMS"
    found: list[Hostile] = [
        # sizes
        post("/api/trace/events", events(million), 413, "CID_LIMIT_EXCEEDED", "1M CIDs"),
        post(
            "/api/trace/lineage",
            {"profile": "query_tool", "container_ids": million},
            413,
            "CID_LIMIT_EXCEEDED",
            "1M CIDs to lineage",
        ),
        Hostile(
            "a body declared over the limit (only its start sent)",
            http_request("POST", "/api/trace/events", b"").replace(
                b"Content-Length: 0", f"Content-Length: {max_body_bytes + 1}".encode()
            )
            + b'{"profile": "'
            + b"x" * 65536,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        post("/api/trace/events", b"[" * 100_000, 400, bad, "100,000 nested lists"),
        post("/api/trace/events", b'{"a": "' + b"x" * (8 << 20), 400, bad, "8 MB unterminated"),
        # wrong types and shapes
        post("/api/trace/events", events([1, None, {}]), 400, bad, "ids of the wrong types"),
        post("/api/trace/events", events("A", domains="history"), 400, bad, "domains a string"),
        post("/api/trace/events", [events(["A"])], 400, bad, "a list, not an object"),
        post("/api/trace/events", b"", 400, bad, "an empty body"),
        post("/api/trace/events", b"\xff\xfe\x00garbage", 400, bad, "bytes that are not UTF-8"),
        post(
            "/api/trace/seed-resolve",
            {"profile": 5, "params": {}},
            400,
            "INVALID_PROFILE",
            "a number as profile",
        ),
        post(
            "/api/trace/events",
            events(["A"], domains=["history; DROP TABLE x"]),
            400,
            bad,
            "SQL in a domain name",
        ),
        post(
            "/api/trace/seed-resolve",
            {
                "profile": "query_tool",
                "params": {"resolve_type": "lot_id' OR '1'='1", "values": ["A"]},
            },
            400,
            bad,
            "SQL in a resolve type",
        ),
        post(
            "/api/trace/events",
            events(["A"], lineage_job_id="../../etc/passwd"),
            400,
            bad,
            "a path as lineage job id",
        ),
        post(
            "/api/trace/seed-resolve",
            {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": ["\u0000*"]}},
            400,
            bad,
            "a wildcard after a control character only",
        ),
        post(
            "/api/trace/events",
            b'{"profile": "query_tool", "container_ids": ["\\ud800"]}',
            400,
            bad,
            "a lone surrogate",
        ),
        post(
            "/api/trace/jobs",
            {
                "profile": "mid_section_defect",
                "params": {"start_date": "2026-13-45", "end_date": "\U0001f4a5"},
            },
            400,
            bad,
            "dates that are no dates",
        ),
    ]
    # A job id that is no id is a job nobody has (the id's form is not checked on GET)
    gone = "JOB_NOT_FOUND"
    for job_id in (quote("' OR 1=1 --"), "%00", quote("\u202eé💥"), "x" * 2000, "0" * 31 + "g"):
        found.append(
            Hostile(f"job id {job_id[:20]!r}", http_request("GET", JOB + job_id), 404, gone)
        )
    found.append(
        Hostile(
            "a path as job id",
            http_request("GET", JOB + "..%2F..%2Fetc%2Fpasswd"),
            404,
            "NOT_FOUND",
        )
    )
    found.append(
        Hostile("?offset=-1", http_request("GET", JOB + "0" * 32 + "/result?offset=-1"), 400, bad)
    )
    found.append(
        Hostile(
            "?follow=1';--",
            http_request("GET", JOB + "0" * 32 + "/stream?follow=1%27%3B--"),
            400,
            bad,
        )
    )
    # what gunicorn refuses itself
    found += [
        Hostile("a 10 KB path", http_request("GET", JOB + "x" * 10_240), 414, "URI_TOO_LONG"),
        Hostile(
            "a 10 KB header",
            http_request("GET", "/healthz", headers="X-Big: " + "y" * 10_240 + "\r\n"),
            431,
            "REQUEST_TOO_LARGE",
        ),
        Hostile(
            "200 headers",
            http_request("GET", "/healthz", headers="".join(f"X-{i}: v\r\n" for i in range(200))),
            431,
            "REQUEST_TOO_LARGE",
        ),
        Hostile(
            "a control character in a header",
            http_request("GET", "/healthz", headers="X-A: a\x01b\r\n"),
            400,
            "BAD_REQUEST",
        ),
        Hostile("garbage", b"NOT AN HTTP REQUEST\r\n\r\n", 400, "BAD_REQUEST"),
        Hostile(
            "a NUL in the path",
            b"GET /api/trace/\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
            "BAD_REQUEST",
        ),
    ]
    return found
