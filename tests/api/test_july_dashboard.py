"""The dashboard as it runs today (its July 2026 front end), driven by a client written from its
contract (``tests.support.july_client``) against real processes: gunicorn and ``ops/worker`` on
loopback, on a Redis server of the module's own (every database number of the shared one is
another module's), with the default rate limits.

Every stage goes async here (``TRACE_SYNC_WAIT_SECONDS=0``), so each is followed the client's way:
``async`` + ``status_url``, polling, then the stream or ``{status_url}/result``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.tools.stack import LocalStack
from tests.api.conftest import API_ENV
from tests.support.july_client import MSD_DOMAINS, JulyClient, StageError
from tests.support.redis_server import RedisServer, own_redis
from tests.support.served_stack import running_stack

STORE_DB, BROKER_DB = 0, 1  # of the module's own server
#: The client polls every 3 s; here a tenth of that, with the rate window a tenth of a minute:
#: the same number of polls per window as the dashboard's against the default limits.
TIME_SCALE = 10
WINDOW = {"start_date": "2026-06-01", "end_date": "2026-06-30"}
NODE_TYPES = {"WAFER", "GC", "GA", "GD", "LOT", "UNKNOWN"}


@pytest.fixture(scope="module")
def july_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with own_redis(tmp_path_factory.mktemp("july-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def july_env(warehouse: Path, july_server: RedisServer) -> dict[str, str]:
    env = {
        **API_ENV,
        "TRACE_REDIS_URL": f"{july_server.url}/{STORE_DB}",
        "TRACE_BROKER_URL": f"{july_server.url}/{BROKER_DB}",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_SYNC_WAIT_SECONDS": "0",
        "TRACE_ASYNC_CID_THRESHOLD": "10",
        "TRACE_LINEAGE_ASYNC_SEEDS": "1",
        # the default limits, over a window TIME_SCALE times shorter (as the polling is)
        "TRACE_RATE_LIMIT_WINDOW_SECONDS": str(60 // TIME_SCALE),
    }
    for name in ("TRACE_RATE_LIMIT_REQUESTS", "TRACE_RATE_LIMIT_PER_JOB_REQUESTS"):
        del env[name]  # the defaults, not the other API tests' 100000
    return env


@pytest.fixture(scope="module")
def july_redis(july_server: RedisServer) -> redis.Redis:
    return july_server.client(STORE_DB)


@pytest.fixture(scope="module")
def stack(
    july_env: dict[str, str], july_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """One worker process (two threads) and gunicorn, for the module."""
    with running_stack(july_env, tmp_path_factory.mktemp("july"), processes=2, threads=2) as stack:
        yield stack


@pytest.fixture
def dashboard(stack: LocalStack) -> JulyClient:
    return JulyClient("127.0.0.1", stack.port, poll_seconds=3.0 / TIME_SCALE)


def msd_params(direction: str, **window: str) -> dict[str, Any]:
    """What the MSD page sends in date mode (APP:603-627)."""
    return {"station": "測試", "direction": direction, **(window or WINDOW)}


def without_ids(aggregation: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in aggregation.items() if k != "trace_query_id"}


# ---- the mid-section-defect trace -------------------------------------------------------------
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_the_msd_trace_expands_the_seeds_from_the_lineage_it_names(
    dashboard: JulyClient, direction: str
) -> None:
    """Seeds only plus ``lineage_query_id`` (UTP:386-401): the analysis runs over the seeds'
    genealogy, says so, and equals the February flow's (expanded lots + inline lineage)."""
    trace = dashboard.msd_trace(msd_params(direction))
    assert trace.seeds, "no detection lots in the window: a weak test"
    assert trace.lineage_query_id and trace.lineage_query_id.startswith(
        "trace-lineage-mid_section_defect-"
    )
    related = "ancestors" if direction == "backward" else "descendants"
    lots = {c for values in trace.lineage[related].values() for c in values}
    assert lots - set(trace.seeds), "the seeds have no genealogy: a weak test"
    aggregation = trace.aggregation
    assert aggregation is not None
    assert aggregation["genealogy_status"] == "ready"
    assert trace.events["quality_meta"]["status"] == "complete"
    assert trace.trace_query_id and trace.trace_query_id.startswith("msd-")
    # The rows it never reads are not sent to the browser: only each domain's row count
    assert trace.events["_accepted"]["stream_url"].endswith("?records=0")
    assert set(trace.events["results"]) == set(MSD_DOMAINS[direction])
    for domain_result in trace.events["results"].values():
        assert domain_result["data"] == [] and domain_result["total"] > 0

    # The February flow: every lot of the genealogy named, the lineage given inline.
    inline = {related: trace.lineage[related], "seed_roots": trace.lineage.get("seed_roots", {})}
    february = dashboard.stage(
        "/api/trace/events",
        {
            "profile": "mid_section_defect",
            "container_ids": [*trace.seeds, *sorted(lots - set(trace.seeds))],
            "seed_container_ids": trace.seeds,
            "domains": MSD_DOMAINS[direction],
            "params": msd_params(direction),
            "lineage": inline,
        },
    )
    assert without_ids(february["aggregation"]) == without_ids(aggregation)
    assert february["trace_query_id"] == trace.trace_query_id  # same seeds, dates, station
    assert trace.seed["cache_key"]


