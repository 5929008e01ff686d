"""Hostile input (issue 17): whatever a client sends, a clear 4xx in the JSON envelope naming
the problem, never HTML, never a 5xx.

* the hand-written list (``tests.chaos.hostile``: 1M CIDs, bodies over the limit, wrong types,
  unicode and control characters, SQL metacharacters, hostile job ids, what gunicorn refuses
  itself) against the real gunicorn and worker;
* schemathesis over the generated OpenAPI document, positive and negative cases of every
  operation through the WSGI app (the approach of ``tests/api/test_openapi.py``): CI runs a few
  hundred cases, ``ops/chaos`` at least 5,000.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from http_api.openapi import document
from tests.api import test_openapi as openapi_tests
from tests.api.conftest import AppFactory, api_env, api_redis, make_app  # noqa: F401 (fixtures)
from tests.chaos.conftest import RedisServer
from tests.chaos.hostile import hostile_requests
from tests.chaos.reliability import Trial, scale
from tests.chaos.served import Client, envelope_problem, raw, stack_env, started

MAX_BODY_BYTES = 32 << 20
FUZZ_CASES = scale(300, 5000)
#: Names a user could type that look like attacks.
ODD = [
    "' OR '1'='1",
    "x'); DROP TABLE DW_MES_CONTAINER; --",
    "%",
    "_",
    "\\",
    "\u0001\u001f",
    "\u202eLOT",
    "批號💥",
    "\ufeff",
    "a" * 4000,
]
OPERATIONS = [
    (path, method.upper()) for path, item in document()["paths"].items() for method in item
]


def test_hostile_requests_get_a_clear_4xx_envelope_from_the_real_server(
    trial: Trial,
    private_redis: Callable[..., RedisServer],
    warehouse: Path,
    tmp_path: Path,
) -> None:
    # Given the real stack (gunicorn, a worker) with a 32 MiB body limit
    env = stack_env(warehouse, private_redis().url, TRACE_MAX_BODY_BYTES=str(MAX_BODY_BYTES))
    stack = started(env, tmp_path / "logs", processes=1, threads=1, api_workers=1)
    try:
        # When each hostile request is sent as it is
        statuses: Counter[int] = Counter()
        for hostile in hostile_requests(MAX_BODY_BYTES):
            answer = raw(stack.port, hostile.request)
            statuses[answer.status] += 1
            trial.inputs += 1
            # Then each gets its 4xx, as the envelope naming the problem
            problem = envelope_problem(answer)
            if problem is None and (answer.status, answer.json()["error"]["code"]) != (
                hostile.status,
                hostile.code,
            ):
                problem = f"{answer.status} {answer.json()['error']} (want {hostile.status} "
                problem += f"{hostile.code})"
            if problem:
                trial.failures.append(f"{hostile.name}: {problem}")
        trial.notes.append(f"hand-written hostile requests: {dict(sorted(statuses.items()))}")
        # And names full of SQL metacharacters, control and other unicode characters are data:
        # bound values that match nothing (200, every one not found), never an error or a hit
        resolve = {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": ODD}}
        answer = Client(stack.port, "127.0.0.1").json("POST", "/api/trace/seed-resolve", resolve)
        trial.inputs += 1
        assert answer.status == 200, answer.body[:500]
        data = answer.json()["data"]
        typed = {name.strip() for name in ODD}  # names are trimmed, as a user types them
        assert (data["seed_count"], set(data["not_found"])) == (0, typed)
        # And the server still serves
        assert raw(stack.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").status == 200
    finally:
        stack.stop()
    assert not trial.failures, "\n".join(trial.failures) + "\n" + stack.logs()[-3000:]


def test_fuzzed_requests_never_get_a_server_error(
    trial: Trial,
    make_app: AppFactory,  # noqa: F811 (the fixture imported above)
    warehouse: Path,
) -> None:
    # Given the app with a token, rate limits out of the way, and real jobs to ask about
    client, _ = make_app(**openapi_tests.FUZZ_ENV)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", client.app, headers=openapi_tests.AUTH)
    jobs = openapi_tests.finished_jobs(client, warehouse)
    statuses: Counter[str] = Counter()
    began = time.monotonic()
    per_operation = -(-FUZZ_CASES // len(OPERATIONS))
    # When schemathesis sends positive and negative cases of every operation
    plans = []
    auth = openapi_tests.AUTH
    for path, method in OPERATIONS:
        operation = schema[path][method]
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, headers=auth),
            operation.as_strategy(GenerationMode.NEGATIVE, headers=auth),
        )
        if "{job_id}" in path:
            cases = st.one_of(
                cases,
                st.sampled_from(jobs).flatmap(
                    lambda job_id, op=operation: op.as_strategy(
                        GenerationMode.POSITIVE, headers=auth, path_parameters={"job_id": job_id}
                    )
                ),
            )
        checks = openapi_tests.CHECKS
        if path == "/readyz":  # no worker process: 503 NOT_READY is its documented answer
            checks = [c for c in checks if c is not openapi_tests.not_a_server_error]

        plans.append((cases, checks, path == "/readyz"))
    # (an operation with few inputs, /healthz, is exhausted early: rounds until the count is met)
    for _ in range(20):
        for cases, checks, allow_5xx in plans:
            fuzz(cases, per_operation, checks, allow_5xx=allow_5xx, statuses=statuses)
        if statuses["cases"] >= FUZZ_CASES:
            break
    trial.inputs += statuses["cases"]
    trial.notes.append(
        f"schemathesis: {statuses['cases']} cases over {len(OPERATIONS)} operations in "
        f"{time.monotonic() - began:.0f} s: 2xx {statuses['2xx']}, 4xx {statuses['4xx']}, "
        f"5xx {statuses['5xx']} (readiness's documented 503 NOT_READY included)"
    )
    assert statuses["cases"] >= FUZZ_CASES, statuses


def fuzz(
    cases: st.SearchStrategy[Any],
    examples: int,
    checks: list[Any],
    *,
    allow_5xx: bool,
    statuses: Counter[str],
) -> None:
    """Send ``examples`` cases; count answers by status class in ``statuses``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def run(case: Any) -> None:
        response = case.call()
        statuses[f"{response.status_code // 100}xx"] += 1
        statuses["cases"] += 1
        # Then every answer is documented, and none is a 5xx (but readiness's 503)
        case.validate_response(response, checks=checks, headers=openapi_tests.AUTH)
        assert allow_5xx or response.status_code < 500, response.text

    run()
