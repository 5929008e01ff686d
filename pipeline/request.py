"""What a trace is asked to do: a profile, its seed-resolve params (or the CIDs themselves), the
events domains. Used by the in-process runner and by jobs; ``fingerprint`` names equal requests.

A request has a *kind*, which decides the stages its job runs (``pipeline.engine.job.plan``):
``trace`` (seeds -> everything), ``seed-resolve`` or ``lineage`` alone (the dashboard's first two
calls), ``events`` (from lots; a mid-section-defect one with seed lots also aggregates)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline import domains
from pipeline.errors import InvalidInput
from pipeline.rows import clean_values

TRACE = "trace"
SEED_RESOLVE = "seed-resolve"
LINEAGE = "lineage"
EVENTS = "events"
KINDS = (TRACE, SEED_RESOLVE, LINEAGE, EVENTS)


@dataclass(frozen=True)
class TraceRequest:
    """A whole trace: the seed-resolve ``params`` of ``profile``, then events of ``domains``.

    With ``container_ids`` the trace starts from those lots: no seed-resolve, no lineage (the
    dashboard's events call), unless ``kind`` is ``lineage`` (the lots are the seeds of a
    lineage). An events request of a mid-section-defect analysis names its detection lots
    (``seed_container_ids``) and where their lineage is: another job (``lineage_job_id``) or a
    map given with the request (stored by the job; ``lineage_digest`` tells such requests apart).
    """

    profile: str
    params: Mapping[str, Any] = field(default_factory=dict)
    domains: tuple[str, ...] = ()  # empty: the dashboard's set for the profile and direction
    container_ids: tuple[str, ...] = ()
    kind: str = ""  # empty: events with container_ids, else trace
    seed_container_ids: tuple[str, ...] = ()
    lineage_job_id: str = ""
    lineage_digest: str = ""

    @property
    def job_kind(self) -> str:
        return self.kind or (EVENTS if self.container_ids else TRACE)

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

    def direction(self) -> str:
        return domains.validate_direction(self.params.get("direction"), self.profile)

    def event_domains(self) -> tuple[str, ...]:
        if self.domains:
            return domains.validate_domains(self.domains)
        if self.profile == domains.MID_SECTION_DEFECT:
            return domains.MSD_DOMAINS[self.direction()]
        return domains.QUERY_TOOL_DOMAINS

    @property
    def from_cids(self) -> bool:
        """An events job starting from lots (no seed-resolve, no lineage)."""
        return self.job_kind == EVENTS

    def validated(self) -> TraceRequest:
        """This request with profile, domains and direction checked and ids cleaned; raises
        ``InvalidInput``/``InvalidProfile`` naming the problem."""
        profile = domains.validate_profile(self.profile)
        if not isinstance(self.params, Mapping):
            raise InvalidInput("params must be an object", field="params")
        kind = self.job_kind
        if kind not in KINDS:
            raise InvalidInput(f"unknown request kind {kind!r}", field="kind")
        cids = tuple(clean_values(self.container_ids))
        if self.container_ids and not cids:
            raise InvalidInput("container_ids is empty", field="container_ids")
        if kind in (LINEAGE, EVENTS) and not cids and not self.lineage_job_id:
            raise InvalidInput("container_ids is empty", field="container_ids")
        seeds = tuple(clean_values(self.seed_container_ids))
        request = TraceRequest(profile, dict(self.params), tuple(self.domains), cids, kind)
        request.direction()
        return TraceRequest(
            profile,
            dict(self.params),
            request.event_domains(),
            cids,
            kind,
            seeds,
            str(self.lineage_job_id or ""),
            str(self.lineage_digest or ""),
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "profile": self.profile,
            "params": dict(self.params),
            "domains": list(self.domains),
            "container_ids": list(self.container_ids),
            "kind": self.job_kind,
        }
        for name, value in (
            ("seed_container_ids", list(self.seed_container_ids)),
            ("lineage_job_id", self.lineage_job_id),
            ("lineage_digest", self.lineage_digest),
        ):
            if value:
                data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRequest:
        """A request from its JSON form (``as_dict``, or a client's body); validated."""
        if not isinstance(data, Mapping):
            raise InvalidInput("the request must be a JSON object", field="body")
        cids = data.get("container_ids") or ()
        wanted = data.get("domains") or ()
        seeds = data.get("seed_container_ids") or ()
        for name, value in (
            ("container_ids", cids),
            ("domains", wanted),
            ("seed_container_ids", seeds),
        ):
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise InvalidInput(f"{name} must be a list", field=name)
        for name in ("kind", "lineage_job_id", "lineage_digest"):
            if not isinstance(data.get(name) or "", str):
                raise InvalidInput(f"{name} must be a string", field=name)
        return cls(
            profile=data.get("profile"),  # type: ignore[arg-type]  # validated below
            params=data.get("params") or {},
            domains=tuple(wanted),
            container_ids=tuple(cids),
            kind=data.get("kind") or "",
            seed_container_ids=tuple(seeds),
            lineage_job_id=data.get("lineage_job_id") or "",
            lineage_digest=data.get("lineage_digest") or "",
        ).validated()

    def fingerprint(self) -> str:
        """Equal for requests that ask the same thing: ids and seed values compared as sorted
        sets, params with sorted keys."""
        params = dict(self.params)
        if isinstance(params.get("values"), list):
            params["values"] = sorted(clean_values(params["values"]))
        canonical = orjson.dumps(
            {
                "profile": self.profile,
                "params": params,
                "domains": sorted(self.domains),
                "container_ids": sorted(self.container_ids),
                "kind": self.job_kind,
                "seed_container_ids": sorted(self.seed_container_ids),
                "lineage_job_id": self.lineage_job_id,
                "lineage_digest": self.lineage_digest,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()
