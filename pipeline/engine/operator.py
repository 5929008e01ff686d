"""What an operator does to a job besides cancelling it (``JobRegistry.cancel``): retry a failed
one from where it failed, purge one's keys. The ``jobs`` CLI calls these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.engine import keys
from pipeline.engine.flow import resume

if TYPE_CHECKING:
    from pipeline.engine.runtime import Runtime


def retry(runtime: Runtime, job_id: str) -> bool:
    """A failed job, or one that finished with failed events domains, goes back to queued and
    resumes at its failed stage (the failed domains' uncommitted batches), keeping finished
    stages and committed batches (``JobRegistry.reopen``). False when the job is neither (or
    is gone)."""
    if not runtime.registry.reopen(job_id):
        return False
    job = runtime.registry.load(job_id)
    if job is None:
        return False
    resume(runtime.context(job))
    return True


def purge(runtime: Runtime, job_id: str) -> int:
    """Release every key of a job (``UNLINK``: freed in the background) and its index entries;
    returns the keys released."""
    client = runtime.redis
    released = runtime.store.release(job_id)
    pipe = client.pipeline(transaction=False)
    pipe.unlink(keys.job(job_id))
    for index in (keys.RECENT, keys.RUNNING, keys.FAILED):
        pipe.zrem(index, job_id)
    pipe.execute()
    return released + 1
