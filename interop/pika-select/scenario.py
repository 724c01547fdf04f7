#!/usr/bin/env python3
"""Warren interop scenarios for pika's SelectConnection (see ../SCENARIOS.md).

Usage: scenario.py [AMQP_URL [SCENARIO...]]

Prints one line per scenario, `PASS pika-select <scenario>` or
`FAIL pika-select <scenario>: <reason>`, and exits non-zero if any failed.

Every scenario is written the way asynchronous pika code is: a class whose
methods are chained callbacks on the connection's ioloop (`on_..._ok` of one
AMQP method issues the next one). Nothing blocks. Each scenario has its own
IOLoop and connection(s); a timer on that ioloop fails it when a step takes
too long, and a SIGALRM watchdog backs that up.
"""

import datetime
import decimal
import functools
import hashlib
import logging
import os
import signal
import sys
import time
import uuid

import pika
import pika.exceptions
from pika import spec
from pika.adapters.select_connection import IOLoop
from pika.exchange_type import ExchangeType

CLIENT = "pika-select"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SCENARIO_TIMEOUT = 12  # seconds for one scenario
CLEANUP_TIMEOUT = 3  # seconds for deleting leftovers and closing afterwards
SETTLE = 0.3  # seconds to wait to see that the broker sends nothing more


class Failure(Exception):
    pass


