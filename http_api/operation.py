"""An endpoint's contract, declared once on its responder: ``@operation(Operation(...))``.

The declaration names what the responder reads (a body, a query string, headers: pydantic
models), what it answers (per status) and which errors it may answer (``TraceError`` classes).
The decorator parses the inputs with those models before the responder runs and hands them over
as keyword arguments (``body=``, ``query=``, ``headers=``): the responder reads exactly what is
declared, and bad input is a 400 naming the field (``http_api.body``). ``http_api.openapi``
builds the OpenAPI document from the same declarations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import falcon
from pydantic import BaseModel

from http_api.body import read_body, read_headers, read_query
from pipeline.domains import PROFILES
from pipeline.errors import TraceError

JSON = "application/json"
NDJSON = "application/x-ndjson"
TEXT = "text/plain"


@dataclass(frozen=True)
class Answer:
    """One successful answer: its description, the type of its ``data`` (``enveloped``: inside
    ``{"success": true, "data": ...}``) or of the whole body, its media type and headers."""

    description: str
    schema: Any = None
    media: str = JSON
    enveloped: bool = True
    headers: tuple[str, ...] = ()
    #: A 202 that names a job: links to its status, result and stream.
    job_links: bool = False
    #: The type of the envelope's ``meta``, when the answer always carries one.
    meta: Any = None


#: An error an operation may answer: its class (answered with the class's status), or the class
#: and a status, for errors whose status is their cause's (``StageFailed``).
ErrorSpec = type[TraceError] | tuple[type[TraceError], int]


@dataclass(frozen=True)
class Operation:
    """What one responder reads and answers (see the module docstring)."""

    id: str
    summary: str
    answers: Mapping[int, Answer]
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    errors: tuple[ErrorSpec, ...] = ()
    #: Callable without the API token (probes).
    open_access: bool = False


Responder = Callable[..., None]


def operation(spec: Operation) -> Callable[[Responder], Responder]:
    """Declare ``spec`` on a responder and parse its inputs before it runs."""

    def decorate(responder: Responder) -> Responder:
        @functools.wraps(responder)
        def respond(resource: Any, req: falcon.Request, resp: falcon.Response, **params: Any):
            inputs: dict[str, Any] = {}
            if spec.query is not None:
                inputs["query"] = read_query(req, spec.query)
            if spec.headers is not None:
                inputs["headers"] = read_headers(req, spec.headers)
            if spec.body is not None:
                settings = resource.services.settings
                max_ids = max(settings.max_cids(profile) for profile in PROFILES)
                inputs["body"] = read_body(req, spec.body, settings.max_body_bytes, max_ids)
            responder(resource, req, resp, **params, **inputs)

        respond.operation = spec  # type: ignore[attr-defined]
        return respond

    return decorate


def operations_of(resource: type | object) -> dict[str, Operation]:
    """The declared operations of a resource (class or instance), by lower-case method."""
    found: dict[str, Operation] = {}
    for method in ("get", "post", "put", "patch", "delete"):
        responder = getattr(resource, f"on_{method}", None)
        spec = getattr(responder, "operation", None)
        if isinstance(spec, Operation):
            found[method] = spec
    return found
