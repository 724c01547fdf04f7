#!/usr/bin/env python3
"""Warren interop scenarios for pika's BlockingConnection (see ../SCENARIOS.md).

Usage: scenario.py [AMQP_URL [SCENARIO...]]

Prints one line per scenario, `PASS pika-blocking <scenario>` or
`FAIL pika-blocking <scenario>: <reason>`, and exits non-zero if any failed.

Each scenario opens its own BlockingConnection and runs under a SIGALRM
watchdog; every wait for a delivery also has its own shorter deadline.
"""

import datetime
import decimal
import hashlib
import logging
import os
import signal
import sys
import time
import uuid

import pika
import pika.exceptions
from pika.exchange_type import ExchangeType

CLIENT = "pika-blocking"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SCENARIO_TIMEOUT = 15  # seconds, hard limit for one scenario
CLEANUP_TIMEOUT = 3  # seconds, hard limit for the cleanup afterwards
WAIT = 5.0  # seconds to wait for something the broker should do promptly
SETTLE = 0.3  # seconds to wait to see that the broker sends nothing more


class ScenarioTimeout(Exception):
    pass


class Failure(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Failure(reason)


_step = ["start"]


def step(desc):
    """Record what the scenario is doing, for error and timeout messages."""
    _step[0] = desc


def _on_alarm(signum, frame):
    raise ScenarioTimeout("timed out during %s" % _step[0])


def unique(scenario, what):
    return "%s.%s.%s.%s" % (CLIENT, scenario, what, uuid.uuid4().hex[:10])


class Session:
    """The connection of one scenario and the exchanges it must delete."""

    def __init__(self, url):
        self.url = url
        self.conns = []
        self.exchanges = []

    def params(self, **overrides):
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.stack_timeout = 5  # TCP connect + AMQP handshake
        params.blocked_connection_timeout = 10
        params.client_properties = {"connection_name": CLIENT}
        for key, value in overrides.items():
            setattr(params, key, value)
        return params

    def connect(self, **overrides):
        step("connection handshake")
        conn = pika.BlockingConnection(self.params(**overrides))
        self.conns.append(conn)
        return conn

    @property
    def user(self):
        return pika.URLParameters(self.url).credentials.username

    def declare_exchange(self, ch, name, kind):
        step("exchange.declare %s (%s)" % (name, kind))
        self.exchanges.append(name)
        ch.exchange_declare(exchange=name, exchange_type=kind)

    def delete_exchange(self, ch, name):
        step("exchange.delete %s" % name)
        ch.exchange_delete(exchange=name)
        self.exchanges.remove(name)

    def cleanup(self):
        """Best effort: delete leftover exchanges, close every connection."""
        if self.exchanges:
            conn = next((c for c in self.conns if c.is_open), None)
            try:
                conn = conn or self.connect()
                ch = conn.channel()
                for name in list(self.exchanges):
                    ch.exchange_delete(exchange=name)
                    self.exchanges.remove(name)
            except Exception:  # noqa: BLE001 -- best effort only
                pass
        for conn in self.conns:
            if conn.is_open:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass


def wait_until(conn, cond, what, timeout=WAIT):
    """Let the connection dispatch callbacks until cond() holds."""
    step("waiting for %s" % what)
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("no %s within %.0f s" % (what, timeout))
        conn.process_data_events(time_limit=min(left, 0.1))


def settle(conn, duration=SETTLE):
    """Process events for `duration` seconds (to see that nothing else comes)."""
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.process_data_events(time_limit=left)


def message_count(ch, queue):
    step("queue.declare passive %s" % queue)
    return ch.queue_declare(queue=queue, passive=True).method.message_count


def expect_closed(fn, code, what):
    """Run fn; it must close the channel with `code`."""
    try:
        fn()
    except pika.exceptions.ChannelClosedByBroker as exc:
        check(exc.reply_code == code, "%s: channel closed with %s %s, expected %d"
              % (what, exc.reply_code, exc.reply_text, code))
        return
    raise Failure("%s: succeeded, expected a channel error %d" % (what, code))


def same_value(got, want):
    """Equality that also catches type drift (True vs 1, b"x" vs "x", ...)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    if isinstance(want, dict):
        return (isinstance(got, dict) and set(got) == set(want)
                and all(same_value(got[k], want[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(same_value(g, w) for g, w in zip(got, want)))
    return type(got) is type(want) and got == want


PROPERTY_NAMES = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
    "type", "user_id", "app_id", "cluster_id",
)


def compare_properties(what, got, want):
    for name in PROPERTY_NAMES:
        g, w = getattr(got, name), getattr(want, name)
        if name == "headers" and isinstance(g, dict) and isinstance(w, dict):
            for key in sorted(set(g) | set(w)):
                check(key in g, "%s: header %r missing" % (what, key))
                check(key in w, "%s: unexpected header %r = %r" % (what, key, g[key]))
                check(same_value(g[key], w[key]), "%s: header %r came back as %r, sent %r"
                      % (what, key, g[key], w[key]))
        else:
            check(same_value(g, w), "%s: property %s came back as %r, sent %r"
                  % (what, name, g, w))


# ---------------------------------------------------------------- connect

def scenario_connect(s):
    conn = s.connect()
    impl = conn._impl  # the server properties are only kept on the underlying connection
    product = impl.server_properties.get("product")
    check(isinstance(product, (str, bytes)) and product,
          "connection.start server-properties.product is %r" % (product,))
    caps = impl.server_capabilities
    for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify",
                "exchange_exchange_bindings"):
        check(caps.get(cap) is True, "capability %s is %r, expected true" % (cap, caps.get(cap)))
    check(conn.publisher_confirms_supported and conn.basic_nack_supported
          and conn.consumer_cancel_notify_supported
          and conn.exchange_exchange_bindings_supported,
          "BlockingConnection does not report the capabilities as supported")
    step("channel.open")
    ch = conn.channel()
    check(ch.is_open, "channel not open after channel.open-ok")
    step("channel.close")
    ch.close()
    check(ch.is_closed, "channel not closed after channel.close-ok")
    step("connection.close")
    conn.close()
    check(conn.is_closed, "connection not closed after connection.close-ok")


# ---------------------------------------------------------------- exchange_types

def scenario_exchange_types(s):
    conn = s.connect()
    ch = conn.channel()
    ch.confirm_delivery()  # a confirmed publish has been routed when basic_publish returns
    ex = {kind: unique("exchange_types", kind) for kind in ("direct", "fanout", "topic", "headers")}
    s.declare_exchange(ch, ex["direct"], ExchangeType.direct)
    s.declare_exchange(ch, ex["fanout"], ExchangeType.fanout)
    s.declare_exchange(ch, ex["topic"], ExchangeType.topic)
    s.declare_exchange(ch, ex["headers"], ExchangeType.headers)

    bindings = {  # queue label -> (exchange, routing key, arguments)
        "direct-red": (ex["direct"], "red", None),
        "direct-green": (ex["direct"], "green", None),
        "fanout-1": (ex["fanout"], "", None),
        "fanout-2": (ex["fanout"], "ignored", None),
        "topic-star": (ex["topic"], "a.*", None),
        "topic-hash": (ex["topic"], "a.#", None),
        "topic-end": (ex["topic"], "#.z", None),
        "headers-all": (ex["headers"], "", {"x-match": "all", "color": "red", "size": "big"}),
        "headers-any": (ex["headers"], "", {"x-match": "any", "color": "red", "size": "big"}),
    }
    queues = {}
    for label, (exchange, key, args) in bindings.items():
        step("queue.declare for %s" % label)
        queues[label] = ch.queue_declare(queue=unique("exchange_types", label), exclusive=True).method.queue
        step("queue.bind %s to %s with %r %r" % (label, exchange, key, args))
        ch.queue_bind(queue=queues[label], exchange=exchange, routing_key=key, arguments=args)

    publishes = [  # (exchange, routing key, headers, body)
        (ex["direct"], "red", None, "d-red"),
        (ex["direct"], "green", None, "d-green"),
        (ex["direct"], "blue", None, "d-blue"),
        (ex["fanout"], "anything", None, "f-1"),
        (ex["topic"], "a.b", None, "t-a.b"),
        (ex["topic"], "a.b.c", None, "t-a.b.c"),
        (ex["topic"], "a", None, "t-a"),
        (ex["topic"], "a.z", None, "t-a.z"),
        (ex["topic"], "x.y.z", None, "t-x.y.z"),
        (ex["topic"], "b.a", None, "t-b.a"),
        (ex["headers"], "", {"color": "red", "size": "big"}, "h-red-big"),
        (ex["headers"], "", {"color": "red"}, "h-red"),
        (ex["headers"], "", {"color": "blue", "size": "big"}, "h-blue-big"),
        (ex["headers"], "", {"color": "blue"}, "h-blue"),
        (ex["headers"], "", {"color": "red", "size": "big", "extra": 1}, "h-red-big-extra"),
    ]
    for exchange, key, headers, body in publishes:
        step("basic.publish %s + confirm" % body)
        ch.basic_publish(exchange=exchange, routing_key=key, body=body.encode(),
                         properties=pika.BasicProperties(headers=headers))

    expected = {
        "direct-red": ["d-red"],
        "direct-green": ["d-green"],
        "fanout-1": ["f-1"],
        "fanout-2": ["f-1"],
        "topic-star": ["t-a.b", "t-a.z"],
        "topic-hash": ["t-a.b", "t-a.b.c", "t-a", "t-a.z"],
        "topic-end": ["t-a.z", "t-x.y.z"],
        "headers-all": ["h-red-big", "h-red-big-extra"],
        "headers-any": ["h-red-big", "h-red", "h-blue-big", "h-red-big-extra"],
    }
    for label, want in expected.items():
        got = []
        while True:
            step("basic.get from %s" % label)
            method, _props, body = ch.basic_get(queue=queues[label], auto_ack=True)
            if method is None:
                break
            got.append(body.decode())
            check(len(got) <= 20, "%s: too many messages" % label)
        check(got == want, "queue %s got %r, expected %r" % (label, got, want))

    for kind, name in ex.items():
        s.delete_exchange(ch, name)
    for kind, name in ex.items():
        step("exchange.declare passive %s after delete" % name)
        expect_closed(lambda: ch.exchange_declare(exchange=name, exchange_type=kind, passive=True),
                      404, "passive declare of deleted %s exchange" % kind)
        ch = conn.channel()


# ---------------------------------------------------------------- publish_consume_ack

N_MESSAGES = 100


def scenario_publish_consume_ack(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("publish_consume_ack", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    for i in range(N_MESSAGES):
        step("basic.publish #%d" % i)
        ch.basic_publish(exchange="", routing_key=queue, body=b"message %d" % i,
                         properties=pika.BasicProperties(message_id=str(i)))
    step("basic.qos")
    ch.basic_qos(prefetch_count=10)
    received = 0
    step("basic.consume / waiting for deliveries")
    for method, props, body in ch.consume(queue, auto_ack=False, inactivity_timeout=WAIT):
        if method is None:
            raise Failure("no delivery within %.0f s after %d of %d messages"
                          % (WAIT, received, N_MESSAGES))
        check(body == b"message %d" % received and props.message_id == str(received),
              "delivery %d: body %r message_id %r (out of order?)" % (received, body, props.message_id))
        check(not method.redelivered, "delivery %d: redelivered on first delivery" % received)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        received += 1
        if received == N_MESSAGES:
            break
    step("basic.cancel")
    requeued = ch.cancel()
    check(requeued == 0, "%d extra deliveries were pending at cancel" % requeued)
    # Closing the channel would requeue anything not acked: count on a new channel.
    step("channel.close")
    ch.close()
    ch = conn.channel()
    step("queue.declare passive after acking all")
    ok = ch.queue_declare(queue=queue, passive=True).method
    check(ok.message_count == 0, "queue holds %d messages after all were acked" % ok.message_count)
    check(ok.consumer_count == 0, "queue has %d consumers after cancel" % ok.consumer_count)


# ---------------------------------------------------------------- nack_requeue

def scenario_nack_requeue(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("nack_requeue", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    ch.basic_publish(exchange="", routing_key=queue, body=b"nack me")
    deliveries = []
    step("basic.consume")
    ch.basic_consume(queue, lambda c, m, p, b: deliveries.append((m, b)))
    wait_until(conn, lambda: len(deliveries) == 1, "first delivery")
    method, body = deliveries[0]
    check(body == b"nack me" and not method.redelivered,
          "first delivery: body %r redelivered %r" % (body, method.redelivered))
    step("basic.nack requeue=true")
    ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
    wait_until(conn, lambda: len(deliveries) == 2, "redelivery after nack(requeue=true)")
    method2, body2 = deliveries[1]
    check(body2 == b"nack me", "redelivery: body %r" % body2)
    check(method2.redelivered, "redelivery after nack(requeue=true) has redelivered=false")
    check(method2.delivery_tag != method.delivery_tag, "redelivery reused delivery tag")
    step("basic.nack requeue=false")
    ch.basic_nack(delivery_tag=method2.delivery_tag, requeue=False)
    settle(conn)
    check(len(deliveries) == 2, "message delivered again after nack(requeue=false)")
    # Closing the channel requeues whatever is unacked: a new channel sees the truth.
    step("channel.close")
    ch.close()
    ch = conn.channel()
    count = message_count(ch, queue)
    check(count == 0, "queue holds %d messages after nack(requeue=false), expected 0" % count)


# ---------------------------------------------------------------- basic_get

def scenario_basic_get(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("basic_get", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    step("basic.get on empty queue")
    method, _, _ = ch.basic_get(queue=queue)
    check(method is None, "basic.get on a fresh queue returned a message")
    ch.confirm_delivery()
    for i in range(3):
        step("basic.publish #%d + confirm" % i)
        ch.basic_publish(exchange="", routing_key=queue, body=b"get %d" % i)

    step("basic.get #0 (manual ack)")
    m0, _, b0 = ch.basic_get(queue=queue, auto_ack=False)
    check(m0 is not None, "basic.get #0 returned get-empty")
    check(b0 == b"get 0", "basic.get #0: body %r" % b0)
    check(m0.message_count == 2, "basic.get #0: message_count %d, expected 2" % m0.message_count)
    check(not m0.redelivered, "basic.get #0: redelivered on first delivery")

    step("basic.get #1 (no-ack)")
    m1, _, b1 = ch.basic_get(queue=queue, auto_ack=True)
    check(m1 is not None, "basic.get #1 returned get-empty")
    check(b1 == b"get 1", "basic.get #1: body %r" % b1)
    check(m1.message_count == 1, "basic.get #1: message_count %d, expected 1" % m1.message_count)

    step("basic.get #2 (manual ack)")
    m2, _, b2 = ch.basic_get(queue=queue, auto_ack=False)
    check(m2 is not None, "basic.get #2 returned get-empty")
    check(b2 == b"get 2", "basic.get #2: body %r" % b2)
    check(m2.message_count == 0, "basic.get #2: message_count %d, expected 0" % m2.message_count)
    ch.basic_ack(delivery_tag=m2.delivery_tag)

    step("basic.get on drained queue")
    m3, _, _ = ch.basic_get(queue=queue)
    check(m3 is None, "basic.get on a drained queue returned a message")

    # #0 is still unacked: closing the channel requeues it; #1 (no-ack) and #2 (acked) are gone.
    step("channel.close with #0 unacked")
    ch.close()
    ch = conn.channel()
    count = message_count(ch, queue)
    check(count == 1, "after closing the channel the queue holds %d messages, expected 1 (#0)" % count)
    step("basic.get after requeue")
    m4, _, b4 = ch.basic_get(queue=queue, auto_ack=True)
    check(m4 is not None and b4 == b"get 0", "requeued message: %r %r" % (m4, b4))
    check(m4.redelivered, "requeued message: redelivered=false")
    check(m4.message_count == 0, "requeued message: message_count %d" % m4.message_count)


# ---------------------------------------------------------------- prefetch

def scenario_prefetch(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("prefetch", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    ch.confirm_delivery()
    for i in range(20):
        step("basic.publish #%d + confirm" % i)
        ch.basic_publish(exchange="", routing_key=queue, body=b"%d" % i)
    step("basic.qos prefetch_count=5")
    ch.basic_qos(prefetch_count=5)
    deliveries = []
    step("basic.consume")
    ch.basic_consume(queue, lambda c, m, p, b: deliveries.append(m))
    wait_until(conn, lambda: len(deliveries) >= 5, "5 deliveries")
    settle(conn)
    check(len(deliveries) == 5, "with prefetch 5 and nothing acked, %d deliveries arrived" % len(deliveries))
    count = message_count(ch, queue)
    check(count == 15, "queue reports %d ready messages with 5 unacked, expected 15" % count)
    step("basic.ack first delivery")
    ch.basic_ack(delivery_tag=deliveries[0].delivery_tag)
    wait_until(conn, lambda: len(deliveries) >= 6, "a 6th delivery after one ack")
    settle(conn)
    check(len(deliveries) == 6, "after one ack %d deliveries arrived in total, expected 6" % len(deliveries))


# ---------------------------------------------------------------- publisher_confirms

def scenario_publisher_confirms(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("publisher_confirms", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    step("confirm.select")
    ch.confirm_delivery()
    for i in range(100):
        step("basic.publish #%d waiting for its confirm" % i)
        try:
            # In confirm mode basic_publish returns once the broker acked the message.
            ch.basic_publish(exchange="", routing_key=queue, body=b"confirm %d" % i)
        except pika.exceptions.NackError:
            raise Failure("message %d was nacked" % i)
    count = message_count(ch, queue)
    check(count == 100, "queue holds %d messages after 100 confirmed publishes" % count)


# ---------------------------------------------------------------- mandatory_return

def scenario_mandatory_return(s):
    conn = s.connect()
    ch = conn.channel()
    exchange = unique("mandatory_return", "x")
    s.declare_exchange(ch, exchange, ExchangeType.direct)
    key = unique("mandatory_return", "nobody")

    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    step("basic.publish mandatory to an unbound key")
    ch.basic_publish(exchange=exchange, routing_key=key, body=b"come back", mandatory=True,
                     properties=pika.BasicProperties(message_id="ret-1"))
    wait_until(conn, lambda: returned, "basic.return")
    method, props, body = returned[0]
    check(method.reply_code == 312 and method.reply_text == "NO_ROUTE",
          "basic.return carries %s %r, expected 312 NO_ROUTE" % (method.reply_code, method.reply_text))
    check(method.exchange == exchange and method.routing_key == key,
          "basic.return names exchange %r key %r" % (method.exchange, method.routing_key))
    check(body == b"come back" and props.message_id == "ret-1",
          "returned message: body %r message_id %r" % (body, props.message_id))

    # The same through confirm mode: basic_publish raises UnroutableError.
    ch2 = conn.channel()
    step("confirm.select")
    ch2.confirm_delivery()
    step("basic.publish mandatory in confirm mode")
    try:
        ch2.basic_publish(exchange=exchange, routing_key=key, body=b"again", mandatory=True)
        raise Failure("mandatory publish to an unbound key in confirm mode was not returned")
    except pika.exceptions.UnroutableError as exc:
        m = exc.messages[0].method
        check(m.reply_code == 312, "basic.return in confirm mode carries %s %r" % (m.reply_code, m.reply_text))
    s.delete_exchange(ch, exchange)


# ---------------------------------------------------------------- transactions

def scenario_transactions(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("transactions", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    step("tx.select")
    ch.tx_select()
    step("basic.publish in transaction")
    ch.basic_publish(exchange="", routing_key=queue, body=b"rolled back")
    count = message_count(ch, queue)
    check(count == 0, "uncommitted publish is visible: queue holds %d" % count)
    step("tx.rollback")
    ch.tx_rollback()
    count = message_count(ch, queue)
    check(count == 0, "after tx.rollback the queue holds %d messages, expected 0" % count)

    step("basic.publish in transaction")
    ch.basic_publish(exchange="", routing_key=queue, body=b"committed")
    step("tx.commit")
    ch.tx_commit()
    step("basic.get after commit")
    method, _, body = ch.basic_get(queue=queue, auto_ack=False)
    check(method is not None, "after tx.commit basic.get returned get-empty")
    check(body == b"committed", "after tx.commit got %r, expected b'committed'" % body)
    check(method.message_count == 0, "after commit %d more messages are queued" % method.message_count)

    # An ack inside the transaction takes effect at commit.
    step("basic.ack + tx.commit")
    ch.basic_ack(delivery_tag=method.delivery_tag)
    ch.tx_commit()
    ch.close()
    ch = conn.channel()
    count = message_count(ch, queue)
    check(count == 0, "committed ack did not settle the message: queue holds %d" % count)


# ---------------------------------------------------------------- rpc / direct_reply_to

def start_rpc_server(conn, queue):
    """A worker that upper-cases request bodies and answers to reply_to."""
    server = conn.channel()
    step("server queue.declare")
    server.queue_declare(queue=queue, exclusive=True)
    server.basic_qos(prefetch_count=1)
    seen_reply_to = []

    def on_request(ch, method, props, body):
        seen_reply_to.append(props.reply_to)
        ch.basic_publish(exchange="", routing_key=props.reply_to, body=body.upper(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    step("server basic.consume")
    server.basic_consume(queue=queue, on_message_callback=on_request)
    return seen_reply_to


def rpc_calls(conn, client, request_queue, reply_to, n=3):
    responses = {}

    def on_response(ch, method, props, body):
        responses[props.correlation_id] = body

    step("client basic.consume on %s" % reply_to)
    client.basic_consume(queue=reply_to, on_message_callback=on_response, auto_ack=True)
    calls = {str(uuid.uuid4()): ("request %d" % i).encode() for i in range(n)}
    for corr_id, body in calls.items():
        step("client basic.publish request")
        client.basic_publish(exchange="", routing_key=request_queue, body=body,
                             properties=pika.BasicProperties(reply_to=reply_to, correlation_id=corr_id))
    wait_until(conn, lambda: len(responses) >= n, "%d RPC responses" % n)
    for corr_id, body in calls.items():
        check(corr_id in responses, "no response with correlation_id %s (got %r)" % (corr_id, list(responses)))
        check(responses[corr_id] == body.upper(), "response to %r is %r" % (body, responses[corr_id]))
    check(len(responses) == n, "unexpected responses: %r" % responses)


def scenario_rpc(s):
    conn = s.connect()
    request_queue = unique("rpc", "requests")
    start_rpc_server(conn, request_queue)
    client = conn.channel()
    step("client queue.declare server-named exclusive")
    reply_queue = client.queue_declare(queue="", exclusive=True).method.queue
    check(reply_queue, "server-named queue has an empty name")
    rpc_calls(conn, client, request_queue, reply_queue)


def scenario_direct_reply_to(s):
    conn = s.connect()
    request_queue = unique("direct_reply_to", "requests")
    seen = start_rpc_server(conn, request_queue)
    client = conn.channel()
    rpc_calls(conn, client, request_queue, "amq.rabbitmq.reply-to")
    check(all(r.startswith("amq.rabbitmq.reply-to.") for r in seen),
          "the server saw reply_to %r, expected amq.rabbitmq.reply-to.<suffix>" % seen)


# ---------------------------------------------------------------- dead_letter / ttl

def get_dead_letters(conn, ch, queue, n):
    got = []
    step("basic.consume on dead-letter queue")
    tag = ch.basic_consume(queue, lambda c, m, p, b: got.append((p, b)), auto_ack=True)
    wait_until(conn, lambda: len(got) >= n, "%d dead-lettered message(s)" % n)
    settle(conn, 0.1)
    check(len(got) == n, "%d messages dead-lettered, expected %d" % (len(got), n))
    ch.basic_cancel(tag)
    return got


def check_x_death(what, props, reason, queue, routing_key):
    headers = props.headers or {}
    deaths = headers.get("x-death")
    check(isinstance(deaths, list) and deaths, "%s: x-death header is %r" % (what, deaths))
    first = deaths[0]
    check(isinstance(first, dict), "%s: x-death[0] is %r" % (what, first))
    check(same_value(first.get("count"), 1), "%s: x-death[0].count is %r, expected 1" % (what, first.get("count")))
    check(first.get("reason") == reason, "%s: x-death[0].reason is %r, expected %r" % (what, first.get("reason"), reason))
    check(first.get("queue") == queue, "%s: x-death[0].queue is %r, expected %r" % (what, first.get("queue"), queue))
    check(first.get("exchange") == "", "%s: x-death[0].exchange is %r, expected ''" % (what, first.get("exchange")))
    check(first.get("routing-keys") == [routing_key],
          "%s: x-death[0].routing-keys is %r, expected [%r]" % (what, first.get("routing-keys"), routing_key))


def declare_dlx(s, ch, scenario, key):
    dlx = unique(scenario, "dlx")
    s.declare_exchange(ch, dlx, ExchangeType.direct)
    dlq = unique(scenario, "dlq")
    step("queue.declare dead-letter queue")
    ch.queue_declare(queue=dlq, exclusive=True)
    ch.queue_bind(queue=dlq, exchange=dlx, routing_key=key)
    return dlx, dlq


def scenario_dead_letter(s):
    conn = s.connect()
    ch = conn.channel()
    dlx, dlq = declare_dlx(s, ch, "dead_letter", "dead")
    source = unique("dead_letter", "source")
    step("queue.declare with x-dead-letter-exchange")
    ch.queue_declare(queue=source, exclusive=True, arguments={
        "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    ch.confirm_delivery()
    step("basic.publish + confirm")
    ch.basic_publish(exchange="", routing_key=source, body=b"doomed",
                     properties=pika.BasicProperties(message_id="dl-1"))
    step("basic.get")
    method, _, _ = ch.basic_get(queue=source, auto_ack=False)
    check(method is not None, "basic.get from the source queue returned get-empty")
    step("basic.reject requeue=false")
    ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
    (props, body), = get_dead_letters(conn, ch, dlq, 1)
    check(body == b"doomed" and props.message_id == "dl-1",
          "dead-lettered message: body %r message_id %r" % (body, props.message_id))
    check_x_death("dead-lettered message", props, "rejected", source, source)
    count = message_count(ch, source)
    check(count == 0, "source queue still holds %d messages" % count)
    s.delete_exchange(ch, dlx)


TTL_MS = 1000


def scenario_ttl(s):
    conn = s.connect()
    ch = conn.channel()
    dlx, dlq = declare_dlx(s, ch, "ttl", "expired")
    dl_args = {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "expired"}
    queue_ttl = unique("ttl", "queue-ttl")
    step("queue.declare with x-message-ttl")
    ch.queue_declare(queue=queue_ttl, exclusive=True, arguments=dict(dl_args, **{"x-message-ttl": TTL_MS}))
    queue_plain = unique("ttl", "message-ttl")
    step("queue.declare without TTL")
    ch.queue_declare(queue=queue_plain, exclusive=True, arguments=dl_args)
    ch.confirm_delivery()
    started = time.monotonic()
    step("basic.publish to the TTL queue")
    ch.basic_publish(exchange="", routing_key=queue_ttl, body=b"queue ttl")
    step("basic.publish with expiration")
    ch.basic_publish(exchange="", routing_key=queue_plain, body=b"message ttl",
                     properties=pika.BasicProperties(expiration=str(TTL_MS)))
    step("basic.publish without expiration")
    ch.basic_publish(exchange="", routing_key=queue_plain, body=b"stays")
    # Both are there before the TTL passes...
    check(message_count(ch, queue_ttl) == 1, "TTL queue does not hold the fresh message")
    check(message_count(ch, queue_plain) == 2, "queue does not hold both fresh messages")
    # ...and dead-lettered once it has.
    dead = get_dead_letters(conn, ch, dlq, 2)
    elapsed = time.monotonic() - started
    check(elapsed >= TTL_MS / 1000.0 * 0.8, "messages expired after %.2f s, TTL is %.2f s" % (elapsed, TTL_MS / 1000.0))
    by_body = {body: props for props, body in dead}
    check(set(by_body) == {b"queue ttl", b"message ttl"}, "dead-lettered bodies %r" % sorted(by_body))
    check_x_death("expired by x-message-ttl", by_body[b"queue ttl"], "expired", queue_ttl, queue_ttl)
    check_x_death("expired by expiration", by_body[b"message ttl"], "expired", queue_plain, queue_plain)
    count = message_count(ch, queue_ttl)
    check(count == 0, "TTL queue holds %d messages after the TTL" % count)
    step("basic.get the message without expiration")
    method, _, body = ch.basic_get(queue=queue_plain, auto_ack=True)
    check(method is not None and body == b"stays", "message without expiration: %r %r" % (method, body))
    check(method.message_count == 0, "%d more messages in the expiration queue" % method.message_count)
    s.delete_exchange(ch, dlx)


# ---------------------------------------------------------------- priority

def scenario_priority(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("priority", "q")
    step("queue.declare x-max-priority=10")
    ch.queue_declare(queue=queue, exclusive=True, arguments={"x-max-priority": 10})
    ch.confirm_delivery()
    for prio in (1, 5, 9):
        step("basic.publish priority %d" % prio)
        ch.basic_publish(exchange="", routing_key=queue, body=b"priority %d" % prio,
                         properties=pika.BasicProperties(priority=prio))
    got = []
    step("basic.consume")
    ch.basic_consume(queue, lambda c, m, p, b: got.append((p.priority, b)), auto_ack=True)
    wait_until(conn, lambda: len(got) >= 3, "3 deliveries")
    check([p for p, _ in got] == [9, 5, 1], "priorities arrived as %r, expected [9, 5, 1]" % [p for p, _ in got])
    check([b for _, b in got] == [b"priority 9", b"priority 5", b"priority 1"], "bodies %r" % [b for _, b in got])


# ---------------------------------------------------------------- large_message / empty_message

def scenario_large_message(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("large_message", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    ch.confirm_delivery()
    body = os.urandom(5 * 1024 * 1024)
    step("basic.publish 5 MiB + confirm")
    ch.basic_publish(exchange="", routing_key=queue, body=body)
    got = []
    step("basic.consume")
    ch.basic_consume(queue, lambda c, m, p, b: got.append(b), auto_ack=True)
    wait_until(conn, lambda: got, "the 5 MiB delivery", timeout=10)
    check(len(got[0]) == len(body), "body is %d bytes, sent %d" % (len(got[0]), len(body)))
    check(hashlib.sha256(got[0]).digest() == hashlib.sha256(body).digest(), "body bytes differ")


def scenario_empty_message(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("empty_message", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    ch.confirm_delivery()
    with_props = pika.BasicProperties(content_type="text/plain", headers={"empty": True},
                                      message_id="empty-1", correlation_id="c-1", type="empty")
    bare = pika.BasicProperties()
    for props in (with_props, bare):
        step("basic.publish empty body + confirm")
        ch.basic_publish(exchange="", routing_key=queue, body=b"", properties=props)
    for what, want in (("empty message with properties", with_props), ("bare empty message", bare)):
        step("basic.get %s" % what)
        method, props, body = ch.basic_get(queue=queue, auto_ack=True)
        check(method is not None, "%s: basic.get returned get-empty" % what)
        check(body == b"", "%s: body came back as %r" % (what, body[:50]))
        compare_properties(what, props, want)


# ---------------------------------------------------------------- properties

# Every field-table type pika can encode: S, I, l, t, D, T, x, V, A, F.
# pika cannot encode floats or the narrow integer types (b B s u U i).
HEADERS = {
    "string": "héllo wörld ✓",
    "empty-string": "",
    "int32": 42,
    "int32-min": -2**31,
    "int32-max": 2**31 - 1,
    "int64": 2**40 + 7,
    "int64-min": -2**63,
    "true": True,
    "false": False,
    "decimal": decimal.Decimal("12.345"),
    "decimal-negative": decimal.Decimal("-0.5"),
    "timestamp": datetime.datetime(2026, 11, 23, 12, 34, 56, tzinfo=datetime.timezone.utc),
    "bytes": b"\x00\x01\xfe\xff",
    "void": None,
    "array": [1, "two", True, None, [3, 4], {"k": "v"}, b"\x00", decimal.Decimal("1.5")],
    "empty-array": [],
    "table": {"nested": "yes", "depth": {"n": 2}, "empty": {}},
}


def full_properties(user):
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=HEADERS,
        delivery_mode=pika.DeliveryMode.Persistent.value,
        priority=7,
        correlation_id="corr-" + uuid.uuid4().hex,
        reply_to="reply.queue",
        expiration="60000",
        message_id="msg-" + uuid.uuid4().hex,
        timestamp=1795000000,
        type="interop.test",
        user_id=user,
        app_id="warren-interop",
    )


def scenario_properties(s):
    conn = s.connect()
    ch = conn.channel()
    queue = unique("properties", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    ch.confirm_delivery()
    sent = full_properties(s.user)
    step("basic.publish + confirm")
    ch.basic_publish(exchange="", routing_key=queue, body=b"{}", properties=sent)
    got = []
    step("basic.consume")
    ch.basic_consume(queue, lambda c, m, p, b: got.append((p, b)), auto_ack=True)
    wait_until(conn, lambda: got, "the delivery")
    props, body = got[0]
    check(body == b"{}", "body came back as %r" % body)
    compare_properties("delivered message", props, sent)


# ---------------------------------------------------------------- cancel_notify

def scenario_cancel_notify(s):
    conn = s.connect()
    consumer_ch = conn.channel()
    queue = unique("cancel_notify", "q")
    step("queue.declare")
    consumer_ch.queue_declare(queue=queue, exclusive=True)
    cancels = []
    consumer_ch.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    step("basic.consume")
    tag = consumer_ch.basic_consume(queue, lambda c, m, p, b: None)
    other = conn.channel()
    step("queue.delete on another channel")
    other.queue_delete(queue=queue)
    wait_until(conn, lambda: cancels, "basic.cancel from the broker")
    check(cancels[0].consumer_tag == tag,
          "basic.cancel names consumer %r, expected %r" % (cancels[0].consumer_tag, tag))
    check(tag not in consumer_ch.consumer_tags, "consumer still registered after basic.cancel")
    check(consumer_ch.is_open, "consumer channel closed after basic.cancel")
    step("queue.declare on the consumer channel after the cancel")
    consumer_ch.queue_declare(queue="", exclusive=True)


# ---------------------------------------------------------------- heartbeat

HEARTBEAT = 1


def scenario_heartbeat(s):
    conn = s.connect(heartbeat=HEARTBEAT)
    impl = conn._impl
    check(impl.params.heartbeat == HEARTBEAT, "negotiated heartbeat %r, asked for %d"
          % (impl.params.heartbeat, HEARTBEAT))
    ch = conn.channel()
    queue = unique("heartbeat", "q")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)
    received_before = impl._heartbeat_checker._heartbeat_frames_received
    step("idle for 3 heartbeat intervals")
    conn.sleep(3 * HEARTBEAT + 0.2)  # BlockingConnection.sleep keeps heartbeats flowing
    check(conn.is_open and ch.is_open, "connection closed while idle")
    received = impl._heartbeat_checker._heartbeat_frames_received - received_before
    check(received >= 1, "the broker sent no heartbeat frame in %.1f s of idleness" % (3 * HEARTBEAT + 0.2))
    step("basic.publish after idling")
    ch.basic_publish(exchange="", routing_key=queue, body=b"still here")
    step("basic.get after idling")
    deadline = time.monotonic() + WAIT
    while True:
        method, _, body = ch.basic_get(queue=queue, auto_ack=True)
        if method is not None or time.monotonic() > deadline:
            break
        conn.sleep(0.05)
    check(method is not None and body == b"still here", "after idling basic.get returned %r" % (body,))


# ---------------------------------------------------------------- runner

SCENARIOS = [
    ("connect", scenario_connect),
    ("exchange_types", scenario_exchange_types),
    ("publish_consume_ack", scenario_publish_consume_ack),
    ("nack_requeue", scenario_nack_requeue),
    ("basic_get", scenario_basic_get),
    ("prefetch", scenario_prefetch),
    ("publisher_confirms", scenario_publisher_confirms),
    ("mandatory_return", scenario_mandatory_return),
    ("transactions", scenario_transactions),
    ("rpc", scenario_rpc),
    ("direct_reply_to", scenario_direct_reply_to),
    ("dead_letter", scenario_dead_letter),
    ("ttl", scenario_ttl),
    ("priority", scenario_priority),
    ("large_message", scenario_large_message),
    ("empty_message", scenario_empty_message),
    ("properties", scenario_properties),
    ("cancel_notify", scenario_cancel_notify),
    ("heartbeat", scenario_heartbeat),
]


def describe(exc):
    text = str(exc) or repr(exc)
    if not isinstance(exc, (Failure, ScenarioTimeout)):
        text = "%s: %s (during %s)" % (type(exc).__name__, text, _step[0])
    text = " ".join(text.split())  # one line
    return text if len(text) <= 400 else text[:397] + "..."


def run_one(url, fn):
    session = Session(url)
    signal.alarm(SCENARIO_TIMEOUT)
    try:
        fn(session)
        for conn in session.conns:
            if conn.is_open:
                step("connection.close")
                conn.close()
        return None
    except Exception as exc:  # noqa: BLE001 -- any error fails the scenario
        return describe(exc)
    finally:
        signal.alarm(CLEANUP_TIMEOUT)
        try:
            session.cleanup()
        except ScenarioTimeout:
            pass
        finally:
            signal.alarm(0)


def main(argv):
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    logging.basicConfig(level=logging.CRITICAL)  # pika logs to stderr otherwise
    signal.signal(signal.SIGALRM, _on_alarm)
    only = set(argv[2:])
    failed = 0
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        started = time.monotonic()
        reason = run_one(url, fn)
        print("%.2fs %s" % (time.monotonic() - started, name), file=sys.stderr)
        if reason is None:
            print("PASS %s %s" % (CLIENT, name), flush=True)
        else:
            failed += 1
            print("FAIL %s %s: %s" % (CLIENT, name, reason), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
