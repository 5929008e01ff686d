"""What a stage function works with: the job, the checkpoint store, the registry, the source."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.engine import parts
from pipeline.engine.job import ACTIVE, EVENTS, Job
from pipeline.engine.messages import Dispatcher, MessageKey
from pipeline.engine.registry import JobRegistry
from pipeline.engine.store import CheckpointStore
from pipeline.errors import TraceError
from pipeline.sources.base import Source


class JobInactive(TraceError):
    """The job was cancelled or ended while this work ran; stop between batches."""

    code = "JOB_INACTIVE"


class BatchAttemptsExceeded(TraceError):
    """A batch's (or a message's: ``StageContext.start_message``) worker died while running it
    ``TRACE_BATCH_MAX_ATTEMPTS`` times (it keeps killing its worker, e.g. out of memory): it
    fails for good. Errors the worker lived to report are not counted here: Dramatiq retries
    those ``TRACE_MAX_RETRIES`` times, then the batch fails with the error's own code."""

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
    #: The batch this work started last (``{part}:{batch}``): the one an error it reports was in.
    last_batch: str | None = None
    #: Whether this work was sent again (a dead worker's, or an operator's retry) rather than
    #: dispatched in the job's course: it may redo a step whose claim another call holds.
    resumed: bool = False

    def check_active(self) -> None:
        """Raise ``JobInactive`` once the job is no longer queued or started (cancelled)."""
        state = self.registry.state(self.job.id)
        if state not in ACTIVE:
            raise JobInactive(f"job {self.job.id} is {state or 'gone'}")

    def start_batch(self, part: str, batch: int, *, query: bool = True) -> None:
        """Count a start of ``batch`` of ``part``, and one source query for it (unless
        ``query`` is false: its rows come from the job's own checkpoints); raise
        ``BatchAttemptsExceeded`` once its worker died ``TRACE_BATCH_MAX_ATTEMPTS`` times while
        running it (starts that never reported back: a redelivery after a crash ignores
        Dramatiq's retry count, so this is what stops a batch that kills its worker from coming
        back forever; errors reported back are ``ended`` and left to the retry budget)."""
        tag = f"{part}:{batch}"
        self._start(tag, f"{part} batch {batch}")
        self.last_batch = tag
        if query:
            self.registry.add_query(self.job.id, tag)

    def start_message(self, key: MessageKey) -> str:
        """Count a start of the work of message ``key`` (its attempt tag is returned: end it
        with ``message_ended`` whatever the outcome the worker lives to see); raise
        ``BatchAttemptsExceeded`` once its worker died ``TRACE_BATCH_MAX_ATTEMPTS`` times while
        running it without its stage committing anything meanwhile (a long message killed
        for other reasons while it progresses is not stopped). The batches' own count misses
        a worker killed between them (in the analysis's fold or detail pass, after its queries
        are recorded): the reaper would send that message again and again, each run killing
        its worker, until the job expired."""
        tag = f"message/{key}"
        self._start(tag, str(key), committed=self._committed(key))
        return tag

    def _committed(self, key: MessageKey) -> int:
        """The batches committed so far to the parts ``key``'s work writes (an events message:
        its domain's; any other: its stage's)."""
        prefix = parts.events(key.domain) if key.stage == EVENTS and key.domain else key.stage
        return sum(
            count
            for name, count in self.registry.progress(self.job.id).items()
            if name.startswith(f"{prefix}:") and name.endswith(":done")
        )

    def message_ended(self, tag: str) -> None:
        """The message whose attempt is ``tag`` ended (done, or an error its worker reports)."""
        self.registry.end_attempt(self.job.id, tag)

    def _start(self, tag: str, what: str, *, committed: int | None = None) -> None:
        starts, ended = self.registry.add_attempt(self.job.id, tag, committed=committed)
        died = starts - 1 - ended  # earlier starts that never reported back
        limit = self.settings.batch_max_attempts
        if died >= limit:
            raise BatchAttemptsExceeded(
                f"{what}: its worker died {died} times while running it "
                f"(limit {limit}); it keeps killing its worker"
            )

    def batch_ended(self) -> None:
        """The batch started last ended with an error this worker reports (not a crash)."""
        if self.last_batch is not None:
            self.registry.end_attempt(self.job.id, self.last_batch)
            self.last_batch = None
