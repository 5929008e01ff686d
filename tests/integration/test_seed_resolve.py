"""Seed resolve: every resolve type against direct SQL on the same warehouse."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.config import Settings
from pipeline.errors import InvalidInput, InvalidProfile, NoDetectionRecords
from pipeline.request import TraceRequest
from pipeline.sources.base import Source
from pipeline.sources.sqlite import SqliteSource
from pipeline.stages.msd.scope import detection_seeds
from pipeline.stages.seed_resolve import SeedResolution, resolve
from pipeline.stages.seeds import Seed
from tests.integration.test_events import GROUP


def seed_request(profile: str, params: dict[str, object]) -> TraceRequest:
    """A seed-resolve request as the API builds it, with the limits checked."""
    request = TraceRequest.from_dict({"profile": profile, "params": params, "kind": "seed-resolve"})
    request.check(Settings())
    return request


def resolve_seeds(source: Source, resolve_type: str, values: object) -> SeedResolution:
    """Resolve ``values`` of a type as a request would (the analysis knows every type)."""
    request = seed_request("mid_section_defect", {"resolve_type": resolve_type, "values": values})
    return resolve(source, request.profile, request.params)


def resolve_detection_seeds(source: Source, **params: object) -> list[Seed]:
    return list(detection_seeds(source, seed_request("mid_section_defect", params).params))


def resolve_checked(source: Source, profile: str, params: object) -> SeedResolution:
    request = seed_request(profile, params)  # type: ignore[arg-type]
    return resolve(source, request.profile, request.params)


def _lots(db: sqlite3.Connection, where: str, *args: object) -> set[str]:
    return {
        r[0]
        for r in db.execute(
            f"SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' AND {where}", args
        )
    }


def _one(db: sqlite3.Connection, sql: str) -> str:
    return db.execute(sql).fetchone()[0]


def test_lot_names_resolve_to_their_lots_and_unknown_names_are_reported(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    names = [
        r[0]
        for r in db.execute(
            "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' "
            "ORDER BY CONTAINERID LIMIT 3"
        )
    ]
    result = resolve_seeds(sqlite_source, "lot_id", [*names, "NO-SUCH-LOT", names[0], "  "])
    assert [s.container_name for s in result.seeds] == names
    assert {s.container_id for s in result.seeds} == _lots(db, "CONTAINERNAME IN (?, ?, ?)", *names)
    assert all(s.lot_id == s.container_name for s in result.seeds)
    assert result.not_found == ["NO-SUCH-LOT"]
    payload = result.payload()
    assert payload["seed_count"] == 3 and payload["stage"] == "seed-resolve"
    assert payload["seed_container_ids"] == [s["container_id"] for s in payload["seeds"]]


def test_lot_names_are_case_sensitive(sqlite_source: SqliteSource, db: sqlite3.Connection) -> None:
    name = _one(db, "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE CONTAINERNAME LIKE 'GA%'")
    assert resolve_seeds(sqlite_source, "lot_id", [name.lower()]).not_found == [name.lower()]


def test_a_work_order_resolves_to_all_its_lots_but_not_its_boxes(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a GC work order of a combined lot, whose packing box shares the work order
    order = _one(db, "SELECT c.MFGORDERNAME FROM DW_MES_CONTAINER c WHERE c.OBJECTTYPE='BOX'")
    (boxes,) = db.execute(
        "SELECT COUNT(*) FROM DW_MES_CONTAINER WHERE MFGORDERNAME=? AND OBJECTTYPE='BOX'", (order,)
    ).fetchone()
    assert boxes >= 1
    # When it is resolved (typed in lower case)
    result = resolve_seeds(sqlite_source, "work_order", [order.lower()])
    # Then every LOT of the order comes back, and no box
    assert set(result.container_ids) == _lots(db, "MFGORDERNAME = ?", order)
    ga = _one(db, "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GA%'")
    assert set(resolve_seeds(sqlite_source, "work_order", [ga]).container_ids) == _lots(
        db, "MFGORDERNAME = ?", ga
    )


def test_a_wafer_lot_resolves_to_every_lot_cut_from_it(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    wafer = _one(
        db,
        "SELECT FIRSTNAME FROM DW_MES_CONTAINER GROUP BY FIRSTNAME ORDER BY COUNT(*) DESC LIMIT 1",
    )
    result = resolve_seeds(sqlite_source, "wafer_lot", [wafer])
    assert set(result.container_ids) == _lots(db, "FIRSTNAME = ?", wafer)
    assert len(result.seeds) > 3


def test_a_serial_number_resolves_to_its_finished_lot_then_falls_back_to_names(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    serial, lot = db.execute(
        "SELECT FINISHEDNAME, LOTID FROM DW_MES_PJ_COMBINEDASSYLOTS LIMIT 1"
    ).fetchone()
    name = _one(db, "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT'")
    result = resolve_seeds(sqlite_source, "serial_number", [serial, name, "SN-UNKNOWN"])
    assert result.container_ids[0] == lot
    assert result.container_ids[1:] == list(_lots(db, "CONTAINERNAME = ?", name))
    assert result.not_found == ["SN-UNKNOWN"]


def test_rework_types_find_gd_lots_and_refuse_other_values(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    order, name = db.execute(
        "SELECT MFGORDERNAME, CONTAINERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GD%'"
    ).fetchone()
    assert set(resolve_seeds(sqlite_source, "gd_work_order", [order]).container_ids) == _lots(
        db, "MFGORDERNAME = ?", order
    )
    assert set(resolve_seeds(sqlite_source, "gd_lot_id", [name.lower()]).container_ids) == _lots(
        db, "CONTAINERNAME = ?", name
    )
    with pytest.raises(InvalidInput, match="must start with GD"):
        resolve_seeds(sqlite_source, "gd_lot_id", ["GA123"])
    with pytest.raises(InvalidInput, match="use gd_work_order"):
        resolve_seeds(sqlite_source, "work_order", [order])


def test_raw_container_ids_resolve_only_to_lots(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    lot = _one(db, "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT'")
    box = _one(db, "SELECT CONTAINERID FROM DW_MES_CONTAINER WHERE OBJECTTYPE='BOX'")
    result = resolve_seeds(sqlite_source, "container_id", [lot, box, "ffffffffffffffff"])
    assert result.container_ids == [lot]
    assert result.not_found == [box, "ffffffffffffffff"]


def test_a_star_is_a_wildcard_but_percent_and_underscore_are_literal(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    order = _one(
        db,
        "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GA%' "
        "GROUP BY MFGORDERNAME HAVING COUNT(*) > 3 ORDER BY 1 LIMIT 1",
    )
    result = resolve_seeds(sqlite_source, "lot_id", [f"{order}-A0*"])
    assert set(result.container_ids) == _lots(db, "CONTAINERNAME LIKE ?", f"{order}-A0%")
    assert result.matches[f"{order}-A0*"] == len(result.seeds) > 1
    literal = resolve_seeds(sqlite_source, "lot_id", [f"{order}%", f"{order}-A00_001"])
    assert literal.seeds == [] and len(literal.not_found) == 2
    with pytest.raises(InvalidInput, match="at least 2 characters before"):
        resolve_seeds(sqlite_source, "lot_id", ["G*"])


def test_more_values_than_one_in_list_are_batched(warehouse, db: sqlite3.Connection) -> None:
    names = [
        r[0]
        for r in db.execute(
            "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE='LOT' LIMIT 1500"
        )
    ]
    with SqliteSource(warehouse, in_list_size=1000) as source:
        result = resolve_seeds(source, "lot_id", names)
        assert source.queries["seeds/containers_in"] == 2
    assert len(result.seeds) == 1500 and not result.not_found


def test_detection_seeds_are_the_lots_tested_in_the_date_range(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    expected = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT h.CONTAINERID FROM DW_MES_LOTWIPHISTORY h "
            "JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID AND c.OBJECTTYPE='LOT' "
            "WHERE h.WORKCENTERNAME IN ('TMTT', '測試') AND h.EQUIPMENTID IS NOT NULL "
            "AND h.TRACKINTIMESTAMP >= '2026-06-01' AND h.TRACKINTIMESTAMP < '2026-06-11'"
        )
    }
    seeds = list(
        resolve_detection_seeds(
            sqlite_source, station="測試", start_date="2026-06-01", end_date="2026-06-10"
        )
    )
    assert {s.container_id for s in seeds} == expected and len(expected) > 50
    # sorted by the warehouse, in the order they stream
    assert [(s.lot_id, s.container_id) for s in seeds] == sorted(
        (s.lot_id, s.container_id) for s in seeds
    )
    # The analysis's masks never narrow the seeds (they apply when the analysis reads them)
    masked = resolve_detection_seeds(
        sqlite_source,
        station="測試",
        start_date="2026-06-01",
        end_date="2026-06-10",
        pj_types=["SBD"],
        packages=["NO-SUCH-PACKAGE"],
        loss_reasons=["NO-SUCH-REASON"],
    )
    assert masked == seeds


def test_detection_seeds_of_several_stations_are_the_lots_tested_at_any_of_them(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    workcenters = [name for name, group in GROUP.items() if group in ("成型", "測試")]
    expected = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT h.CONTAINERID FROM DW_MES_LOTWIPHISTORY h "
            "JOIN DW_MES_CONTAINER c ON c.CONTAINERID = h.CONTAINERID AND c.OBJECTTYPE='LOT' "
            f"WHERE h.WORKCENTERNAME IN ({', '.join('?' * len(workcenters))}) "
            "AND h.EQUIPMENTID IS NOT NULL "
            "AND h.TRACKINTIMESTAMP >= '2026-06-01' AND h.TRACKINTIMESTAMP < '2026-06-11'",
            workcenters,
        )
    }
    seeds = resolve_detection_seeds(
        sqlite_source, station="測試,成型", start_date="2026-06-01", end_date="2026-06-10"
    )
    assert len(seeds) == len(expected) and {s.container_id for s in seeds} == expected
    one = resolve_detection_seeds(
        sqlite_source, station="測試", start_date="2026-06-01", end_date="2026-06-10"
    )
    assert len(one) < len(seeds)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"start_date": "2026-06-10", "end_date": "2026-06-01"},
            r"start_date .* is after end_date",
        ),
        (
            {"start_date": "20260601", "end_date": "2026-06-10"},
            "start_date: must be a date as YYYY-MM-DD",
        ),
        ({"start_date": "2026-06-01"}, "end_date is required"),
        ({"start_date": "2024-01-01", "end_date": "2026-06-10"}, "at most 730 days"),
        (
            {"start_date": "2026-06-01", "end_date": "2026-06-02", "station": "QA"},
            "params.station\\[0\\]: unknown workcenter group",
        ),
    ],
)
def test_bad_detection_ranges_are_refused(source: Source, params: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_checked(source, "mid_section_defect", params)


def test_each_profile_accepts_only_its_resolve_types(source: Source) -> None:
    with pytest.raises(InvalidInput, match="not valid for query_tool"):
        resolve_checked(source, "query_tool", {"resolve_type": "serial_number", "values": ["x"]})
    with pytest.raises(InvalidProfile, match="unknown profile"):
        resolve_checked(source, "lot_tool", {"resolve_type": "lot_id", "values": ["x"]})
    with pytest.raises(InvalidInput, match="params: must be an object"):
        resolve_checked(source, "query_tool", ["lot_id"])
    result = resolve_checked(
        source, "query_tool_reverse", {"input_type": "serial_number", "values": ["NOPE"]}
    )
    assert result.not_found == ["NOPE"]


# ---- mid_section_defect container mode -----------------------------------------------------------
def _detected(db: sqlite3.Connection, stations: tuple[str, ...] = ("測試",)) -> set[str]:
    """Lots that ever tracked in at one of the stations (Python's group mapping), any day."""
    workcenters = [name for name, group in GROUP.items() if group in stations]
    return {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT h.CONTAINERID FROM DW_MES_LOTWIPHISTORY h "
            f"WHERE h.WORKCENTERNAME IN ({', '.join('?' * len(workcenters))}) "
            "AND h.EQUIPMENTID IS NOT NULL AND h.TRACKINTIMESTAMP IS NOT NULL",
            workcenters,
        )
    }


