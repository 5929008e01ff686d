"""``jobs requeue-dead``: our actors' messages in Dramatiq's dead-letter queues (Redis broker),
sent again without their retry count and traceback."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from pipeline.cli.exit_codes import EXIT_OK, EXIT_USAGE
from pipeline.cli.jobs.tool import JobsTool
from pipeline.engine import codec
from pipeline.engine.job import QUEUES
from pipeline.engine.messages import ACTOR_NAMES


def cmd_requeue_dead(tool: JobsTool, args: argparse.Namespace) -> int:
    import dramatiq

    if tool.settings.broker_url.startswith(("amqp://", "amqps://")):
        tool.err.print(
            "requeue-dead reads the Redis broker's dead-letter sets; with RabbitMQ move "
            "messages from the <queue>.XQ queues with its management tools (shovel)"
        )
        return EXIT_USAGE
    client = tool.broker.client
    ours = set(ACTOR_NAMES.values())
    moved: list[dict[str, Any]] = []
    for queue in QUEUES:
        dead, bodies = f"dramatiq:{queue}.XQ", f"dramatiq:{queue}.XQ.msgs"
        for message_id in client.zrange(dead, 0, -1):
            data = client.hget(bodies, message_id)
            if data is None:
                continue
            message = dramatiq.Message.decode(codec.as_bytes(data))
            if message.actor_name not in ours:
                continue
            moved.append({"queue": queue, "actor": message.actor_name, "job_id": message.args[0]})
            if args.dry_run:
                continue
            options = {
                k: v for k, v in message.options.items() if k not in ("retries", "traceback")
            }
            tool.broker.enqueue(message.copy(options=options))
            client.zrem(dead, message_id)
            client.hdel(bodies, message_id)
    table = Table("queue", "actor", "job")
    for item in moved:
        table.add_row(item["queue"], item["actor"], item["job_id"])
    tool.emit(args, {"requeued": moved, "dry_run": args.dry_run}, table)
    return EXIT_OK
