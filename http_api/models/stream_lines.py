"""The lines of the NDJSON stream (``GET /api/trace/job/{job_id}/stream``), typed.

Events jobs: ``meta``; per domain ``domain_start``, ``records``..., ``domain_end``;
``aggregation`` (an analysis); ``warning`` (a domain failed); ``quality_meta``; ``complete``, or
``error`` instead when the stream cannot go on. Seed-resolve and lineage jobs: ``meta``,
``result``, ``complete``. ``http_api.stream`` writes them; the OpenAPI document describes them
from these definitions.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypeAliasType, TypedDict

from http_api.models.answers import Aggregation, LineageResult, Row, SeedResolveResult
from pipeline.domains import Domain, Profile
from pipeline.engine.documents import Count, ErrorCode, QualityMeta, QueryId, TraceQueryId


class MetaLine(TypedDict):
    type: Literal["meta"]
    job_id: str
    profile: Profile
    domains: list[Domain]
    query_id: NotRequired[QueryId]
    trace_query_id: NotRequired[TraceQueryId]
    follow: NotRequired[bool]


class DomainStartLine(TypedDict):
    type: Literal["domain_start"]
    domain: Domain
    total: Annotated[Count | None, Field(description="Null while the domain is being fetched.")]
    quality_meta: QualityMeta | None


class RecordsLine(TypedDict):
    type: Literal["records"]
    domain: Domain
    batch: Annotated[Count, Field(description="Resume after it with `from=domain:batch+1`.")]
    count: Count
    data: list[Row]


class DomainEndLine(TypedDict):
    type: Literal["domain_end"]
    domain: Domain
    count: Count


class AggregationLine(TypedDict):
    type: Literal["aggregation"]
    data: Aggregation


class WarningLine(TypedDict):
    type: Literal["warning"]
    code: ErrorCode
    failed_domains: NotRequired[list[Domain]]


class QualityMetaLine(TypedDict):
    type: Literal["quality_meta"]
    quality_meta: QualityMeta
    domain_quality_meta: dict[str, QualityMeta]


class ResultLine(TypedDict):
    type: Literal["result"]
    stage: Literal["seed-resolve", "lineage"]
    data: SeedResolveResult | LineageResult


class CompleteLine(TypedDict):
    type: Literal["complete"]
    total_records: Count


class ErrorLine(TypedDict):
    type: Literal["error"]
    code: NotRequired[ErrorCode]
    message: str
    domain: NotRequired[str]
    batch: NotRequired[Count]


StreamLine = TypeAliasType(
    "StreamLine",
    Annotated[
        MetaLine
        | DomainStartLine
        | RecordsLine
        | DomainEndLine
        | AggregationLine
        | WarningLine
        | QualityMetaLine
        | ResultLine
        | CompleteLine
        | ErrorLine,
        Field(discriminator="type"),
    ],
)
