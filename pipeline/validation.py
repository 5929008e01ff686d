"""Validation errors of the typed models as the contract's ``INVALID_PARAMS``/``INVALID_PROFILE``.

pydantic reports every problem with its place in the input (``container_ids``, item 3); this
turns them into one ``InvalidInput`` whose message names the first few (``container_ids[3]:
must be a string (got 1)``) and whose ``meta.errors`` lists them, each with its ``field`` path, so
a client can point at every bad value. A bad profile is ``InvalidProfile``, the contract's own
code. Inputs are echoed short (a client's 10 MB body is never sent back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pipeline.domains import PROFILES
from pipeline.errors import InvalidInput, InvalidProfile

#: Problems named in the message (the rest are in ``meta.errors``), and listed there at most.
IN_MESSAGE = 3
IN_META = 20
#: Characters of a bad value echoed back.
ECHO_CHARS = 40


#: pydantic's messages for the usual problems, in the words the contract's messages use.
_PLAIN = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must have at least {min_length} item(s)",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "string_pattern_mismatch": "must match {pattern}",
}


def field_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("params", "values", 2)`` -> ``params.values[2]`` (after ``prefix``, if any)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _echo(value: Any) -> str:
    """A bad value as the message shows it: its JSON-ish text, cut short."""
    if isinstance(value, dict | list) and len(value) > ECHO_CHARS:
        return f"an {'object' if isinstance(value, dict) else 'array'} of {len(value)}"
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 3] + "..."


def describe(error: ErrorDetails, prefix: str = "") -> dict[str, str]:
    """One problem as ``{"field": path, "message": text}`` (the message starts with the path)."""
    kind, path = error["type"], field_path(error["loc"], prefix)
    if not path:  # the body itself
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            return {"field": "", "message": f"the request body is not valid JSON: {reason}"}
        return {"field": "", "message": "the request body must be a JSON object"}
    if kind == "missing":
        return {"field": path, "message": f"{path} is required"}
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        allowed = expected.replace("'", "").replace(" or ", ", ")
        message = f"{path}: unknown value {_echo(error['input'])}; expected one of {allowed}"
        return {"field": path, "message": message}
    ctx = error.get("ctx") or {}
    plain = _PLAIN.get(kind)
    message = plain.format(**ctx) if plain else error["msg"][0].lower() + error["msg"][1:]
    return {"field": path, "message": f"{path}: {message} (got {_echo(error['input'])})"}


def invalid_input(error: ValidationError, prefix: str = "") -> InvalidInput:
    """The ``InvalidInput`` (or ``InvalidProfile``) naming the problems of ``error``; ``prefix``
    is where the validated value sits in the request (e.g. ``params``)."""
    raws = error.errors(include_url=False)
    problems = [describe(e, prefix) for e in raws]
    for raw, problem in zip(raws, problems, strict=True):
        if problem["field"] == "profile" and raw["type"] in ("literal_error", "missing"):
            return InvalidProfile(
                f"unknown profile {raw.get('input')!r}; expected one of {', '.join(PROFILES)}"
                if raw["type"] == "literal_error"
                else f"profile is required; expected one of {', '.join(PROFILES)}",
                field="profile",
            )
    message = "; ".join(p["message"] for p in problems[:IN_MESSAGE])
    if len(problems) > IN_MESSAGE:
        message += f"; and {len(problems) - IN_MESSAGE} more (meta.errors)"
    return InvalidInput(
        message,
        field=problems[0]["field"] if problems else None,
        meta={"errors": problems[:IN_META]},
    )
