#!/usr/bin/env python3
"""Warren interop scenarios driven by kombu (py-amqp transport).

Usage: scenario.py [AMQP_URL] [SCENARIO ...]

Prints one line per scenario, ``PASS kombu <scenario>`` or
``FAIL kombu <scenario>: <reason>``, and exits non-zero if any failed.
The scenarios are the catalogue in interop/SCENARIOS.md, written with
kombu's own API: Connection, Exchange, Queue, Producer, Consumer,
SimpleQueue and drain_events.
"""

import datetime
import decimal
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import unquote, urlparse

import amqp.exceptions
from kombu import Connection, Consumer, Exchange, Producer, Queue

CLIENT = "kombu"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SCENARIO_TIMEOUT = 20  # seconds, hard limit for one scenario (SIGALRM)
QUIET = 0.4  # seconds to wait to be sure nothing more arrives


class Failure(Exception):
    pass


class ScenarioTimeout(BaseException):
    pass


def check(cond, what, expected, seen):
    if not cond:
        raise Failure("%s: expected %r, saw %r" % (what, expected, seen))


def check_eq(seen, expected, what):
    check(seen == expected, what, expected, seen)


class Ctx:
    def __init__(self, url, scenario):
        self.url = url
        self.scenario = scenario
        self.step_name = "start"
        self.connections = []
        self.queues_to_delete = []
        self.exchanges_to_delete = []

    def step(self, name):
        self.step_name = name

    def name(self, what=""):
        parts = [CLIENT, self.scenario] + ([what] if what else [])
        return ".".join(parts) + "." + uuid.uuid4().hex[:10]

    def connect(self, **kwargs):
        """A connected kombu Connection, closed when the scenario ends."""
        kwargs.setdefault("connect_timeout", 5)
        conn = Connection(self.url, **kwargs)
        self.connections.append(conn)
        conn.connect()
        return conn

    def cleanup(self):
        for conn in self.connections:
            try:
                conn.release()
            except Exception as e:  # the scenario may have broken it on purpose
                print("%s %s: closing a connection: %r" % (CLIENT, self.scenario, e), file=sys.stderr)
        if self.queues_to_delete or self.exchanges_to_delete:
            with Connection(self.url, connect_timeout=5) as conn:
                channel = conn.channel()
                for q in self.queues_to_delete:
                    channel.queue_delete(q)
                for x in self.exchanges_to_delete:
                    channel.exchange_delete(x)


