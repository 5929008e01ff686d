"""Worker faults: the worker process holding a stage's lease SIGKILLed at a random point of each
stage of a mid-section-defect trace, and the whole worker command killed and brought back late.

Each job must finish with the digest of an undisturbed run (rows per domain and the aggregation
JSON), ask the source again for no batch committed before a kill, and resume within the bound
README "Dead workers" states: the dead work is sent again within ``stall + interval`` of the
kill and starts within ``DELIVERY_SLACK`` more, once a worker process is up (``max(stall, the
restart) + interval + slack`` when the restart takes longer than the stall).

The test is the service manager (``tests.chaos.workers.ServiceManager``: Restart=on-failure,
RestartSec 2 s as the unit; 1 s in CI) of one worker command of 2 processes x 2 threads: one
command, as a host runs per queue, so a dead child stops its sibling too and the restart is part
of what is measured. CI runs one kill per stage with short settings (heartbeat 1 s, stall 2 s,
interval 1 s) and a 2 s outage of the command; ``ops/chaos`` three kills per stage with the
default settings, and a 60 s outage.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pipeline.config import Settings
from pipeline.engine import keys, parts
from pipeline.engine.broker import make_broker
from pipeline.engine.flow import group_size
from pipeline.engine.job import AGGREGATION, EVENTS, FINISHED, LINEAGE, SEED_RESOLVE
from pipeline.engine.runtime import Runtime, runtime_for
from tests.chaos.conftest import RedisServer
from tests.chaos.reliability import FULL, Trial, scale
from tests.chaos.workers import Lease, ServiceManager
from tests.engine.helpers import InlineDispatcher, job_digest, wait_for
from tests.engine.test_flow import MSD
from tests.support.faults import FAULTS_KEY

#: Seconds from a resend to the message running on an idle worker thread (the broker's queue
#: and an idle consumer's poll, 100 ms): the slack README "Dead workers" states.
DELIVERY_SLACK = 2.0
STAGES = (SEED_RESOLVE, LINEAGE, EVENTS, AGGREGATION)
STAGE_PARTS = {
    SEED_RESOLVE: parts.SEED_QUERIES,
    LINEAGE: parts.LINEAGE_QUERIES,
    AGGREGATION: parts.AGGREGATION_QUERIES,
}
#: Slow queries so every stage spans seconds: (global delay ms, the seed query's delay ms).
DELAYS = {"delay_ms": 60, "delay_ms:msd/detection_lots": 1500}
#: Seconds after a stage's first lease appears within which the kill falls (at random).
KILL_WINDOW = {SEED_RESOLVE: 1.0, LINEAGE: 1.5, EVENTS: 0.4, AGGREGATION: 0.6}
SHORT = {"TRACE_HEARTBEAT_SECONDS": "1", "TRACE_STALL_SECONDS": "2"}
SHORT_INTERVAL = {"TRACE_REAPER_INTERVAL_SECONDS": "1"}
OUTAGE_SECONDS = scale(2, 60)
#: The service manager's RestartSec (the unit's 2 s; 1 s keeps CI's subset short).
RESTART_SEC = scale(1, 2)


@dataclass
class Stack:
    server: RedisServer
    env: dict[str, str]
    settings: Settings
    runtime: Runtime
    client: redis.Redis
    service: ServiceManager
    expected: str  # the digest of an undisturbed run


@pytest.fixture
def stack(
    private_redis: Callable[..., RedisServer], warehouse: Path, tmp_path: Path
) -> Iterator[Stack]:
    server: RedisServer = private_redis(aof=False)
    env = {
        "TRACE_REDIS_URL": f"{server.url}/0",
        "TRACE_BROKER_URL": f"{server.url}/1",
        "TRACE_SOURCE_URL": f"sqlite:///{warehouse}",
        "TRACE_IN_LIST_SIZE": "100",
        "TRACE_FETCH_ROWS": "400",
        "TRACE_EVENTS_GROUP_BATCHES": "3",
        "TRACE_JOB_TTL_SECONDS": "3600",
        **({} if FULL else {**SHORT, **SHORT_INTERVAL}),
    }
    settings = Settings.from_env(env)
    # The undisturbed run: the engine's own code, message by message in this process
    inline = Runtime(settings, InlineDispatcher())
    job, _ = inline.submit(MSD, fresh=True)
    assert isinstance(inline.dispatch, InlineDispatcher)
    inline.dispatch.run_all(inline)
    expected = job_digest(inline.store, job.id, job.domains)
    client = server.client(0)
    client.hset(FAULTS_KEY, mapping=DELAYS)
    service = ServiceManager(env, tmp_path, restart_sec=RESTART_SEC).start()
    try:
        runtime = runtime_for(settings, make_broker(settings))
        yield Stack(server, env, settings, runtime, client, service, expected)
    finally:
        service.stop()
        print(service.logs())  # shown when the test failed


def _leases(stack: Stack, job_id: str) -> list[Lease]:
    return [lease for lease in Lease.all(stack.client) if lease.job_id == job_id]


def _committed(stack: Stack, job_id: str) -> set[str]:
    job = stack.runtime.registry.load(job_id)
    assert job is not None
    names = [*STAGE_PARTS.values(), *(parts.events(d) for d in job.domains)]
    return {f"{p}:{b}" for p in names for b in stack.runtime.store.finished(job_id, p)}


def _bound(stack: Stack, up_after: float) -> float:
    """Seconds from a kill within which the dead work must run again (README "Dead workers")
    when a worker process was up again ``up_after`` seconds after the kill."""
    s = stack.settings
    return max(s.stall_seconds, up_after) + s.reaper_interval_seconds + DELIVERY_SLACK


def codec_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _workers(stack: Stack) -> set[str]:
    return {codec_text(m) for m in stack.client.zrange(keys.WORKERS, 0, -1)}


def kill_mid_stage(
    stack: Stack, trial: Trial, job_id: str, stage: str, rng: random.Random, *, whole: bool = False
) -> dict[str, int]:
    """SIGKILL the process holding a lease of ``stage`` of the job (``whole``: the whole
    command, kept down ``OUTAGE_SECONDS``) at a random point; wait until the dead work runs
    again and record the timeline. Returns the batches committed before the kill."""
    prefix = stage if stage != EVENTS else f"{EVENTS}:"
    first = wait_for(
        lambda: [lease for lease in _leases(stack, job_id) if lease.key.startswith(prefix)],
        timeout=120,
        what=f"a lease of {stage}",
        every=0.01,
    )
    time.sleep(rng.uniform(0.05, KILL_WINDOW[stage]))
    held = [lease for lease in _leases(stack, job_id) if lease.key.startswith(prefix)] or first
    victim = held[0].pid
    known = _workers(stack)
    if whole:
        stack.service.hold(OUTAGE_SECONDS)
        stack.service.kill_command()
        trial.fault(f"worker command SIGKILLed in {stage}, down {OUTAGE_SECONDS} s")
    else:
        os.kill(victim, signal.SIGKILL)
        trial.fault(f"SIGKILL of the worker child holding the {stage} lease")
    killed = time.time()
    time.sleep(0.05)  # the dead process's leases no longer change: read what it held
    dead = [lease for lease in _leases(stack, job_id) if lease.pid == victim]
    at_kill = stack.runtime.registry.load(job_id)
    assert at_kill is not None and stage not in at_kill.completed, f"{stage} ended before the kill"
    queries = stack.runtime.registry.queries(job_id)
    committed = {tag: queries.get(tag, 0) for tag in _committed(stack, job_id)}
    if not dead:  # it was between two messages: nothing of it to resume
        trial.notes.append(f"{stage}: the killed process held no lease at the kill")
        return committed
    renewed = max(lease.renewed for lease in dead)
    runs = stack.runtime.registry.progress(job_id).get(parts.runs(stage), 0)
    # (the process may also have held lineage's: the seeds' events begin while it walks)
    dead_keys = (
        {lease.key for lease in dead if lease.key.startswith(prefix)} if stage == EVENTS else set()
    )
    pending = _pending(stack, job_id, dead_keys)
    reaped = started = up = None
    deadline = killed + stack.settings.stall_seconds + OUTAGE_SECONDS * whole + 90
    while time.time() < deadline and started is None:
        members = {lease.member for lease in Lease.all(stack.client)}
        if up is None and _workers(stack) - known:
            up = time.time()
        if reaped is None and not {lease.member for lease in dead} <= members:
            reaped = time.time()
        if stage != EVENTS:  # every start of the stage's message counts a run
            now_runs = stack.runtime.registry.progress(job_id).get(parts.runs(stage), 0)
            started = time.time() if now_runs > runs else None
        elif reaped is not None and not pending:  # its batches were all in: nothing to run
            started = reaped
        elif _pending(stack, job_id, dead_keys) < pending or any(
            member not in {d.member for d in dead} and member.startswith(f"{job_id}|{d.key}|")
            for member in members
            for d in dead
        ):  # a batch of the dead work committed since, or its message holds a lease again
            started = time.time()
        time.sleep(0.01)
    if up is None:
        up = wait_for(lambda: _workers(stack) - known and time.time(), timeout=120, what="workers")
    up_after = up - killed
    timeline = (
        f"{stage}{' (whole command)' if whole else ''}: lease renewed {renewed - killed:+.1f} s, "
        f"stale {renewed + stack.settings.stall_seconds - killed:+.1f} s, "
        f"reaped {'–' if reaped is None else f'{reaped - killed:+.1f}'} s, "
        f"workers up {up_after:+.1f} s, "
        f"started {'–' if started is None else f'{started - killed:+.1f}'} s after the kill"
    )
    trial.notes.append(timeline)
    assert started is not None, f"the dead work never ran again: {timeline}"
    trial.recovered(started - killed)
    bound = _bound(stack, up_after)
    took = started - killed
    assert took <= bound, f"resumed after {took:.1f} s > the bound {bound:.1f} s: {timeline}"
    return committed


def _pending(stack: Stack, job_id: str, message_keys: set[str]) -> set[str]:
    """The batches of the events messages ``message_keys`` not committed yet."""
    progress = stack.runtime.registry.progress(job_id)
    size = group_size(progress, stack.settings)
    left = set()
    for key in message_keys:
        _stage, domain, group = key.split(":")
        part = parts.events(domain)
        total = progress.get(parts.total(part), 0)
        done = stack.runtime.store.finished(job_id, part)
        batches = range(int(group) * size, min(total, (int(group) + 1) * size))
        left |= {f"{part}:{b}" for b in batches if b not in done}
    return left


def _finish_and_compare(stack: Stack, trial: Trial, job_id: str, committed: dict[str, int]) -> None:
    def ended() -> bool:
        job = stack.runtime.registry.load(job_id)
        return job is not None and not job.active

    wait_for(ended, timeout=300, what=f"job {job_id} to end")
    job = stack.runtime.registry.load(job_id)
    assert job is not None and job.state == FINISHED, job
    assert job_digest(stack.runtime.store, job_id, job.domains) == stack.expected
    trial.jobs += 1
    trial.rows_compared += sum(stack.runtime.registry.progress(job_id).get(
        parts.rows(parts.events(d)), 0) for d in job.domains)  # fmt: skip
    queries = stack.runtime.registry.queries(job_id)
    again = {tag: (n, queries[tag]) for tag, n in committed.items() if queries.get(tag, 0) != n}
    assert not again, f"batches committed before a kill were queried again: {again}"


def test_the_lease_holder_killed_in_every_stage_resumes_within_the_bound(
    stack: Stack, trial: Trial
) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    trial.notes.append(f"random seed {seed}; settings: heartbeat "
                       f"{stack.settings.heartbeat_seconds} s, stall {stack.settings.stall_seconds}"
                       f" s, interval {stack.settings.reaper_interval_seconds} s")  # fmt: skip
    for _ in range(scale(1, 3)):
        # Given a mid-section-defect trace under way on a worker command (restarted on failure)
        job, _ = stack.runtime.submit(MSD, fresh=True)
        committed: dict[str, int] = {}
        # When the process holding each stage's lease is SIGKILLed at a random point of it
        for stage in STAGES:
            committed.update(kill_mid_stage(stack, trial, job.id, stage, rng))
        # Then the job finishes with the undisturbed digest, querying no committed batch again
        _finish_and_compare(stack, trial, job.id, committed)


def test_the_whole_worker_command_killed_and_restarted_late_resumes(
    stack: Stack, trial: Trial
) -> None:
    rng = random.Random()
    # Given a trace in its events stage
    job, _ = stack.runtime.submit(MSD, fresh=True)
    # When the whole worker command is SIGKILLed and comes back only OUTAGE_SECONDS later
    committed = kill_mid_stage(stack, trial, job.id, EVENTS, rng, whole=True)
    # Then the job finishes with the undisturbed digest, querying no committed batch again
    _finish_and_compare(stack, trial, job.id, committed)