class Watchdog(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Failure(reason)


def unique(scenario, what):
    return "%s.%s.%s.%s" % (CLIENT, scenario, what, uuid.uuid4().hex[:10])


def one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= 400 else text[:397] + "..."


def guarded(method):
    """Run a callback method of a scenario; an exception fails the scenario.

    Once the scenario has finished, late callbacks (deliveries racing the
    close, ...) are ignored."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.finished:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.fail_with(exc)
            return None
    return wrapper


class Confirms:
    """Publisher-confirm bookkeeping of one channel, as in pika's
    asynchronous publisher example: delivery tags count from 1."""

    def __init__(self):
        self.next_tag = 1
        self.pending = set()
        self.acked = 0
        self.waiter = None
        self.events = []  # ("ack", tag) / ("return", ...) in arrival order


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


def check_x_death(what, props, reason, queue, routing_key):
    deaths = (props.headers or {}).get("x-death")
    check(isinstance(deaths, list) and deaths, "%s: x-death header is %r" % (what, deaths))
    first = deaths[0]
    check(isinstance(first, dict), "%s: x-death[0] is %r" % (what, first))
    check(same_value(first.get("count"), 1), "%s: x-death[0].count is %r, expected 1" % (what, first.get("count")))
    check(first.get("reason") == reason, "%s: x-death[0].reason is %r, expected %r" % (what, first.get("reason"), reason))
    check(first.get("queue") == queue, "%s: x-death[0].queue is %r, expected %r" % (what, first.get("queue"), queue))
    check(first.get("exchange") == "", "%s: x-death[0].exchange is %r, expected ''" % (what, first.get("exchange")))
    check(first.get("routing-keys") == [routing_key],
          "%s: x-death[0].routing-keys is %r, expected [%r]" % (what, first.get("routing-keys"), routing_key))


# ================================================================ framework

class Scenario:
    """Base class: owns the ioloop, the connection(s) and the outcome.

    Subclasses implement `start()`, called once the connection is open, and
    chain callbacks from there; they call `self.done()` at the end or raise /
    `self.fail(...)` on a mismatch."""

    name = ""
    timeout = SCENARIO_TIMEOUT

    def __init__(self, url):
        self.url = url
        self.step = "start"
        self.finished = False
        self.error = None
        self.ioloop = None
        self.conn = None
        self.connections = []
        self.exchanges = []  # declared by the scenario and not deleted yet
        self._confirms = {}  # channel -> Confirms
        self._get_waiters = {}  # channel -> callback for the pending basic.get
        self._timer = None

    # ------------------------------------------------------------ running

    def run(self):
        self.ioloop = IOLoop()
        self._timer = self.ioloop.call_later(self.timeout, self._on_timeout)
        signal.alarm(self.timeout + CLEANUP_TIMEOUT + 2)
        try:
            self.conn = self.connect(self._started)
            self.ioloop.start()
        except Exception as exc:  # noqa: BLE001 -- an escaped error or the watchdog
            if not self.finished or self.error is None:
                self.error = self.describe(exc)
            self.finished = True
        finally:
            signal.alarm(0)
            self.ioloop.close()
        return self.error

    def _started(self, _conn):
        self.start()

    def start(self):
        raise NotImplementedError

    def at(self, step):
        """Record what the scenario is waiting for (for failure messages)."""
        self.step = step

    def cb(self, fn):
        """Wrap a closure as a guarded callback."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self.finished:
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                self.fail_with(exc)
                return None
        return wrapper

    def later(self, delay, fn):
        self.ioloop.call_later(delay, self.cb(fn))

    def describe(self, exc):
        if isinstance(exc, Failure):
            return one_line(exc)
        return one_line("%s: %s (during %s)" % (type(exc).__name__, str(exc) or repr(exc), self.step))

    def fail_with(self, exc):
        self.fail(self.describe(exc))

    def fail(self, reason):
        self._finish(one_line(reason))

    def done(self):
        self._finish(None)

    def _on_timeout(self):
        self.fail("timed out during %s" % self.step)

    def _finish(self, error):
        if self.finished:
            return
        self.finished = True
        self.error = error
        self.ioloop.remove_timeout(self._timer)
        self._timer = self.ioloop.call_later(CLEANUP_TIMEOUT, self._on_cleanup_timeout)
        if self.exchanges and self.conn is not None and self.conn.is_open:
            self.conn.channel(on_open_callback=self._cleanup_exchanges)
        elif self.exchanges:  # the connection is gone: clean up on a new one
            self._connect(lambda conn: conn.channel(on_open_callback=self._cleanup_exchanges),
                          self._on_open_error)
        else:
            self._close_all()

    def _cleanup_exchanges(self, ch):
        """Best effort, also after a failure: delete what the scenario declared."""
        if not self.exchanges:
            self._close_all()
            return
        name = self.exchanges.pop()
        ch.exchange_delete(exchange=name, callback=lambda _frame: self._cleanup_exchanges(ch))

    def _close_all(self):
        self.step = "connection.close"
        for conn in self.connections:
            if not (conn.is_closed or conn.is_closing):
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
        self._maybe_stop()

    def _maybe_stop(self):
        if all(conn.is_closed for conn in self.connections):
            self.ioloop.stop()

    def _on_cleanup_timeout(self):
        if self.error is None:
            self.error = "timed out during %s" % self.step
        self.ioloop.stop()

    # ------------------------------------------------------------ connections and channels

    def params(self, **overrides):
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.stack_timeout = 5
        params.client_properties = {"connection_name": CLIENT}
        for key, value in overrides.items():
            setattr(params, key, value)
        return params

    @property
    def user(self):
        return pika.URLParameters(self.url).credentials.username

    def connect(self, on_open, **overrides):
        """Open a(nother) connection on this scenario's ioloop."""
        self.at("connection handshake")
        return self._connect(self.cb(on_open), self._on_open_error, **overrides)

    def _connect(self, on_open, on_open_error, **overrides):
        conn = pika.SelectConnection(
            self.params(**overrides),
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=self.ioloop)
        self.connections.append(conn)
        return conn

    def _on_open_error(self, _conn, err):
        if not self.finished:
            self.fail("connection failed: %r (during %s)" % (err, self.step))
        self._maybe_stop()

    def _on_connection_closed(self, conn, reason):
        if not self.finished:
            self.fail("connection closed unexpectedly: %r (during %s)" % (reason, self.step))
        elif not isinstance(reason, pika.exceptions.ConnectionClosedByClient) and self.error is None:
            self.error = one_line("connection.close did not complete cleanly: %r" % (reason,))
        self._maybe_stop()

    def channel(self, on_open, on_close=None, conn=None):
        """Open a channel; an unexpected close (any broker Channel.Close)
        fails the scenario unless `on_close` handles it."""
        self.at("channel.open")

        def opened(ch):
            ch.add_on_close_callback(self.cb(on_close) if on_close else self._on_channel_closed)
            ch.add_callback(self.cb(lambda _frame: self._got(ch, None, None, None)),
                            [spec.Basic.GetEmpty], one_shot=False)
            on_open(ch)

        (conn or self.conn).channel(on_open_callback=self.cb(opened))

    def _on_channel_closed(self, ch, reason):
        if self.finished or isinstance(reason, pika.exceptions.ChannelClosedByClient):
            return
        self.fail("channel %d closed: %r (during %s)" % (ch.channel_number, reason, self.step))

    # ------------------------------------------------------------ helpers for common AMQP steps

    def get(self, ch, queue, then, auto_ack=False):
        """basic.get; `then(method, properties, body)` with method None on get-empty."""
        self.at("basic.get from %s" % queue)
        self._get_waiters[ch] = then
        ch.basic_get(queue, self.cb(lambda _ch, m, p, b: self._got(ch, m, p, b)), auto_ack=auto_ack)

    def _got(self, ch, method, props, body):
        then = self._get_waiters.pop(ch, None)
        check(then is not None, "unexpected basic.get reply on channel %d" % ch.channel_number)
        then(method, props, body)

    def passive_count(self, ch, queue, then):
        """Passive queue.declare; `then(message_count, consumer_count)`."""
        self.at("queue.declare passive %s" % queue)
        ch.queue_declare(queue, passive=True, callback=self.cb(
            lambda frame: then(frame.method.message_count, frame.method.consumer_count)))

    def confirm_select(self, ch, then):
        self.at("confirm.select")
        state = self._confirms[ch] = Confirms()
        ch.confirm_delivery(self.cb(lambda frame: self._on_confirm(ch, state, frame)),
                            callback=self.cb(lambda _frame: then()))

    def publish(self, ch, exchange, routing_key, body, properties=None, mandatory=False):
        ch.basic_publish(exchange, routing_key, body, properties=properties, mandatory=mandatory)
        state = self._confirms.get(ch)
        if state is not None:
            state.pending.add(state.next_tag)
            state.next_tag += 1

    def when_confirmed(self, ch, then):
        """Call `then()` once every message published so far on ch is acked."""
        state = self._confirms[ch]
        self.at("waiting for confirms (%d of %d acked)" % (state.acked, state.next_tag - 1))
        state.waiter = then
        self._check_confirmed(state)

    def _on_confirm(self, ch, state, frame):
        method = frame.method
        kind = method.NAME.split(".")[1].lower()
        tag = method.delivery_tag
        if kind == "nack":
            raise Failure("the broker nacked delivery tag %d" % tag)
        tags = {t for t in state.pending if t <= tag} if method.multiple else {tag}
        check(tags and tags <= state.pending,
              "basic.ack for delivery tag %d (multiple=%s) that is not pending" % (tag, method.multiple))
        state.pending -= tags
        state.acked += len(tags)
        state.events.append(("ack", tag))
        self.at("waiting for confirms (%d of %d acked)" % (state.acked, state.next_tag - 1))
        self._check_confirmed(state)

    def _check_confirmed(self, state):
        if state.waiter is not None and not state.pending:
            waiter, state.waiter = state.waiter, None
            waiter()

    def series(self, items, fn, then):
        """Asynchronous loop: fn(item, next) for each item in turn, then then()."""
        items = list(items)

        def step(i):
            if i == len(items):
                then()
            else:
                fn(items[i], lambda *_args: step(i + 1))
        step(0)

    def declare_exchange(self, ch, name, kind, then):
        self.at("exchange.declare %s (%s)" % (name, kind))
        self.exchanges.append(name)
        ch.exchange_declare(name, exchange_type=kind, callback=self.cb(lambda _frame: then()))

    def delete_exchange(self, ch, name, then):
        self.at("exchange.delete %s" % name)

        def deleted(_frame):
            self.exchanges.remove(name)
            then()
        ch.exchange_delete(name, callback=self.cb(deleted))

    def declare_queue(self, ch, name, then, **kwargs):
        self.at("queue.declare %s" % (name or "(server-named)"))
        kwargs.setdefault("exclusive", True)
        ch.queue_declare(name, callback=self.cb(lambda frame: then(frame.method.queue)), **kwargs)


# ================================================================ scenarios

class Connect(Scenario):
    name = "connect"

    def start(self):
        props = self.conn.server_properties
        product = props.get("product")
        check(isinstance(product, (str, bytes)) and product,
              "connection.start server-properties.product is %r" % (product,))
        caps = self.conn.server_capabilities
        for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify",
                    "exchange_exchange_bindings"):
            check(caps.get(cap) is True, "capability %s is %r, expected true" % (cap, caps.get(cap)))
        self.channel(self.on_channel_open, on_close=self.on_channel_closed)

    @guarded
    def on_channel_open(self, ch):
        check(ch.is_open, "channel not open after channel.open-ok")
        self.at("channel.close")
        ch.close()

    @guarded
    def on_channel_closed(self, ch, reason):
        check(isinstance(reason, pika.exceptions.ChannelClosedByClient),
              "channel.close ended with %r" % (reason,))
        # done() closes the connection; a close that is not clean fails the scenario.
        self.done()