def drain_until(conn, cond, seconds, what):
    """conn.drain_events() until cond() holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not cond():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Failure("waited %.1f s for %s" % (seconds, what))
        try:
            conn.drain_events(timeout=min(remaining, 0.5))
        except socket.timeout:
            pass


def drain_for(conn, seconds):
    """Process whatever arrives during `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            conn.drain_events(timeout=remaining)
        except socket.timeout:
            return


def get_within(queue, seconds, what, no_ack=False):
    """Poll queue.get() (basic.get) until a message arrives."""
    deadline = time.monotonic() + seconds
    while True:
        msg = queue.get(no_ack=no_ack)
        if msg is not None:
            return msg
        if time.monotonic() > deadline:
            raise Failure("waited %.1f s for %s" % (seconds, what))
        time.sleep(0.05)


def get_all(queue, limit=1000):
    bodies = []
    for _ in range(limit):
        msg = queue.get(no_ack=True)
        if msg is None:
            return bodies
        bodies.append(msg.body)
    raise Failure("more than %d messages in %s" % (limit, queue.name))


def message_count(queue):
    """Messages ready, from a passive queue.declare."""
    _, count, _ = queue.queue_declare(passive=True)
    return count


def exclusive_queue(ctx, channel, what="", **kwargs):
    """A declared, exclusive (so auto-deleted) queue bound to `channel`."""
    queue = Queue(ctx.name(what), exclusive=True, durable=False, **kwargs)(channel)
    queue.declare()
    return queue


# ---------------------------------------------------------------- connect


def s_connect(ctx):
    ctx.step("connect")
    conn = Connection(ctx.url, connect_timeout=5)
    conn.connect()
    check(conn.connected, "connection state after connect()", "connected", "not connected")
    ctx.step("server properties")
    props = conn.connection.server_properties
    product = props.get("product")
    check(isinstance(product, str) and product, "server property product", "a non-empty string", product)
    caps = props.get("capabilities") or {}
    for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings"):
        check(caps.get(cap) is True, "capability %s" % cap, True, caps.get(cap))
    ctx.step("open channel")
    channel = conn.channel()
    check(channel.is_open, "channel after open", "open", "closed")
    ctx.step("close channel")
    channel.close()
    check(not channel.is_open, "channel after close", "closed", "open")
    ctx.step("close connection")
    conn.release()
    check(not conn.connected, "connection state after release()", "closed", "connected")


# ---------------------------------------------------------------- exchange_types


def s_exchange_types(ctx):
    # Confirms: a message is routed before the basic.get that looks for it.
    conn = ctx.connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    producer = Producer(channel)

    def exchange(kind):
        ex = Exchange(ctx.name(kind), type=kind, durable=False)(channel)
        ctx.exchanges_to_delete.append(ex.name)
        ex.declare()
        return ex

    def queue(what, ex, routing_key="", binding_arguments=None):
        q = Queue(
            ctx.name(what),
            exchange=ex,
            routing_key=routing_key,
            binding_arguments=binding_arguments,
            exclusive=True,
            durable=False,
        )(channel)
        q.declare()
        return q

    ctx.step("declare exchanges and bind queues")
    direct = exchange("direct")
    fanout = exchange("fanout")
    topic = exchange("topic")
    headers = exchange("headers")
    q_red = queue("direct-red", direct, "red")
    q_green = queue("direct-green", direct, "green")
    q_fan1 = queue("fanout-1", fanout)
    q_fan2 = queue("fanout-2", fanout)
    q_star = queue("topic-star", topic, "stock.*")
    q_hash = queue("topic-hash", topic, "stock.#")
    q_all = queue("headers-all", headers, binding_arguments={"x-match": "all", "kind": "report", "format": "pdf"})
    q_any = queue("headers-any", headers, binding_arguments={"x-match": "any", "kind": "report", "format": "pdf"})

    ctx.step("publish")
    for ex, body, key, hdrs in (
        (direct, "d-red", "red", None),
        (direct, "d-green", "green", None),
        (direct, "d-blue", "blue", None),
        (fanout, "f-1", "ignored", None),
        (topic, "t-stock.nyse", "stock.nyse", None),
        (topic, "t-stock.nyse.ibm", "stock.nyse.ibm", None),
        (topic, "t-stock", "stock", None),
        (topic, "t-bond.nyse", "bond.nyse", None),
        (headers, "h-both", "", {"kind": "report", "format": "pdf"}),
        (headers, "h-kind", "", {"kind": "report", "format": "csv"}),
        (headers, "h-none", "", {"kind": "invoice"}),
    ):
        producer.publish(body, exchange=ex, routing_key=key, headers=hdrs, serializer="json")

    expected = (
        ("direct red", q_red, ["d-red"]),
        ("direct green", q_green, ["d-green"]),
        ("fanout 1", q_fan1, ["f-1"]),
        ("fanout 2", q_fan2, ["f-1"]),
        ("topic stock.*", q_star, ["t-stock.nyse"]),
        ("topic stock.#", q_hash, ["t-stock.nyse", "t-stock.nyse.ibm", "t-stock"]),
        ("headers x-match all", q_all, ["h-both"]),
        ("headers x-match any", q_any, ["h-both", "h-kind"]),
    )
    for what, q, bodies in expected:
        ctx.step("get from the %s queue" % what)
        got = []
        while True:
            msg = q.get(no_ack=True, accept=["json"])
            if msg is None:
                break
            got.append(msg.decode())
        check_eq(got, bodies, "messages in the %s queue" % what)

    ctx.step("delete exchanges")
    for ex in (direct, fanout, topic, headers):
        ex.delete()
    ctx.exchanges_to_delete.clear()


# ---------------------------------------------------------------- publish_consume_ack


def s_publish_consume_ack(ctx):
    n = 100
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel, serializer="json")
    ctx.step("publish %d messages" % n)
    for i in range(n):
        producer.publish({"n": i}, routing_key=queue.name)
    ctx.step("consume with manual ack")
    seen = []

    def on_message(body, message):
        check_eq(body, {"n": len(seen)}, "body of delivery %d" % (len(seen) + 1))
        check_eq(message.delivery_info["redelivered"], False, "redelivered")
        seen.append(body["n"])
        message.ack()

    with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
        drain_until(conn, lambda: len(seen) >= n, 10, "%d deliveries" % n)
        check_eq(seen, list(range(n)), "delivery order")
        # (inside the with: kombu's exclusive queues are auto-delete, so the
        # queue goes away when the consumer is cancelled)
        ctx.step("passive declare after the acks")
        check_eq(message_count(queue), 0, "message_count after acking everything")


# ---------------------------------------------------------------- nack_requeue


def s_nack_requeue(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    ctx.step("publish")
    Producer(channel).publish("bounce", routing_key=queue.name, serializer="json")
    got = []
    with Consumer(channel, queues=[queue], on_message=got.append):
        ctx.step("first delivery")
        drain_until(conn, lambda: len(got) >= 1, 5, "the first delivery")
        check_eq((got[0].decode(), got[0].delivery_info["redelivered"]), ("bounce", False), "first delivery (body, redelivered)")
        got[0].requeue()
        ctx.step("delivery after requeue()")
        drain_until(conn, lambda: len(got) >= 2, 5, "the delivery after requeue()")
        check_eq((got[1].decode(), got[1].delivery_info["redelivered"]), ("bounce", True), "delivery after requeue (body, redelivered)")
        got[1].reject(requeue=False)
        ctx.step("nothing after reject(requeue=False)")
        drain_for(conn, QUIET)
        check_eq(len(got), 2, "deliveries after reject(requeue=False)")
        ctx.step("basic.get after reject(requeue=False)")
        check_eq(queue.get(), None, "queue.get()")
        check_eq(message_count(queue), 0, "message_count")


# ---------------------------------------------------------------- basic_get


def s_basic_get(ctx):
    # Confirms: messages are enqueued before the basic.get that counts them.
    conn = ctx.connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel, serializer="json")
    ctx.step("get on the empty queue")
    check_eq(queue.get(), None, "queue.get() on an empty queue")
    ctx.step("publish 3")
    for i in range(3):
        producer.publish("get-%d" % i, routing_key=queue.name)
    ctx.step("get with ack")
    m0 = queue.get(no_ack=False)
    check(m0 is not None, "first get", "a message", None)
    check_eq((m0.decode(), m0.delivery_info["message_count"], m0.delivery_info["redelivered"]), ("get-0", 2, False), "first get (body, message_count, redelivered)")
    m0.ack()
    ctx.step("get no_ack")
    m1 = queue.get(no_ack=True)
    check_eq((m1.decode(), m1.delivery_info["message_count"]), ("get-1", 1), "no-ack get (body, message_count)")
    ctx.step("get then requeue()")
    m2 = queue.get(no_ack=False)
    check_eq((m2.decode(), m2.delivery_info["message_count"]), ("get-2", 0), "third get (body, message_count)")
    m2.requeue()
    m2b = queue.get(no_ack=False)
    check_eq((m2b.decode(), m2b.delivery_info["redelivered"]), ("get-2", True), "get after requeue (body, redelivered)")
    check(m2b.delivery_tag != m2.delivery_tag, "delivery tag after requeue", "a new tag", m2b.delivery_tag)
    m2b.ack()
    ctx.step("get on the drained queue")
    check_eq(queue.get(), None, "queue.get() on the drained queue")
    check_eq(message_count(queue), 0, "message_count")

    ctx.step("SimpleQueue")
    name = ctx.name("simple")
    ctx.queues_to_delete.append(name)
    ctx.exchanges_to_delete.append(name)  # SimpleQueue declares an exchange of the same name
    simple = conn.SimpleQueue(name, queue_opts={"durable": False}, exchange_opts={"durable": False})
    try:
        simple.put({"hello": "simple"})
        check_eq(simple.qsize(), 1, "SimpleQueue.qsize() after put")
        msg = simple.get_nowait()  # basic.get
        check_eq(msg.payload, {"hello": "simple"}, "SimpleQueue.get_nowait() payload")
        msg.ack()
        try:
            simple.get_nowait()
            raise Failure("SimpleQueue.get_nowait() on an empty queue: expected Empty, got a message")
        except simple.Empty:
            pass
    finally:
        simple.close()


# ---------------------------------------------------------------- prefetch


def s_prefetch(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel, serializer="json")
    ctx.step("publish 20")
    for i in range(20):
        producer.publish(i, routing_key=queue.name)
    ctx.step("consume with prefetch_count=5")
    got = []
    with Consumer(channel, queues=[queue], on_message=got.append, prefetch_count=5):
        drain_until(conn, lambda: len(got) >= 5, 5, "the first 5 deliveries")
        drain_for(conn, QUIET)
        check_eq(len(got), 5, "deliveries with nothing acked")
        ctx.step("ack one")
        got[0].ack()
        drain_until(conn, lambda: len(got) >= 6, 5, "a 6th delivery after one ack")
        drain_for(conn, QUIET)
        check_eq(len(got), 6, "deliveries after one ack")
        check_eq([m.decode() for m in got], list(range(6)), "bodies")


# ---------------------------------------------------------------- publisher_confirms


def s_publisher_confirms(ctx):
    n = 100
    conn = ctx.connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    acked, nacked = [], []
    channel.events["basic_ack"].add(lambda tag, multiple: acked.append((tag, multiple)))
    channel.events["basic_nack"].add(lambda tag, multiple: nacked.append((tag, multiple)))
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel, serializer="json")
    ctx.step("publish %d, each waiting for its confirm" % n)
    for i in range(n):
        producer.publish({"n": i}, routing_key=queue.name, confirm_timeout=5)
    check_eq(nacked, [], "basic.nack frames")
    confirmed = set()
    for tag, multiple in acked:
        confirmed |= set(range(1, tag + 1)) if multiple else {tag}
    check_eq(sorted(confirmed), list(range(1, n + 1)), "delivery tags confirmed by basic.ack")
    ctx.step("count")
    check_eq(message_count(queue), n, "message_count")


# ---------------------------------------------------------------- mandatory_return


def s_mandatory_return(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    returned = []

    def on_return(exc, exchange, routing_key, message):
        returned.append((exc, exchange, routing_key, message))

    producer = Producer(channel, on_return=on_return, serializer="json")
    key = ctx.name("nowhere")
    ctx.step("publish mandatory to an unbound key")
    producer.publish({"lost": True}, routing_key=key, mandatory=True, message_id="m-1")
    ctx.step("basic.return")
    drain_until(conn, lambda: returned, 5, "the basic.return (on_return callback)")
    exc, exchange, routing_key, message = returned[0]
    check_eq((exc.reply_code, exc.reply_text), (312, "NO_ROUTE"), "basic.return (reply_code, reply_text)")
    check_eq((exchange, routing_key), ("", key), "basic.return (exchange, routing_key)")
    check_eq(message.properties.get("message_id"), "m-1", "returned message_id")
    ctx.step("publish non-mandatory to an unbound key")
    producer.publish({"dropped": True}, routing_key=key, mandatory=False)
    drain_for(conn, QUIET)
    check_eq(len(returned), 1, "returns after a non-mandatory unroutable publish")


# ---------------------------------------------------------------- transactions


def s_transactions(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel, serializer="json")
    ctx.step("tx.select")
    channel.tx_select()
    ctx.step("publish and roll back")
    producer.publish("rolled-back", routing_key=queue.name)
    channel.tx_rollback()
    check_eq(queue.get(no_ack=True), None, "queue.get() after rollback")
    ctx.step("publish and commit")
    producer.publish("committed", routing_key=queue.name)
    check_eq(message_count(queue), 0, "message_count before commit")
    channel.tx_commit()
    msg = queue.get(no_ack=True)
    check_eq(msg and msg.decode(), "committed", "queue.get() after commit")


# ---------------------------------------------------------------- rpc / direct_reply_to


class RpcServer(threading.Thread):
    """Consumes the request queue on its own connection and answers each
    request to its reply_to with the same correlation_id."""

    def __init__(self, ctx, request_queue_name):
        super().__init__(daemon=True)
        self.conn = ctx.connect()
        self.channel = self.conn.channel()
        self.queue = Queue(request_queue_name, exclusive=True, durable=False)(self.channel)
        self.queue.declare()
        self.producer = Producer(self.channel, serializer="json")
        self.stop = threading.Event()
        self.error = None
        self.seen_reply_to = []

    def on_request(self, body, message):
        reply_to = message.properties["reply_to"]
        self.seen_reply_to.append(reply_to)
        self.producer.publish(
            {"answer": "reply to %s" % body},
            routing_key=reply_to,
            correlation_id=message.properties["correlation_id"],
        )
        message.ack()

    def run(self):
        try:
            with Consumer(self.channel, queues=[self.queue], callbacks=[self.on_request], accept=["json"]):
                while not self.stop.is_set():
                    try:
                        self.conn.drain_events(timeout=0.1)
                    except socket.timeout:
                        pass
        except Exception as e:
            self.error = e


def rpc_calls(ctx, conn, channel, server, reply_queue, reply_to=None):
    """Three calls; replies come on reply_queue (declared by the Consumer)."""
    replies = {}

    def on_reply(body, message):
        replies[message.properties["correlation_id"]] = body

    producer = Producer(channel, serializer="json")
    with Consumer(channel, queues=[reply_queue], callbacks=[on_reply], no_ack=True, accept=["json"]) as consumer:
        if reply_to is None:
            ctx.step("caller: the server-named reply queue")
            reply_to = consumer.queues[0].name
            check(reply_to.startswith("amq.gen-"), "server-named queue", "amq.gen-...", reply_to)
        for i in range(3):
            ctx.step("call %d" % i)
            cid = str(uuid.uuid4())
            producer.publish("req-%d" % i, routing_key=server.queue.name, reply_to=reply_to, correlation_id=cid)
            drain_until(conn, lambda: cid in replies or server.error, 5, "the reply to call %d" % i)
            if server.error:
                raise Failure("the RPC server failed: %r" % server.error)
            check_eq(replies[cid], {"answer": "reply to req-%d" % i}, "reply body")


def s_rpc(ctx):
    ctx.step("server: declare and consume the request queue")
    server = RpcServer(ctx, ctx.name("requests"))
    server.start()
    try:
        conn = ctx.connect()
        channel = conn.channel()
        ctx.step("caller: consume a server-named exclusive reply queue")
        rpc_calls(ctx, conn, channel, server, Queue("", exclusive=True, durable=False))
    finally:
        server.stop.set()
        server.join(5)


def s_direct_reply_to(ctx):
    ctx.step("server: declare and consume the request queue")
    server = RpcServer(ctx, ctx.name("requests"))
    server.start()
    try:
        conn = ctx.connect()
        channel = conn.channel()
        ctx.step("caller: consume amq.rabbitmq.reply-to (no ack)")
        reply_queue = Queue("amq.rabbitmq.reply-to", no_declare=True)(channel)
        rpc_calls(ctx, conn, channel, server, reply_queue, "amq.rabbitmq.reply-to")
    finally:
        server.stop.set()
        server.join(5)
    check(
        server.seen_reply_to and all(r.startswith("amq.rabbitmq.reply-to.") for r in server.seen_reply_to),
        "reply_to seen by the server",
        "amq.rabbitmq.reply-to.<token>",
        server.seen_reply_to,
    )


# ---------------------------------------------------------------- dead_letter / ttl


def first_death(message, what):
    deaths = (message.headers or {}).get("x-death")
    check(isinstance(deaths, list) and deaths, "%s: x-death header" % what, "a non-empty array", deaths)
    check(isinstance(deaths[0], dict), "%s: x-death[0]" % what, "a table", deaths[0])
    return deaths[0]


def s_dead_letter(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    ctx.step("declare the dead-letter exchange and queue")
    dlx = Exchange(ctx.name("dlx"), type="direct", durable=False)(channel)
    ctx.exchanges_to_delete.append(dlx.name)
    dlq = exclusive_queue(ctx, channel, "dlq", exchange=dlx, routing_key="dead")
    ctx.step("declare the source queue")
    source = exclusive_queue(
        ctx,
        channel,
        "source",
        queue_arguments={"x-dead-letter-exchange": dlx.name, "x-dead-letter-routing-key": "dead"},
    )
    ctx.step("publish and reject without requeue")
    Producer(channel, serializer="json").publish("doomed", routing_key=source.name, headers={"keep": "me"})
    msg = get_within(source, 5, "the published message")
    msg.reject(requeue=False)
    ctx.step("dead-lettered message")
    dead = get_within(dlq, 5, "the dead-lettered message")
    dead.ack()
    check_eq(dead.decode(), "doomed", "dead-lettered body")
    check_eq(dead.delivery_info["routing_key"], "dead", "dead-lettered routing key")
    check_eq(dead.headers.get("keep"), "me", "original header")
    death = first_death(dead, "dead-lettered message")
    check_eq(death.get("count"), 1, "x-death[0].count")
    check_eq(death.get("reason"), "rejected", "x-death[0].reason")
    check_eq(death.get("queue"), source.name, "x-death[0].queue")
    check_eq(death.get("exchange"), "", "x-death[0].exchange")
    check_eq(death.get("routing-keys"), [source.name], "x-death[0].routing-keys")
    check_eq(message_count(source), 0, "message_count of the source queue")
    ctx.step("delete the dead-letter exchange")
    dlx.delete()
    ctx.exchanges_to_delete.clear()


def s_ttl(ctx):
    ttl = 0.3
    # Confirms: the message is enqueued before the passive declare counts it.
    conn = ctx.connect(transport_options={"confirm_publish": True})
    channel = conn.channel()
    producer = Producer(channel, serializer="json")
    ctx.step("declare queues")
    dlq = exclusive_queue(ctx, channel, "expired")
    queue_ttl = exclusive_queue(
        ctx,
        channel,
        "queue-ttl",
        message_ttl=ttl,
        queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq.name},
    )
    plain = exclusive_queue(ctx, channel, "per-message")
    ctx.step("publish to the TTL queue and a message with expiration")
    producer.publish("queue-ttl", routing_key=queue_ttl.name)
    producer.publish("message-ttl", routing_key=plain.name, expiration=ttl)
    producer.publish("no-ttl", routing_key=plain.name)
    check_eq(message_count(queue_ttl), 1, "message_count of the TTL queue right after publishing")
    ctx.step("wait for the TTL")
    time.sleep(2 * ttl)
    ctx.step("queue TTL expired")
    check_eq(queue_ttl.get(), None, "queue.get() on the TTL queue after the TTL")
    check_eq(message_count(queue_ttl), 0, "message_count of the TTL queue after the TTL")
    ctx.step("per-message expiration expired")
    check_eq(get_all(plain), ['"no-ttl"'], "messages left in the queue with an expired message")
    ctx.step("expired message dead-lettered")
    dead = get_within(dlq, 5, "the expired message in the dead-letter queue")
    dead.ack()
    check_eq(dead.decode(), "queue-ttl", "dead-lettered body")
    death = first_death(dead, "expired message")
    check_eq(death.get("reason"), "expired", "x-death[0].reason")
    check_eq(death.get("queue"), queue_ttl.name, "x-death[0].queue")
    check_eq(death.get("count"), 1, "x-death[0].count")


# ---------------------------------------------------------------- priority


def s_priority(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel, max_priority=10)
    producer = Producer(channel, serializer="json")
    ctx.step("publish priorities 1, 5, 9")
    for p in (1, 5, 9):
        producer.publish("prio-%d" % p, routing_key=queue.name, priority=p)
    ctx.step("consume")
    got = []
    with Consumer(channel, queues=[queue], on_message=got.append, no_ack=True):
        drain_until(conn, lambda: len(got) >= 3, 5, "3 deliveries")
    check_eq(
        [(m.decode(), m.properties.get("priority")) for m in got],
        [("prio-9", 9), ("prio-5", 5), ("prio-1", 1)],
        "delivery order",
    )


# ---------------------------------------------------------------- large / empty


def s_large_message(ctx):
    body = os.urandom(5 * 1024 * 1024)
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    ctx.step("publish 5 MiB")
    Producer(channel).publish(body, routing_key=queue.name, content_type="application/octet-stream", content_encoding="binary")
    ctx.step("consume 5 MiB")
    got = []
    with Consumer(channel, queues=[queue], on_message=got.append):
        drain_until(conn, lambda: got, 15, "the 5 MiB delivery")
    msg = got[0]
    check_eq(len(msg.body), len(body), "body length")
    check(msg.body == body, "body", "the same bytes", "different bytes")
    check_eq(msg.content_type, "application/octet-stream", "content_type")
    msg.ack()


def s_empty_message(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    producer = Producer(channel)
    ctx.step("publish an empty body, queue.get() it")
    producer.publish(b"", routing_key=queue.name)
    msg = get_within(queue, 5, "the empty message via queue.get()", no_ack=True)
    # py-amqp gives a message without body frames the body '' (a str).
    check_eq(msg.body, "", "body via queue.get()")
    check_eq((msg.content_type, msg.content_encoding), ("application/data", "binary"), "kombu's content type for bytes")
    ctx.step("publish an empty text body with properties")
    producer.publish(b"", routing_key=queue.name, content_type="text/plain", content_encoding="utf-8", message_id="empty-1", headers={"empty": True})
    ctx.step("consume it")
    got = []
    with Consumer(channel, queues=[queue], on_message=got.append):
        drain_until(conn, lambda: got, 5, "the empty delivery")
        msg = got[0]
        check_eq(msg.body, "", "body")
        check_eq((msg.content_type, msg.properties.get("message_id"), msg.headers), ("text/plain", "empty-1", {"empty": True}), "properties")
        msg.ack()


# ---------------------------------------------------------------- properties

HEADERS = {
    "string": "héllo wörld ✓",
    "empty-string": "",
    "int32": -2147483647,  # I
    "int64": 2**40,  # py-amqp writes 'L' (64-bit) above 32 bits
    "negative-int64": -(2**40),
    "true": True,
    "false": False,
    "float": 3.141592653589793,  # d
    "decimal": decimal.Decimal("-12.345"),
    "timestamp": datetime.datetime(2024, 2, 29, 12, 34, 56),
    "table": {"inner": "value", "n": 7, "deeper": {"flag": True}},
    "array": [1, "two", True, None, {"k": "v"}, [3]],
    "void": None,
}


def same_value(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def s_properties(ctx):
    user = unquote(urlparse(ctx.url).username or "guest")
    timestamp = int(datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc).timestamp())
    conn = ctx.connect()
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    ctx.step("publish with every property")
    Producer(channel).publish(
        b'{"hello": "world"}',
        routing_key=queue.name,
        content_type="application/json",
        content_encoding="utf-8",
        headers=HEADERS,
        delivery_mode=2,
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
    ctx.step("consume")
    got = []
    with Consumer(channel, queues=[queue], callbacks=[lambda body, message: got.append((body, message))], accept=["json"]):
        drain_until(conn, lambda: got, 5, "the delivery")
    body, msg = got[0]
    msg.ack()
    ctx.step("compare properties")
    check_eq(body, {"hello": "world"}, "decoded body")
    check_eq(msg.content_type, "application/json", "content_type")
    check_eq(msg.content_encoding, "utf-8", "content_encoding")
    props = msg.properties
    for key, expected in (
        ("delivery_mode", 2),
        ("priority", 7),
        ("correlation_id", "corr-42"),
        ("reply_to", "reply-queue"),
        ("expiration", "60000"),
        ("message_id", "msg-42"),
        ("timestamp", timestamp),
        ("type", "greeting"),
        ("user_id", user),
        ("app_id", "warren-interop"),
    ):
        check_eq(props.get(key), expected, "property %s" % key)
    ctx.step("compare headers")
    headers = msg.headers
    check_eq(sorted(headers), sorted(HEADERS), "header names")
    for key, value in HEADERS.items():
        check(
            same_value(headers[key], value),
            "header %s (value, type)" % key,
            (value, type(value).__name__),
            (headers[key], type(headers[key]).__name__),
        )


# ---------------------------------------------------------------- cancel_notify


def s_cancel_notify(ctx):
    conn = ctx.connect()
    channel = conn.channel()
    other = conn.channel()

    ctx.step("consume with an on_cancel callback (kombu.Queue.consume)")
    name = ctx.name("on-cancel")
    ctx.queues_to_delete.append(name)
    queue = Queue(name, durable=False, auto_delete=False)(channel)
    queue.declare()
    cancelled = []
    tag = "%s.%s" % (CLIENT, uuid.uuid4().hex[:8])
    queue.consume(consumer_tag=tag, callback=lambda m: None, on_cancel=cancelled.append)
    ctx.step("delete the queue from another channel")
    Queue(name)(other).delete()
    ctx.step("basic.cancel from the broker (on_cancel)")
    drain_until(conn, lambda: cancelled, 5, "the on_cancel callback")
    check_eq(cancelled, [tag], "consumer tags passed to on_cancel")
    ctx.queues_to_delete.remove(name)

    ctx.step("consume with kombu.Consumer")
    name = ctx.name("consumer")
    ctx.queues_to_delete.append(name)
    queue = Queue(name, durable=False, auto_delete=False)(channel)
    consumer = Consumer(channel, queues=[queue], on_message=lambda m: None)
    consumer.consume()
    [tag] = consumer._active_tags.values()
    ctx.step("delete the queue from another channel, then drain_events")
    # Without an on_cancel callback py-amqp raises ConsumerCancelled from
    # whichever call reads the broker's basic.cancel (the delete's own wait
    # for queue.delete-ok, or drain_events).
    try:
        Queue(name)(other).delete()
        drain_until(conn, lambda: False, 5, "ConsumerCancelled from drain_events")
    except amqp.exceptions.ConsumerCancelled as e:
        check_eq(e.reply_text, tag, "consumer tag in ConsumerCancelled")
    ctx.queues_to_delete.remove(name)

    ctx.step("the channel still works")
    q2 = exclusive_queue(ctx, channel, "after")
    Producer(channel).publish(b"still here", routing_key=q2.name)
    msg = get_within(q2, 5, "the message after the cancel", no_ack=True)
    check_eq(msg.body, b"still here", "body after the cancel")


# ---------------------------------------------------------------- heartbeat


def s_heartbeat(ctx):
    interval = 2
    idle = 5.5  # > two intervals; py-amqp's heartbeat_check raises after 2 intervals without a frame
    conn = ctx.connect(heartbeat=interval)
    check_eq(conn.connection.heartbeat, interval, "negotiated heartbeat")
    channel = conn.channel()
    queue = exclusive_queue(ctx, channel)
    ctx.step("idle for %.1f s, calling heartbeat_check" % idle)
    deadline = time.monotonic() + idle
    while time.monotonic() < deadline:
        conn.heartbeat_check(rate=2)
        try:
            conn.drain_events(timeout=0.25)
        except socket.timeout:
            pass
    check(conn.connected, "connection after idling", "connected", "closed")
    ctx.step("publish and get after idling")
    Producer(channel).publish(b"alive", routing_key=queue.name)
    msg = get_within(queue, 5, "the message after idling", no_ack=True)
    check_eq(msg.body, b"alive", "body")


SCENARIOS = {
    "connect": s_connect,
    "exchange_types": s_exchange_types,
    "publish_consume_ack": s_publish_consume_ack,
    "nack_requeue": s_nack_requeue,
    "basic_get": s_basic_get,
    "prefetch": s_prefetch,
    "publisher_confirms": s_publisher_confirms,
    "mandatory_return": s_mandatory_return,
    "transactions": s_transactions,
    "rpc": s_rpc,
    "direct_reply_to": s_direct_reply_to,
    "dead_letter": s_dead_letter,
    "ttl": s_ttl,
    "priority": s_priority,
    "large_message": s_large_message,
    "empty_message": s_empty_message,
    "properties": s_properties,
    "cancel_notify": s_cancel_notify,
    "heartbeat": s_heartbeat,
}


# ---------------------------------------------------------------- harness


def describe(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def run_scenario(url, name, fn, timeout=SCENARIO_TIMEOUT):
    ctx = Ctx(url, name)
    started = time.monotonic()

    def on_alarm(signum, frame):
        raise ScenarioTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        fn(ctx)
        line = "PASS %s %s" % (CLIENT, name)
    except ScenarioTimeout:
        line = "FAIL %s %s: timed out after %d s in step %r" % (CLIENT, name, timeout, ctx.step_name)
    except Failure as e:
        line = "FAIL %s %s: step %r: %s" % (CLIENT, name, ctx.step_name, e)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        line = "FAIL %s %s: step %r: %s" % (CLIENT, name, ctx.step_name, describe(e))
    finally:
        signal.alarm(0)
    signal.alarm(10)
    try:
        ctx.cleanup()
    except BaseException as e:
        print("%s %s: cleanup failed: %s" % (CLIENT, name, describe(e)), file=sys.stderr)
        if line.startswith("PASS"):
            line = "FAIL %s %s: cleanup: %s" % (CLIENT, name, describe(e))
    finally:
        signal.alarm(0)
    print("%s %s took %.2f s" % (CLIENT, name, time.monotonic() - started), file=sys.stderr)
    return line


def run_all(scenarios, timeout=SCENARIO_TIMEOUT):
    url = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL
    only = sys.argv[2:]
    failed = False
    for n in only:
        if n not in scenarios:
            print("FAIL %s %s: unknown scenario" % (CLIENT, n), flush=True)
            failed = True
    for name, fn in scenarios.items():
        if only and name not in only:
            continue
        line = run_scenario(url, name, fn, timeout)
        print(line, flush=True)
        failed |= not line.startswith("PASS")
    return 1 if failed else 0


def main():
    return run_all(SCENARIOS)


if __name__ == "__main__":
    sys.exit(main())
