"""The bodies of the submitting endpoints. Each validates a request (400 naming every bad field
and position), is the OpenAPI document's schema for it, and builds the engine's ``TraceRequest``.

Unknown fields are ignored: the dashboard may send some of its own. ``cache_key`` (the
seed-resolve answer's, which the dashboard echoes in its lineage and events bodies) is declared,
so the document shows it, and ignored.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pipeline.domains import Domain, Profile
from pipeline.params import Names, TraceParams
from pipeline.request import EVENTS, LINEAGE, SEED_RESOLVE, TRACE, JobId, TraceRequest

#: Lots named by the caller: at least one; blanks and repeats are dropped.
ContainerIds = Annotated[Names, MinLen(1)]
CIDS = "Container ids (CIDs); blanks and repeats are dropped."
DomainList = Annotated[
    tuple[Domain, ...],
    Field(min_length=1, description="In the order the results should come."),
]
Fresh = Annotated[
    StrictBool,
    Field(description="Start a new job even when an equal request has one (default false)."),
]


#: The seed-resolve answer's ``cache_key``, echoed by the dashboard: accepted, ignored.
CacheKey = Annotated[
    str | None,
    Field(
        max_length=200,
        description="The seed-resolve answer's `cache_key`, as the dashboard echoes it "
        "(or null): accepted and ignored (it changes nothing, not even which job serves the "
        "request).",
    ),
]


class _Submission(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    fresh: Fresh = False


class SeedResolveRequest(_Submission):
    """Seeds from names (any profile: `resolve_type` + `values`) or, for mid_section_defect, the
    detection lots at a station in a date range."""

    profile: Profile
    params: TraceParams

    def trace_request(self) -> TraceRequest:
        return TraceRequest(profile=self.profile, params=self.params, kind=SEED_RESOLVE)


class TraceJobRequest(SeedResolveRequest):
    """A whole trace from seeds: seed-resolve, lineage, events (and the aggregation)."""

    domains: Annotated[
        tuple[Domain, ...], Field(description="Default: the dashboard's set for the profile.")
    ] = ()

    def trace_request(self) -> TraceRequest:
        return TraceRequest(
            profile=self.profile, params=self.params, domains=self.domains, kind=TRACE
        )


class LineageRequest(_Submission):
    """The genealogy around the given lots."""

    profile: Profile
    container_ids: ContainerIds = Field(description=CIDS)
    params: TraceParams | None = None
    cache_key: CacheKey = None

    def trace_request(self) -> TraceRequest:
        return TraceRequest(
            profile=self.profile,
            params=self.params or TraceParams(),
            container_ids=self.container_ids,
            kind=LINEAGE,
        )


class InlineLineage(BaseModel):
    """mid_section_defect: the detection lots' lineage as the lineage stage answered it; the
    analysis reads the seeds' `ancestors` (backward) or `descendants`/`children_map`
    (forward) and `seed_roots`. Other keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ancestors: dict[str, list[str]] | None = None
    descendants: dict[str, list[str]] | None = None
    children_map: dict[str, list[str]] | None = None
    seed_roots: dict[str, str | None] | None = None

    def covers(self, direction: str) -> bool:
        """Whether it holds the related lots the analysis needs (backward ``ancestors``;
        forward ``descendants`` or ``children_map``), not empty."""
        if direction == "backward":
            return bool(self.ancestors)
        return bool(self.descendants or self.children_map)

    def maps(self) -> dict[str, Any]:
        """The maps given (absent ones left out)."""
        return self.model_dump(exclude_none=True)

    def digest(self) -> str:
        """Equal for equal maps (tells requests with different lineages apart)."""
        return hashlib.sha256(orjson.dumps(self.maps(), option=orjson.OPT_SORT_KEYS)).hexdigest()


class EventsRequest(_Submission):
    """The events of the given lots (or of a lineage job's) per domain; a mid_section_defect
    request with its detection lots also gets the aggregation."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["container_ids"]}, {"required": ["lineage_job_id"]}]
        }
    )

    profile: Profile
    container_ids: ContainerIds | None = Field(None, description=CIDS)
    domains: DomainList
    params: TraceParams | None = Field(
        None, description="mid_section_defect: also the detection params (aggregation)."
    )
    seed_container_ids: Annotated[
        Names, Field(description="mid_section_defect: the detection lots.")
    ] = ()
    lineage: InlineLineage | None = None
    lineage_job_id: Annotated[
        JobId | None,
        Field(description="mid_section_defect: a lineage job to take lots and map from."),
    ] = None
    lineage_query_id: Annotated[
        str | None,
        Field(
            max_length=200,
            description="mid_section_defect: the `query_id` of the seeds' lineage answer. The "
            "seeds are expanded from that stored lineage (ancestors backward, descendants "
            "forward); when it is unknown or expired, or not given, the job walks the lineage "
            "of the seeds itself. Never the seeds alone.",
        ),
    ] = None
    cache_key: CacheKey = None

    def inline_lineage(self) -> InlineLineage | None:
        """The inline lineage, when it holds what the analysis of this direction needs (a map
        without it is as good as none: the job walks the lineage itself)."""
        direction = (self.params or TraceParams()).direction_for(self.profile)
        return self.lineage if self.lineage and self.lineage.covers(direction) else None

    def trace_request(self) -> TraceRequest:
        lineage = self.inline_lineage()
        return TraceRequest(
            profile=self.profile,
            params=self.params or TraceParams(),
            domains=self.domains,
            container_ids=self.container_ids or (),
            kind=EVENTS,
            seed_container_ids=self.seed_container_ids,
            lineage_job_id=self.lineage_job_id,
            lineage_digest=lineage.digest() if lineage else "",
            lineage_query_id=self.lineage_query_id,
        )
