"""The Dramatiq broker from the settings: Redis by default, RabbitMQ for ``amqp://`` URLs, with
retries tuned for an interactive service and both job queues declared."""

from __future__ import annotations

import dramatiq
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

from pipeline.config import Settings
from pipeline.job import QUEUES

AMQP_SCHEMES = ("amqp://", "amqps://")


def make_broker(settings: Settings, *extra: Middleware) -> dramatiq.Broker:
    """A broker for ``TRACE_BROKER_URL``, with the job queues declared.

    Retries: ``TRACE_MAX_RETRIES`` with backoff from ``TRACE_RETRY_MIN_BACKOFF_MS`` to
    ``TRACE_RETRY_MAX_BACKOFF_MS`` (Dramatiq's default is 20 retries over days, which no one
    waiting on a dashboard wants). ``CurrentMessage`` lets the worker see a message's retry count.
    """
    middleware: list[Middleware] = [
        AgeLimit(),
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