class ExchangeTypes(Scenario):
    name = "exchange_types"

    BINDINGS = [  # (queue label, exchange kind, routing key, arguments)
        ("direct-red", "direct", "red", None),
        ("direct-green", "direct", "green", None),
        ("fanout-1", "fanout", "", None),
        ("fanout-2", "fanout", "ignored", None),
        ("topic-star", "topic", "a.*", None),
        ("topic-hash", "topic", "a.#", None),
        ("topic-end", "topic", "#.z", None),
        ("headers-all", "headers", "", {"x-match": "all", "color": "red", "size": "big"}),
        ("headers-any", "headers", "", {"x-match": "any", "color": "red", "size": "big"}),
    ]
    PUBLISHES = [  # (exchange kind, routing key, headers, body)
        ("direct", "red", None, "d-red"),
        ("direct", "green", None, "d-green"),
        ("direct", "blue", None, "d-blue"),
        ("fanout", "anything", None, "f-1"),
        ("topic", "a.b", None, "t-a.b"),
        ("topic", "a.b.c", None, "t-a.b.c"),
        ("topic", "a", None, "t-a"),
        ("topic", "a.z", None, "t-a.z"),
        ("topic", "x.y.z", None, "t-x.y.z"),
        ("topic", "b.a", None, "t-b.a"),
        ("headers", "", {"color": "red", "size": "big"}, "h-red-big"),
        ("headers", "", {"color": "red"}, "h-red"),
        ("headers", "", {"color": "blue", "size": "big"}, "h-blue-big"),
        ("headers", "", {"color": "blue"}, "h-blue"),
        ("headers", "", {"color": "red", "size": "big", "extra": 1}, "h-red-big-extra"),
    ]
    EXPECTED = {
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
    KINDS = {"direct": ExchangeType.direct, "fanout": ExchangeType.fanout,
             "topic": ExchangeType.topic, "headers": ExchangeType.headers}

    def start(self):
        self.ex = {kind: unique(self.name, kind) for kind in self.KINDS}
        self.queues = {}
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.confirm_select(ch, self.declare_exchanges)

    def declare_exchanges(self):
        self.series(self.KINDS.items(),
                    lambda item, nxt: self.declare_exchange(self.ch, self.ex[item[0]], item[1], nxt),
                    self.declare_queues)

    def declare_queues(self):
        def declare_and_bind(binding, nxt):
            label, kind, key, args = binding

            def declared(queue):
                self.queues[label] = queue
                self.at("queue.bind %s to the %s exchange with %r %r" % (label, kind, key, args))
                self.ch.queue_bind(queue, self.ex[kind], routing_key=key, arguments=args,
                                   callback=self.cb(nxt))
            self.declare_queue(self.ch, unique(self.name, label), self.cb(declared))
        self.series(self.BINDINGS, declare_and_bind, self.publish_all)

    def publish_all(self):
        self.at("basic.publish")
        for kind, key, headers, body in self.PUBLISHES:
            self.publish(self.ch, self.ex[kind], key, body.encode(),
                         pika.BasicProperties(headers=headers))
        # Once confirmed, every message has been routed.
        self.when_confirmed(self.ch, self.drain_queues)

    def drain_queues(self):
        def drain(label, nxt):
            got = []

            def on_get(method, _props, body):
                if method is None:
                    want = self.EXPECTED[label]
                    check(got == want, "queue %s got %r, expected %r" % (label, got, want))
                    nxt()
                    return
                got.append(body.decode())
                check(len(got) <= 20, "%s: too many messages" % label)
                self.get(self.ch, self.queues[label], on_get, auto_ack=True)
            self.get(self.ch, self.queues[label], on_get, auto_ack=True)
        self.series(self.EXPECTED, drain, self.delete_exchanges)

    def delete_exchanges(self):
        self.series(self.KINDS, lambda kind, nxt: self.delete_exchange(self.ch, self.ex[kind], nxt),
                    self.check_deleted)

    def check_deleted(self):
        # A passive declare of a deleted exchange closes the channel with 404.
        def passive(kind, nxt):
            def on_close(_ch, reason):
                check(isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == 404,
                      "passive declare of the deleted %s exchange closed the channel with %r, expected 404"
                      % (kind, reason))
                nxt()

            def declare_ok(_frame):
                raise Failure("passive declare of the deleted %s exchange succeeded" % kind)

            def opened(ch):
                self.at("exchange.declare passive %s after delete" % self.ex[kind])
                ch.exchange_declare(self.ex[kind], exchange_type=self.KINDS[kind], passive=True,
                                    callback=self.cb(declare_ok))
            self.channel(opened, on_close=on_close)
        self.series(self.KINDS, passive, self.done)


class PublishConsumeAck(Scenario):
    name = "publish_consume_ack"
    N = 100

    def start(self):
        self.queue = unique(self.name, "q")
        self.received = 0
        self.channel(self.on_channel_open, on_close=self.on_channel_closed)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.at("basic.publish")
        for i in range(self.N):
            self.publish(self.ch, "", self.queue, b"message %d" % i,
                         pika.BasicProperties(message_id=str(i)))
        self.at("basic.qos")
        self.ch.basic_qos(prefetch_count=10, callback=self.on_qos_ok)

    @guarded
    def on_qos_ok(self, _frame):
        self.at("basic.consume / waiting for deliveries (0 of %d)" % self.N)
        self.tag = self.ch.basic_consume(self.queue, self.on_message)

    @guarded
    def on_message(self, ch, method, props, body):
        i = self.received
        check(body == b"message %d" % i and props.message_id == str(i),
              "delivery %d: body %r message_id %r (out of order?)" % (i, body, props.message_id))
        check(not method.redelivered, "delivery %d: redelivered on first delivery" % i)
        ch.basic_ack(method.delivery_tag)
        self.received += 1
        self.at("waiting for deliveries (%d of %d)" % (self.received, self.N))
        if self.received == self.N:
            self.at("basic.cancel")
            ch.basic_cancel(self.tag, callback=self.on_cancel_ok)

    @guarded
    def on_cancel_ok(self, _frame):
        # Closing the channel requeues anything not acked: count on a new channel.
        self.at("channel.close")
        self.ch.close()

    @guarded
    def on_channel_closed(self, _ch, reason):
        check(isinstance(reason, pika.exceptions.ChannelClosedByClient), "channel closed: %r" % (reason,))
        self.channel(lambda ch: self.passive_count(ch, self.queue, self.on_count))

    @guarded
    def on_count(self, messages, consumers):
        check(messages == 0, "queue holds %d messages after all were acked" % messages)
        check(consumers == 0, "queue has %d consumers after cancel" % consumers)
        self.done()


class NackRequeue(Scenario):
    name = "nack_requeue"

    def start(self):
        self.queue = unique(self.name, "q")
        self.deliveries = []
        self.channel(self.on_channel_open, on_close=self.on_channel_closed)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.publish(self.ch, "", self.queue, b"nack me")
        self.at("basic.consume / waiting for the first delivery")
        self.ch.basic_consume(self.queue, self.on_message)

    @guarded
    def on_message(self, ch, method, _props, body):
        self.deliveries.append(method)
        n = len(self.deliveries)
        check(body == b"nack me", "delivery %d: body %r" % (n, body))
        if n == 1:
            check(not method.redelivered, "first delivery has redelivered=true")
            self.at("basic.nack requeue=true / waiting for the redelivery")
            ch.basic_nack(method.delivery_tag, requeue=True)
        elif n == 2:
            check(method.redelivered, "redelivery after nack(requeue=true) has redelivered=false")
            check(method.delivery_tag != self.deliveries[0].delivery_tag, "redelivery reused the delivery tag")
            self.at("basic.nack requeue=false")
            ch.basic_nack(method.delivery_tag, requeue=False)
            self.later(SETTLE, self.after_settle)
        else:
            raise Failure("message delivered again after nack(requeue=false)")

    def after_settle(self):
        # Closing the channel requeues whatever is unacked: a new channel sees the truth.
        self.at("channel.close")
        self.ch.close()

    @guarded
    def on_channel_closed(self, _ch, reason):
        check(isinstance(reason, pika.exceptions.ChannelClosedByClient), "channel closed: %r" % (reason,))
        self.channel(lambda ch: self.passive_count(ch, self.queue, self.on_count))

    @guarded
    def on_count(self, messages, _consumers):
        check(messages == 0, "queue holds %d messages after nack(requeue=false), expected 0" % messages)
        self.done()


class BasicGet(Scenario):
    name = "basic_get"

    def start(self):
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open, on_close=self.on_channel_closed)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.get(self.ch, self.queue, self.on_get_fresh)

    @guarded
    def on_get_fresh(self, method, _props, _body):
        check(method is None, "basic.get on a fresh queue returned a message")
        self.confirm_select(self.ch, self.on_confirm_selected)

    @guarded
    def on_confirm_selected(self):
        for i in range(3):
            self.publish(self.ch, "", self.queue, b"get %d" % i)
        self.when_confirmed(self.ch, lambda: self.get(self.ch, self.queue, self.on_get_0))

    @guarded
    def on_get_0(self, method, _props, body):
        check(method is not None, "basic.get #0 returned get-empty")
        check(body == b"get 0", "basic.get #0: body %r" % body)
        check(method.message_count == 2, "basic.get #0: message_count %d, expected 2" % method.message_count)
        check(not method.redelivered, "basic.get #0: redelivered on first delivery")
        self.get(self.ch, self.queue, self.on_get_1, auto_ack=True)  # #0 stays unacked

    @guarded
    def on_get_1(self, method, _props, body):
        check(method is not None, "basic.get #1 (no-ack) returned get-empty")
        check(body == b"get 1", "basic.get #1: body %r" % body)
        check(method.message_count == 1, "basic.get #1: message_count %d, expected 1" % method.message_count)
        self.get(self.ch, self.queue, self.on_get_2)

    @guarded
    def on_get_2(self, method, _props, body):
        check(method is not None, "basic.get #2 returned get-empty")
        check(body == b"get 2", "basic.get #2: body %r" % body)
        check(method.message_count == 0, "basic.get #2: message_count %d, expected 0" % method.message_count)
        self.ch.basic_ack(method.delivery_tag)
        self.get(self.ch, self.queue, self.on_get_empty)

    @guarded
    def on_get_empty(self, method, _props, _body):
        check(method is None, "basic.get on a drained queue returned a message")
        # #0 is still unacked: closing the channel requeues it; #1 and #2 are gone.
        self.at("channel.close with #0 unacked")
        self.ch.close()

    @guarded
    def on_channel_closed(self, _ch, reason):
        check(isinstance(reason, pika.exceptions.ChannelClosedByClient), "channel closed: %r" % (reason,))
        self.channel(self.on_second_channel)

    @guarded
    def on_second_channel(self, ch):
        self.ch = ch
        self.passive_count(ch, self.queue, self.on_count)

    @guarded
    def on_count(self, messages, _consumers):
        check(messages == 1, "after closing the channel the queue holds %d messages, expected 1 (#0)" % messages)
        self.get(self.ch, self.queue, self.on_get_requeued, auto_ack=True)

    @guarded
    def on_get_requeued(self, method, _props, body):
        check(method is not None and body == b"get 0", "requeued message: %r %r" % (method, body))
        check(method.redelivered, "requeued message: redelivered=false")
        check(method.message_count == 0, "requeued message: message_count %d" % method.message_count)
        self.done()