def resolve_containers(source: Source, resolve_type: str, values: list[str], **params: object):
    return resolve_checked(
        source,
        "mid_section_defect",
        {"mode": "container", "resolve_type": resolve_type, "values": values, **params},
    )


def test_container_mode_seeds_are_the_containers_detected_at_the_station(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # Given a work order some of whose lots reached test and some did not (split parents,
    # lots still on the floor), and a lot name that never reached test
    detected = _detected(db)
    orders = [
        order
        for (order,) in db.execute(
            "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
            "AND MFGORDERNAME LIKE 'GA%' GROUP BY MFGORDERNAME ORDER BY 1"
        )
    ]
    order = next(
        o
        for o in orders
        if 0
        < len(_lots(db, "MFGORDERNAME = ?", o) & detected)
        < len(_lots(db, "MFGORDERNAME = ?", o))
    )
    (never,) = db.execute(
        "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE OBJECTTYPE = 'LOT' "
        f"AND CONTAINERID NOT IN ({', '.join('?' * len(detected))}) ORDER BY 1 LIMIT 1",
        sorted(detected),
    ).fetchone()
    # When they are resolved in container mode
    by_order = resolve_containers(sqlite_source, "work_order", [order, "GA-NO-SUCH"])
    by_name = resolve_containers(sqlite_source, "lot_id", [never, by_order.seeds[0].container_name])
    # Then the seeds are the order's lots that were detected at the station, any day
    assert set(by_order.container_ids) == _lots(db, "MFGORDERNAME = ?", order) & detected
    assert by_order.not_found == ["GA-NO-SUCH"]
    # And a value whose containers never reached the station is not found
    assert by_name.not_found == [never] and len(by_name.seeds) == 1
    assert all(s.lot_id == s.container_name for s in by_order.seeds)


def test_container_mode_treats_percent_as_a_wildcard_with_the_prefix_rule(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    order = _one(
        db,
        "SELECT MFGORDERNAME FROM DW_MES_CONTAINER WHERE MFGORDERNAME LIKE 'GA%' "
        "GROUP BY MFGORDERNAME HAVING COUNT(*) > 3 ORDER BY 1 LIMIT 1",
    )
    # The dashboard turns the user's * into %: both are wildcards here, _ stays literal
    percent = resolve_containers(sqlite_source, "lot_id", [f"{order}-A0%"])
    star = resolve_containers(sqlite_source, "lot_id", [f"{order}-A0*"])
    expected = _lots(db, "CONTAINERNAME LIKE ?", f"{order}-A0%") & _detected(db)
    assert set(percent.container_ids) == set(star.container_ids) == expected and expected
    with pytest.raises(NoDetectionRecords):
        resolve_containers(sqlite_source, "lot_id", [f"{order}-A0_"])
    with pytest.raises(InvalidInput, match="at least 2 characters before") as refused:
        resolve_containers(sqlite_source, "lot_id", ["G%"])
    assert refused.value.field == "params.values"


def test_container_mode_with_several_stations_finds_lots_detected_at_any(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    early_only = _detected(db, ("成型",)) - _detected(db)
    names = sorted(
        r[0]
        for r in db.execute(
            "SELECT CONTAINERNAME FROM DW_MES_CONTAINER WHERE CONTAINERID IN "
            f"({', '.join('?' * len(early_only))})",
            sorted(early_only),
        )
    )[:5]
    assert names
    both = resolve_containers(sqlite_source, "lot_id", names, station="測試,成型")
    assert set(both.container_ids) <= early_only and not both.not_found
    with pytest.raises(NoDetectionRecords):
        resolve_containers(sqlite_source, "lot_id", names)


def test_container_mode_with_nothing_detected_is_no_detection_records(
    sqlite_source: SqliteSource,
) -> None:
    with pytest.raises(NoDetectionRecords, match="成型, 測試") as refused:
        resolve_containers(sqlite_source, "lot_id", ["NO-SUCH-LOT"], station="測試,成型")
    error = refused.value
    assert (error.status, error.code, error.bad_input) == (404, "NO_DETECTION_RECORDS", True)
    # A date range with no detection is an answer, not an error
    empty = resolve_checked(
        sqlite_source,
        "mid_section_defect",
        {"mode": "date_range", "start_date": "2001-01-01", "end_date": "2001-01-31"},
    )
    assert empty.seeds == [] and empty.not_found == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"mode": "lots", "resolve_type": "lot_id", "values": ["A"]}, "params.mode", "container"),
        ({"mode": "container", "values": ["A"]}, "params.resolve_type", "required"),
        (
            {"mode": "container", "resolve_type": "container_id", "values": ["A"]},
            "params.resolve_type",
            "gd_lot_id",
        ),
        ({"mode": "container", "resolve_type": "lot_id", "values": []}, "params.values", "empty"),
        (
            {"mode": "date_range", "resolve_type": "lot_id", "values": ["A"]},
            "params.start_date",
            "start_date is required",
        ),
    ],
)
def test_bad_seed_modes_are_refused_naming_the_field(
    source: Source, params: dict, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        resolve_checked(source, "mid_section_defect", params)
    assert (refused.value.field or "").startswith(field)


def test_a_resolve_type_without_mode_resolves_names_as_before(
    sqlite_source: SqliteSource, db: sqlite3.Connection
) -> None:
    # The February clients: any lot of the name, detected or not; % is literal
    (never,) = db.execute(
        "SELECT CONTAINERNAME FROM DW_MES_CONTAINER c WHERE OBJECTTYPE = 'LOT' AND NOT EXISTS "
        "(SELECT 1 FROM DW_MES_LOTWIPHISTORY h WHERE h.CONTAINERID = c.CONTAINERID "
        "AND h.WORKCENTERNAME IN ('TMTT', '測試')) ORDER BY 1 LIMIT 1"
    ).fetchone()
    found = resolve_seeds(sqlite_source, "lot_id", [never, never[:4] + "%"])
    assert [s.container_name for s in found.seeds] == [never]
    assert found.not_found == [never[:4] + "%"]
