#!/usr/bin/env python3
"""Warren interop scenarios driven by the pika client (BlockingConnection).

Usage: scenario.py [AMQP_URL]

Prints exactly one line per scenario:
    PASS pika <scenario>
    FAIL pika <scenario>: <reason>
and exits non-zero if any scenario failed.

Every scenario runs under a SIGALRM watchdog, and the connection has socket,
stack and blocked-connection timeouts, so an unresponsive broker makes the
script fail within about 20 s instead of hanging.
"""

import datetime
import decimal
import logging
import signal
import sys
import time
import uuid

import pika
import pika.exceptions

CLIENT = "pika"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
SCENARIO_TIMEOUT = 10  # seconds, hard limit for one scenario
CLOSE_TIMEOUT = 2  # seconds, hard limit for the best-effort close afterwards
TOTAL_BUDGET = 20  # seconds for the whole script
N_MESSAGES = 100
PREFETCH = 10


class ScenarioTimeout(Exception):
    pass


class Failure(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Failure(reason)


_current_step = ["start"]


def step(desc):
    """Record what the scenario is waiting on, for the timeout message."""
    _current_step[0] = desc


def _on_alarm(signum, frame):
    raise ScenarioTimeout("timed out during %s" % _current_step[0])


def connect(url):
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 5  # TCP connect + AMQP handshake
    params.blocked_connection_timeout = 10
    params.client_properties = {"connection_name": "warren-interop-pika"}
    return pika.BlockingConnection(params)


def unique_queue(scenario):
    return "warren-interop.%s.%s.%s" % (CLIENT, scenario, uuid.uuid4().hex[:12])


# ---------------------------------------------------------------- publish_consume_ack

# One value of most field-table types pika can encode. pika has no encoder for
# Python floats (and decodes 'd'/'f' as integers), so floats are left to amqplib.
BASE_HEADERS = {
    "x-string": "héllo wörld ✓",  # S (long string, UTF-8)
    "x-int": 42,  # I (signed 32-bit)
    "x-negative": -123456,  # I
    "x-long": 2**40 + 7,  # l (signed 64-bit)
    "x-bool-true": True,  # t
    "x-bool-false": False,  # t
    "x-decimal": decimal.Decimal("12.345"),  # D
    "x-timestamp": datetime.datetime(2026, 11, 23, 12, 34, 56, tzinfo=datetime.timezone.utc),  # T
    "x-void": None,  # V
    "x-bytes": b"\x00\x01\xfe\xff",  # x (byte array)
    "x-array": [1, "two", True, [3]],  # A
    "x-table": {"nested": "yes", "depth": {"n": 2}},  # F
}


def expected_props(i):
    headers = dict(BASE_HEADERS)
    headers["seq"] = i
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=pika.DeliveryMode.Persistent if i % 2 == 0 else pika.DeliveryMode.Transient,
        priority=i % 10,
        correlation_id="corr-%d" % i,
        message_id="msg-%d-%s" % (i, uuid.uuid4().hex[:8]),
        timestamp=1795000000 + i,
        type="interop.test",
        app_id="warren-interop",
    )


def body_for(i):
    return ('{"seq": %d, "pad": "%s"}' % (i, "x" * (i % 17))).encode("utf-8")


PROP_FIELDS = (
    "content_type", "content_encoding", "headers", "delivery_mode", "priority",
    "correlation_id", "message_id", "timestamp", "type", "app_id",
)


