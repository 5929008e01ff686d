"""The ``params`` object's rules that need no warehouse: the station list, the seed modes."""

from __future__ import annotations

import re

import pytest

from http_api.openapi import document
from pipeline.config import Settings
from pipeline.errors import InvalidInput
from pipeline.request import TraceRequest
from pipeline.workcenters import GROUP_NAMES

WINDOW = {"start_date": "2026-06-01", "end_date": "2026-06-10"}


def msd(**params: object) -> TraceRequest:
    """A mid-section-defect seed-resolve request as the API builds it."""
    return TraceRequest.from_dict(
        {"profile": "mid_section_defect", "params": params, "kind": "seed-resolve"}
    )


@pytest.mark.parametrize(
    "station",
    ["測試,成型", "成型,測試", " 測試 , 成型 ,", ["測試", "成型"], ["成型", "測試", "成型"]],
)
def test_stations_come_in_process_order_without_repeats(station: object) -> None:
    # Given the stations comma-joined (the dashboard) or as a JSON list, in any order
    params = msd(station=station, **WINDOW).params
    # Then they are the groups in process order, each once
    assert params.stations == ("成型", "測試")


@pytest.mark.parametrize("station", [None, "", " , ", []])
def test_no_station_is_the_default_station(station: object) -> None:
    assert msd(station=station, **WINDOW).params.stations == ("測試",)


def test_the_same_stations_in_another_order_are_the_same_request() -> None:
    a, b = msd(station="成型,測試", **WINDOW), msd(station=["測試", "成型"], **WINDOW)
    assert a.params.canonical() == b.params.canonical()
    assert a.fingerprint() == b.fingerprint()
    # and the default named or not is the same request
    assert msd(**WINDOW).fingerprint() == msd(station="測試", **WINDOW).fingerprint()
    assert msd(station="成型", **WINDOW).fingerprint() != a.fingerprint()


@pytest.mark.parametrize(
    ("station", "field"),
    [("測試,QA", "params.station[1]"), (["QA"], "params.station[0]"), ([" 測試"], None)],
)
def test_an_unknown_station_is_refused_naming_the_field(station: object, field: str | None) -> None:
    with pytest.raises(InvalidInput, match="unknown workcenter group") as refused:
        msd(station=station, **WINDOW)
    problems = refused.value.meta["errors"]
    assert problems[0]["field"].startswith("params.station")
    if field:
        assert problems[0]["field"] == field


def test_the_documented_station_forms_are_exactly_the_accepted_ones() -> None:
    # Given the document's schema of params.station
    schemas = document()["components"]["schemas"]
    kinds = schemas["TraceParams"]["properties"]["station"]["anyOf"]
    (joined,) = [k for k in kinds if k.get("type") == "string"]
    (listed,) = [k for k in kinds if k.get("type") == "array"]
    assert {"type": "null"} in kinds
    assert listed["items"] == {"$ref": "#/components/schemas/Station"}
    assert schemas["Station"]["enum"] == list(GROUP_NAMES)
    pattern = re.compile(joined["pattern"])
    # Then a comma-joined string matches the pattern exactly when validation accepts it
    texts = ["測試", "成型,測試", " 測試 ,, 成型 ", "", " ", "測試,QA", "QA", "測試;成型", "測 試"]
    for text in texts:
        try:
            msd(station=text, **WINDOW)
            accepted = True
        except InvalidInput:
            accepted = False
        assert bool(pattern.search(text)) is accepted, text


def test_a_date_range_may_span_730_days_and_no_more() -> None:
    # The old system's rule (end - start <= TRACE_MSD_MAX_DAYS), which the dashboard knows
    settings = Settings()
    assert settings.msd_max_days == 730
    msd(start_date="2024-01-01", end_date="2025-12-31").check(settings)  # 730 days apart
    msd(start_date="2026-06-01", end_date="2026-06-01").check(settings)  # one day
    with pytest.raises(InvalidInput, match="at most 730 days") as refused:
        msd(start_date="2024-01-01", end_date="2026-01-01").check(settings)
    assert refused.value.field == "params.end_date"
    with pytest.raises(InvalidInput, match=r"start_date .* is after end_date") as refused:
        msd(start_date="2026-06-02", end_date="2026-06-01")
    assert refused.value.field == "params.start_date"
