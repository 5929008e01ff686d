"""Reading a request: a JSON object body within the size limit, and query parameters."""

from __future__ import annotations

from typing import Any

import falcon
import orjson

from http_api.errors import ApiError
from http_api.guards import too_large


def bad_params(message: str) -> ApiError:
    return ApiError(falcon.HTTP_400, "INVALID_PARAMS", message)


def read_json(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object; 400 ``INVALID_PARAMS`` for anything else, 413 past the limit."""
    data = req.bounded_stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data.strip():
        raise bad_params("the request body must be a JSON object")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise bad_params(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise bad_params("the request body must be a JSON object")
    return body


def int_param(req: falcon.Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (400 naming it otherwise)."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_params(f"{name} must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise bad_params(f"{name} must be a non-negative integer, got {raw!r}")
    return value


def flag_param(req: falcon.Request, name: str) -> bool:
    """A boolean query parameter: 1/true/yes or 0/false/no (400 otherwise)."""
    raw = (req.get_param(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise bad_params(f"{name} must be 0 or 1, got {raw!r}")
