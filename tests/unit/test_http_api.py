"""The HTTP package: the app factory, health, and the error envelope (never HTML)."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from http_api.app import create_app
from pipeline.config import Settings
from pipeline.errors import InvalidInput, SourceQueryError, SourceUnavailable


@pytest.fixture
def client() -> falcon.testing.TestClient:
    app = create_app(Settings())

    class Boom:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise InvalidInput("values is empty", field="values")

        def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise SourceQueryError("oracle: ORA-00942")

        def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise SourceUnavailable("oracle: ORA-03113")

        def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise ZeroDivisionError("a bug")

    app.add_route("/boom", Boom())
    return falcon.testing.TestClient(app)


def test_health_answers_without_dependencies(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/healthz")
    assert result.status_code == 200
    assert result.json == {"success": True, "data": {"status": "ok"}}


def test_an_unknown_route_is_a_json_envelope_not_html(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/nowhere", headers={"Accept": "text/html"})
    assert result.status_code == 404
    assert result.headers["content-type"].startswith("application/json")
    assert result.json["success"] is False and result.json["error"]["code"] == "NOT_FOUND"


def test_bad_input_is_400_with_its_code_and_message(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/boom")
    assert result.status_code == 400
    assert result.json == {
        "success": False,
        "error": {"code": "INVALID_PARAMS", "message": "values is empty"},
    }


def test_other_trace_errors_are_500_without_a_stack_trace(
    client: falcon.testing.TestClient,
) -> None:
    result = client.simulate_post("/boom")
    assert result.status_code == 500
    assert result.json["error"]["code"] == "SOURCE_QUERY_FAILED"
    assert "Traceback" not in result.text


def test_a_warehouse_that_is_away_is_503_with_retry_after(
    client: falcon.testing.TestClient,
) -> None:
    result = client.simulate_put("/boom")
    assert result.status_code == 503 and result.headers["retry-after"] == "30"
    assert result.json["error"]["code"] == "SOURCE_UNAVAILABLE"
    assert result.json["meta"] == {"retry_after_seconds": 30}


def test_a_bug_is_500_internal_error_without_its_trace(client: falcon.testing.TestClient) -> None:
    result = client.simulate_delete("/boom")
    assert result.status_code == 500
    assert result.json["error"]["code"] == "INTERNAL_ERROR"
    assert "ZeroDivisionError" not in result.text and "Traceback" not in result.text
