"""Stage 3, events: the rows of one domain for a list of lots, as a stream of row batches.

``fetch_events(source, domain, cids)`` runs the domain's query once per IN batch of <= 1000 ids and
yields each ``fetchmany`` batch as soon as it arrives, after adding the derived columns of the
contract (``WORKCENTER_GROUP``, ``WORKCENTERSEQUENCE_GROUP``) and guarding floats against
NaN/Infinity. Columns are UPPER_CASE, timestamps ``YYYY-MM-DD HH:MM:SS``. At most one batch of rows
is held at a time.

``jobs`` is different: ``DW_MES_JOB.CONTAINERIDS`` is a comma-separated list, so a job matches a
lot when the lot's id is one of its items (exactly, not as a substring, which the old system did),
and the job is emitted once per matched lot with ``CONTAINERID`` set. For a few lots the SQL
narrows the jobs by substring (``jobs_probe``); for many it is one pass over the jobs that list
any lot (``jobs_scan``), matched against the whole id set in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

from pipeline import domains
from pipeline.config import DEFAULT_JOBS_PROBE_MAX
from pipeline.errors import InvalidInput
from pipeline.rows import RowBatch, clean_values
from pipeline.sources.base import Source
from pipeline.workcenters import group_of, group_order


@dataclass(frozen=True)
class DomainSpec:
    """How one domain is fetched: its query, derived columns, and its float columns."""

    name: str
    query: str
    derive: Callable[[RowBatch], RowBatch] | None = None
    float_columns: tuple[str, ...] = ()


def with_group(batch: RowBatch) -> RowBatch:
    """Append ``WORKCENTER_GROUP`` (from ``WORKCENTERNAME``; ``None`` when unmapped)."""
    at = batch.index("WORKCENTERNAME")
    return RowBatch(
        (*batch.columns, "WORKCENTER_GROUP"),
        [(*row, group_of(row[at])) for row in batch.rows],
    )


def with_reject_fields(batch: RowBatch) -> RowBatch:
    """Append ``TXN_DAY`` (the transaction's day at midnight), ``WORKCENTER_GROUP`` and its
    process position ``WORKCENTERSEQUENCE_GROUP`` (999 when unmapped)."""
    at, txn = batch.index("WORKCENTERNAME"), batch.index("TXNDATE")
    rows = []
    for row in batch.rows:
        group = group_of(row[at])
        day = row[txn][:10] + " 00:00:00" if row[txn] else None
        rows.append((*row, day, group, group_order(group)))
    columns = (*batch.columns, "TXN_DAY", "WORKCENTER_GROUP", "WORKCENTERSEQUENCE_GROUP")
    return RowBatch(columns, rows)


SPECS: dict[str, DomainSpec] = {
    spec.name: spec
    for spec in (
        DomainSpec(domains.HISTORY, "events/history"),
        DomainSpec(domains.MATERIALS, "events/materials", float_columns=("QTYCONSUMED",)),
        DomainSpec(domains.REJECTS, "events/rejects", derive=with_reject_fields),
        DomainSpec(domains.HOLDS, "events/holds", float_columns=("HOLD_HOURS",)),
        DomainSpec(domains.JOBS, "events/jobs_scan"),  # or jobs_probe: see _jobs
        DomainSpec(domains.UPSTREAM_HISTORY, "events/upstream_history", derive=with_group),
        DomainSpec(domains.DOWNSTREAM_REJECTS, "events/downstream_rejects", derive=with_group),
    )
}
JOB_COLUMNS_EXTRA = ("CONTAINERID",)


def lots_per_fetch(domain: str, in_list_size: int, jobs_scan_lots: int) -> int:
    """Lots one ``fetch_events`` call is given: an IN list's worth, except ``jobs``, whose table
    is read once per call, so it gets ``jobs_scan_lots`` (rounded down to whole IN lists)."""
    if domain == domains.JOBS:
        return max(1, jobs_scan_lots // in_list_size) * in_list_size
    return in_list_size


def fetch_events(
    source: Source,
    domain: str,
    cids: Iterable[object],
    *,
    jobs_probe_max: int = DEFAULT_JOBS_PROBE_MAX,
) -> Generator[RowBatch, None, None]:
    """Row batches of ``domain`` for the lots ``cids`` (any number; batched internally).

    Raises ``InvalidInput`` at once for an unknown domain or no ids; source errors are raised
    while iterating.
    """
    spec = SPECS.get(domain)
    if spec is None:
        raise InvalidInput(f"unsupported domains: {domain}", field="domains")
    ids = clean_values(cids)
    if not ids:
        raise InvalidInput("container_ids is empty", field="container_ids")
    return _stream(source, spec, ids, jobs_probe_max)


def _stream(
    source: Source, spec: DomainSpec, ids: list[str], jobs_probe_max: int
) -> Generator[RowBatch, None, None]:
    if spec.name == domains.JOBS:
        batches = _jobs(source, ids, jobs_probe_max)
    else:
        batches = source.query_in(spec.query, "cids", ids)
    for batch in batches:
        if spec.derive is not None:
            batch = spec.derive(batch)
        for column in spec.float_columns:
            batch = finite_floats(batch, column)
        yield batch


def finite_floats(batch: RowBatch, column: str) -> RowBatch:
    """``batch`` with NaN/Infinity in ``column`` replaced by ``None`` (copied only if needed)."""
    at = batch.index(column)
    bad = [
        i
        for i, row in enumerate(batch.rows)
        if isinstance(row[at], float) and not math.isfinite(row[at])
    ]
    if not bad:
        return batch
    rows = list(batch.rows)
    for i in bad:
        row = rows[i]
        rows[i] = (*row[:at], None, *row[at + 1 :])
    return RowBatch(batch.columns, rows)


def split_ids(text: str | None) -> list[str]:
    """The items of a comma-separated id list, trimmed, blanks dropped, order kept."""
    if not text:
        return []
    return clean_values(text.split(","))


def _jobs(source: Source, ids: Sequence[str], probe_max: int) -> Iterator[RowBatch]:
    wanted = set(ids)
    if len(ids) <= probe_max:
        binds = {f"cid{i}": cid for i, cid in enumerate(ids)}
        contains = " OR ".join(f"INSTR(j.CONTAINERIDS, :{name}) > 0" for name in binds)
        batches = source.query("events/jobs_probe", binds, fragments={"contains_any": contains})
    else:
        batches = source.query("events/jobs_scan")
    for batch in batches:
        at = batch.index("CONTAINERIDS")
        rows = [(*row, cid) for row in batch.rows for cid in split_ids(row[at]) if cid in wanted]
        if rows:
            yield RowBatch((*batch.columns, *JOB_COLUMNS_EXTRA), rows)
