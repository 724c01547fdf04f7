#!/usr/bin/env python3
"""Warren interop scenarios driven by aio-pika (asyncio).

Usage: scenario.py [AMQP_URL] [SCENARIO ...]

Prints one line per scenario, ``PASS aio-pika <scenario>`` or
``FAIL aio-pika <scenario>: <reason>``, and exits non-zero if any failed.
The scenarios are the catalogue in interop/SCENARIOS.md.
"""

import asyncio
import datetime
import decimal
import os
import sys
import uuid

import aio_pika
import aiormq
from aio_pika import DeliveryMode, ExchangeType, Message
from yarl import URL

from common import DEFAULT_URL, Failure, check, check_eq, run_all

SCENARIO_TIMEOUT = 20  # seconds, hard limit for one scenario
QUIET = 0.4  # seconds to wait to be sure nothing more arrives


async def drain(ctx, queue, what, limit=1000):
    """basic.get everything from `queue` (no ack); return the bodies."""
    bodies = []
    for _ in range(limit):
        msg = await queue.get(no_ack=True, fail=False, timeout=5)
        if msg is None:
            return bodies
        bodies.append(msg.body)
    raise Failure("%s: more than %d messages" % (what, limit))


async def message_count(channel, name):
    """Messages ready in a queue, from a passive queue.declare."""
    queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.message_count


class Collector:
    """A consumer callback that keeps the deliveries and wakes up waiters."""

    def __init__(self):
        self.messages = []
        self.changed = asyncio.Event()

    async def __call__(self, message):
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, ctx, n, seconds, what):
        async def until():
            while len(self.messages) < n:
                self.changed.clear()
                await self.changed.wait()

        await ctx.within(seconds, until(), "%s (%d of %d so far)" % (what, len(self.messages), n))
        return self.messages[:n]


# ---------------------------------------------------------------- connect


async def connect(ctx):
    ctx.step("connect")
    conn = await ctx.connect(client_properties={"connection_name": ctx.name()})
    try:
        props = conn.transport.connection.server_properties
        ctx.step("server properties")
        product = props.get("product")
        check(isinstance(product, str) and product, "server property product", "a non-empty string", product)
        caps = props.get("capabilities") or {}
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings"):
            check(caps.get(cap) is True, "capability %s" % cap, True, caps.get(cap))
        ctx.step("open channel")
        channel = await conn.channel()
        check(not channel.is_closed, "channel state after open", "open", "closed")
        ctx.step("close channel")
        await channel.close()
        check(channel.is_closed, "channel state after close", "closed", "open")
    finally:
        ctx.step("close connection")
        await conn.close()
    check(conn.is_closed, "connection state after close", "closed", "open")


# ---------------------------------------------------------------- exchange_types