class Prefetch(Scenario):
    name = "prefetch"

    def start(self):
        self.queue = unique(self.name, "q")
        self.deliveries = []
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, lambda _q: self.confirm_select(ch, self.on_confirm_selected))

    @guarded
    def on_confirm_selected(self):
        for i in range(20):
            self.publish(self.ch, "", self.queue, b"%d" % i)
        self.when_confirmed(self.ch, self.set_qos)

    @guarded
    def set_qos(self):
        self.at("basic.qos prefetch_count=5")
        self.ch.basic_qos(prefetch_count=5, callback=self.on_qos_ok)

    @guarded
    def on_qos_ok(self, _frame):
        self.at("basic.consume / waiting for 5 deliveries")
        self.ch.basic_consume(self.queue, self.on_message)

    @guarded
    def on_message(self, _ch, method, _props, _body):
        self.deliveries.append(method)
        n = len(self.deliveries)
        if n == 5:
            self.at("checking that no 6th delivery arrives")
            self.later(SETTLE, self.check_five)
        elif n == 6:
            self.later(SETTLE, self.check_six)

    def check_five(self):
        n = len(self.deliveries)
        check(n == 5, "with prefetch 5 and nothing acked, %d deliveries arrived" % n)
        self.passive_count(self.ch, self.queue, self.on_count)

    @guarded
    def on_count(self, messages, _consumers):
        check(messages == 15, "queue reports %d ready messages with 5 unacked, expected 15" % messages)
        self.at("basic.ack the first delivery / waiting for a 6th")
        self.ch.basic_ack(self.deliveries[0].delivery_tag)

    def check_six(self):
        n = len(self.deliveries)
        check(n == 6, "after one ack %d deliveries arrived in total, expected 6" % n)
        self.done()