def same_value(got, want):
    """Equality that also catches type drift (e.g. True vs 1, b"x" vs "x")."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int):  # pika decodes 'l' as pika.compat.long, an int subclass
        return isinstance(got, int) and got == want
    if isinstance(want, dict):
        return (isinstance(got, dict) and set(got) == set(want)
                and all(same_value(got[k], want[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(same_value(g, w) for g, w in zip(got, want)))
    return type(got) is type(want) and got == want


def compare_props(i, got, want):
    for field in PROP_FIELDS:
        g, w = getattr(got, field), getattr(want, field)
        if field == "delivery_mode":
            w = int(w)
        if field == "headers":
            check(isinstance(g, dict), "message %d: headers missing (got %r)" % (i, g))
            for key in sorted(set(g) | set(w)):
                check(key in g, "message %d: header %r missing" % (i, key))
                check(key in w, "message %d: unexpected header %r=%r" % (i, key, g[key]))
                check(same_value(g[key], w[key]),
                      "message %d: header %r round-tripped as %r, sent %r" % (i, key, g[key], w[key]))
        else:
            check(g == w, "message %d: property %s round-tripped as %r, sent %r" % (i, field, g, w))
    # Properties we did not set must stay unset.
    for field in ("reply_to", "expiration", "user_id", "cluster_id"):
        check(getattr(got, field) is None,
              "message %d: unset property %s came back as %r" % (i, field, getattr(got, field)))


def scenario_publish_consume_ack(conn):
    step("channel.open")
    ch = conn.channel()
    queue = unique_queue("pca")
    step("queue.declare")
    ok = ch.queue_declare(queue=queue, exclusive=True)  # exclusive: deleted when the connection closes
    check(ok.method.queue == queue, "declare-ok names queue %r" % ok.method.queue)
    check(ok.method.message_count == 0, "fresh queue has %d messages" % ok.method.message_count)

    step("confirm.select")
    ch.confirm_delivery()
    sent = []
    for i in range(N_MESSAGES):
        props = expected_props(i)
        try:
            # With confirms on, basic_publish blocks until Basic.Ack; it raises
            # NackError on Basic.Nack and UnroutableError on Basic.Return.
            step("basic.publish #%d + confirm" % i)
            ch.basic_publish(exchange="", routing_key=queue, body=body_for(i),
                             properties=props, mandatory=True)
        except pika.exceptions.NackError:
            raise Failure("message %d was nacked by the broker" % i)
        except pika.exceptions.UnroutableError:
            raise Failure("message %d was returned as unroutable" % i)
        sent.append(props)

    step("queue.declare passive (after publishing)")
    ok = ch.queue_declare(queue=queue, passive=True)
    check(ok.method.message_count == N_MESSAGES,
          "after confirms queue holds %d messages, expected %d" % (ok.method.message_count, N_MESSAGES))

    step("basic.qos")
    ch.basic_qos(prefetch_count=PREFETCH)
    received = 0
    last_tag = 0
    step("basic.consume / waiting for deliveries")
    for method, props, body in ch.consume(queue, auto_ack=False, inactivity_timeout=5):
        if method is None:
            raise Failure("no delivery within 5 s after %d of %d messages" % (received, N_MESSAGES))
        i = received
        check(body == body_for(i), "message %d: body %r, expected %r (out of order?)" % (i, body, body_for(i)))
        check(method.routing_key == queue and method.exchange == "",
              "message %d: delivered with exchange=%r routing_key=%r" % (i, method.exchange, method.routing_key))
        check(not method.redelivered, "message %d: redelivered flag set on first delivery" % i)
        check(method.delivery_tag > last_tag, "message %d: delivery tag %d not increasing" % (i, method.delivery_tag))
        last_tag = method.delivery_tag
        compare_props(i, props, sent[i])
        if received == 0:
            # Hold the first message unacked and let the broker send whatever it
            # wants: with prefetch 10 exactly 9 more may be buffered, never more.
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:  # returns early once any frame is handled
                conn.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))
            waiting = ch.get_waiting_message_count()
            check(waiting <= PREFETCH - 1,
                  "prefetch %d not honoured: %d unacked deliveries outstanding" % (PREFETCH, waiting + 1))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        received += 1
        if received == N_MESSAGES:
            break

    step("basic.cancel")
    requeued = ch.cancel()
    check(requeued == 0, "%d messages were still pending when the consumer was cancelled" % requeued)
    # The acks are asynchronous; a round trip on the channel orders them before the check.
    step("queue.declare passive (after acks)")
    ok = ch.queue_declare(queue=queue, passive=True)
    check(ok.method.message_count == 0, "queue still holds %d messages after acking all" % ok.method.message_count)
    check(ok.method.consumer_count == 0, "queue still has %d consumers after cancel" % ok.method.consumer_count)
    step("channel.close")
    ch.close()


# ---------------------------------------------------------------- get_and_reject

def scenario_get_and_reject(conn):
    step("channel.open")
    ch = conn.channel()
    queue = unique_queue("gar")
    step("queue.declare")
    ch.queue_declare(queue=queue, exclusive=True)  # exclusive: deleted when the connection closes
    step("confirm.select")
    ch.confirm_delivery()
    body = b"reject me once"
    props = pika.BasicProperties(content_type="text/plain", message_id="gar-1", headers={"attempt": 1})
    step("basic.publish + confirm")
    ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props, mandatory=True)

    step("first basic.get")
    method, got_props, got_body = ch.basic_get(queue=queue, auto_ack=False)
    check(method is not None, "first basic_get returned get-empty")
    check(got_body == body, "first get: body %r" % got_body)
    check(not method.redelivered, "first get: redelivered=True on a fresh message")
    check(method.message_count == 0, "first get: message_count %d, expected 0" % method.message_count)
    check(got_props.message_id == "gar-1" and got_props.headers == {"attempt": 1},
          "first get: properties %r" % got_props)
    ch.basic_reject(delivery_tag=method.delivery_tag, requeue=True)

    step("second basic.get (after reject)")
    method2, got_props2, got_body2 = ch.basic_get(queue=queue, auto_ack=False)
    check(method2 is not None, "second basic_get returned get-empty after reject(requeue=True)")
    check(got_body2 == body, "second get: body %r" % got_body2)
    check(method2.redelivered, "second get: redelivered flag not set after requeue")
    check(method2.delivery_tag != method.delivery_tag,
          "second get reused delivery tag %d" % method2.delivery_tag)
    check(got_props2.message_id == "gar-1" and got_props2.headers == {"attempt": 1},
          "second get: properties %r" % got_props2)
    ch.basic_ack(delivery_tag=method2.delivery_tag)

    step("third basic.get (after ack)")
    method3, _, _ = ch.basic_get(queue=queue, auto_ack=False)
    check(method3 is None, "third basic_get returned a message after ack")
    step("queue.declare passive")
    ok = ch.queue_declare(queue=queue, passive=True)
    check(ok.method.message_count == 0, "queue holds %d messages after ack" % ok.method.message_count)
    step("channel.close")
    ch.close()


# ---------------------------------------------------------------- runner

SCENARIOS = [
    ("publish_consume_ack", scenario_publish_consume_ack),
    ("get_and_reject", scenario_get_and_reject),
]


def describe(exc):
    text = str(exc) or repr(exc)
    if not isinstance(exc, (Failure, ScenarioTimeout)):
        text = "%s: %s (during %s)" % (type(exc).__name__, text, _current_step[0])
    text = " ".join(text.split())  # keep the result on one line
    return text if len(text) <= 300 else text[:297] + "..."


def run_one(url, name, fn, budget):
    conn = None
    signal.alarm(max(1, min(SCENARIO_TIMEOUT, int(budget))))
    try:
        step("connection handshake")
        conn = connect(url)
        fn(conn)
        step("connection.close")
        conn.close()
        conn = None
        return None
    except BaseException as exc:  # noqa: BLE001 -- any error fails the scenario
        if isinstance(exc, KeyboardInterrupt):
            raise
        return describe(exc)
    finally:
        signal.alarm(0)
        if conn is not None and conn.is_open:
            signal.alarm(CLOSE_TIMEOUT)
            try:
                conn.close()
            except BaseException:  # noqa: BLE001 -- best effort only
                pass
            finally:
                signal.alarm(0)


def main(argv):
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    logging.basicConfig(level=logging.CRITICAL)  # pika logs to stderr otherwise
    signal.signal(signal.SIGALRM, _on_alarm)
    failed = 0
    deadline = time.monotonic() + TOTAL_BUDGET
    for name, fn in SCENARIOS:
        reason = run_one(url, name, fn, deadline - time.monotonic() - CLOSE_TIMEOUT)
        if reason is None:
            print("PASS %s %s" % (CLIENT, name), flush=True)
        else:
            failed += 1
            print("FAIL %s %s: %s" % (CLIENT, name, reason), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
