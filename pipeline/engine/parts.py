"""The names of a job's parts and of the progress counters kept for them, in one place.

A *part* is one output of a stage, stored as chunks plus a manifest (``CheckpointStore``). Its
name is ``{stage}:{name}`` (``events:history``, ``lineage:ancestors``, ``seed-resolve:q``) except
for ``CIDS``, which is not one stage's (see there). A part's name is in its Redis keys
(``keys.manifest``, ``keys.chunk``...), so a renamed part is a different part: a job stored
before the rename (running, or named by a later request's ``lineage_job_id``) does not have it.

Every job has one progress hash (``keys.progress``) of integer counters: per part its committed
batches (``done``), committed rows (``rows``), batches the row guard cut (``truncated``) and, for
the events parts, the input batches to expect (``total``); per stage the messages that ran
it (``runs``). The counters are read whole (``JobRegistry.progress``) and looked up with the field
functions here.
"""

from __future__ import annotations

from pipeline import domains
from pipeline.engine.job import AGGREGATION, EVENTS, LINEAGE, SEED_RESOLVE

# ---- parts ------------------------------------------------------------------------------------
#: The lots the events stage reads, in batches of ``in_list_size`` (one ``CONTAINERID`` column).
#: Written by the lineage stage, or before the first stage of an events job (from the request's
#: CIDs, or copied from the job named by ``lineage_job_id``): hence no stage in its name.
CIDS = "cids"
#: The job's seed lots: rows of (container_id, container_name, lot_id), written by seed-resolve
#: (or before the first stage of a lineage job, and of an aggregating events job).
SEEDS = f"{SEED_RESOLVE}:seeds"
#: The blob of seed-resolve's summary (seed count, values not found), written after the seeds.
SEED_SUMMARY = SEED_RESOLVE
#: The aggregation's detail rows, in the table's order, each as the row of its lot's head in a
#: heads part and its own fields (``pipeline.engine.detail_rows``).
AGGREGATION_DETAIL = f"{AGGREGATION}:detail"
#: The detail rows' heads (a detail lot's shared fields, once per lot) an analysis built, in
#: its detail order.
AGGREGATION_HEADS = f"{AGGREGATION}:heads"
#: The heads the lot record names (``AGGREGATION_LOT_RECORD``): written, instead of
#: ``AGGREGATION_HEADS``, by the analysis keeping the record, and linked with it.
AGGREGATION_RECORD_HEADS = f"{AGGREGATION}:record-heads"
#: The same rows, in the same order, as the CSV export's flat cells (one tuple per row,
#: ``pipeline.stages.msd.detail.EXPORT_COLUMNS``): the export reads no nested lists.
AGGREGATION_EXPORT = f"{AGGREGATION}:export"
#: Backward, each detection lot as no mask changes it (``pipeline.stages.msd.lot_record``),
#: written by an analysis that saw every lot, linked into a re-analysis of the same trace.
AGGREGATION_LOT_RECORD = f"{AGGREGATION}:lot-record"
#: The blob of what those rows refer to (``lot_record.LotRecordMeta``), written after them.
LOT_RECORD_META = "lot-record"
#: What an analysis writes from the events (dropped when its events are fetched again).
ANALYSIS_OUTPUTS = (
    AGGREGATION_DETAIL,
    AGGREGATION_HEADS,
    AGGREGATION_RECORD_HEADS,
    AGGREGATION_EXPORT,
    AGGREGATION_LOT_RECORD,
)


def queries(stage: str) -> str:
    """The queries ``stage`` ran, one batch per query (``RecordingSource``), for the stages whose
    work is a sequence of queries: seed-resolve, lineage, aggregation."""
    return f"{stage}:q"