class PublisherConfirms(Scenario):
    name = "publisher_confirms"
    N = 100

    def start(self):
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, lambda _q: self.confirm_select(ch, self.on_confirm_selected))

    @guarded
    def on_confirm_selected(self):
        self.at("basic.publish")
        for i in range(self.N):
            self.publish(self.ch, "", self.queue, b"confirm %d" % i)
        self.when_confirmed(self.ch, self.on_all_confirmed)

    @guarded
    def on_all_confirmed(self):
        state = self._confirms[self.ch]
        check(state.acked == self.N, "%d of %d messages acked" % (state.acked, self.N))
        self.passive_count(self.ch, self.queue, self.on_count)

    @guarded
    def on_count(self, messages, _consumers):
        check(messages == self.N, "queue holds %d messages after %d confirmed publishes" % (messages, self.N))
        self.done()


class MandatoryReturn(Scenario):
    name = "mandatory_return"

    def start(self):
        self.exchange = unique(self.name, "x")
        self.key = unique(self.name, "nobody")
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        ch.add_on_return_callback(self.on_return)
        self.declare_exchange(ch, self.exchange, ExchangeType.direct, self.publish_plain)

    @guarded
    def publish_plain(self):
        self.at("basic.publish mandatory to an unbound key / waiting for basic.return")
        self.publish(self.ch, self.exchange, self.key, b"come back",
                     pika.BasicProperties(message_id="ret-1"), mandatory=True)

    @guarded
    def on_return(self, _ch, method, props, body):
        check(method.reply_code == 312 and method.reply_text == "NO_ROUTE",
              "basic.return carries %s %r, expected 312 NO_ROUTE" % (method.reply_code, method.reply_text))
        check(method.exchange == self.exchange and method.routing_key == self.key,
              "basic.return names exchange %r key %r" % (method.exchange, method.routing_key))
        check(body == b"come back" and props.message_id == "ret-1",
              "returned message: body %r message_id %r" % (body, props.message_id))
        # Again in confirm mode, on another channel: the return comes before the ack.
        self.channel(self.on_confirm_channel_open)

    @guarded
    def on_confirm_channel_open(self, ch):
        self.ch2 = ch
        ch.add_on_return_callback(self.on_confirm_mode_return)
        self.confirm_select(ch, self.publish_confirmed)

    @guarded
    def publish_confirmed(self):
        self.at("basic.publish mandatory in confirm mode / waiting for basic.return and basic.ack")
        self.publish(self.ch2, self.exchange, self.key, b"again", mandatory=True)
        self.when_confirmed(self.ch2, self.on_confirmed)

    @guarded
    def on_confirm_mode_return(self, _ch, method, _props, _body):
        check(method.reply_code == 312, "basic.return in confirm mode carries %s %r"
              % (method.reply_code, method.reply_text))
        self._confirms[self.ch2].events.append(("return", method.reply_code))

    @guarded
    def on_confirmed(self):
        events = [e[0] for e in self._confirms[self.ch2].events]
        check(events == ["return", "ack"], "in confirm mode got %r, expected basic.return then basic.ack" % events)
        self.delete_exchange(self.ch, self.exchange, self.done)


