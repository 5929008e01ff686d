"""Access (issue 17): with ``TRACE_API_TOKEN`` set only ``/healthz`` and ``/readyz`` answer without
it; and no secret (the token, the Redis and broker passwords of their URLs, the Oracle password)
appears in any log line, error body or metric: the real stack runs with secret-looking values
on a Redis that requires a password, every route is called without the token, with wrong ones
and with the right one (bad input and hostile requests included), and the test greps every
answer, ``/metrics`` and the API's and worker's logs."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from http_api.guards import OPEN_PATHS
from http_api.openapi import document
from http_api.routes import ROUTES
from tests.chaos.conftest import RedisServer
from tests.chaos.hostile import hostile_requests
from tests.chaos.reliability import Trial
from tests.chaos.served import Answer, Client, envelope_problem, raw, stack_env, started
from tests.support.warehouse import lots

#: What answers without the token: the probes, and the monitor page's files (they hold no data;
#: the page asks for the token before it calls the API).
OPEN = OPEN_PATHS


def test_only_probes_answer_without_the_token_and_no_secret_leaks(
    trial: Trial, private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path
) -> None:
    # Given secret-looking values: the token, Redis's password (in the store's and the broker's
    # URLs), the Oracle password; a Redis that requires its password
    token = "tok-" + secrets.token_hex(16)
    redis_password = "pw-" + secrets.token_hex(12)
    oracle_password = "ora-" + secrets.token_hex(12)
    wrong = "tok-" + secrets.token_hex(16)
    server = private_redis()
    server.client().config_set("requirepass", redis_password)
    url = f"redis://:{redis_password}@127.0.0.1:{server.port}"
    env = stack_env(
        warehouse,
        url,
        TRACE_API_TOKEN=token,
        TRACE_ORACLE_PASSWORD=oracle_password,
        TRACE_BROKER_URL=f"redis://default:{redis_password}@127.0.0.1:{server.port}/1",
        TRACE_LOG_LEVEL="DEBUG",
    )
    stack = started(env, tmp_path / "logs", processes=1, threads=1, api_workers=1)
    answers: list[Answer] = []
    try:
        anonymous = Client(stack.port, "127.0.0.2")
        routes = {
            path.replace("{job_id}", "0" * 32): sorted(m.upper() for m in item)
            for path, item in document()["paths"].items()
        }
        assert {p.replace("{job_id}", "0" * 32) for p in ROUTES} == set(routes)
        # When every route and method is called without the token, with a wrong one, as Basic
        for path, methods in routes.items():
            for method in methods:
                body = b"{}" if method == "POST" else None
                for headers in (
                    {},
                    {"Authorization": f"Bearer {wrong}"},
                    {"Authorization": f"Basic {token}"},
                    {"Authorization": token},
                ):
                    answer = anonymous.send(method, path, body, headers=headers)
                    answers.append(answer)
                    trial.inputs += 1
                    # Then only the probes answer; everything else is a 401 envelope
                    if path in OPEN:
                        assert answer.status == 200, (method, path, answer.body[:300])
                    elif answer.status != 401 or envelope_problem(answer):
                        trial.failures.append(f"{method} {path} {headers}: {answer.status}")
                    elif answer.json()["error"]["code"] != "UNAUTHORIZED":
                        trial.failures.append(f"{method} {path}: {answer.json()['error']}")
        # And with the token: a session with good and bad input, hostile requests, metrics
        user = Client(stack.port, "127.0.0.3", {"Authorization": f"Bearer {token}"})
        cids = lots(warehouse, "CONTAINERID", 5)
        calls = [
            (
                "POST",
                "/api/trace/events",
                {"profile": "query_tool", "container_ids": cids, "domains": ["history"]},
            ),
            ("POST", "/api/trace/events", {"profile": "query_tool", "container_ids": [1]}),
            ("POST", "/api/trace/lineage", {"profile": "nope", "container_ids": cids}),
            ("GET", "/api/trace/job/" + "0" * 32, None),
            ("GET", "/api/trace/job-events?count=1000", None),
            ("GET", "/readyz", None),
            ("GET", f"/metrics?token={token}", None),
            ("GET", "/metrics", None),
        ]
        for method, path, body in calls:
            answer = user.json(method, path, body)
            answers.append(answer)
            trial.inputs += 1
            assert answer.status < 500 and answer.status != 401, (path, answer.body[:300])
        for n, hostile in enumerate(hostile_requests(64 << 20)[:12]):
            request = hostile.request.replace(
                b"\r\n\r\n", f"\r\nAuthorization: Bearer {token}\r\n\r\n".encode(), 1
            )
            answers.append(raw(stack.port, request, f"127.0.0.{10 + n}"))
            trial.inputs += 1
    finally:
        stack.stop()

    # Then no secret is in any answer, metric or log line
    secrets_ = {
        "token": token,
        "redis password": redis_password,
        "oracle password": oracle_password,
        "wrong token": wrong,
    }
    logs = {proc.name: proc.log.read_bytes() for proc in stack.procs}
    for name, value in secrets_.items():
        for answer in answers:
            if value.encode() in answer.body or value in str(answer.headers):
                trial.failures.append(
                    f"{name} in an answer ({answer.status}): {answer.body[:200]!r}"
                )
        for log_name, text in logs.items():
            if value.encode() in text:
                line = next(ln for ln in text.splitlines() if value.encode() in ln)
                trial.failures.append(f"{name} in the {log_name} log: {line[:300]!r}")
    trial.notes.append(
        f"{trial.inputs} requests; grepped {len(answers)} answers and "
        f"{sum(len(t.splitlines()) for t in logs.values())} log lines for 4 secrets"
    )
    assert not trial.failures, "\n".join(trial.failures)
