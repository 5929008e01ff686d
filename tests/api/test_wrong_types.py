"""Values of the wrong type are refused with 400 ``INVALID_PARAMS`` naming the field and its
position (never taken as text, never a 200), and a message names the real problem.

Each case was answered wrongly before the request models: ids that are numbers, ``null``,
booleans, lists or objects answered 200, a seed value ``{"a": 1}`` came back in ``not_found`` as
the Python text ``"{'a': 1}"``, and an analysis's bad ``lineage_job_id`` was answered
"start_date is required".
"""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

EVENTS = "/api/trace/events"
LINEAGE = "/api/trace/lineage"


def refused(client: falcon.testing.TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.simulate_post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    envelope = answer.json
    assert envelope["success"] is False and envelope["error"]["code"] == "INVALID_PARAMS"
    return envelope


@pytest.mark.parametrize("path", [EVENTS, LINEAGE])
def test_ids_that_are_not_strings_are_each_named(
    client: falcon.testing.TestClient, path: str
) -> None:
    # Given ids that are a number, null, a float and a boolean among strings
    body = {"profile": "query_tool", "container_ids": [1, 2, None, 3.5, True], "domains": ["jobs"]}
    # When they are sent, Then the answer is a 400 naming the first and listing every one
    envelope = refused(client, path, body)
    assert envelope["error"]["message"].startswith("container_ids[0]: must be a string (got 1)")
    fields = [e["field"] for e in envelope["meta"]["errors"]]
    assert fields == [f"container_ids[{i}]" for i in range(5)]


def test_ids_that_are_lists_or_objects_are_named(client: falcon.testing.TestClient) -> None:
    body = {"profile": "query_tool", "container_ids": [["a"], {"b": 1}], "domains": ["history"]}
    envelope = refused(client, EVENTS, body)
    assert [e["field"] for e in envelope["meta"]["errors"]] == [
        "container_ids[0]",
        "container_ids[1]",
    ]
    assert "container_ids[1]: must be a string (got {'b': 1})" in envelope["error"]["message"]


def test_a_seed_value_that_is_an_object_is_refused_not_reported_as_not_found(
    client: falcon.testing.TestClient,
) -> None:
    body = {"profile": "query_tool", "params": {"resolve_type": "lot_id", "values": [{"a": 1}]}}
    envelope = refused(client, "/api/trace/seed-resolve", body)
    assert envelope["meta"]["errors"][0]["field"] == "params.values[0]"
    assert "not_found" not in str(envelope)


def test_a_bad_lineage_job_id_is_named_not_a_missing_date(
    client: falcon.testing.TestClient,
) -> None:
    # Given an analysis's events request whose lineage job id is a path, not an id
    body = {
        "profile": "mid_section_defect",
        "domains": ["upstream_history"],
        "seed_container_ids": ["a"],
        "lineage_job_id": "../../x",
        "params": {"start_date": "2026-01-01", "end_date": "2026-01-31"},
    }
    # Then the answer names lineage_job_id
    envelope = refused(client, EVENTS, body)
    assert envelope["error"]["message"].startswith("lineage_job_id: ")
    assert "start_date" not in envelope["error"]["message"]
    # And with the dates missing too, both are named, the id first
    del body["params"]
    message = refused(client, EVENTS, body)["error"]["message"]
    assert message.startswith("lineage_job_id: ")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"profile": "query_tool", "container_ids": ["a"], "domains": ["history"], "fresh": 1},
            "fresh",
        ),
        (
            {"profile": "query_tool", "container_ids": "abc", "domains": ["history"]},
            "container_ids",
        ),
        ({"profile": "query_tool", "container_ids": ["a"], "domains": "history"}, "domains"),
        (
            {"profile": "query_tool", "container_ids": ["a"], "domains": ["history"], "params": []},
            "params",
        ),
        (
            {
                "profile": "mid_section_defect",
                "container_ids": ["a"],
                "domains": ["history"],
                "lineage": {"ancestors": {"a": "b"}},
            },
            "lineage.ancestors.a",
        ),
    ],
    ids=["fresh", "ids-text", "domains-text", "params-list", "lineage-map"],
)
def test_each_field_of_the_wrong_type_is_named(
    client: falcon.testing.TestClient, body: dict[str, Any], field: str
) -> None:
    envelope = refused(client, EVENTS, body)
    assert envelope["meta"]["errors"][0]["field"] == field
    assert envelope["error"]["message"].startswith(f"{field}: ")


def test_query_parameters_of_the_wrong_type_are_named(client: falcon.testing.TestClient) -> None:
    answer = client.simulate_get("/api/trace/job/" + "0" * 32 + "/result?offset=ten")
    assert answer.status_code == 400
    assert answer.json["error"]["message"] == "offset: must be an integer (got 'ten')"
