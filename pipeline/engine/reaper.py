"""Dead workers: work whose lease went stale is sent again, and jobs that went quiet with no
work held anywhere are resumed. Every worker process runs a round at boot and then every
``TRACE_REAPER_INTERVAL_SECONDS`` (``EngineMiddleware``). Every round of every process looks for
stale leases (``ZREM`` lets exactly one take each), so none waits for another process's round;
the revival of quiet jobs runs in one process at a time (the reaper lock, given back when the
round ends)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pipeline.engine import keys
from pipeline.engine.flow import resume
from pipeline.engine.leases import reaper_lock, resend_stale
from pipeline.engine.messages import MessageKey

if TYPE_CHECKING:
    from pipeline.engine.runtime import Runtime

log = logging.getLogger(__name__)


def reap(runtime: Runtime) -> int:
    """One reaper round: resend the work of dead workers (stale leases), then, unless another
    process is reviving right now, revive jobs that went quiet with no work held at all.
    Returns the messages/jobs sent again."""
    settings = runtime.settings

    def resend(job_id: str, message_key: str) -> bool:
        return resend_message(runtime, job_id, message_key)

    stale = runtime.leases.stale(settings.stall_seconds)
    for job_id in {keys.parse_lease(member)[0] for member in stale}:
        # A sign of life before the leases go: a revival running meanwhile in another process
        # must not find the job quiet with no lease, and send its work a second time.
        runtime.registry.seen(job_id)
    sent = resend_stale(runtime.leases, stale, resend)
    with reaper_lock(runtime.leases, settings.reaper_interval_seconds) as mine:
        if mine:
            sent += revive_quiet_jobs(runtime)
    return sent


def resend_message(runtime: Runtime, job_id: str, message_key: str) -> bool:
    """Send a stalled message again; False when the job no longer wants it.

    Not as ``resumed``: a resumed message hands on to the next stage even when that hand-over
    was claimed, so every re-sent events message that saw the stage settled sent the
    aggregation again (and a dead copy of an already handed-over message did too): duplicates
    that ran at once and used up the batches' attempts. A worker that died between claiming a
    hand-over and sending it leaves the job quiet with no lease: ``revive_quiet_jobs`` resumes
    it (as ``resumed``) a stall later."""
    job = runtime.registry.load(job_id)
    if job is None or not job.active:
        return False
    runtime.dispatch(job, [MessageKey.parse(message_key)])
    runtime.registry.seen(job_id)  # not quiet: its work was just sent again
    return True


def revive_quiet_jobs(runtime: Runtime) -> int:
    """Jobs with no lease anywhere and no sign of life for ``TRACE_STALL_SECONDS`` lost their
    messages (a killed worker had prefetched them, not started them, so no lease covered them):
    send again whatever their current stage still needs.

    A job that is merely waiting in a busy queue looks the same, so each revival doubles the
    quiet time the next one needs (stall, 2 x stall, 4 x ...), and a process revives nothing
    until it has been up for a stall: duplicates stay few (they skip committed batches, but each
    start counts against the attempt limit).
    """
    registry, stall = runtime.registry, runtime.settings.stall_seconds
    now = time.time()
    if now - runtime.leases.since < stall:
        # Up for less than a stall, this process cannot tell a lost message from one that
        # waited in the queue for it (a restarted command's first rounds): it would send
        # that work a second time.
        return 0
    quiet = registry.quiet_jobs(now - stall)
    if not quiet:
        return 0
    busy = runtime.leases.jobs_with_leases()
    revived = 0
    for job_id, last_seen in quiet:
        if job_id in busy:
            continue
        job = registry.load(job_id)
        if job is None or not job.active:
            registry.forget_running(job_id)
            continue
        if now - last_seen < stall * 2 ** registry.revivals(job_id):
            continue
        if (registry.last_seen(job_id) or now) > last_seen:
            continue  # a sign of life since the listing (its stale lease was just re-sent)
        registry.note_revival(job_id, now)
        log.warning(
            "job %s: quiet for %.0f s with no work held; resumed",
            job_id,
            now - last_seen,
            extra={"job_id": job_id},
        )
        resume(runtime.context(job))
        revived += 1
    return revived
