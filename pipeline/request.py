"""What a trace is asked to do: a profile, its ``params`` (``pipeline.params``) or the CIDs
themselves, the events domains. One typed model (``TraceRequest``): the API builds it from a
request body, the CLI from its flags, a job stores it as JSON and reads it back with the same
model; ``fingerprint`` names equal requests.

A request has a *kind*, which decides the stages its job runs (``pipeline.engine.job.plan``):
``trace`` (seeds -> everything), ``seed-resolve`` or ``lineage`` alone (the dashboard's first two
calls), ``events`` (from lots; a mid-section-defect one with seed lots also aggregates).

Rules that need no setting are checked when the model is built (``InvalidInput`` naming the
field); the limits that are settings (``check``) when a job is submitted or a trace run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import TypeAliasType

from pipeline import domains
from pipeline.config import Settings
from pipeline.domains import DIRECTIONS, PROFILES, Domain, Profile
from pipeline.errors import CidLimitExceeded, InvalidInput
from pipeline.identities import lineage_query_id
from pipeline.params import (
    MASKS,
    Names,
    NoneIfBlank,
    TraceParams,
    check_seeds,
    check_wildcards,
    check_window,
)
from pipeline.rows import unique
from pipeline.validation import invalid_input

TRACE: Final = "trace"
SEED_RESOLVE: Final = "seed-resolve"
LINEAGE: Final = "lineage"
EVENTS: Final = "events"
Kind = TypeAliasType("Kind", Literal["trace", "seed-resolve", "lineage", "events"])
KINDS = (TRACE, SEED_RESOLVE, LINEAGE, EVENTS)
#: A job id: 128 random bits in hex (``JobRegistry.submit``).
JOB_ID = "^[0-9a-f]{32}$"
JobId = Annotated[str, Field(pattern=JOB_ID)]


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(unique(names))


class TraceRequest(BaseModel):
    """A whole trace: the seed-resolve ``params`` of ``profile``, then events of ``domains``
    (none named: the dashboard's set for the profile and direction).

    With ``container_ids`` the trace starts from those lots: no seed-resolve, no lineage (the
    dashboard's events call), unless ``kind`` is ``lineage`` (the lots are the seeds of a
    lineage). An events request of a mid-section-defect analysis names its detection lots
    (``seed_container_ids``) and where their lineage is: another job (``lineage_job_id``) or a
    map given with the request (stored by the job; ``lineage_digest`` tells such requests apart).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Profile
    params: TraceParams = TraceParams()
    domains: Annotated[tuple[Domain, ...], AfterValidator(_unique)] = ()
    container_ids: Names = ()
    #: Not given: ``events`` for a request with container ids, else ``trace``.
    kind: Kind = TRACE
    seed_container_ids: Names = ()
    lineage_job_id: Annotated[JobId | None, NoneIfBlank] = None
    lineage_digest: str = ""
    #: The dashboard's ``lineage_query_id`` (``pipeline.identities``): where to look for a stored
    #: lineage of the seeds. Not part of the fingerprint: found or not, the trace is the same.
    lineage_query_id: Annotated[str | None, NoneIfBlank] = None
    #: Set by submission only (``pipeline.engine.submission.with_stored_trace``): a finished job
    #: of the same trace (its ``trace_query_id``) whose committed events this analysis reads in
    #: place, so another mask re-runs the analysis alone. Not part of the fingerprint.
    events_of: JobId | None = None

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as error:
            raise invalid_input(error) from None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """The kind from the lots (given: events), and with no domains named, the dashboard's
        set for the profile and direction."""
        if not isinstance(data, dict):
            return data
        if not data.get("kind"):
            data = {**data, "kind": EVENTS if data.get("container_ids") else TRACE}
        if data.get("domains") or data.get("profile") not in PROFILES:
            return data
        params = data.get("params")
        direction = (
            params.direction
            if isinstance(params, TraceParams)
            else params.get("direction")
            if isinstance(params, dict)
            else None
        )
        if direction not in DIRECTIONS:
            direction = domains.DEFAULT_DIRECTION[data["profile"]]
        return {**data, "domains": domains.default_domains(data["profile"], direction)}

    @model_validator(mode="after")
    def _rules(self) -> Self:
        kind = self.job_kind
        lots_named = self.container_ids or (kind == EVENTS and self.lineage_job_id)
        if kind in (LINEAGE, EVENTS) and not lots_named:
            raise InvalidInput("container_ids is missing or empty", field="container_ids")
        if kind in (TRACE, SEED_RESOLVE):
            check_seeds(self.profile, self.params)
        elif self.aggregates and self.params.detects(self.profile):
            check_window(self.params)  # an analysis without its dates: refused up front
        return self

    # ---- what it asks -------------------------------------------------------------------------
    @property
    def job_kind(self) -> Kind:
        return self.kind

    @property
    def aggregates(self) -> bool:
        """Whether the job runs the mid-section-defect aggregation."""
        if self.profile != domains.MID_SECTION_DEFECT:
            return False
        kind = self.job_kind
        return kind == TRACE or (kind == EVENTS and self.has_seeds)

    @property
    def has_seeds(self) -> bool:
        """An events request that knows its detection lots (given, or from a lineage)."""
        return bool(self.seed_container_ids or self.lineage_job_id or self.lineage_digest)

    @property
    def expands_lineage(self) -> bool:
        """An events request of an analysis that brings no lineage (neither a map nor a lineage
        job): its job walks the genealogy of its seeds first, never analysing the seeds alone.
        (A whole trace walks it anyway: not this.)"""
        kind = self.job_kind
        return (
            kind == EVENTS and self.aggregates and not (self.lineage_job_id or self.lineage_digest)
        )

    @property
    def from_cids(self) -> bool:
        """An events job starting from the lots given (no seed-resolve, no lineage)."""
        return self.job_kind == EVENTS and not self.expands_lineage

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seed lots the request names: the detection lots of an analysis, the lots of a
        lineage or of a plain events request (none for a trace from names)."""
        if self.job_kind in (TRACE, SEED_RESOLVE):
            return ()
        if self.aggregates and self.seed_container_ids:
            return self.seed_container_ids
        return self.container_ids

    def lineage_id(self) -> str:
        """The ``query_id`` of the lineage of this request's seeds (``pipeline.identities``)."""
        return lineage_query_id(self.profile, self.seeds, self.direction())

    def query_id(self) -> str | None:
        """The lineage ``query_id`` this request's answers carry: a lineage's own; an
        analysis's, that of its detection lots' lineage (``None`` for the others, and for an
        analysis whose seeds come from another job and that names no ``lineage_query_id``).
        One digest of the seeds: computed once, when the job is created."""
        if self.job_kind == LINEAGE or (self.aggregates and self.seed_container_ids):
            return self.lineage_id()
        return self.lineage_query_id

    def direction(self) -> str:
        return self.params.direction_for(self.profile)

    def check(self, settings: Settings) -> None:
        """The limits that are settings: a wildcard's prefix, a detection window's length, the
        profile's CID limit for the lots given. Raises ``InvalidInput``/``CidLimitExceeded``."""
        kind, params = self.job_kind, self.params
        seeds = kind in (TRACE, SEED_RESOLVE)
        if seeds and not params.detects(self.profile):
            wildcards = params.wildcards(self.profile)
            check_wildcards(params.values or (), settings.resolve_min_prefix, wildcards)
        elif (seeds or self.aggregates) and params.detects(self.profile):
            check_window(params, settings.msd_max_days)
        if kind in (LINEAGE, EVENTS):
            check_cid_limit(len(self.container_ids), self.profile, settings)

    # ---- stored form --------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The request as JSON values (what a job stores): defaults left out, ``kind`` always."""
        return {**self.model_dump(mode="json", exclude_defaults=True), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRequest:
        """A request from its JSON form (``as_dict``, or a caller's fields); ``InvalidInput``
        naming every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise invalid_input(error) from None

    @classmethod
    def from_json(cls, data: bytes | str) -> TraceRequest:
        """A request from its stored JSON (``as_dict``, encoded)."""
        try:
            return cls.model_validate(orjson.loads(data))
        except ValidationError as error:
            raise invalid_input(error) from None

    def fingerprint(self) -> str:
        """Equal for requests that ask the same thing: ids and seed values compared as sorted
        sets, params with sorted keys (a seed-resolve's or lineage's without the analysis's
        masks, which neither reads: another mask joins their jobs)."""
        params = self.params.canonical()
        if self.job_kind in (SEED_RESOLVE, LINEAGE):  # the masks change neither stage
            params = {k: v for k, v in params.items() if k not in MASKS}
        canonical = orjson.dumps(
            {
                "profile": self.profile,
                "params": params,
                "domains": sorted(self.domains),
                "container_ids": sorted(self.container_ids),
                "kind": self.job_kind,
                "seed_container_ids": sorted(self.seed_container_ids),
                "lineage_job_id": self.lineage_job_id or "",
                "lineage_digest": self.lineage_digest,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()


def check_cid_limit(count: int, profile: str, settings: Settings) -> None:
    """Raise ``CidLimitExceeded`` (the contract's message) past the profile's
    ``TRACE_MAX_CIDS_<PROFILE>``."""
    limit = settings.max_cids(profile)
    if count > limit:
        raise CidLimitExceeded(
            f"container_ids count ({count}) exceeds limit ({limit})", field="container_ids"
        )
