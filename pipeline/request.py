"""What a trace is asked to do: a profile, its seed-resolve params (or the CIDs themselves), the
events domains. Used by the in-process runner and by jobs; ``fingerprint`` names equal requests."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline import domains
from pipeline.errors import InvalidInput
from pipeline.rows import clean_values


@dataclass(frozen=True)
class TraceRequest:
    """A whole trace: the seed-resolve ``params`` of ``profile``, then events of ``domains``.

    With ``container_ids`` the trace starts from those lots: no seed-resolve, no lineage (the
    dashboard's events call).
    """

    profile: str
    params: Mapping[str, Any] = field(default_factory=dict)
    domains: tuple[str, ...] = ()  # empty: the dashboard's set for the profile and direction
    container_ids: tuple[str, ...] = ()

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
        return bool(self.container_ids)

    def validated(self) -> TraceRequest:
        """This request with profile, domains and direction checked and ids cleaned; raises
        ``InvalidInput``/``InvalidProfile`` naming the problem."""
        profile = domains.validate_profile(self.profile)
        if not isinstance(self.params, Mapping):
            raise InvalidInput("params must be an object", field="params")
        cids = tuple(clean_values(self.container_ids))
        if self.container_ids and not cids:
            raise InvalidInput("container_ids is empty", field="container_ids")
        request = TraceRequest(profile, dict(self.params), tuple(self.domains), cids)
        request.direction()
        return TraceRequest(profile, dict(self.params), request.event_domains(), cids)

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "params": dict(self.params),
            "domains": list(self.domains),
            "container_ids": list(self.container_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRequest:
        """A request from its JSON form (``as_dict``, or a client's body); validated."""
        if not isinstance(data, Mapping):
            raise InvalidInput("the request must be a JSON object", field="body")
        cids = data.get("container_ids") or ()
        wanted = data.get("domains") or ()
        for name, value in (("container_ids", cids), ("domains", wanted)):
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise InvalidInput(f"{name} must be a list", field=name)
        return cls(
            profile=data.get("profile"),  # type: ignore[arg-type]  # validated below
            params=data.get("params") or {},
            domains=tuple(wanted),
            container_ids=tuple(cids),
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
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(canonical).hexdigest()
