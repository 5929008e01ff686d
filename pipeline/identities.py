"""The trace identities the dashboard keeps and sends back: deterministic ids of a stored lineage
graph (``query_id``) and of a whole trace (``trace_query_id``).

Equal inputs give equal ids in any process and on any day: a lineage's id names its profile, its
seed set and its direction; a trace's id names its profile, seed set, detection window, stations
and direction, never the read-time masks (``loss_reasons``, ``pj_types``, ``packages``), so one
trace serves every mask. Seeds are a *set*: their digest does not depend on their order or on
repeats, and it is computed in one pass over any iterable (a 1M-seed trace streams its seeds from
the store; nothing is sorted or held).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson

from pipeline import domains
from pipeline.params import TraceParams

#: ``query_id`` of a lineage: ``trace-lineage-<profile>-<24 hex>`` (the old backend's form).
LINEAGE_PREFIX = "trace-lineage-"
#: ``trace_query_id``: ``msd-<16 hex>`` for the mid-section-defect analysis (the old backend's
#: form), ``trace-<profile>-<16 hex>`` for the others.
MSD_PREFIX = "msd-"
_MODULUS = 1 << 256


def seed_digest(seeds: Iterable[str]) -> str:
    """An order-independent digest of a set of seed ids (repeats count once): the sum, modulo
    2^256, of each distinct id's SHA-256. Holds the distinct ids seen (a set of strings)."""
    total = 0
    seen: set[str] = set()
    for seed in seeds:
        if seed in seen:
            continue
        seen.add(seed)
        total = (total + int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")) % _MODULUS
    return f"{len(seen)}:{total:064x}"


def _hash(fields: dict[str, object]) -> str:
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def lineage_query_id(profile: str, seeds: Iterable[str], direction: str) -> str:
    """The id of the lineage graph of ``seeds`` walked ``direction`` for ``profile``."""
    digest = _hash({"v": 1, "profile": profile, "seeds": seed_digest(seeds), "dir": direction})
    return f"{LINEAGE_PREFIX}{profile}-{digest[:24]}"


def trace_query_id(profile: str, seeds: Iterable[str], params: TraceParams) -> str:
    """The id of a trace: ``profile``, the seed set, and of ``params`` the dates, the
    stations and the direction (the masks never)."""
    fields: dict[str, object] = {
        "v": 1,
        "profile": profile,
        "seeds": seed_digest(seeds),
        "direction": params.direction_for(profile),
    }
    if profile == domains.MID_SECTION_DEFECT:
        fields.update(
            start_date=str(params.start_date or ""),
            end_date=str(params.end_date or ""),
            stations=list(params.stations),
        )
        return MSD_PREFIX + _hash(fields)[:16]
    return f"trace-{profile}-{_hash(fields)[:16]}"
