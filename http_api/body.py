"""Reading a request's inputs with their typed models: a JSON body within the size limit, the
query string, headers. Anything a model refuses is ``InvalidInput`` (400) naming every bad field
and its position; a body past ``TRACE_MAX_BODY_BYTES`` is ``PayloadTooLarge`` (413), and an id
list longer than any profile's CID limit is ``CidLimitExceeded`` (413) before it is validated.

Memory: orjson makes ~73 bytes of ``str`` per short id (a 1M-id body of 19 MB: 73 MB), and the
model's validation of such a list peaked at 4x that (300 MB, tracemalloc), so lists no trace
may hold are refused between the two; the bytes read are noted for ``http_api.heap``, which
gives the freed pages back once the answer is written."""

from __future__ import annotations

from typing import TypeVar

import falcon
import orjson
from pydantic import BaseModel, ValidationError

from http_api import heap
from pipeline.errors import CidLimitExceeded, InvalidInput, PayloadTooLarge
from pipeline.validation import invalid_input

M = TypeVar("M", bound=BaseModel)

#: Body fields holding lots, checked against the largest CID limit before validation.
ID_LISTS = ("container_ids", "seed_container_ids")


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds {max_bytes} bytes (TRACE_MAX_BODY_BYTES)")


def read_body(req: falcon.Request, model: type[M], max_bytes: int, max_ids: int) -> M:
    """The body as ``model`` (read at most ``max_bytes`` + 1 bytes: a body without a declared
    length cannot grow the process past the limit). An id list (``ID_LISTS``) of more than
    ``max_ids`` entries, blanks and repeats included, is ``CidLimitExceeded`` before the model
    sees it; the profile's own limit is checked later, on the cleaned list."""
    data = req.bounded_stream.read(max_bytes + 1)
    heap.note_body(len(data))
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    try:
        # orjson then the model: ~30 % faster than pydantic's own parser on a big id list.
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the request body is not valid JSON: {error}") from None
    del data
    refuse_long_id_lists(parsed, max_ids)
    try:
        return model.model_validate(parsed)
    except ValidationError as error:
        raise invalid_input(error) from None


def refuse_long_id_lists(parsed: object, max_ids: int) -> None:
    """``CidLimitExceeded`` naming the first ``ID_LISTS`` field longer than ``max_ids``."""
    if not isinstance(parsed, dict):
        return
    for name in ID_LISTS:
        ids = parsed.get(name)
        if isinstance(ids, list) and len(ids) > max_ids:
            raise CidLimitExceeded(
                f"{name} count ({len(ids)}) exceeds the largest limit of any profile ({max_ids})",
                field=name,
            )


def read_query(req: falcon.Request, model: type[M]) -> M:
    """The query string as ``model`` (a parameter given twice arrives as a list: refused)."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as error:
        raise invalid_input(error) from None


def read_headers(req: falcon.Request, model: type[M]) -> M:
    """The headers ``model`` names (by their aliases) as ``model``."""
    names = [f.alias or name for name, f in model.model_fields.items()]
    given = {name: req.get_header(name) for name in names}
    present = {name: value for name, value in given.items() if value is not None}
    try:
        return model.model_validate(present)
    except ValidationError as error:
        raise invalid_input(error) from None
