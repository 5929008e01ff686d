"""A job's stored request reads back equal to the request, its id lists taken as stored."""

from __future__ import annotations

import orjson
import pytest

from pipeline.engine.job import stored_request
from pipeline.errors import InvalidInput
from pipeline.request import TraceRequest

REQUESTS = [
    {"profile": "query_tool", "container_ids": [" A ", "B", "A"], "domains": ["history"]},
    {"profile": "query_tool", "kind": "lineage", "container_ids": ["A", "B"]},
    {
        "profile": "mid_section_defect",
        "container_ids": ["A", "B", "C"],
        "seed_container_ids": ["A"],
        "domains": ["upstream_history", "materials"],
        "params": {"start_date": "2026-01-01", "end_date": "2026-01-31"},
    },
    {"profile": "query_tool", "kind": "events", "lineage_job_id": "f" * 32, "domains": ["history"]},
]


@pytest.mark.parametrize("given", REQUESTS)
def test_a_stored_request_reads_back_equal(given: dict[str, object]) -> None:
    request = TraceRequest.from_dict(given)
    back = stored_request(orjson.dumps(request.as_dict()))
    assert back == request
    assert back.container_ids == request.container_ids
    assert back.seed_container_ids == request.seed_container_ids
    assert back.fingerprint() == request.fingerprint()


def test_the_rules_still_judge_the_stored_request() -> None:
    # An events request with no lots at all is refused, stored or not
    stored = orjson.dumps({"profile": "query_tool", "kind": "events", "domains": ["history"]})
    with pytest.raises(InvalidInput, match="container_ids"):
        stored_request(stored)
