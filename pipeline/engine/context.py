"""What a stage function works with: the job, the checkpoint store, the registry, the source."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.engine.job import ACTIVE, Job
from pipeline.engine.messages import Dispatcher
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore
from pipeline.errors import TraceError
from pipeline.sources.base import Source


class JobInactive(TraceError):
    """The job was cancelled or ended while this work ran; stop between batches."""

    code = "JOB_INACTIVE"


class BatchAttemptsExceeded(TraceError):
    """A batch was started more often than ``TRACE_BATCH_MAX_ATTEMPTS`` (it keeps failing or
    killing its worker): it fails for good."""

    code = "BATCH_ATTEMPTS_EXCEEDED"


@dataclass
class StageContext:
    """One piece of work of one job."""

    job: Job
    store: CheckpointStore
    registry: JobRegistry
    source: Source
    settings: Settings
    dispatch: Dispatcher

    def check_active(self) -> None:
        """Raise ``JobInactive`` once the job is no longer queued or started (cancelled)."""
        state = self.registry.state(self.job.id)
        if state not in ACTIVE:
            raise JobInactive(f"job {self.job.id} is {state or 'gone'}")

    def start_batch(self, part: str, batch: int) -> None:
        """Count a start of ``batch`` of ``part``, and one source query for it; raise
        ``BatchAttemptsExceeded`` past the limit (a redelivery ignores Dramatiq's retry count,
        so this is what stops a batch that kills its worker from coming back forever)."""
        tag = f"{part}:{batch}"
        attempts = self.registry.add_attempt(self.job.id, tag)
        limit = self.settings.batch_max_attempts
        if attempts > limit:
            raise BatchAttemptsExceeded(
                f"{part} batch {batch} was started {attempts} times (limit {limit}); "
                "it keeps failing or killing its worker"
            )
        self.registry.add_query(self.job.id, tag)
