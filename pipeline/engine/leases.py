"""Leases: how a job whose worker died moves on by itself.

A worker holds a lease for every message it runs (a member of the ``trace:leases`` sorted set,
scored by its last heartbeat); a thread in each worker process renews its leases every
``TRACE_HEARTBEAT_SECONDS``. A worker killed outright stops renewing. Every worker process also runs
a reaper that, every ``TRACE_REAPER_INTERVAL_SECONDS``, takes leases older than
``TRACE_STALL_SECONDS`` (``ZREM``: exactly one reaper wins each) and sends their messages again.
That is safe because work is idempotent: a re-sent message skips committed batches. So a job
whose worker dies resumes within stall + interval seconds, without waiting for the broker's own
redelivery (Dramatiq's Redis broker: heartbeat timeout plus rare, random maintenance).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
        this worker process is alive (``keys.WORKERS``, read by ``/readyz``)."""
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


def take_reaper_lock(book: LeaseBook, lock_seconds: float) -> bool:
    """True for the one process that reaps this round (the lock expires by itself)."""
    return bool(
        book.redis.set(keys.REAPER_LOCK, book.process, nx=True, px=int(lock_seconds * 1000))
    )


def resend_stale(book: LeaseBook, stall_seconds: float, resend: Callable[[str, str], bool]) -> int:
    """Take the leases not renewed for ``stall_seconds`` and ``resend(job_id, message_key)``
    each; returns how many were sent again."""
    sent = 0
    for member in book.stale(stall_seconds):
        if not book.take(member):
            continue
        job_id, message_key = keys.parse_lease(member)
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
    """Calls ``fn`` every ``interval_seconds`` in a daemon thread until ``stop``; an error is
    logged and the next tick tries again (Redis may be back by then)."""

    def __init__(self, name: str, interval_seconds: float, fn: Callable[[], object]) -> None:
        self.interval = interval_seconds
        self.fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception:
                log.exception("%s failed; trying again in %ss", self._thread.name, self.interval)
