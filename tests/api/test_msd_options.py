"""The mid-section-defect page's option lists: ``/api/mid-section-defect/station-options``,
``/loss-reasons`` and ``/container-filter-options`` (dashboard-contract §5, MSD-03 and MSD-05).

The web process never queries the warehouse: a worker computes the warehouse-derived options
(``pipeline.stages.msd.options``) into one document in Redis, and the API answers from it. Here
the app's refresh requests run the engine's refresh in a thread of the test process (as
``make_app`` runs jobs), and one test runs the real stack (gunicorn and ``ops/worker``, Redis
databases 6 and 9). Every list is compared with SQL written here, on the same warehouse.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import falcon.testing
import pytest

from http_api.services import Services
from pipeline.engine import keys
from pipeline.engine.options import refresh_options
from pipeline.tools.api_client import ApiClient
from pipeline.tools.stack import LocalStack
from pipeline.workcenters import GROUPS
from tests.api.conftest import API_ENV, AppFactory
from tests.support.redis_server import own_redis
from tests.support.served_stack import running_stack

BASE = "/api/mid-section-defect"
#: Each dimension's warehouse column (``DW_MES_CONTAINER``).
COLUMNS = {
    "pj_types": "PJ_TYPE",
    "packages": "PRODUCTLINENAME",
    "bops": "PJ_BOP",
    "pj_functions": "PJ_FUNCTION",
}
#: A combination counts only with these three known (PJ_FUNCTION may be missing).
REQUIRED = ("PJ_TYPE", "PRODUCTLINENAME", "PJ_BOP")


# ---- independent expectations -------------------------------------------------------------------
def sql_loss_reasons(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT DISTINCT TRIM(LOSSREASONNAME) FROM DW_MES_LOTREJECTHISTORY "
        "WHERE TRIM(LOSSREASONNAME) <> ''"
    ).fetchall()
    return sorted(r[0] for r in rows)


def sql_options(db: sqlite3.Connection, selected: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Each dimension's values among the containers whose *other* dimensions are selected."""
    answer: dict[str, Any] = {}
    for dim, column in COLUMNS.items():
        where = [f"TRIM({c}) <> ''" for c in REQUIRED] + [f"TRIM({column}) <> ''"]
        binds: list[str] = []
        for other, values in selected.items():
            if other != dim and values:
                where.append(f"TRIM({COLUMNS[other]}) IN ({', '.join('?' * len(values))})")
                binds.extend(values)
        rows = db.execute(
            f"SELECT DISTINCT TRIM({column}) FROM DW_MES_CONTAINER WHERE {' AND '.join(where)}",
            binds,
        ).fetchall()
        answer[dim] = sorted(r[0] for r in rows)
    return answer


