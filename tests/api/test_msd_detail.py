"""The mid-section-defect page's detail table and CSV export, as the page calls them
(contract §5): found by ``trace_query_id`` or by the window, under the page's masks."""

from __future__ import annotations

import csv
import io
from typing import Any

import falcon.testing
import pytest

from http_api.msd_export import COLUMNS
from http_api.services import Services
from pipeline.engine import keys, parts
from pipeline.engine.analyses import masks_key
from pipeline.params import TraceParams

WINDOW = {"station": "測試", "start_date": "2026-06-01", "end_date": "2026-06-30"}
DOMAINS = {
    "backward": ["upstream_history", "materials"],
    "forward": ["upstream_history", "downstream_rejects"],
}


def trace(client: falcon.testing.TestClient, direction: str, **masks: Any) -> dict[str, Any]:
    """The July client's three calls; the events answer."""
    params = {**WINDOW, "direction": direction, **masks}
    body = {"profile": "mid_section_defect", "params": params}
    cids = client.simulate_post("/api/trace/seed-resolve", json=body).json["data"][
        "seed_container_ids"
    ]
    lineage = client.simulate_post("/api/trace/lineage", json={**body, "container_ids": cids})
    events = client.simulate_post(
        "/api/trace/events",
        json={
            **body,
            "container_ids": cids,
            "seed_container_ids": cids,
            "domains": DOMAINS[direction],
            "lineage_query_id": lineage.json["data"]["query_id"],
        },
    )
    assert events.status_code == 200, events.text[:300]
    return events.json["data"]  # type: ignore[no-any-return]


def lose_first_chunk(services: Services, job_id: str, part: str) -> None:
    """The first chunk of a part of the job gone (evicted), its manifest intact."""
    (entry, *_) = services.runtime.store.manifest(job_id, part).values()
    assert services.redis.delete(entry.chunks[0].key) == 1


def detail(client: falcon.testing.TestClient, query: str) -> falcon.testing.Result:
    return client.simulate_get("/api/mid-section-defect/analysis/detail", query_string=query)