async def exchange_types(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()

        async def exchange(kind):
            name = ctx.name(kind.value)
            ctx.delete_exchange_later(name)
            return await channel.declare_exchange(name, kind)

        async def queue(what, ex, routing_key="", arguments=None):
            q = await channel.declare_queue(ctx.name(what), exclusive=True)
            await q.bind(ex, routing_key=routing_key, arguments=arguments)
            return q

        ctx.step("declare exchanges and bind queues")
        direct = await exchange(ExchangeType.DIRECT)
        fanout = await exchange(ExchangeType.FANOUT)
        topic = await exchange(ExchangeType.TOPIC)
        headers = await exchange(ExchangeType.HEADERS)
        q_red = await queue("direct-red", direct, "red")
        q_green = await queue("direct-green", direct, "green")
        q_fan1 = await queue("fanout-1", fanout)
        q_fan2 = await queue("fanout-2", fanout)
        q_star = await queue("topic-star", topic, "stock.*")
        q_hash = await queue("topic-hash", topic, "stock.#")
        q_all = await queue("headers-all", headers, arguments={"x-match": "all", "kind": "report", "format": "pdf"})
        q_any = await queue("headers-any", headers, arguments={"x-match": "any", "kind": "report", "format": "pdf"})

        ctx.step("publish")

        async def publish(ex, body, routing_key="", hdrs=None):
            # Unroutable ones come back in basic.return; none of these should.
            await ex.publish(Message(body.encode(), headers=hdrs), routing_key=routing_key, mandatory=False)

        await publish(direct, "d-red", "red")
        await publish(direct, "d-green", "green")
        await publish(direct, "d-blue", "blue")
        await publish(fanout, "f-1", "ignored")
        await publish(topic, "t-stock.nyse", "stock.nyse")
        await publish(topic, "t-stock.nyse.ibm", "stock.nyse.ibm")
        await publish(topic, "t-stock", "stock")
        await publish(topic, "t-bond.nyse", "bond.nyse")
        await publish(headers, "h-both", hdrs={"kind": "report", "format": "pdf"})
        await publish(headers, "h-kind", hdrs={"kind": "report", "format": "csv"})
        await publish(headers, "h-none", hdrs={"kind": "invoice"})

        expected = {
            "direct red": (q_red, ["d-red"]),
            "direct green": (q_green, ["d-green"]),
            "fanout 1": (q_fan1, ["f-1"]),
            "fanout 2": (q_fan2, ["f-1"]),
            "topic stock.*": (q_star, ["t-stock.nyse"]),
            "topic stock.#": (q_hash, ["t-stock.nyse", "t-stock.nyse.ibm", "t-stock"]),
            "headers x-match all": (q_all, ["h-both"]),
            "headers x-match any": (q_any, ["h-both", "h-kind"]),
        }
        for what, (q, bodies) in expected.items():
            ctx.step("basic.get from the %s queue" % what)
            got = [b.decode() for b in await drain(ctx, q, what)]
            check_eq(got, bodies, "messages in the %s queue" % what)

        ctx.step("delete exchanges")
        for ex in (direct, fanout, topic, headers):
            await ex.delete()
        ctx.exchanges_to_delete.clear()


# ---------------------------------------------------------------- publish_consume_ack


async def publish_consume_ack(ctx):
    n = 100
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish %d messages" % n)
        for i in range(n):
            await channel.default_exchange.publish(Message(b"msg-%d" % i, message_id=str(i)), routing_key=queue.name)
        ctx.step("consume with manual ack")
        seen = []
        async with queue.iterator(timeout=5) as it:
            async for message in it:
                seen.append(message.body)
                check_eq(message.body, b"msg-%d" % (len(seen) - 1), "body of delivery %d" % len(seen))
                check_eq(message.redelivered, False, "redelivered of delivery %d" % len(seen))
                await message.ack()
                if len(seen) == n:
                    break
        check_eq(len(seen), n, "deliveries")
        ctx.step("passive declare after the acks")
        check_eq(await message_count(channel, queue.name), 0, "message_count after acking everything")


# ---------------------------------------------------------------- nack_requeue


async def nack_requeue(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish")
        await channel.default_exchange.publish(Message(b"bounce"), routing_key=queue.name)
        got = Collector()
        tag = await queue.consume(got)
        ctx.step("first delivery")
        [first] = await got.wait_for(ctx, 1, 5, "the first delivery")
        check_eq((first.body, first.redelivered), (b"bounce", False), "first delivery (body, redelivered)")
        await first.nack(requeue=True)
        ctx.step("delivery after nack(requeue=True)")
        second = (await got.wait_for(ctx, 2, 5, "the delivery after nack(requeue=True)"))[1]
        check_eq((second.body, second.redelivered), (b"bounce", True), "delivery after nack (body, redelivered)")
        await second.reject(requeue=True)
        ctx.step("delivery after reject(requeue=True)")
        third = (await got.wait_for(ctx, 3, 5, "the delivery after reject(requeue=True)"))[2]
        check_eq((third.body, third.redelivered), (b"bounce", True), "delivery after reject (body, redelivered)")
        await third.nack(requeue=False)
        ctx.step("nothing after nack(requeue=False)")
        await asyncio.sleep(QUIET)
        check_eq(len(got.messages), 3, "deliveries after nack(requeue=False)")
        await queue.cancel(tag)
        ctx.step("basic.get after nack(requeue=False)")
        check_eq(await queue.get(fail=False), None, "basic.get on the queue")
        check_eq(await message_count(channel, queue.name), 0, "message_count")


# ---------------------------------------------------------------- basic_get


async def basic_get(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("basic.get on the empty queue")
        check_eq(await queue.get(fail=False), None, "basic.get on an empty queue")
        try:
            await queue.get()
            raise Failure("basic.get(fail=True) on an empty queue: expected QueueEmpty, got a message")
        except aio_pika.exceptions.QueueEmpty:
            pass
        ctx.step("publish 3")
        for i in range(3):
            await channel.default_exchange.publish(Message(b"get-%d" % i), routing_key=queue.name)
        ctx.step("basic.get with ack")
        m0 = await queue.get(no_ack=False)
        check_eq((m0.body, m0.message_count, m0.redelivered), (b"get-0", 2, False), "first get (body, message_count, redelivered)")
        await m0.ack()
        ctx.step("basic.get no_ack")
        m1 = await queue.get(no_ack=True)
        check_eq((m1.body, m1.message_count), (b"get-1", 1), "no-ack get (body, message_count)")
        ctx.step("basic.get then reject(requeue=True)")
        m2 = await queue.get(no_ack=False)
        check_eq((m2.body, m2.message_count), (b"get-2", 0), "third get (body, message_count)")
        await m2.reject(requeue=True)
        m2b = await queue.get(no_ack=False)
        check_eq((m2b.body, m2b.message_count, m2b.redelivered), (b"get-2", 0, True), "get after reject (body, message_count, redelivered)")
        check(m2b.delivery_tag != m2.delivery_tag, "delivery tag after requeue", "a new tag", m2b.delivery_tag)
        await m2b.ack()
        ctx.step("basic.get on the drained queue")
        check_eq(await queue.get(fail=False), None, "basic.get on the drained queue")
        check_eq(await message_count(channel, queue.name), 0, "message_count")


# ---------------------------------------------------------------- prefetch


async def prefetch(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=5)
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish 20")
        for i in range(20):
            await channel.default_exchange.publish(Message(b"p-%d" % i), routing_key=queue.name)
        ctx.step("consume with prefetch 5")
        got = Collector()
        await queue.consume(got)
        await got.wait_for(ctx, 5, 5, "the first 5 deliveries")
        await asyncio.sleep(QUIET)
        check_eq(len(got.messages), 5, "deliveries with nothing acked")
        ctx.step("ack one")
        await got.messages[0].ack()
        await got.wait_for(ctx, 6, 5, "a 6th delivery after one ack")
        await asyncio.sleep(QUIET)
        check_eq(len(got.messages), 6, "deliveries after one ack")
        check_eq([m.body for m in got.messages], [b"p-%d" % i for i in range(6)], "bodies")


# ---------------------------------------------------------------- publisher_confirms


async def publisher_confirms(ctx):
    n = 100
    async with await ctx.connect() as conn:
        channel = await conn.channel(publisher_confirms=True)
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish %d and wait for the confirms" % n)
        results = await ctx.within(
            10,
            asyncio.gather(
                *(
                    channel.default_exchange.publish(Message(b"c-%d" % i), routing_key=queue.name, timeout=10)
                    for i in range(n)
                )
            ),
            "%d confirms" % n,
        )
        kinds = sorted({type(r).__name__ for r in results})
        check_eq(kinds, ["Ack"], "confirm frames")
        ctx.step("count")
        check_eq(await message_count(channel, queue.name), n, "message_count")


# ---------------------------------------------------------------- mandatory_return


async def mandatory_return(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=False)
        returned = asyncio.get_running_loop().create_future()

        def on_return(_channel, message):
            if not returned.done():
                returned.set_result(message)

        channel.return_callbacks.add(on_return)
        key = ctx.name("nowhere")
        ctx.step("publish mandatory to an unbound key")
        result = await channel.default_exchange.publish(
            Message(b"lost", message_id="m-1"), routing_key=key, mandatory=True, timeout=5
        )
        ctx.step("basic.return")
        check(isinstance(result, aiormq.abc.DeliveredMessage), "publish result", "the returned message", result)
        frame = result.delivery
        check_eq(type(frame).__name__, "Return", "frame that came back")
        check_eq((frame.reply_code, frame.reply_text), (312, "NO_ROUTE"), "basic.return (reply_code, reply_text)")
        check_eq((frame.exchange, frame.routing_key), ("", key), "basic.return (exchange, routing_key)")
        message = await ctx.within(5, returned, "the return callback")
        check_eq((message.body, message.message_id), (b"lost", "m-1"), "returned message (body, message_id)")
        ctx.step("publish non-mandatory to an unbound key")
        result = await channel.default_exchange.publish(Message(b"dropped"), routing_key=key, mandatory=False)
        check_eq(type(result).__name__, "Ack", "confirm of a non-mandatory unroutable message")


# ---------------------------------------------------------------- transactions


async def transactions(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel(publisher_confirms=False)
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        tx = channel.transaction()
        ctx.step("tx.select")
        await tx.select()
        ctx.step("publish and roll back")
        await channel.default_exchange.publish(Message(b"rolled-back"), routing_key=queue.name)
        await tx.rollback()
        check_eq(await queue.get(no_ack=True, fail=False), None, "basic.get after rollback")
        ctx.step("publish and commit")
        await channel.default_exchange.publish(Message(b"committed"), routing_key=queue.name)
        check_eq(await message_count(channel, queue.name), 0, "message_count before commit")
        await tx.commit()
        msg = await queue.get(no_ack=True, fail=False)
        check_eq(msg and msg.body, b"committed", "basic.get after commit")
        ctx.step("async with channel.transaction()")
        channel2 = await conn.channel(publisher_confirms=False)
        async with channel2.transaction():
            await channel2.default_exchange.publish(Message(b"in-context"), routing_key=queue.name)
        msg = await queue.get(no_ack=True, fail=False)
        check_eq(msg and msg.body, b"in-context", "basic.get after the transaction block")


# ---------------------------------------------------------------- rpc


async def rpc_server(channel, request_queue):
    async def on_request(message):
        async with message.process():
            reply = b"reply to " + message.body
            await channel.default_exchange.publish(
                Message(reply, correlation_id=message.correlation_id),
                routing_key=message.reply_to,
                mandatory=False,
            )

    return await request_queue.consume(on_request)


async def rpc(ctx):
    async with await ctx.connect() as server_conn, await ctx.connect() as client_conn:
        ctx.step("server: declare and consume the request queue")
        server_channel = await server_conn.channel()
        request_queue = await server_channel.declare_queue(ctx.name("requests"), exclusive=True)
        await rpc_server(server_channel, request_queue)

        ctx.step("caller: server-named exclusive reply queue")
        channel = await client_conn.channel()
        callback_queue = await channel.declare_queue("", exclusive=True)
        check(callback_queue.name.startswith("amq.gen-"), "server-named queue", "amq.gen-...", callback_queue.name)
        futures = {}

        async def on_response(message):
            future = futures.pop(message.correlation_id, None)
            if future is not None:
                future.set_result(message.body)

        await callback_queue.consume(on_response, no_ack=True)
        for i in range(3):
            ctx.step("call %d" % i)
            cid = str(uuid.uuid4())
            futures[cid] = asyncio.get_running_loop().create_future()
            await channel.default_exchange.publish(
                Message(b"req-%d" % i, correlation_id=cid, reply_to=callback_queue.name),
                routing_key=request_queue.name,
            )
            body = await ctx.within(5, futures[cid], "the reply to call %d" % i)
            check_eq(body, b"reply to req-%d" % i, "reply body")


# ---------------------------------------------------------------- direct_reply_to


async def direct_reply_to(ctx):
    async with await ctx.connect() as server_conn, await ctx.connect() as client_conn:
        ctx.step("server: declare and consume the request queue")
        server_channel = await server_conn.channel()
        request_queue = await server_channel.declare_queue(ctx.name("requests"), exclusive=True)
        seen_reply_to = []

        async def on_request(message):
            async with message.process():
                seen_reply_to.append(message.reply_to)
                await server_channel.default_exchange.publish(
                    Message(b"reply to " + message.body, correlation_id=message.correlation_id),
                    routing_key=message.reply_to,
                    mandatory=False,
                )

        await request_queue.consume(on_request)

        ctx.step("caller: consume amq.rabbitmq.reply-to (no ack)")
        channel = await client_conn.channel()
        reply_to = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        futures = {}

        async def on_response(message):
            future = futures.pop(message.correlation_id, None)
            if future is not None:
                future.set_result(message.body)

        await reply_to.consume(on_response, no_ack=True)
        for i in range(3):
            ctx.step("call %d" % i)
            cid = str(uuid.uuid4())
            futures[cid] = asyncio.get_running_loop().create_future()
            await channel.default_exchange.publish(
                Message(b"req-%d" % i, correlation_id=cid, reply_to="amq.rabbitmq.reply-to"),
                routing_key=request_queue.name,
            )
            body = await ctx.within(5, futures[cid], "the reply to call %d" % i)
            check_eq(body, b"reply to req-%d" % i, "reply body")
        check(
            all(r.startswith("amq.rabbitmq.reply-to.") for r in seen_reply_to),
            "reply_to seen by the server",
            "amq.rabbitmq.reply-to.<token>",
            seen_reply_to,
        )


# ---------------------------------------------------------------- dead_letter


def first_death(ctx, message, what):
    deaths = (message.headers or {}).get("x-death")
    check(isinstance(deaths, list) and deaths, "%s: x-death header" % what, "a non-empty array", deaths)
    check(isinstance(deaths[0], dict), "%s: x-death[0]" % what, "a table", deaths[0])
    return deaths[0]


async def get_within(ctx, queue, seconds, what):
    """Poll basic.get until a message arrives (dead-lettering is asynchronous)."""

    async def poll():
        while True:
            msg = await queue.get(no_ack=False, fail=False)
            if msg is not None:
                return msg
            await asyncio.sleep(0.05)

    return await ctx.within(seconds, poll(), what)


async def dead_letter(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        ctx.step("declare the dead-letter exchange and queue")
        dlx_name = ctx.name("dlx")
        ctx.delete_exchange_later(dlx_name)
        dlx = await channel.declare_exchange(dlx_name, ExchangeType.DIRECT)
        dlq = await channel.declare_queue(ctx.name("dlq"), exclusive=True)
        await dlq.bind(dlx, routing_key="dead")
        ctx.step("declare the source queue")
        source = await channel.declare_queue(
            ctx.name("source"),
            exclusive=True,
            arguments={"x-dead-letter-exchange": dlx_name, "x-dead-letter-routing-key": "dead"},
        )
        ctx.step("publish and reject without requeue")
        await channel.default_exchange.publish(Message(b"doomed", headers={"keep": "me"}), routing_key=source.name)
        msg = await source.get()
        await msg.reject(requeue=False)
        ctx.step("dead-lettered message")
        dead = await get_within(ctx, dlq, 5, "the dead-lettered message")
        await dead.ack()
        check_eq(dead.body, b"doomed", "dead-lettered body")
        check_eq(dead.routing_key, "dead", "dead-lettered routing key")
        check_eq((dead.headers or {}).get("keep"), "me", "original header")
        death = first_death(ctx, dead, "dead-lettered message")
        check_eq(death.get("count"), 1, "x-death[0].count")
        check_eq(death.get("reason"), "rejected", "x-death[0].reason")
        check_eq(death.get("queue"), source.name, "x-death[0].queue")
        check_eq(death.get("exchange"), "", "x-death[0].exchange")
        check_eq(death.get("routing-keys"), [source.name], "x-death[0].routing-keys")
        check_eq(await message_count(channel, source.name), 0, "message_count of the source queue")
        ctx.step("delete the dead-letter exchange")
        await dlx.delete()
        ctx.exchanges_to_delete.clear()


# ---------------------------------------------------------------- ttl


async def ttl(ctx):
    ttl_ms = 300
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        ctx.step("declare queues")
        dlq = await channel.declare_queue(ctx.name("expired"), exclusive=True)
        queue_ttl = await channel.declare_queue(
            ctx.name("queue-ttl"),
            exclusive=True,
            arguments={
                "x-message-ttl": ttl_ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq.name,
            },
        )
        plain = await channel.declare_queue(ctx.name("per-message"), exclusive=True)
        ctx.step("publish to the TTL queue and a message with expiration")
        await channel.default_exchange.publish(Message(b"queue-ttl"), routing_key=queue_ttl.name)
        await channel.default_exchange.publish(
            Message(b"message-ttl", expiration=datetime.timedelta(milliseconds=ttl_ms)), routing_key=plain.name
        )
        await channel.default_exchange.publish(Message(b"no-ttl"), routing_key=plain.name)
        check_eq(await message_count(channel, queue_ttl.name), 1, "message_count of the TTL queue right after publishing")
        ctx.step("wait for the TTL")
        await asyncio.sleep(2 * ttl_ms / 1000)
        ctx.step("queue TTL expired")
        check_eq(await queue_ttl.get(fail=False), None, "basic.get on the TTL queue after the TTL")
        check_eq(await message_count(channel, queue_ttl.name), 0, "message_count of the TTL queue after the TTL")
        ctx.step("per-message expiration expired")
        left = await drain(ctx, plain, "per-message queue")
        check_eq(left, [b"no-ttl"], "messages left in the queue with an expired message")
        ctx.step("expired message dead-lettered")
        dead = await get_within(ctx, dlq, 5, "the expired message in the dead-letter queue")
        await dead.ack()
        check_eq(dead.body, b"queue-ttl", "dead-lettered body")
        death = first_death(ctx, dead, "expired message")
        check_eq(death.get("reason"), "expired", "x-death[0].reason")
        check_eq(death.get("queue"), queue_ttl.name, "x-death[0].queue")
        check_eq(death.get("count"), 1, "x-death[0].count")


# ---------------------------------------------------------------- priority


async def priority(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True, arguments={"x-max-priority": 10})
        ctx.step("publish priorities 1, 5, 9")
        for p in (1, 5, 9):
            await channel.default_exchange.publish(Message(b"prio-%d" % p, priority=p), routing_key=queue.name)
        ctx.step("consume")
        got = Collector()
        await queue.consume(got, no_ack=True)
        messages = await got.wait_for(ctx, 3, 5, "3 deliveries")
        check_eq([(m.body, m.priority) for m in messages], [(b"prio-9", 9), (b"prio-5", 5), (b"prio-1", 1)], "delivery order")


# ---------------------------------------------------------------- large_message


async def large_message(ctx):
    body = os.urandom(5 * 1024 * 1024)
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish 5 MiB")
        await channel.default_exchange.publish(Message(body, content_type="application/octet-stream"), routing_key=queue.name, timeout=15)
        ctx.step("consume 5 MiB")
        got = Collector()
        await queue.consume(got)
        [msg] = await got.wait_for(ctx, 1, 15, "the 5 MiB delivery")
        check_eq(len(msg.body), len(body), "body length")
        check(msg.body == body, "body", "the same bytes", "different bytes")
        check_eq(msg.content_type, "application/octet-stream", "content_type")
        await msg.ack()


# ---------------------------------------------------------------- empty_message


async def empty_message(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish an empty body")
        await channel.default_exchange.publish(
            Message(b"", content_type="text/plain", message_id="empty-1", headers={"empty": True}),
            routing_key=queue.name,
        )
        ctx.step("consume it")
        got = Collector()
        await queue.consume(got)
        [msg] = await got.wait_for(ctx, 1, 5, "the empty delivery")
        check_eq(msg.body, b"", "body")
        check_eq((msg.content_type, msg.message_id, msg.headers), ("text/plain", "empty-1", {"empty": True}), "properties")
        await msg.ack()
        await queue.cancel(msg.consumer_tag)
        ctx.step("basic.get of an empty body")
        await channel.default_exchange.publish(Message(b""), routing_key=queue.name)
        msg = await queue.get(no_ack=True, timeout=5)
        check_eq(msg.body, b"", "body via basic.get")


# ---------------------------------------------------------------- properties

HEADERS = {
    "string": "héllo wörld ✓",
    "empty-string": "",
    "int8": -128,  # b
    "int16": -32768,  # s
    "uint16": 65535,  # u
    "int32": -2147483648,  # I
    "uint32": 4294967295,  # i
    "int64": -(2**62),  # l
    "true": True,
    "false": False,
    "float": 1.5,  # f (pamqp encodes floats as 32-bit)
    "decimal": decimal.Decimal("-12.345"),
    "timestamp": datetime.datetime(2024, 2, 29, 12, 34, 56, tzinfo=datetime.timezone.utc),
    "table": {"inner": "value", "n": 7, "deeper": {"flag": True}},
    "array": [1, "two", True, None, {"k": "v"}, [3]],
    "bytes": bytearray(b"\x00\x01\xfe\xff"),
    "void": None,
}


def same_value(a, b):
    """Equal, and of the same Python type, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


async def properties(ctx):
    user = URL(ctx.url).user or "guest"
    timestamp = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    sent = Message(
        b'{"hello": "world"}',
        content_type="application/json",
        content_encoding="utf-8",
        headers=HEADERS,
        delivery_mode=DeliveryMode.PERSISTENT,
        priority=7,
        correlation_id="corr-42",
        reply_to="reply-queue",
        expiration=60,
        message_id="msg-42",
        timestamp=timestamp,
        type="greeting",
        user_id=user,
        app_id="warren-interop",
    )
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("publish with every property")
        await channel.default_exchange.publish(sent, routing_key=queue.name)
        ctx.step("consume")
        got = Collector()
        await queue.consume(got)
        [msg] = await got.wait_for(ctx, 1, 5, "the delivery")
        await msg.ack()
        ctx.step("compare properties")
        for attr, expected in (
            ("content_type", "application/json"),
            ("content_encoding", "utf-8"),
            ("delivery_mode", DeliveryMode.PERSISTENT),
            ("priority", 7),
            ("correlation_id", "corr-42"),
            ("reply_to", "reply-queue"),
            ("expiration", 60.0),
            ("message_id", "msg-42"),
            ("timestamp", timestamp),
            ("type", "greeting"),
            ("user_id", user),
            ("app_id", "warren-interop"),
            ("body", b'{"hello": "world"}'),
        ):
            check_eq(getattr(msg, attr), expected, "property %s" % attr)
        ctx.step("compare headers")
        headers = msg.headers or {}
        check_eq(sorted(headers), sorted(HEADERS), "header names")
        for key, value in HEADERS.items():
            check(same_value(headers[key], value), "header %s (value, type)" % key, (value, type(value).__name__), (headers[key], type(headers[key]).__name__))
        ctx.step("unset properties stay unset")
        await channel.default_exchange.publish(Message(b"bare"), routing_key=queue.name)
        [_, bare] = await got.wait_for(ctx, 2, 5, "the bare delivery")
        await bare.ack()
        # (aiormq gives every published message a message_id, so that one is always set)
        for attr in ("content_type", "content_encoding", "correlation_id", "reply_to", "expiration", "timestamp", "type", "user_id", "app_id"):
            check_eq(getattr(bare, attr), None, "unset property %s" % attr)
        check_eq(bare.headers, {}, "unset headers")


# ---------------------------------------------------------------- cancel_notify


async def cancel_notify(ctx):
    async with await ctx.connect() as conn:
        channel = await conn.channel()
        name = ctx.name()
        ctx.delete_queue_later(name)
        queue = await channel.declare_queue(name, auto_delete=False)
        cancelled = asyncio.get_running_loop().create_future()
        underlay = await channel.get_underlay_channel()

        def on_cancel(frame):
            if not cancelled.done():
                cancelled.set_result(frame)

        underlay.on_consumer_cancel_callbacks.add(on_cancel)
        ctx.step("consume")
        tag = await queue.consume(lambda message: None)
        ctx.step("delete the queue from another channel")
        other = await conn.channel()
        await other.queue_delete(name)
        ctx.step("basic.cancel from the broker")
        frame = await ctx.within(5, cancelled, "the broker's basic.cancel")
        check_eq(frame.consumer_tag, tag, "consumer tag in basic.cancel")
        check(tag not in underlay.consumers, "consumer after basic.cancel", "forgotten", "still registered")
        ctx.queues_to_delete.clear()
        ctx.step("the channel still works")
        q2 = await channel.declare_queue(ctx.name("after"), exclusive=True)
        await channel.default_exchange.publish(Message(b"still here"), routing_key=q2.name)
        msg = await q2.get(no_ack=True)
        check_eq(msg.body, b"still here", "basic.get after the cancel")


# ---------------------------------------------------------------- heartbeat


async def heartbeat(ctx):
    interval = 1
    url = URL(ctx.url).update_query(heartbeat=interval)
    idle = 7  # > two intervals, and > aiormq's (interval + 1) * 3 s without a frame from the broker
    async with await ctx.connect(url) as conn:
        tune = conn.transport.connection.connection_tune
        check_eq(tune.heartbeat, interval, "negotiated heartbeat")
        channel = await conn.channel()
        queue = await channel.declare_queue(ctx.name(), exclusive=True)
        ctx.step("idle for %d s" % idle)
        await asyncio.sleep(idle)
        check(not conn.is_closed, "connection after idling", "open", "closed")
        ctx.step("publish and get after idling")
        await channel.default_exchange.publish(Message(b"alive"), routing_key=queue.name, timeout=5)
        msg = await queue.get(no_ack=True)
        check_eq(msg.body, b"alive", "body")


SCENARIOS = {
    "connect": connect,
    "exchange_types": exchange_types,
    "publish_consume_ack": publish_consume_ack,
    "nack_requeue": nack_requeue,
    "basic_get": basic_get,
    "prefetch": prefetch,
    "publisher_confirms": publisher_confirms,
    "mandatory_return": mandatory_return,
    "transactions": transactions,
    "rpc": rpc,
    "direct_reply_to": direct_reply_to,
    "dead_letter": dead_letter,
    "ttl": ttl,
    "priority": priority,
    "large_message": large_message,
    "empty_message": empty_message,
    "properties": properties,
    "cancel_notify": cancel_notify,
    "heartbeat": heartbeat,
}


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL
    only = sys.argv[2:]
    return asyncio.run(run_all(url, SCENARIOS, only, SCENARIO_TIMEOUT, concurrent={"heartbeat"}))


if __name__ == "__main__":
    sys.exit(main())