# ---- the app, its refreshes run by a thread ------------------------------------------------------
class RefreshThread:
    """What a worker does with a refresh message, run in a thread of the test process: the
    engine's own ``refresh_options`` against the app's warehouse and Redis. Counts the asks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.asked = 0
        self.threads: list[threading.Thread] = []

    def __call__(self) -> None:
        self.asked += 1
        runtime = self.services.runtime
        thread = threading.Thread(
            target=refresh_options, args=(runtime.redis, runtime.source, runtime.settings)
        )
        thread.start()
        self.threads.append(thread)

    def drain(self) -> None:
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture
def app(make_app: AppFactory) -> Iterator[tuple[falcon.testing.TestClient, RefreshThread]]:
    client, services = make_app()
    refresher = RefreshThread(services)
    services.send_options_refresh = refresher
    yield client, refresher
    refresher.drain()


def get(client: falcon.testing.TestClient, path: str, **params: str) -> falcon.testing.Result:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return client.simulate_get(f"{BASE}/{path}", query_string=query)


def filled(app: tuple[falcon.testing.TestClient, RefreshThread]) -> falcon.testing.TestClient:
    """The client once a worker refreshed the options (a first request asked for it)."""
    client, refresher = app
    get(client, "loss-reasons")
    refresher.drain()
    assert refresher.asked == 1
    return client


def options(client: falcon.testing.TestClient, selected: Any = None) -> dict[str, Any]:
    params = {} if selected is None else {"selected": json.dumps(selected)}
    answer = get(client, "container-filter-options", **params)
    assert answer.status_code == 200, answer.text
    return answer.json


# ---- station options ----------------------------------------------------------------------------
def test_station_options_are_the_workcenter_groups_in_process_order(
    app: tuple[falcon.testing.TestClient, RefreshThread],
) -> None:
    client, refresher = app
    answer = get(client, "station-options")
    assert answer.status_code == 200
    assert answer.json["success"] is True
    stations = answer.json["data"]
    # Then: every group, in process order, labelled by its first workcenter pattern as the
    # old backend labels them (測試 shows as TMTT); no warehouse involved
    assert stations == [{"name": g.name, "label": g.patterns[0], "order": g.order} for g in GROUPS]
    assert [s["order"] for s in stations] == sorted(s["order"] for s in stations)
    assert {"name": "測試", "label": "TMTT", "order": 11} in stations
    assert refresher.asked == 0


# ---- loss reasons -------------------------------------------------------------------------------
def test_loss_reasons_are_the_distinct_reasons_of_the_warehouse_rejects(
    app: tuple[falcon.testing.TestClient, RefreshThread], db: sqlite3.Connection
) -> None:
    client = filled(app)
    answer = get(client, "loss-reasons")
    assert answer.status_code == 200
    reasons = answer.json["data"]["loss_reasons"]
    assert reasons == sql_loss_reasons(db)
    assert len(reasons) > 5, "a weak test: the warehouse has few reasons"


# ---- container filter options --------------------------------------------------------------------
def test_container_filter_options_without_a_selection_are_every_value(
    app: tuple[falcon.testing.TestClient, RefreshThread], db: sqlite3.Connection
) -> None:
    client = filled(app)
    answer = options(client)
    assert answer["data"] == sql_options(db, {})
    assert all(len(values) > 1 for values in answer["data"].values())
    assert answer["meta"]["schema_version"] == 2
    assert answer["meta"]["updated_at"].endswith("Z")
    # An empty selection is no selection
    assert options(client, {})["data"] == answer["data"]
    assert options(client, {"pj_types": [], "packages": []})["data"] == answer["data"]


def test_a_selection_narrows_the_other_dimensions_never_its_own(
    app: tuple[falcon.testing.TestClient, RefreshThread], db: sqlite3.Connection
) -> None:
    client = filled(app)
    everything = sql_options(db, {})
    # Given one type selected
    one_type = {"pj_types": everything["pj_types"][:1]}
    narrowed = options(client, one_type)["data"]
    # Then its own list is whole, the others are the containers of that type's values
    assert narrowed == sql_options(db, one_type)
    assert narrowed["pj_types"] == everything["pj_types"]
    assert narrowed["pj_functions"] != everything["pj_functions"], "nothing narrowed: weak test"
    # Given a type and a package: each narrows the other, neither itself
    both = {"pj_types": everything["pj_types"][:2], "packages": everything["packages"][:1]}
    narrowed = options(client, both)["data"]
    assert narrowed == sql_options(db, both)
    assert narrowed["packages"] == sql_options(db, {"pj_types": both["pj_types"]})["packages"]
    assert narrowed["pj_types"] == sql_options(db, {"packages": both["packages"]})["pj_types"]
    assert narrowed["bops"] != everything["bops"], "nothing narrowed: weak test"


def test_selected_values_the_warehouse_does_not_know_narrow_nothing(
    app: tuple[falcon.testing.TestClient, RefreshThread], db: sqlite3.Connection
) -> None:
    client = filled(app)
    everything = sql_options(db, {})
    # Unknown values are dropped (the old picker's fail-open), unknown keys ignored
    assert options(client, {"pj_types": ["NO-SUCH-TYPE"], "colour": ["red"]})["data"] == everything
    some = {"packages": everything["packages"][:1]}
    assert options(client, {**some, "pj_types": ["NO-SUCH-TYPE"]})["data"] == sql_options(db, some)


@pytest.mark.parametrize(
    ("selected", "field"),
    [
        ("{not json", "selected"),
        ("[1, 2]", "selected"),
        ('"pj_types"', "selected"),
        ('{"pj_types": "TVS"}', "selected.pj_types"),
        ('{"packages": [1]}', "selected.packages[0]"),
    ],
)
def test_a_bad_selected_is_a_400_naming_the_parameter(
    app: tuple[falcon.testing.TestClient, RefreshThread], selected: str, field: str
) -> None:
    client, _ = app
    answer = get(client, "container-filter-options", selected=selected)
    assert answer.status_code == 400
    body = answer.json
    assert body["success"] is False
    assert body["error"]["code"] == "INVALID_PARAMS"
    assert field in [e["field"] for e in body["meta"]["errors"]]


# ---- the cache -----------------------------------------------------------------------------------
def test_a_cold_cache_answers_empty_lists_and_asks_a_worker_once(
    app: tuple[falcon.testing.TestClient, RefreshThread], db: sqlite3.Connection
) -> None:
    client, refresher = app
    # Given no options document: a worker is asked once, however many requests come meanwhile
    refresher_gate = threading.Event()
    refresher.services.send_options_refresh = lambda: (refresher_gate.wait(10), refresher())
    asking = threading.Thread(target=get, args=(client, "loss-reasons"))
    asking.start()
    time.sleep(0.2)
    for _ in range(3):
        cold = options(client)
        assert cold["data"] == {"pj_types": [], "packages": [], "bops": [], "pj_functions": []}
        assert cold["meta"]["updated_at"] is None and cold["meta"]["schema_version"] == 2
        assert options(client, {"pj_types": ["TVS"]})["data"]["packages"] == []
        reasons = get(client, "loss-reasons")
        assert reasons.status_code == 200 and reasons.json["data"] == {"loss_reasons": []}
    refresher_gate.set()
    asking.join()
    refresher.drain()
    assert refresher.asked == 1
    # Then the worker's document answers
    assert options(client)["data"] == sql_options(db, {})
    assert get(client, "loss-reasons").json["data"]["loss_reasons"] == sql_loss_reasons(db)
    assert refresher.asked == 1


def test_a_stale_document_still_answers_and_asks_a_refresh(
    make_app: AppFactory, db: sqlite3.Connection
) -> None:
    client, services = make_app(TRACE_MSD_OPTIONS_TTL_SECONDS=1)
    refresher = RefreshThread(services)
    services.send_options_refresh = refresher
    get(client, "loss-reasons")
    refresher.drain()
    first = options(client)["meta"]["updated_at"]
    time.sleep(1.1)
    # Given a document older than the TTL: it answers, and one refresh is asked
    assert options(client)["data"] == sql_options(db, {})
    refresher.drain()
    assert refresher.asked == 2
    assert options(client)["meta"]["updated_at"] > first
    # The document lives twice its TTL in Redis, so a stale one answers while it is refreshed
    ttl = services.redis.ttl(keys.MSD_OPTIONS)
    assert 0 < ttl <= 2


def test_the_option_endpoints_share_the_job_reads_rate_limit(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_RATE_LIMIT_REQUESTS=3)
    statuses = [get(client, path).status_code for path in ("station-options",) * 2]
    statuses.append(get(client, "container-filter-options").status_code)
    statuses.append(get(client, "loss-reasons").status_code)
    assert statuses == [200, 200, 200, 429]


# ---- the real stack -----------------------------------------------------------------------------
STACK_STORE_DB, STACK_BROKER_DB = (
    0,
    1,
)  # of the test's own Redis server (the shared one's are taken)


def wait_for_options(api: ApiClient, stack: LocalStack, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = api.json("GET", f"{BASE}/container-filter-options")
        if answer["meta"]["updated_at"] is not None:
            return answer
        time.sleep(0.1)
    pytest.fail("no worker filled the options\n" + stack.logs())


def test_workers_fill_the_options_at_boot_and_again_when_the_api_finds_none(
    warehouse: Path, db: sqlite3.Connection, tmp_path: Path
) -> None:
    with own_redis(tmp_path / "redis") as server:
        env = {
            **API_ENV,
            "TRACE_REDIS_URL": f"{server.url}/{STACK_STORE_DB}",
            "TRACE_BROKER_URL": f"{server.url}/{STACK_BROKER_DB}",
            "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        }
        store = server.client(STACK_STORE_DB)
        with running_stack(env, tmp_path, processes=1, threads=1, api_workers=1) as stack:
            api = stack.api
            # Given workers that booted: they fill the options before any request asks
            deadline = time.monotonic() + 30
            while not store.exists(keys.MSD_OPTIONS):
                assert time.monotonic() < deadline, "not filled at boot\n" + stack.logs()
                time.sleep(0.1)
            assert wait_for_options(api, stack)["data"] == sql_options(db, {})
            # When the document is gone (expired, Redis flushed): empty lists, and a worker
            # refills it because the API asked
            store.delete(keys.MSD_OPTIONS)
            cold = api.json("GET", f"{BASE}/loss-reasons")
            assert cold["data"] == {"loss_reasons": []}
            again = wait_for_options(api, stack)
            assert again["data"] == sql_options(db, {})
            assert api.json("GET", f"{BASE}/loss-reasons")["data"]["loss_reasons"] == (
                sql_loss_reasons(db)
            )
            selected = quote(json.dumps({"packages": again["data"]["packages"][:1]}))
            narrowed = api.json("GET", f"{BASE}/container-filter-options?selected={selected}")
            assert narrowed["data"] == sql_options(db, {"packages": again["data"]["packages"][:1]})