def test_the_detail_table_pages_the_analysis_worst_first(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, _ = api
    events = trace(client, "backward")
    trace_id = events["trace_query_id"]
    total = events["aggregation"]["detail_total_count"]
    first = detail(client, f"trace_query_id={trace_id}&page=1&page_size=20")
    assert first.status_code == 200, first.text[:300]
    data = first.json["data"]
    assert data["trace_query_id"] == trace_id
    assert data["pagination"] == {
        "page": 1, "page_size": 20, "total_count": total, "total_pages": -(-total // 20)
    }  # fmt: skip
    rates = [row["DEFECT_RATE"] for row in data["detail"]]
    assert len(rates) == 20 and rates == sorted(rates, reverse=True)
    # Every page together is every row, once, in one order
    seen: list[dict[str, Any]] = []
    pages = -(-total // 100)
    for page in range(1, pages + 1):
        rows = detail(client, f"trace_query_id={trace_id}&page={page}&page_size=100").json
        seen += rows["data"]["detail"]
    assert len(seen) == total and seen[:20] == data["detail"]
    assert [r["DEFECT_RATE"] for r in seen] == sorted(
        (r["DEFECT_RATE"] for r in seen), reverse=True
    )
    past = detail(client, f"trace_query_id={trace_id}&page={pages + 1}&page_size=100").json
    assert past["data"]["detail"] == []
    # A page restored without the id finds the trace by its window (the old backend: 410)
    query = "&".join(f"{k}={v}" for k, v in WINDOW.items())
    restored = detail(client, f"{query}&direction=backward&page=1&page_size=20")
    assert restored.status_code == 200 and restored.json["data"] == data


def test_masks_narrow_the_rows_as_the_page_sends_them(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, _ = api
    events = trace(client, "backward")
    trace_id = events["trace_query_id"]
    reasons = events["aggregation"]["charts"]["by_loss_reason"]
    two = [reasons[0]["name"], reasons[1]["name"]]
    # loss_reasons comma-joined (the page's form): only those reasons, or clean rows
    masked = detail(client, f"trace_query_id={trace_id}&loss_reasons={','.join(two)}&page_size=500")
    assert masked.status_code == 200, masked.text[:300]
    found = {row["LOSS_REASON"] for row in masked.json["data"]["detail"]}
    assert found <= {*two, ""} and found & set(two)
    # pj_types[] repeated, literal brackets: only lots of those types
    types = sorted({row["PJ_TYPE"] for row in masked.json["data"]["detail"] if row["PJ_TYPE"]})
    assert types
    one = detail(client, f"trace_query_id={trace_id}&pj_types[]={types[0]}&page_size=500")
    assert one.status_code == 200, one.text[:300]
    assert {row["PJ_TYPE"] for row in one.json["data"]["detail"]} == {types[0]}


def test_a_trace_that_is_not_stored_is_410_and_bad_queries_are_400(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, _ = api
    gone = detail(client, "trace_query_id=msd-0000000000000000")
    assert gone.status_code == 410 and gone.json["error"]["code"] == "CACHE_EXPIRED"
    unknown_window = detail(client, "start_date=2020-01-01&end_date=2020-01-02&station=測試")
    assert unknown_window.status_code == 410
    for query in ("page=1", "trace_query_id=x&page_size=501", "trace_query_id=x&page=0"):
        answer = detail(client, query)
        assert answer.status_code == 400, (query, answer.text[:300])
        assert answer.json["success"] is False


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_the_export_is_every_row_as_the_old_csv(
    api: tuple[falcon.testing.TestClient, Services], direction: str
) -> None:
    client, _ = api
    events = trace(client, direction)
    trace_id = events["trace_query_id"]
    answer = client.simulate_get(
        "/api/mid-section-defect/export", query_string=f"trace_query_id={trace_id}"
    )
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/csv")
    assert f"defect_trace_{trace_id}.csv" in answer.headers["content-disposition"]
    body = answer.content
    assert body.startswith("\ufeff".encode()) and b"\r\n" in body
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert lines[0] == [header for header, _ in COLUMNS[direction]]
    total = detail(client, f"trace_query_id={trace_id}&page_size=1").json["data"]["pagination"]
    assert len(lines) - 1 == total["total_count"] > 0


def test_a_detail_table_whose_rows_are_gone_is_410_not_an_empty_page(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "backward")
    trace_id = events["trace_query_id"]
    assert events["aggregation"]["detail_total_count"] > 0
    # Given the detail rows' manifest is gone (evicted) before any page of them was read
    job_id = events["job_id"]
    services.redis.delete(keys.manifest(job_id, parts.AGGREGATION_DETAIL))
    # Then a page is 410 CACHE_EXPIRED: it once read an empty table, "0 rows", as if clean
    answer = detail(client, f"trace_query_id={trace_id}&page=1&page_size=20")
    assert answer.status_code == 410, answer.text[:300]
    assert answer.json["error"]["code"] == "CACHE_EXPIRED"


def test_a_detail_table_whose_heads_are_gone_is_410_not_rows_without_their_lots(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "backward")
    trace_id, job_id = events["trace_query_id"], events["job_id"]
    first = detail(client, f"trace_query_id={trace_id}&page=1&page_size=20")
    assert first.status_code == 200 and first.json["data"]["detail"][0]["UPSTREAM_MACHINES"]
    # Given the chunk holding the first page's heads (each lot's machines and materials, kept
    # apart from its rows) is gone (evicted), its manifest intact
    lose_first_chunk(services, job_id, parts.AGGREGATION_RECORD_HEADS)
    # Then the page is 410 CACHE_EXPIRED, for this mask and another (which would be analysed
    # from the trace's lot record, naming the same heads)
    for query in (
        "",
        f"&loss_reasons={events['aggregation']['charts']['by_loss_reason'][0]['name']}",
    ):
        answer = detail(client, f"trace_query_id={trace_id}&page=1&page_size=20{query}")
        assert answer.status_code == 410, answer.text[:300]
        assert answer.json["error"]["code"] == "CACHE_EXPIRED"


def test_the_result_and_its_stream_check_what_they_carry_not_the_detail_tables_pieces(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "backward")
    trace_id, job_id = events["trace_query_id"], events["job_id"]
    # Given a chunk of the detail table's heads is gone (evicted): a piece the result pages and
    # the stream never carry (the detail page does, and the export its own rows)
    lose_first_chunk(services, job_id, parts.AGGREGATION_RECORD_HEADS)
    # Then the result pages and the stream answer whole, the analysis in them ...
    page = client.simulate_get(f"/api/trace/job/{job_id}/result", params={"limit": "5"})
    assert page.status_code == 200, page.text[:300]
    assert page.json["data"]["aggregation"] == events["aggregation"]
    stream = client.simulate_get(f"/api/trace/job/{job_id}/stream")
    assert stream.status_code == 200 and '"type":"aggregation"' in stream.text.replace(" ", "")
    # ... while the detail page is refused, never rows without their lots
    answer = detail(client, f"trace_query_id={trace_id}&page=1&page_size=20")
    assert answer.status_code == 410 and answer.json["error"]["code"] == "CACHE_EXPIRED"
    # And the job is marked damaged, so an equal request starts a new job
    assert "gone" in (services.runtime.registry.damaged(job_id) or "")
    # A piece the result carries (a chunk of an events domain) still refuses them
    lose_first_chunk(services, job_id, parts.events("materials"))
    for path in ("result", "stream"):
        refused = client.simulate_get(f"/api/trace/job/{job_id}/{path}")
        assert refused.status_code == 410, (path, refused.text[:300])
        assert refused.json["error"]["code"] == "JOB_RESULT_DAMAGED"


def test_a_lot_record_whose_rows_are_gone_is_not_read_as_a_trace_without_lots(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "backward")
    trace_id, job_id = events["trace_query_id"], events["job_id"]
    reasons = events["aggregation"]["charts"]["by_loss_reason"]
    mask = reasons[0]["name"]
    query = f"trace_query_id={trace_id}&loss_reasons={mask}&page_size=500"
    # Given a re-analysis under a mask, from the trace's lot record
    first = detail(client, query)
    assert first.status_code == 200 and first.json["data"]["pagination"]["total_count"] > 0
    masked = TraceParams(loss_reasons=(mask,))
    analysed = services.redis.get(keys.analysis(trace_id, masks_key(masked)))
    assert analysed is not None
    # When that analysis is forgotten (an equal request would run it again) and the lot
    # record's manifest is gone (evicted), in the trace's job and in the analysis's link to it
    earlier = services.runtime.registry.load(analysed.decode())
    assert earlier is not None
    services.redis.delete(
        keys.analysis(trace_id, masks_key(masked)), keys.dedupe(earlier.fingerprint)
    )
    for holder in (job_id, earlier.id):
        services.redis.delete(keys.manifest(holder, parts.AGGREGATION_LOT_RECORD))
    # Then the analysis under the mask runs again on the events: the same rows, not an empty
    # table (it once read no lot from the record and said so as if it were the answer)
    again = detail(client, query)
    assert again.status_code == 200, again.text[:300]
    assert services.redis.get(keys.analysis(trace_id, masks_key(masked))) != analysed
    assert again.json["data"] == first.json["data"]


def test_a_trace_whose_inputs_are_gone_is_410_for_another_mask_every_time_it_is_asked(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "backward")
    trace_id, job_id = events["trace_query_id"], events["job_id"]
    mask = events["aggregation"]["charts"]["by_loss_reason"][0]["name"]
    query = f"trace_query_id={trace_id}&loss_reasons={mask}&page_size=20"
    # Given the trace's seed lots' manifest is gone (evicted): its result is whole, but an
    # analysis under another mask takes its seeds from it
    services.redis.delete(keys.manifest(job_id, parts.SEEDS))
    # Then a page under another mask is 410 CACHE_EXPIRED (the page runs the trace again),
    # asked once and asked again: it was once a 500, then a 503 "still running" for good, as
    # the analysis's job stayed queued without its inputs
    for _ in range(2):
        answer = detail(client, query)
        assert answer.status_code == 410, answer.text[:300]
        assert answer.json["error"]["code"] == "CACHE_EXPIRED"
        assert trace_id in answer.json["error"]["message"]
    # And no job is left waiting for inputs it will never have
    registry = services.runtime.registry
    assert {registry.state(j) for j in registry.ids(keys.RECENT)} <= {"finished", "failed"}


def test_a_trace_whose_lineage_chunk_is_gone_is_410_for_another_mask(
    api: tuple[falcon.testing.TestClient, Services],
) -> None:
    client, services = api
    events = trace(client, "forward")
    trace_id, job_id = events["trace_query_id"], events["job_id"]
    rows = detail(client, f"trace_query_id={trace_id}&page_size=50").json["data"]["detail"]
    mask = next(row["DETECTION_LOSS_REASON"] for row in rows if row["DETECTION_LOSS_REASON"])
    # Given a chunk of the trace's descendants map is gone (evicted), its manifest whole: the
    # analysis under another mask finds it only when it reads it (forward keeps no lot record)
    part = parts.lineage("descendants")
    chunks = [
        r.key for e in services.runtime.store.manifest(job_id, part).values() for r in e.chunks
    ]
    assert chunks and services.redis.delete(chunks[0]) == 1
    # Then the page is 410 CACHE_EXPIRED, not the analysis's CHUNK_LOST as a 500
    answer = detail(client, f"trace_query_id={trace_id}&loss_reasons={mask}&page_size=20")
    assert answer.status_code == 410, answer.text[:300]
    assert answer.json["error"]["code"] == "CACHE_EXPIRED"