def test_events_without_a_known_lineage_compute_it_never_the_seeds_alone(
    dashboard: JulyClient,
) -> None:
    """An unknown (or expired) ``lineage_query_id``, or none: the job walks the genealogy itself
    and the answer equals the one with the stored lineage."""
    params = msd_params("backward")
    trace = dashboard.msd_trace(params)
    assert trace.aggregation is not None
    for extra in ({"lineage_query_id": "trace-lineage-mid_section_defect-" + "0" * 24}, {}):
        events = dashboard.stage(
            "/api/trace/events",
            {
                "profile": "mid_section_defect",
                "container_ids": trace.seeds,
                "seed_container_ids": trace.seeds,
                "domains": MSD_DOMAINS["backward"],
                "params": params,
                "fresh": True,
                **extra,
            },
        )
        assert events["aggregation"]["genealogy_status"] == "ready"
        assert without_ids(events["aggregation"]) == without_ids(trace.aggregation)
        assert events["trace_query_id"] == trace.trace_query_id


def test_the_trace_id_ignores_the_read_time_masks(dashboard: JulyClient) -> None:
    plain = dashboard.msd_trace(msd_params("backward"))
    masked = dashboard.msd_trace({**msd_params("backward"), "loss_reasons": ["x"]})
    assert masked.trace_query_id == plain.trace_query_id
    other = dashboard.msd_trace(msd_params("forward"))
    assert other.trace_query_id != plain.trace_query_id


# ---- the query tool's trees -------------------------------------------------------------------
def some_lots(warehouse: Path, n: int) -> list[str]:
    """Lots that have a split parent and children: trees with something to draw."""
    with closing(sqlite3.connect(warehouse.as_uri() + "?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT c.CONTAINERID FROM DW_MES_CONTAINER c WHERE c.SPLITFROMID IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM DW_MES_CONTAINER k WHERE k.SPLITFROMID = c.CONTAINERID) "
            "ORDER BY c.CONTAINERID LIMIT ?",
            (n,),
        ).fetchall()
    return [cid for (cid,) in rows]


def test_the_query_tools_trees(dashboard: JulyClient, warehouse: Path) -> None:
    seeds = some_lots(warehouse, 5)
    assert seeds
    forward = dashboard.tree("query_tool", seeds)
    children = forward["children_map"]
    has_parent = {c for kids in children.values() for c in kids}
    assert forward["roots"] and not set(forward["roots"]) & has_parent
    types = {n["node_type"] for n in forward["nodes"].values()}
    assert types <= NODE_TYPES and "WAFER" in types
    tops = {forward["nodes"][r]["node_type"] for r in forward["roots"]}
    assert "WAFER" in tops  # the tops of the tree, not the seeds
    assert {e["edge_type"] for e in forward["edges"]} >= {"split_from", "wafer_origin"}
    assert forward["query_id"].startswith("trace-lineage-query_tool-")

    reverse = dashboard.tree("query_tool_reverse", seeds)
    assert reverse["parent_map"], "the reverse tree is drawn only from parent_map (REV:275-291)"
    assert set(reverse["parent_map"]) & set(seeds)
    assert reverse["query_id"] != forward["query_id"]


# ---- a client that trusts every 200 -----------------------------------------------------------
def test_a_damaged_result_is_refused_before_the_first_byte(
    dashboard: JulyClient, july_redis: redis.Redis
) -> None:
    window = {"start_date": "2026-04-01", "end_date": "2026-04-10"}
    trace = dashboard.msd_trace(msd_params("backward", **window))
    job_id = trace.events["_accepted"]["job_id"]
    chunks = sorted(july_redis.scan_iter(f"*:job:{job_id}:chunk:*upstream_history*"))
    assert chunks, sorted(july_redis.scan_iter(f"*{job_id}*"))[:20]
    july_redis.delete(chunks[len(chunks) // 2])
    for path in (f"/api/trace/job/{job_id}/stream", f"/api/trace/job/{job_id}/result"):
        with pytest.raises(StageError) as refused:
            dashboard.call("GET", path)
        assert refused.value.status in (404, 410), refused.value
        assert refused.value.code == "JOB_RESULT_DAMAGED"


def test_ten_concurrent_traces_from_one_address_meet_no_429(dashboard: JulyClient) -> None:
    """The dashboard's own polling, ten traces at once from one address, under the default
    limits (time scaled: see ``TIME_SCALE``)."""
    errors: list[BaseException] = []
    traces: list[Any] = []

    def run(day: int) -> None:
        client = JulyClient(dashboard.host, dashboard.port, poll_seconds=dashboard.poll_seconds)
        try:
            window = {"start_date": f"2026-05-{day:02d}", "end_date": f"2026-05-{day + 1:02d}"}
            traces.append((client, client.msd_trace(msd_params("backward", **window))))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(1 + 2 * i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert len(traces) == 10
    for client, trace in traces:
        assert 429 not in client.statuses
        assert trace.aggregation is not None and trace.aggregation["genealogy_status"] == "ready"