class Transactions(Scenario):
    name = "transactions"

    def start(self):
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open, on_close=self.on_channel_closed)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.at("tx.select")
        self.ch.tx_select(self.on_select_ok)

    @guarded
    def on_select_ok(self, _frame):
        self.publish(self.ch, "", self.queue, b"rolled back")
        self.passive_count(self.ch, self.queue, self.on_uncommitted_count)

    @guarded
    def on_uncommitted_count(self, messages, _consumers):
        check(messages == 0, "uncommitted publish is visible: queue holds %d" % messages)
        self.at("tx.rollback")
        self.ch.tx_rollback(self.on_rollback_ok)

    @guarded
    def on_rollback_ok(self, _frame):
        self.passive_count(self.ch, self.queue, self.on_rolled_back_count)

    @guarded
    def on_rolled_back_count(self, messages, _consumers):
        check(messages == 0, "after tx.rollback the queue holds %d messages, expected 0" % messages)
        self.publish(self.ch, "", self.queue, b"committed")
        self.at("tx.commit")
        self.ch.tx_commit(self.on_commit_ok)

    @guarded
    def on_commit_ok(self, _frame):
        self.get(self.ch, self.queue, self.on_get)

    @guarded
    def on_get(self, method, _props, body):
        check(method is not None, "after tx.commit basic.get returned get-empty")
        check(body == b"committed", "after tx.commit got %r, expected b'committed'" % body)
        check(method.message_count == 0, "after commit %d more messages are queued" % method.message_count)
        # An ack inside the transaction takes effect at commit.
        self.at("basic.ack + tx.commit")
        self.ch.basic_ack(method.delivery_tag)
        self.ch.tx_commit(self.on_ack_committed)

    @guarded
    def on_ack_committed(self, _frame):
        self.at("channel.close")
        self.ch.close()

    @guarded
    def on_channel_closed(self, _ch, reason):
        check(isinstance(reason, pika.exceptions.ChannelClosedByClient), "channel closed: %r" % (reason,))
        self.channel(lambda ch: self.passive_count(ch, self.queue, self.on_final_count))

    @guarded
    def on_final_count(self, messages, _consumers):
        check(messages == 0, "committed ack did not settle the message: queue holds %d" % messages)
        self.done()


