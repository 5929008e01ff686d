"""The Dramatiq broker from the settings: Redis by default, RabbitMQ for ``amqp://`` URLs, with
retries tuned for an interactive service and both job queues declared."""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from pipeline import logs
from pipeline.config import Settings
from pipeline.engine.job import EVENTS, QUEUES

AMQP_SCHEMES = ("amqp://", "amqps://")


class JobLogContext(Middleware):
    """Every line logged while a message of ours is processed carries its job id (the first
    argument of each of our actors): Dramatiq's own lines too, such as the traceback of a
    failed message or the retry it schedules (``pipeline.logs``)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        job_id = message.args[0] if message.args else None
        self._local.token = logs.enter_job(str(job_id)) if job_id else None

    def _leave(self) -> None:
        token = getattr(self._local, "token", None)
        self._local.token = None
        if token is not None:
            logs.leave_job(token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        self._leave()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._leave()


def time_limit_seconds(settings: Settings, stage: str) -> int:
    """How long a message of ``stage`` may run before Dramatiq interrupts it (it is then retried,
    as ``TIME_LIMIT_EXCEEDED``): an events message is a few batches
    (``TRACE_MESSAGE_TIME_LIMIT_SECONDS``, also every message without a stage); the other
    stages' work grows with the trace (``TRACE_STAGE_TIME_LIMIT_SECONDS``)."""
    if stage == EVENTS:
        return settings.message_time_limit_seconds
    return settings.stage_time_limit_seconds


def make_broker(settings: Settings, *extra: Middleware) -> dramatiq.Broker:
    """A broker for ``TRACE_BROKER_URL``, with the job queues declared.

    Retries: ``TRACE_MAX_RETRIES`` with backoff from ``TRACE_RETRY_MIN_BACKOFF_MS`` to
    ``TRACE_RETRY_MAX_BACKOFF_MS`` (Dramatiq's default is 20 retries over days, which no one
    waiting on a dashboard wants). ``CurrentMessage`` lets the worker see a message's retry count.
    """
    middleware: list[Middleware] = [
        JobLogContext(),  # first: its after-hooks run last (Dramatiq calls them in reverse)
        AgeLimit(),
        # the default; the actors of the stages whose work grows with the trace set their own
        # (``time_limit_seconds``)
        TimeLimit(time_limit=settings.message_time_limit_seconds * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=settings.retry_max_backoff_ms,
        ),
        CurrentMessage(),
        *extra,
    ]
    url = settings.broker_url
    broker: dramatiq.Broker
    if url.startswith(AMQP_SCHEMES):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=middleware)
    else:
        import redis
        from dramatiq.brokers.redis import RedisBroker

        timeout = settings.redis_timeout_seconds  # enqueueing to a dead Redis fails, never hangs
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        broker = RedisBroker(client=client, middleware=middleware)
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker
