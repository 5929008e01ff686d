"""Leases: how a job whose worker died moves on by itself.

A worker holds a lease for every message it runs (a member of the ``trace:leases`` sorted set,
scored by its last heartbeat); a thread in each worker process renews its leases every
``TRACE_HEARTBEAT_SECONDS``. A worker killed outright stops renewing. Every worker process also runs
a reaper, at boot and then every ``TRACE_REAPER_INTERVAL_SECONDS``, that takes leases older than
``TRACE_STALL_SECONDS`` (``ZREM``: exactly one reaper wins each) and sends their messages again.
That is safe because work is idempotent: a re-sent message skips committed batches.

The bound: a lease is last renewed at the latest when its worker dies, so it is stale at most
stall seconds later, and the next round of *any* live worker process takes it, at most interval
seconds (plus the round's own milliseconds) after that: no round is ever skipped for stale leases
(every process looks every round; only the quiet-job revival takes the reaper lock, and gives it
back when its round ends). So the message is sent again within stall + interval seconds of the
death, provided some worker process is up by then, without waiting for the broker's own
redelivery (Dramatiq's Redis broker: heartbeat timeout plus rare, random maintenance). Lease
scores are the renewing host's clock: hosts' clocks must agree to well under a second.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import redis

from pipeline.engine import codec, keys

log = logging.getLogger(__name__)


class LeaseBook:
    """The leases this process holds, and the shared lease index."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self.process = f"{os.getpid()}-{secrets.token_hex(3)}"
        #: When this process started holding leases (epoch seconds): its boot, for a worker.
        self.since = time.time()
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    @contextmanager
    def hold(self, job_id: str, message_key: str) -> Iterator[str]:
        """Hold a lease on ``message_key`` of ``job_id`` while the block runs."""
        member = keys.lease(job_id, message_key, f"{self.process}-{threading.get_ident()}")
        self.redis.zadd(keys.LEASES, {member: time.time()})
        with self._lock:
            self._held.add(member)
        try:
            yield member
        finally:
            with self._lock:
                self._held.discard(member)
            self.redis.zrem(keys.LEASES, member)

    def renew(self) -> int:
        """Renew every lease this process holds (a lease already reaped stays gone), and say
        this worker process is alive (``keys.WORKERS``, read by ``/readyz`` and by the API
        before it says no worker runs). Raises ``redis.RedisError`` when Redis is away."""
        with self._lock:
            held = list(self._held)
        now = time.time()
        self.redis.zadd(keys.WORKERS, {self.worker_name: now})
        self.redis.zremrangebyscore(keys.WORKERS, "-inf", now - 3600)  # long gone: forget
        if held:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(keys.LEASES, dict.fromkeys(held, now), xx=True)
            jobs = {keys.parse_lease(m)[0] for m in held}
            pipe.zadd(keys.RUNNING, dict.fromkeys(jobs, now), xx=True)  # the job is alive
            pipe.execute()
        return len(held)

    def retire(self) -> None:
        """This worker process stops: it no longer counts as alive (clean shutdown only; a
        killed process simply stops renewing and drops out after ``TRACE_STALL_SECONDS``)."""
        self.redis.zrem(keys.WORKERS, self.worker_name)

    def jobs_with_leases(self) -> set[str]:
        """Jobs some worker holds work of right now (a few members per live worker thread)."""
        members = self.redis.zrange(keys.LEASES, 0, -1)
        return {keys.parse_lease(codec.as_text(m))[0] for m in members}

    def stale(self, older_than_seconds: float) -> list[str]:
        """Leases of any process not renewed for ``older_than_seconds``."""
        cutoff = time.time() - older_than_seconds
        return [codec.as_text(m) for m in self.redis.zrangebyscore(keys.LEASES, "-inf", cutoff)]

    def take(self, member: str) -> bool:
        """Remove a stale lease; True for the one caller that removed it."""
        return bool(self.redis.zrem(keys.LEASES, member))


# Delete the reaper lock only if this process still holds it (it may have expired and been
# taken by another). KEYS[1] the lock; ARGV[1] the holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def reaper_lock(book: LeaseBook, lock_seconds: float) -> Iterator[bool]:
    """Yields True for the one process whose round runs now; the lock is given back when the
    block ends, so the next process to look gets it (a lock held for a whole interval made
    other processes skip their rounds). ``lock_seconds`` only bounds a holder that dies
    mid-round."""
    taken = bool(
        book.redis.set(keys.REAPER_LOCK, book.process, nx=True, px=int(lock_seconds * 1000))
    )
    try:
        yield taken
    finally:
        if taken:
            book.redis.eval(_RELEASE, 1, keys.REAPER_LOCK, book.process)


def resend_stale(book: LeaseBook, stale: Iterable[str], resend: Callable[[str, str], bool]) -> int:
    """Take the ``stale`` leases (``LeaseBook.stale``: ``ZREM``, so each is taken by one
    process) and ``resend(job_id, message_key)`` each, once per message (two dead threads that
    ran copies of one message leave two leases: one copy is enough, and each start counts
    against ``TRACE_BATCH_MAX_ATTEMPTS``); returns how many were sent again."""
    sent = 0
    seen: set[tuple[str, str]] = set()
    for member in stale:
        if not book.take(member):
            continue
        job_id, message_key = keys.parse_lease(member)
        if (job_id, message_key) in seen:
            continue
        seen.add((job_id, message_key))
        if resend(job_id, message_key):
            log.warning(
                "job %s: %s stalled (worker gone); sent again",
                job_id,
                message_key,
                extra={"job_id": job_id},
            )
            sent += 1
    return sent


class Ticker:
    """Calls ``fn`` every ``interval_seconds`` in a daemon thread until ``stop`` (with
    ``at_start``, once at once too: a worker restarted after a crash reaps without waiting an
    interval); an error is logged and the next tick tries again (Redis may be back by then)."""

    def __init__(
        self,
        name: str,
        interval_seconds: float,
        fn: Callable[[], object],
        *,
        at_start: bool = False,
    ) -> None:
        self.interval = interval_seconds
        self.fn = fn
        self.at_start = at_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self.at_start:
            self._tick()
        while not self._stop.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        try:
            self.fn()
        except Exception:
            log.exception("%s failed; trying again in %ss", self._thread.name, self.interval)
