"""Result pages (offset and limit found through the page index) and the NDJSON stream: order,
chunk-by-chunk records, a lost chunk, following a running job, resuming from a cursor."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from http_api.services import Services
from pipeline.engine import keys, parts
from tests.api.conftest import AppFactory
from tests.api.helpers import lot_ids, ndjson, post_events, wait_status

DOMAINS = ["history", "materials", "holds"]


def finished_job(client: falcon.testing.TestClient, warehouse: Path, lots: int = 250) -> str:
    answer = post_events(client, warehouse, lots, DOMAINS)
    assert answer.status_code == 200, answer.text
    return str(answer.json["data"]["job_id"])


def all_rows(client: falcon.testing.TestClient, job_id: str, domain: str) -> list[Any]:
    page = client.simulate_get(f"/api/trace/job/{job_id}/result", params={"domain": domain})
    rows: list[Any] = page.json["data"]["results"][domain]["data"]
    assert len(rows) == page.json["data"]["results"][domain]["total"]
    return rows


def chunk_edges(services: Services, job_id: str, domain: str) -> list[int]:
    """The row offsets where the domain's chunks start (from the page index, whose last member
    marks the end)."""
    index = keys.page_index(job_id, parts.events(domain))
    found = services.redis.zrange(index, 0, -1, withscores=True)
    return [int(score) for _member, score in found[:-1]]


@pytest.fixture
def job(api: tuple[falcon.testing.TestClient, Services], warehouse: Path) -> str:
    return finished_job(api[0], warehouse)


def test_pages_at_around_and_past_chunk_edges_are_slices_of_the_whole_domain(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    rows = all_rows(client, job, "history")
    edges = chunk_edges(services, job, "history")
    assert len(edges) > 3, "the domain must span several chunks for this test to mean anything"
    total = len(rows)
    cases = {(0, 1), (0, 0), (total - 1, 5), (total, 5), (total + 10, 5), (total - 7, 0)}
    for edge in edges[1:4]:
        cases |= {(edge - 1, 2), (edge, 3), (edge + 1, 400), (edge - 1, 1), (edge, 0)}
    for offset, limit in sorted(cases):
        answer = client.simulate_get(
            f"/api/trace/job/{job}/result",
            params={"domain": "history", "offset": offset, "limit": limit},
        )
        page = answer.json["data"]["results"]["history"]
        expected = rows[offset : offset + limit] if limit else rows[offset:]
        assert page["data"] == expected, (offset, limit)
        assert page["count"] == len(expected) and page["total"] == total


def test_walking_pages_gives_every_row_once_and_the_last_page_is_short(
    client: falcon.testing.TestClient, job: str
) -> None:
    rows = all_rows(client, job, "materials")
    walked: list[Any] = []
    offset = 0
    while True:
        page = client.simulate_get(
            f"/api/trace/job/{job}/result",
            params={"domain": "materials", "offset": offset, "limit": 37},
        ).json["data"]["results"]["materials"]
        walked += page["data"]
        if page["count"] < 37:
            break
        offset += 37
    assert walked == rows and len(walked) % 37 == page["count"]


def test_without_domain_every_domain_gets_its_page(
    client: falcon.testing.TestClient, job: str
) -> None:
    data = client.simulate_get(
        f"/api/trace/job/{job}/result", params={"offset": 2, "limit": 3}
    ).json["data"]
    assert list(data["results"]) == DOMAINS
    for page in data["results"].values():
        assert page["count"] == len(page["data"]) <= 3


@pytest.mark.parametrize(
    "params",
    [{"offset": "-1"}, {"limit": "ten"}, {"limit": "-5"}, {"offset": "1.5"}, {"domain": "weather"}],
)
def test_bad_page_parameters_are_400(
    client: falcon.testing.TestClient, job: str, params: dict[str, str]
) -> None:
    answer = client.simulate_get(f"/api/trace/job/{job}/result", params=params)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "INVALID_PARAMS"
    assert next(iter(params)) in answer.json["error"]["message"]


def test_a_domain_the_job_did_not_fetch_has_no_page(
    client: falcon.testing.TestClient, job: str
) -> None:
    data = client.simulate_get(f"/api/trace/job/{job}/result", params={"domain": "rejects"}).json[
        "data"
    ]
    assert data["results"] == {}


def test_the_stream_follows_the_contracts_order_one_records_line_per_chunk(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    lines = ndjson(client.simulate_get(f"/api/trace/job/{job}/stream").text)
    meta = services.runtime.registry.load(job)
    assert meta is not None and meta.trace_query_id and meta.trace_query_id.startswith("trace-")
    assert lines[0] == {
        "type": "meta", "job_id": job, "profile": "query_tool", "domains": DOMAINS,
        "query_id": None, "trace_query_id": meta.trace_query_id, "follow": False,
    }  # fmt: skip
    assert [line["type"] for line in lines[-2:]] == ["quality_meta", "complete"]
    at = 1
    total = 0
    for domain in DOMAINS:
        start = lines[at]
        assert start["type"] == "domain_start" and start["domain"] == domain
        records = []
        at += 1
        while lines[at]["type"] == "records":
            records.append(lines[at])
            at += 1
        end = lines[at]
        at += 1
        assert end == {"type": "domain_end", "domain": domain, "count": start["total"]}
        assert [r["batch"] for r in records] == list(range(len(records)))
        assert len(records) == len(chunk_edges(services, job, domain))
        rows = [row for r in records for row in r["data"]]
        assert all(r["count"] == len(r["data"]) for r in records)
        assert rows == all_rows(client, job, domain)
        total += len(rows)
    assert lines[-1] == {"type": "complete", "total_records": total}


@pytest.mark.parametrize("name", ["offset", "limit"])
def test_an_offset_or_limit_past_any_json_integer_is_a_400_naming_it(
    client: falcon.testing.TestClient, job: str, name: str
) -> None:
    # 2^64 once reached the answer, which could not encode it (a 500 found by the fuzz)
    page = client.simulate_get(f"/api/trace/job/{job}/result", params={name: str(2**64)})
    assert page.status_code == 400 and page.json["error"]["code"] == "INVALID_PARAMS"
    assert name in page.json["error"]["message"]


def test_a_stream_without_records_sends_each_domains_row_count_only(
    client: falcon.testing.TestClient, job: str
) -> None:
    whole = ndjson(client.simulate_get(f"/api/trace/job/{job}/stream").text)
    bare = ndjson(client.simulate_get(f"/api/trace/job/{job}/stream?records=0").text)
    assert [line for line in whole if line["type"] != "records"] == bare
    assert any(line["type"] == "records" for line in whole)


def test_a_lost_chunk_is_refused_before_the_first_byte(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    # Given the third chunk of materials is gone (evicted, expired)
    entry = services.runtime.store.manifest(job, parts.events("materials"))
    refs = [ref for e in entry.values() for ref in e.chunks]
    services.redis.delete(refs[2].key)
    # When the result is streamed, or any page of it asked for (the page's own chunks are all
    # there), it is refused with the envelope before the first byte: never a 200 that ends in
    # an error line, which the dashboard would ignore
    for path, params in (
        ("stream", {}),
        ("result", {"domain": "materials"}),
        ("result", {"domain": "history"}),
    ):
        answer = client.simulate_get(f"/api/trace/job/{job}/{path}", params=params)
        assert answer.status_code == 410, (path, params, answer.text[:300])
        assert answer.json["error"]["code"] == "JOB_RESULT_DAMAGED"
        assert answer.json["meta"]["job_id"] == job
    # And the job is marked damaged: an equal request never joins it again
    assert "gone" in (services.runtime.registry.damaged(job) or "")


def test_a_lost_manifest_is_refused_not_answered_short(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    # Given the manifest of materials is gone (evicted), its chunks and page index still there
    services.redis.delete(keys.manifest(job, parts.events("materials")))
    # Then the stream and the pages are refused: the stream once read no chunk of materials
    # and ended "complete" with fewer records, a wrong answer that looked whole
    for path, params in (("stream", {}), ("result", {"domain": "history", "limit": "5"})):
        answer = client.simulate_get(f"/api/trace/job/{job}/{path}", params=params)
        assert answer.status_code == 410, (path, params, answer.text[:300])
        assert answer.json["error"]["code"] == "JOB_RESULT_DAMAGED"
        assert "manifest" in answer.json["error"]["message"]


def test_a_chunk_lost_after_a_read_is_still_found_by_the_next_one(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    # Given a page was read (what the check learnt of the job may be kept between requests)
    first = client.simulate_get(f"/api/trace/job/{job}/result", params={"limit": "5"})
    assert first.status_code == 200, first.text[:300]
    # When a chunk outside that page is gone afterwards
    entry = services.runtime.store.manifest(job, parts.events("holds"))
    refs = [ref for e in entry.values() for ref in e.chunks]
    services.redis.delete(refs[-1].key)
    # Then the next page is refused before its first byte
    again = client.simulate_get(f"/api/trace/job/{job}/result", params={"limit": "5"})
    assert again.status_code == 410 and again.json["error"]["code"] == "JOB_RESULT_DAMAGED"


def test_a_chunk_that_fails_its_checksum_ends_the_stream_with_an_error(
    api: tuple[falcon.testing.TestClient, Services], job: str
) -> None:
    client, services = api
    entry = services.runtime.store.manifest(job, parts.events("history"))
    ref = next(iter(entry.values())).chunks[0]
    services.redis.set(ref.key, b"\x90")  # an empty msgpack list: valid, but not what was stored
    lines = ndjson(client.simulate_get(f"/api/trace/job/{job}/stream").text)
    assert lines[-1]["type"] == "error" and "checksum" in lines[-1]["message"]
    # And the job is marked damaged: an equal request never joins it again, and the next read
    # is refused before its first byte
    assert "checksum" in (services.runtime.registry.damaged(job) or "")
    again = client.simulate_get(f"/api/trace/job/{job}/stream")
    assert again.status_code == 410 and again.json["error"]["code"] == "JOB_RESULT_DAMAGED"


def test_a_stream_resumes_from_a_domain_and_batch(
    client: falcon.testing.TestClient, job: str
) -> None:
    whole = ndjson(client.simulate_get(f"/api/trace/job/{job}/stream").text)
    resumed = ndjson(
        client.simulate_get(f"/api/trace/job/{job}/stream", params={"from": "materials:2"}).text
    )

    def records(lines: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return [(x["domain"], x["batch"]) for x in lines if x["type"] == "records"]

    expected = [
        r for r in records(whole) if DOMAINS.index(r[0]) > 0 and (r[0] != "materials" or r[1] >= 2)
    ]
    assert records(resumed) == expected
    assert resumed[-1] == whole[-1]  # the same complete line: totals count the skipped rows
    bad = client.simulate_get(f"/api/trace/job/{job}/stream", params={"from": "rejects:1"})
    assert bad.status_code == 400 and "domain:batch" in bad.json["error"]["message"]


def test_follow_streams_a_running_job_and_ends_with_complete(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    dispatcher = services.runtime.dispatch
    gate = threading.Event()
    original = services.runtime.handle

    def slow_handle(job_id: str, key: Any, *, resumed: bool = False) -> None:
        gate.wait(10)  # nothing runs until the stream is open
        original(job_id, key, resumed=resumed)

    services.runtime.handle = slow_handle  # type: ignore[method-assign]
    answer = post_events(client, warehouse, 250, DOMAINS)
    job_id = answer.json["data"]["job_id"]
    assert client.simulate_get(f"/api/trace/job/{job_id}/stream").status_code == 409
    threading.Timer(0.3, gate.set).start()
    followed = ndjson(
        client.simulate_get(f"/api/trace/job/{job_id}/stream", params={"follow": "1"}).text
    )
    dispatcher.drain()  # type: ignore[attr-defined]
    assert wait_status(client, job_id)["status"] == "finished"
    after = ndjson(client.simulate_get(f"/api/trace/job/{job_id}/stream").text)
    assert followed[0]["follow"] is True and followed[-1]["type"] == "complete"
    # A followed stream's meta line is sent before the trace's id is known.
    assert followed[0]["trace_query_id"] is None and after[0]["trace_query_id"]
    volatile = ("follow", "trace_query_id")
    strip = [
        {k: v for k, v in x.items() if k not in volatile}
        for x in followed
        if x["type"] != "domain_start"
    ]
    assert strip == [
        {k: v for k, v in x.items() if k not in volatile}
        for x in after
        if x["type"] != "domain_start"
    ]


def test_following_a_job_that_is_cancelled_ends_with_an_error(
    make_app: AppFactory, warehouse: Path
) -> None:
    client, services = make_app(TRACE_ASYNC_CID_THRESHOLD=10)
    services.runtime.dispatch.stop()  # type: ignore[attr-defined]  # the job never runs
    answer = client.simulate_post(
        "/api/trace/events",
        json={"profile": "query_tool", "container_ids": lot_ids(warehouse, 30), "domains": DOMAINS},
    )
    job_id = answer.json["data"]["job_id"]
    threading.Timer(0.5, lambda: services.runtime.registry.cancel(job_id)).start()
    lines = ndjson(
        client.simulate_get(f"/api/trace/job/{job_id}/stream", params={"follow": "true"}).text
    )
    assert lines[-1]["type"] == "error" and lines[-1]["code"] == "JOB_CANCELLED"
