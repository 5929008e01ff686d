"""The trace identities the dashboard keeps and sends back: deterministic ids of a stored lineage
graph (``query_id``) and of a whole trace (``trace_query_id``).

Equal inputs give equal ids in any process and on any day: a lineage's id names its profile, its
seed set and its direction; a trace's id names its profile, seed set, detection window, stations
and direction, never the read-time masks (``loss_reasons``, ``pj_types``, ``packages``), so one
trace serves every mask. Seeds are a *set*: their digest does not depend on their order or on
repeats, and it is computed in one pass over any iterable (a 1M-seed trace streams its seeds from
the store); the distinct ids it must remember past ``DIGEST_MEMORY_IDS`` go to a scratch database
on local disk, so its memory does not grow with the seeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson

from pipeline import domains
from pipeline.params import TraceParams
from pipeline.stages.scratch import Scratch

#: ``query_id`` of a lineage: ``trace-lineage-<profile>-<24 hex>`` (the old backend's form).
LINEAGE_PREFIX = "trace-lineage-"
#: ``trace_query_id``: ``msd-<16 hex>`` for the mid-section-defect analysis (the old backend's
#: form), ``trace-<profile>-<16 hex>`` for the others.
MSD_PREFIX = "msd-"
_MODULUS = 1 << 256
#: Distinct seed ids a digest keeps in memory (~100 B each: 50,000 ≈ 5 MB) before it moves them
#: to a scratch database; a 1M-CID trace has ~744K seeds (a set of them: ~80 MB).
DIGEST_MEMORY_IDS = 50_000


def seed_digest(seeds: Iterable[str], *, memory_ids: int = DIGEST_MEMORY_IDS) -> str:
    """An order-independent digest of a set of seed ids (repeats count once): the count of
    distinct ids and the sum, modulo 2^256, of each one's SHA-256. At most ``memory_ids`` ids
    are held in memory: past that they are kept distinct in a scratch database (its own 4 MB
    page cache, then local disk), and summed from it at the end."""
    seen: set[str] = set()
    spill: Scratch | None = None
    try:
        for seed in seeds:
            if seed in seen:
                continue
            seen.add(seed)
            if len(seen) >= memory_ids:
                spill = spill or Scratch("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
                spill.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((s,) for s in seen))
                seen.clear()
        if spill is None:
            return _digest(len(seen), seen)
        spill.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((s,) for s in seen))
        seen.clear()
        count = int(spill.value("SELECT count(*) FROM ids"))
        return _digest(count, (seed for (seed,) in spill.rows("SELECT id FROM ids")))
    finally:
        if spill is not None:
            spill.close()


def _digest(count: int, distinct: Iterable[str]) -> str:
    total = 0
    for seed in distinct:
        total = (total + int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")) % _MODULUS
    return f"{count}:{total:064x}"


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
