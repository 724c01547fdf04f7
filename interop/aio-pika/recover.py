#!/usr/bin/env python3
"""Warren interop recovery scenario for aio-pika: `auto_recovery`.

Usage: recover.py [AMQP_URL]   (with INTEROP_RESTART_CMD in the environment)

aio_pika.connect_robust reconnects by itself after the broker restarts and
re-declares its channel, queue and consumer; the scenario checks that a
message published after the restart reaches the consumer registered before it.
"""

import asyncio
import os
import sys

import aio_pika
from aio_pika import DeliveryMode, Message

from common import CONNECT_TIMEOUT, DEFAULT_URL, Failure, check_eq, run_all

SCENARIO_TIMEOUT = 90
RESTART_TIMEOUT = 60


async def auto_recovery(ctx):
    restart_cmd = os.environ.get("INTEROP_RESTART_CMD")
    if not restart_cmd:
        raise Failure("INTEROP_RESTART_CMD is not set")
    ctx.step("connect_robust")
    conn = await aio_pika.connect_robust(ctx.url, timeout=CONNECT_TIMEOUT, reconnect_interval=0.5)
    try:
        reconnected = asyncio.Event()
        conn.reconnect_callbacks.add(lambda *_: reconnected.set())
        channel = await conn.channel()
        name = ctx.name()
        ctx.delete_queue_later(name)
        queue = await channel.declare_queue(name, durable=True)
        deliveries = asyncio.Queue()

        async def on_message(message):
            async with message.process():
                await deliveries.put(message.body)

        ctx.step("consume")
        await queue.consume(on_message)
        ctx.step("publish and receive before the restart")
        await channel.default_exchange.publish(
            Message(b"before", delivery_mode=DeliveryMode.PERSISTENT), routing_key=name, timeout=5
        )
        check_eq(await ctx.within(5, deliveries.get(), "the message published before the restart"), b"before", "body")

        ctx.step("restart the broker ($INTEROP_RESTART_CMD)")
        proc = await asyncio.create_subprocess_shell(
            restart_cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), RESTART_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            raise Failure("the restart command did not finish within %d s" % RESTART_TIMEOUT) from None
        if proc.returncode != 0:
            raise Failure("the restart command exited with %d: %s" % (proc.returncode, err.decode(errors="replace")[-300:]))

        ctx.step("automatic reconnect")
        await ctx.within(30, reconnected.wait(), "connect_robust to reconnect and restore its channel")
        await ctx.within(10, channel.ready(), "the channel to be ready")
        check_eq(conn.is_closed, False, "connection closed after the reconnect")

        ctx.step("publish and receive after the restart")
        await channel.default_exchange.publish(
            Message(b"after", delivery_mode=DeliveryMode.PERSISTENT), routing_key=name, timeout=5
        )
        check_eq(
            await ctx.within(10, deliveries.get(), "the message published after the restart (restored consumer)"),
            b"after",
            "body",
        )

        ctx.step("delete the queue")
        await queue.delete(if_unused=False, if_empty=False)
        ctx.queues_to_delete.clear()
    finally:
        await conn.close()


SCENARIOS = {"auto_recovery": auto_recovery}


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL
    return asyncio.run(run_all(url, SCENARIOS, sys.argv[2:], SCENARIO_TIMEOUT))


if __name__ == "__main__":
    sys.exit(main())
