"""A worker plugin for tests: ``dramatiq pipeline.actors tests.support.faulty_worker`` gives the
worker a ``FaultySqliteSource`` (see ``tests.support.faults``), and each stage function a fault
of its own: ``kill_stage:{stage}`` in ``FAULTS_KEY`` SIGKILLs the process once that stage's work
has begun, outside any query (where an OOM kill of the analysis's fold would land); nothing else
of the worker changes."""

from __future__ import annotations

import os
import signal

import redis

from pipeline import actors
from pipeline.engine.context import StageContext
from pipeline.engine.messages import MessageKey
from pipeline.engine.steps import STEPS
from tests.support.faults import FAULTS_KEY, FaultySqliteSource

client = redis.Redis.from_url(actors.settings.redis_url)
actors.runtime.use_source(FaultySqliteSource.for_settings(actors.settings, client))


def _killable(stage: str) -> None:
    work = STEPS[stage]

    def run(ctx: StageContext, key: MessageKey) -> None:
        if client.hget(FAULTS_KEY, f"kill_stage:{stage}"):
            os.kill(os.getpid(), signal.SIGKILL)
        work(ctx, key)

    STEPS[stage] = run


for _stage in list(STEPS):
    _killable(_stage)
