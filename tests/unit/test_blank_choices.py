"""A choice given as a blank string means "not given", and the OpenAPI document says so: the
fuzzer (``tests/chaos/test_hostile.py``) found ``"resolve_type": ""`` accepted although the
document allowed only the names or null."""

from __future__ import annotations

import re

from http_api.openapi import document
from pipeline.params import WHITESPACE, TraceParams


def test_the_documented_blank_is_exactly_pythons_whitespace() -> None:
    blank = re.compile(f"^[{WHITESPACE}]*$")
    assert all(bool(blank.match(chr(c))) is chr(c).isspace() for c in range(0x110000))


def test_blank_choices_are_not_given_and_documented_as_accepted() -> None:
    params = TraceParams.model_validate({"resolve_type": "", "station": " \x1f", "direction": "\t"})
    assert (params.resolve_type, params.station, params.direction) == (None, (), None)
    assert params.stations == ("測試",)  # no station: the default one
    fields = document()["components"]["schemas"]["TraceParams"]["properties"]
    (joined,) = [k for k in fields["station"]["anyOf"] if k.get("type") == "string"]
    assert re.search(joined["pattern"], " \x1f")
    for name in ("resolve_type", "direction"):
        kinds = fields[name]["anyOf"]
        assert {"type": "string", "pattern": f"^[{WHITESPACE}]*$"} in kinds, name
        assert {"type": "null"} in kinds, name
