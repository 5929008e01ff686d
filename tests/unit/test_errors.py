"""Errors by class: each error the API can answer is a class under ``TraceError`` carrying its
status and code, and the one mapping (``http_api.errors``) answers every class with them."""

from __future__ import annotations

import falcon
import falcon.testing
import orjson
import pytest

from http_api.app import create_app
from http_api.server import error_bytes, server_error
from pipeline.config import Settings
from pipeline.engine.context import BatchAttemptsExceeded, JobInactive
from pipeline.engine.results import JobEnded, ResultIncomplete
from pipeline.engine.store import ChunkLost
from pipeline.errors import (
    InvalidInput,
    MalformedRequest,
    SeedResolveFailed,
    SourceUnavailable,
    TooManyRequests,
    TraceError,
    UriTooLong,
)


def every_error_class() -> list[type[TraceError]]:
    found: list[type[TraceError]] = []
    todo: list[type[TraceError]] = [TraceError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


#: How the errors whose constructor takes more than a message are raised.
MADE = {
    TooManyRequests: lambda: TooManyRequests("slow down", retry_after=7),
    ChunkLost: lambda: ChunkLost("events:history", 3, "trace:job:x:chunk", "is missing"),
    ResultIncomplete: lambda: ResultIncomplete("history", 3, "a chunk is missing"),
    JobEnded: lambda: JobEnded("failed", "the job is failed"),
}


def raise_one(kind: type[TraceError]) -> TraceError:
    """An instance of ``kind`` as the code raises it."""
    made = MADE.get(kind)
    return made() if made is not None else kind("what went wrong")


#: Errors defined beside the engine code that raises them (imported: so they are defined).
ENGINE_ERRORS = (BatchAttemptsExceeded, JobInactive, ChunkLost, ResultIncomplete, JobEnded)
ERRORS = every_error_class()
assert set(ENGINE_ERRORS) <= set(ERRORS)


def test_every_code_belongs_to_one_class_with_a_status() -> None:
    # A subclass may keep its parent's code (the same answer, raised from elsewhere); no two
    # classes declare the same code.
    declared = [kind.code for kind in ERRORS if "code" in vars(kind)]
    assert len(declared) == len(set(declared)), sorted(declared)
    for kind in ERRORS:
        assert kind.code.isupper() and 400 <= kind.status <= 599, kind
        assert kind.__doc__, f"{kind.__name__}: its docstring is its OpenAPI description"


@pytest.mark.parametrize("kind", ERRORS, ids=lambda k: k.__name__)
def test_the_api_answers_each_class_with_its_status_code_and_envelope(
    kind: type[TraceError],
) -> None:
    error = raise_one(kind)

    class Raising:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise error

    app = create_app(Settings(retry_after_seconds=30))
    app.add_route("/raise", Raising())
    answer = falcon.testing.TestClient(app).simulate_get("/raise")
    assert answer.status_code == kind.status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["success"] is False
    assert answer.json["error"] == {"code": error.code, "message": error.message}
    if kind.status in (429, 503):
        seconds = "7" if kind is TooManyRequests else "30"
        assert answer.headers["retry-after"] == seconds
        assert answer.json["meta"]["retry_after_seconds"] == int(seconds)
    if kind.status == 401:
        assert answer.headers["www-authenticate"] == 'Bearer realm="trace"'


def test_a_stored_code_comes_back_as_its_class() -> None:
    assert type(TraceError.from_code("SOURCE_UNAVAILABLE", "away")) is SourceUnavailable
    unknown = TraceError.from_code("TIME_LIMIT_EXCEEDED", "over 300 s")
    assert (unknown.code, unknown.status) == ("TIME_LIMIT_EXCEEDED", 500)
    refused = TraceError.from_code("SOME_INPUT_RULE", "bad", bad_input=True)
    assert isinstance(refused, InvalidInput) and refused.code == "SOME_INPUT_RULE"


def test_a_stage_failure_has_its_causes_status_and_code() -> None:
    failed = SeedResolveFailed.because(SourceUnavailable("ORA-03113"))
    assert (failed.code, failed.status, failed.meta) == (
        "SEED_RESOLVE_FAILED",
        503,
        {"cause": "SOURCE_UNAVAILABLE"},
    )


def test_gunicorns_own_refusals_are_our_classes_as_json() -> None:
    from gunicorn.http.errors import InvalidRequestLine, LimitRequestLine

    assert isinstance(server_error(LimitRequestLine(10_000, 8190)), UriTooLong)
    assert isinstance(server_error(InvalidRequestLine("x")), MalformedRequest)
    answer = error_bytes(UriTooLong("the request line is too long"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 Request-URI Too Long\r\n")
    assert b"Content-Type: application/json" in head and b"<html" not in answer
    assert orjson.loads(body) == {
        "success": False,
        "error": {"code": "URI_TOO_LONG", "message": "the request line is too long"},
    }