class Rpc(Scenario):
    """An RPC server on one connection, its caller on a second one, both on
    the same ioloop; `reply_to` is the caller's server-named exclusive queue."""

    name = "rpc"
    N = 3

    def start(self):
        self.request_queue = unique(self.name, "requests")
        self.seen_reply_to = []
        self.responses = {}
        self.calls = {str(uuid.uuid4()): ("request %d" % i).encode() for i in range(self.N)}
        self.channel(self.on_server_channel)

    # -- server
    @guarded
    def on_server_channel(self, ch):
        self.server = ch
        self.declare_queue(ch, self.request_queue, self.on_request_queue)

    @guarded
    def on_request_queue(self, _queue):
        self.at("server basic.qos")
        self.server.basic_qos(prefetch_count=1, callback=self.on_server_qos)

    @guarded
    def on_server_qos(self, _frame):
        self.at("server basic.consume")
        self.server.basic_consume(self.request_queue, self.on_request, callback=self.on_server_ready)

    @guarded
    def on_request(self, ch, method, props, body):
        self.seen_reply_to.append(props.reply_to)
        ch.basic_publish("", props.reply_to, body.upper(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    # -- caller
    @guarded
    def on_server_ready(self, _frame):
        self.client_conn = self.connect(self.on_client_connected)

    @guarded
    def on_client_connected(self, conn):
        self.channel(self.on_client_channel, conn=conn)

    @guarded
    def on_client_channel(self, ch):
        self.client = ch
        self.declare_reply_queue()

    def declare_reply_queue(self):
        self.declare_queue(self.client, "", self.on_reply_queue)

    @guarded
    def on_reply_queue(self, queue):
        check(queue, "server-named queue has an empty name")
        self.consume_replies(queue)

    def consume_replies(self, reply_to):
        self.reply_to = reply_to
        self.at("client basic.consume on %s" % reply_to)
        self.client.basic_consume(reply_to, self.on_response, auto_ack=True, callback=self.send_requests)

    @guarded
    def send_requests(self, _frame):
        for corr_id, body in self.calls.items():
            self.client.basic_publish("", self.request_queue, body, properties=pika.BasicProperties(
                reply_to=self.reply_to, correlation_id=corr_id))
        self.at("waiting for %d responses" % self.N)

    @guarded
    def on_response(self, _ch, _method, props, body):
        check(props.correlation_id in self.calls,
              "response with unknown correlation_id %r" % props.correlation_id)
        check(props.correlation_id not in self.responses, "two responses for %r" % props.correlation_id)
        want = self.calls[props.correlation_id].upper()
        check(body == want, "response to %r is %r" % (want, body))
        self.responses[props.correlation_id] = body
        if len(self.responses) == self.N:
            self.check_done()

    def check_done(self):
        self.done()


class DirectReplyTo(Rpc):
    name = "direct_reply_to"

    def declare_reply_queue(self):
        # No queue: consume the pseudo-queue in no-ack mode (auto_ack in consume_replies).
        self.consume_replies("amq.rabbitmq.reply-to")

    def check_done(self):
        check(all(r.startswith("amq.rabbitmq.reply-to.") for r in self.seen_reply_to),
              "the server saw reply_to %r, expected amq.rabbitmq.reply-to.<suffix>" % self.seen_reply_to)
        self.done()


class DeadLetterBase(Scenario):
    """Declares a dead-letter exchange and a queue bound to it with DL_KEY."""

    DL_KEY = "dead"

    def start(self):
        self.dlx = unique(self.name, "dlx")
        self.dlq = unique(self.name, "dlq")
        self.dead = []
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_exchange(ch, self.dlx, ExchangeType.direct,
                              lambda: self.declare_queue(ch, self.dlq, self.on_dlq_declared))

    @guarded
    def on_dlq_declared(self, _queue):
        self.at("queue.bind dead-letter queue")
        self.ch.queue_bind(self.dlq, self.dlx, routing_key=self.DL_KEY, callback=self.on_dlq_bound)

    @guarded
    def on_dlq_bound(self, _frame):
        self.at("basic.consume on the dead-letter queue")
        self.ch.basic_consume(self.dlq, self.on_dead_letter, auto_ack=True, callback=self.cb(
            lambda _frame: self.confirm_select(self.ch, self.declare_sources)))

    def dl_args(self, **extra):
        return dict({"x-dead-letter-exchange": self.dlx, "x-dead-letter-routing-key": self.DL_KEY}, **extra)

    @guarded
    def on_dead_letter(self, _ch, _method, props, body):
        self.dead.append((props, body))
        if len(self.dead) == self.expected_dead:
            self.later(0.1, self.check_dead)

    def check_dead(self):
        check(len(self.dead) == self.expected_dead,
              "%d messages dead-lettered, expected %d" % (len(self.dead), self.expected_dead))
        self.on_all_dead()


class DeadLetter(DeadLetterBase):
    name = "dead_letter"
    expected_dead = 1

    @guarded
    def declare_sources(self):
        self.source = unique(self.name, "source")
        self.declare_queue(self.ch, self.source, self.on_source_declared, arguments=self.dl_args())

    @guarded
    def on_source_declared(self, _queue):
        self.publish(self.ch, "", self.source, b"doomed", pika.BasicProperties(message_id="dl-1"))
        self.when_confirmed(self.ch, lambda: self.get(self.ch, self.source, self.on_get))

    @guarded
    def on_get(self, method, _props, _body):
        check(method is not None, "basic.get from the source queue returned get-empty")
        self.at("basic.reject requeue=false / waiting for the dead-lettered message")
        self.ch.basic_reject(method.delivery_tag, requeue=False)

    def on_all_dead(self):
        (props, body), = self.dead
        check(body == b"doomed" and props.message_id == "dl-1",
              "dead-lettered message: body %r message_id %r" % (body, props.message_id))
        check_x_death("dead-lettered message", props, "rejected", self.source, self.source)
        self.passive_count(self.ch, self.source, self.on_source_count)

    @guarded
    def on_source_count(self, messages, _consumers):
        check(messages == 0, "source queue still holds %d messages" % messages)
        self.delete_exchange(self.ch, self.dlx, self.done)


class Ttl(DeadLetterBase):
    name = "ttl"
    DL_KEY = "expired"
    TTL_MS = 1000
    expected_dead = 2

    @guarded
    def declare_sources(self):
        self.queue_ttl = unique(self.name, "queue-ttl")
        self.queue_plain = unique(self.name, "message-ttl")
        self.declare_queue(self.ch, self.queue_ttl, self.cb(
            lambda _q: self.declare_queue(self.ch, self.queue_plain, self.on_sources_declared,
                                          arguments=self.dl_args())),
            arguments=self.dl_args(**{"x-message-ttl": self.TTL_MS}))

    @guarded
    def on_sources_declared(self, _queue):
        self.started = time.monotonic()
        self.publish(self.ch, "", self.queue_ttl, b"queue ttl")
        self.publish(self.ch, "", self.queue_plain, b"message ttl",
                     pika.BasicProperties(expiration=str(self.TTL_MS)))
        self.publish(self.ch, "", self.queue_plain, b"stays")
        # Both are there before the TTL passes...
        self.when_confirmed(self.ch, lambda: self.passive_count(self.ch, self.queue_ttl, self.on_fresh_ttl_count))

    @guarded
    def on_fresh_ttl_count(self, messages, _consumers):
        check(messages == 1, "TTL queue holds %d fresh messages, expected 1" % messages)
        self.passive_count(self.ch, self.queue_plain, self.on_fresh_plain_count)

    @guarded
    def on_fresh_plain_count(self, messages, _consumers):
        check(messages == 2, "queue holds %d fresh messages, expected 2" % messages)
        # ...and dead-lettered once it has (on_dead_letter counts them).
        self.at("waiting for 2 expired messages to be dead-lettered")

    def on_all_dead(self):
        elapsed = time.monotonic() - self.started
        check(elapsed >= self.TTL_MS / 1000.0 * 0.8,
              "messages expired after %.2f s, TTL is %.2f s" % (elapsed, self.TTL_MS / 1000.0))
        by_body = {body: props for props, body in self.dead}
        check(set(by_body) == {b"queue ttl", b"message ttl"}, "dead-lettered bodies %r" % sorted(by_body))
        check_x_death("expired by x-message-ttl", by_body[b"queue ttl"], "expired", self.queue_ttl, self.queue_ttl)
        check_x_death("expired by expiration", by_body[b"message ttl"], "expired", self.queue_plain, self.queue_plain)
        self.passive_count(self.ch, self.queue_ttl, self.on_expired_count)

    @guarded
    def on_expired_count(self, messages, _consumers):
        check(messages == 0, "TTL queue holds %d messages after the TTL" % messages)
        self.get(self.ch, self.queue_plain, self.on_get_stays, auto_ack=True)

    @guarded
    def on_get_stays(self, method, _props, body):
        check(method is not None and body == b"stays", "message without expiration: %r %r" % (method, body))
        check(method.message_count == 0, "%d more messages in the expiration queue" % method.message_count)
        self.delete_exchange(self.ch, self.dlx, self.done)


class SimpleQueueScenario(Scenario):
    """Open a channel, declare an exclusive queue with `queue_arguments`,
    select confirms, then `ready()`."""

    queue_arguments = None

    def start(self):
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, lambda _q: self.confirm_select(ch, self.ready),
                           arguments=self.queue_arguments)


class Priority(SimpleQueueScenario):
    name = "priority"
    queue_arguments = {"x-max-priority": 10}

    @guarded
    def ready(self):
        self.got = []
        for prio in (1, 5, 9):
            self.publish(self.ch, "", self.queue, b"priority %d" % prio, pika.BasicProperties(priority=prio))
        self.when_confirmed(self.ch, self.consume)

    @guarded
    def consume(self):
        self.at("basic.consume / waiting for 3 deliveries")
        self.ch.basic_consume(self.queue, self.on_message, auto_ack=True)

    @guarded
    def on_message(self, _ch, _method, props, body):
        self.got.append((props.priority, body))
        if len(self.got) == 3:
            prios = [p for p, _ in self.got]
            check(prios == [9, 5, 1], "priorities arrived as %r, expected [9, 5, 1]" % prios)
            check([b for _, b in self.got] == [b"priority 9", b"priority 5", b"priority 1"],
                  "bodies %r" % [b for _, b in self.got])
            self.done()


class LargeMessage(SimpleQueueScenario):
    name = "large_message"

    @guarded
    def ready(self):
        self.body = os.urandom(5 * 1024 * 1024)
        self.publish(self.ch, "", self.queue, self.body)
        self.when_confirmed(self.ch, self.consume)

    @guarded
    def consume(self):
        self.at("basic.consume / waiting for the 5 MiB delivery")
        self.ch.basic_consume(self.queue, self.on_message, auto_ack=True)

    @guarded
    def on_message(self, _ch, _method, _props, body):
        check(len(body) == len(self.body), "body is %d bytes, sent %d" % (len(body), len(self.body)))
        check(hashlib.sha256(body).digest() == hashlib.sha256(self.body).digest(), "body bytes differ")
        self.done()


class EmptyMessage(SimpleQueueScenario):
    name = "empty_message"

    @guarded
    def ready(self):
        self.sent = [
            ("empty message with properties",
             pika.BasicProperties(content_type="text/plain", headers={"empty": True},
                                  message_id="empty-1", correlation_id="c-1", type="empty")),
            ("bare empty message", pika.BasicProperties()),
        ]
        for _what, props in self.sent:
            self.publish(self.ch, "", self.queue, b"", props)
        self.when_confirmed(self.ch, lambda: self.series(self.sent, self.get_one, self.done))

    def get_one(self, item, nxt):
        what, want = item

        def on_get(method, props, body):
            check(method is not None, "%s: basic.get returned get-empty" % what)
            check(body == b"", "%s: body came back as %r" % (what, body[:50]))
            compare_properties(what, props, want)
            nxt()
        self.get(self.ch, self.queue, on_get, auto_ack=True)


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


class Properties(SimpleQueueScenario):
    name = "properties"

    @guarded
    def ready(self):
        self.sent = pika.BasicProperties(
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
            user_id=self.user,
            app_id="warren-interop",
        )
        self.publish(self.ch, "", self.queue, b"{}", self.sent)
        self.when_confirmed(self.ch, self.consume)

    @guarded
    def consume(self):
        self.at("basic.consume / waiting for the delivery")
        self.ch.basic_consume(self.queue, self.on_message, auto_ack=True)

    @guarded
    def on_message(self, _ch, _method, props, body):
        check(body == b"{}", "body came back as %r" % body)
        compare_properties("delivered message", props, self.sent)
        self.done()


class CancelNotify(Scenario):
    name = "cancel_notify"

    def start(self):
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        ch.add_on_cancel_callback(self.on_cancelled_by_broker)
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.at("basic.consume")
        self.tag = self.ch.basic_consume(self.queue, self.on_message, callback=self.on_consume_ok)

    @guarded
    def on_message(self, *_args):
        raise Failure("unexpected delivery")

    @guarded
    def on_consume_ok(self, _frame):
        self.channel(self.on_other_channel)

    @guarded
    def on_other_channel(self, ch):
        self.at("queue.delete on another channel / waiting for basic.cancel")
        ch.queue_delete(self.queue)

    @guarded
    def on_cancelled_by_broker(self, frame):
        check(frame.method.consumer_tag == self.tag,
              "basic.cancel names consumer %r, expected %r" % (frame.method.consumer_tag, self.tag))
        check(self.ch.is_open, "consumer channel closed after basic.cancel")
        # The channel stays usable.
        self.declare_queue(self.ch, "", self.on_still_usable)

    @guarded
    def on_still_usable(self, _queue):
        check(self.tag not in self.ch.consumer_tags, "consumer still registered after basic.cancel")
        self.done()


class Heartbeat(Scenario):
    name = "heartbeat"
    HEARTBEAT = 1
    IDLE = 3 * HEARTBEAT + 0.2

    def connect(self, on_open, **overrides):
        overrides.setdefault("heartbeat", self.HEARTBEAT)
        return super().connect(on_open, **overrides)

    def start(self):
        check(self.conn.params.heartbeat == self.HEARTBEAT,
              "negotiated heartbeat %r, asked for %d" % (self.conn.params.heartbeat, self.HEARTBEAT))
        self.queue = unique(self.name, "q")
        self.channel(self.on_channel_open)

    @guarded
    def on_channel_open(self, ch):
        self.ch = ch
        self.declare_queue(ch, self.queue, self.on_queue_declared)

    @guarded
    def on_queue_declared(self, _queue):
        self.heartbeats_before = self.conn._heartbeat_checker._heartbeat_frames_received
        self.at("idle for %.1f s" % self.IDLE)
        self.later(self.IDLE, self.after_idle)

    def after_idle(self):
        check(self.conn.is_open and self.ch.is_open, "connection closed while idle")
        received = self.conn._heartbeat_checker._heartbeat_frames_received - self.heartbeats_before
        check(received >= 1, "the broker sent no heartbeat frame in %.1f s of idleness" % self.IDLE)
        self.publish(self.ch, "", self.queue, b"still here")
        self.get(self.ch, self.queue, self.on_get, auto_ack=True)

    @guarded
    def on_get(self, method, _props, body):
        if method is None:  # not routed yet: ask again shortly
            self.later(0.05, lambda: self.get(self.ch, self.queue, self.on_get, auto_ack=True))
            return
        check(body == b"still here", "after idling basic.get returned %r" % (body,))
        self.done()


# ================================================================ runner

SCENARIOS = [
    Connect, ExchangeTypes, PublishConsumeAck, NackRequeue, BasicGet, Prefetch,
    PublisherConfirms, MandatoryReturn, Transactions, Rpc, DirectReplyTo,
    DeadLetter, Ttl, Priority, LargeMessage, EmptyMessage, Properties,
    CancelNotify, Heartbeat,
]


def _on_alarm(signum, frame):
    raise Watchdog("watchdog: the ioloop did not finish in time")


def main(argv):
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    only = set(argv[2:])
    logging.basicConfig(level=logging.CRITICAL)  # pika logs to stderr otherwise
    signal.signal(signal.SIGALRM, _on_alarm)
    failed = 0
    for cls in SCENARIOS:
        if only and cls.name not in only:
            continue
        started = time.monotonic()
        try:
            reason = cls(url).run()
        except Exception as exc:  # noqa: BLE001
            reason = one_line("%s: %s" % (type(exc).__name__, exc))
        print("%.2fs %s" % (time.monotonic() - started, cls.name), file=sys.stderr)
        if reason is None:
            print("PASS %s %s" % (CLIENT, cls.name), flush=True)
        else:
            failed += 1
            print("FAIL %s %s: %s" % (CLIENT, cls.name, reason), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
