"""Every Redis key of the checkpoint store, built in one place, under one namespace.

A job's keys all start with ``trace:job:{id}`` and carry the job's TTL. The cross-job indexes
(``trace:jobs:*``, ``trace:leases``) are sorted sets scored by time, so listing and cleanup never
need ``SCAN``/``KEYS``; their members are trimmed by score instead of expiring.
"""

from __future__ import annotations

NAMESPACE = "trace"

#: Index of every job by creation time (score: epoch seconds).
RECENT = f"{NAMESPACE}:jobs:recent"
#: Jobs that are queued or started (score: last state change).
RUNNING = f"{NAMESPACE}:jobs:running"
#: Jobs that failed (score: when).
FAILED = f"{NAMESPACE}:jobs:failed"
#: Work a worker holds right now, ``{job_id}|{message key}`` scored by its last heartbeat.
LEASES = f"{NAMESPACE}:leases"
#: Held by the reaper that is looking for stale leases (one at a time across all workers).
REAPER_LOCK = f"{NAMESPACE}:reaper:lock"
#: Worker processes alive, ``host:pid`` scored by their last heartbeat (``/readyz``).
WORKERS = f"{NAMESPACE}:workers"
#: Stream of job lifecycle events, capped (``pipeline.engine.lifecycle``).
EVENTS = f"{NAMESPACE}:events"
#: Hash of the service's counters (``pipeline.engine.metrics``): shared by every process.
METRICS = f"{NAMESPACE}:metrics"
#: String: the mid-section-defect page's warehouse-derived option lists, one JSON document
#: (``pipeline.engine.options``); it carries ``TRACE_MSD_OPTIONS_TTL_SECONDS`` x 2.
MSD_OPTIONS = f"{NAMESPACE}:msd:options"
#: String, set once per refresh: a refresh of ``MSD_OPTIONS`` was asked of the workers (so many
#: requests on a cold cache send one message); it expires after a message's time limit.
MSD_OPTIONS_CLAIM = f"{NAMESPACE}:msd:options:claim"


def job(job_id: str) -> str:
    """Hash: the job's request, state, stages, timestamps and error."""
    return f"{NAMESPACE}:job:{job_id}"


def job_keys(job_id: str) -> str:
    """Set: every other key the job has written (for TTL refresh and release)."""
    return f"{job(job_id)}:keys"


def progress(job_id: str) -> str:
    """Hash: counters per part (batches done and expected, rows, truncated batches) and runs
    per stage; field names from ``pipeline.engine.parts``."""
    return f"{job(job_id)}:progress"


def attempts(job_id: str) -> str:
    """Hash: starts per batch (``{part}:{batch}``), to stop a batch that keeps killing workers."""
    return f"{job(job_id)}:attempts"


def queries(job_id: str) -> str:
    """Hash: source queries issued per batch (``{part}:{batch}``)."""
    return f"{job(job_id)}:queries"


def domains(job_id: str) -> str:
    """Hash: per events domain, its state (``failed``/``truncated``) and why."""
    return f"{job(job_id)}:domains"


def manifest(job_id: str, part: str) -> str:
    """Hash: finished input batch number -> its manifest entry (chunk keys, rows, checksums)."""
    return f"{job(job_id)}:manifest:{part}"


def columns(job_id: str, part: str) -> str:
    """String: the column names of ``part``'s rows, written once."""
    return f"{job(job_id)}:columns:{part}"


def chunk(job_id: str, part: str, batch: int, index: int, attempt: str) -> str:
    """String: one msgpack chunk of rows. ``attempt`` keeps a half-written earlier attempt of the
    same batch from being overwritten while a reader might trust it."""
    return f"{chunk_prefix(job_id, part)}{batch}:{index}:{attempt}"


def chunk_prefix(job_id: str, part: str) -> str:
    """What the keys of ``part``'s own chunks start with (``chunk``); a chunk linked from
    another job or part does not."""
    return f"{job(job_id)}:chunk:{part}:"


def page_index(job_id: str, part: str) -> str:
    """Sorted set: a finished part's chunks scored by the offset of their first row."""
    return f"{job(job_id)}:index:{part}"


def rate(bucket: str, client: str, window: int) -> str:
    """String counter: requests of ``client`` to ``bucket`` in fixed window number ``window``."""
    return f"{NAMESPACE}:rate:{bucket}:{client}:{window}"


def rate_per_job(client: str, job_id: str, window: int) -> str:
    """String counter: requests of ``client`` to job ``job_id`` in fixed window ``window``."""
    return f"{NAMESPACE}:rate-job:{job_id}:{client}:{window}"


def blob(job_id: str, name: str) -> str:
    """String: one small msgpack document (a stage's summary)."""
    return f"{job(job_id)}:blob:{name}"


def json_doc(job_id: str, name: str) -> str:
    """String: one document as JSON bytes, encoded once when stored (the aggregation result,
    which every result page and stream carries whole)."""
    return f"{job(job_id)}:json:{name}"


def claim(job_id: str, step: str) -> str:
    """String, set once: who dispatched ``step``, so a fan-in dispatches it once."""
    return f"{job(job_id)}:claim:{step}"


def dedupe(fingerprint: str) -> str:
    """String: the job id serving a request fingerprint."""
    return f"{NAMESPACE}:dedupe:{fingerprint}"


def lineage_query(query_id: str) -> str:
    """String: the latest lineage job of a lineage ``query_id`` (``pipeline.identities``)."""
    return f"{NAMESPACE}:lineage-query:{query_id}"


def trace_query(trace_query_id: str) -> str:
    """String: the latest finished job of a ``trace_query_id`` (``pipeline.identities``)."""
    return f"{NAMESPACE}:trace-query:{trace_query_id}"


def analysis(trace_query_id: str, masks: str) -> str:
    """String: the latest finished analysis of a trace under one set of masks
    (``pipeline.engine.analyses.masks_key``)."""
    return f"{NAMESPACE}:analysis:{trace_query_id}:{masks}"


def trace_window(window: str) -> str:
    """String: the ``trace_query_id`` of the latest finished analysis of a detection window
    (``pipeline.engine.analyses.window_key``: stations, dates, direction)."""
    return f"{NAMESPACE}:trace-window:{window}"


def lease(job_id: str, message_key: str, holder: str) -> str:
    """Member of ``LEASES``: one message of one job held by one worker thread (``holder``), so
    two workers running the same message (a redelivery) hold two leases."""
    return f"{job_id}|{message_key}|{holder}"


def parse_lease(member: str) -> tuple[str, str]:
    """``(job_id, message_key)`` of a ``LEASES`` member."""
    job_id, _, rest = member.partition("|")
    message_key, _, _holder = rest.rpartition("|")
    return job_id, message_key