#: The queries of seed-resolve, lineage and the aggregation (``queries``).
SEED_QUERIES = queries(SEED_RESOLVE)
LINEAGE_QUERIES = queries(LINEAGE)
AGGREGATION_QUERIES = queries(AGGREGATION)
#: A detection window read in date ranges (``TRACE_DETECTION_RANGES``): the ranges' lots
#: merged, recorded as the whole window's detection query (batch 0), which the analysis then
#: reads as it reads that query's answer (``SEED_QUERIES`` holds the ranges' own queries).
DETECTION_LOTS = f"{SEED_RESOLVE}:detection"
#: Progress field: the date ranges a job's detection window is read in, fixed when its first
#: seed-resolve messages are sent (a worker with another ``TRACE_DETECTION_RANGES`` reads the
#: job's ranges, not its own).
SEED_RANGES = f"{SEED_RESOLVE}:ranges"
#: Progress field: the input batches of each events message of the job, fixed before its first
#: events message is sent (``pipeline.engine.flow.fix_group_size``), so every worker groups
#: the batches the same way whatever its own settings.
EVENTS_GROUP_BATCHES = "events:group_batches"
#: A re-analysis's copy of the queries its trace's earlier analyses ran (linked in place from
#: the job it takes the trace from: its ``AGGREGATION_QUERIES``, then its own ``PRIOR_QUERIES``,
#: so a chain of re-analyses keeps the first one's): the detection lots and their rejects are
#: the same whatever the masks, so the re-analysis reads them back instead of asking the
#: warehouse.
PRIOR_QUERIES = f"{AGGREGATION}:prior-q"


def events(domain: str) -> str:
    """The rows of one events domain, one batch per input batch of lots."""
    return f"{EVENTS}:{domain}"


def lineage(key: str) -> str:
    """One map- or list-valued field ``key`` of the lineage document (``ancestors``,
    ``seed_roots``...): rows of (key, value) or of (value,)."""
    return f"{LINEAGE}:{key}"


#: The lineage map the analysis reads, by direction: its lots' ancestors or descendants.
RELATED = {domains.BACKWARD: "ancestors", domains.FORWARD: "descendants"}


def trace_inputs(direction: str) -> tuple[str, ...]:
    """The parts an analysis of a stored trace takes from the trace's job besides its events
    (``pipeline.engine.inputs.write_inputs`` with ``events_of``): its lots, seeds, lineage maps
    and the queries its analysis and the analyses before it recorded. A trace missing one
    cannot serve another analysis."""
    return (
        CIDS,
        SEEDS,
        lineage("seed_roots"),
        lineage(RELATED[direction]),
        AGGREGATION_QUERIES,
        PRIOR_QUERIES,
    )


def name_in_stage(part: str) -> str:
    """What a part's name says after its stage: the domain of an events part, the key of a
    lineage part (``seeds``, ``q``...; empty for ``CIDS``)."""
    return part.partition(":")[2]


# ---- progress fields --------------------------------------------------------------------------
def done(part: str) -> str:
    """Committed batches of ``part``."""
    return f"{part}:done"


def total(part: str) -> str:
    """Input batches ``part`` will have once its stage completes (set for the events parts by
    the lineage stage, or when an events job is submitted; absent until then)."""
    return f"{part}:total"


def early(part: str) -> str:
    """Groups of events ``part`` (its first ones) sent while lineage walked, before its totals
    were known (``pipeline.engine.early_events``): the stage does not send them again."""
    return f"{part}:early"


def span(part: str) -> str:
    """Batches of ``CIDS`` one input batch of events ``part`` reads (1, or more for ``jobs``):
    how a missing input batch is named as a range of lots (``quality_meta.failed_ranges``)."""
    return f"{part}:span"


def rows(part: str) -> str:
    """Committed rows of ``part`` (after the row guard's cut)."""
    return f"{part}:rows"


def truncated(part: str) -> str:
    """Batches of ``part`` the row guard (``TRACE_MAX_ROWS_PER_DOMAIN``) cut or dropped."""
    return f"{part}:truncated"


def runs(stage: str) -> str:
    """Messages that ran ``stage`` for the job: 1 per run for seed-resolve, lineage and the
    aggregation (more when retried or resumed); the events stage runs as one message per
    domain and group of lot batches, so it counts those too."""
    return f"runs:{stage}"
