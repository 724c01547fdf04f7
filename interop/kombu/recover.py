#!/usr/bin/env python3
"""Warren interop recovery scenario for kombu: `ensure_reconnect`.

Usage: recover.py [AMQP_URL]   (with INTEROP_RESTART_CMD in the environment)

kombu has no background connection recovery; its users wrap operations in
Connection.ensure / Producer.publish(retry=True, retry_policy=...), which
reconnect and revive the producer's channel when the operation fails with a
recoverable connection error. The scenario publishes before and after a broker
restart with the same Producer and checks the second publish reconnects by
itself and the message arrives.
"""

import os
import subprocess
import sys

from kombu import Consumer, Producer, Queue

from scenario import Failure, check, check_eq, drain_until, run_all

SCENARIO_TIMEOUT = 90
RESTART_TIMEOUT = 60


def consume_one(ctx, conn, queue, what):
    got = []
    with Consumer(conn.default_channel, queues=[queue], callbacks=[lambda body, m: (got.append(body), m.ack())], accept=["json"]):
        drain_until(conn, lambda: got, 10, what)
    return got[0]


def s_ensure_reconnect(ctx):
    cmd = os.environ.get("INTEROP_RESTART_CMD")
    if not cmd:
        raise Failure("INTEROP_RESTART_CMD is not set")
    conn = ctx.connect(transport_options={"confirm_publish": True})
    name = ctx.name()
    ctx.queues_to_delete.append(name)
    queue = Queue(name, durable=True, auto_delete=False)
    producer = Producer(conn, serializer="json")
    errors = []
    policy = {
        "max_retries": 30,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
        "errback": lambda exc, interval: errors.append(exc),
    }

    ctx.step("publish (retry=True) and consume before the restart")
    producer.publish("before", routing_key=name, declare=[queue], retry=True, retry_policy=policy)
    check_eq(consume_one(ctx, conn, queue, "the message published before the restart"), "before", "body")
    check_eq(errors, [], "errback calls before the restart")

    ctx.step("restart the broker ($INTEROP_RESTART_CMD)")
    try:
        proc = subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=RESTART_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure("the restart command did not finish within %d s" % RESTART_TIMEOUT) from None
    if proc.returncode != 0:
        raise Failure("the restart command exited with %d: %s" % (proc.returncode, proc.stderr.decode(errors="replace")[-300:]))

    ctx.step("publish (retry=True) after the restart: kombu reconnects")
    producer.publish("after", routing_key=name, declare=[queue], retry=True, retry_policy=policy)
    check(errors, "errback calls (connection errors seen and retried)", "at least one", errors)
    print("kombu ensure_reconnect: retried after %r" % errors, file=sys.stderr)

    ctx.step("consume after the restart")
    check_eq(consume_one(ctx, conn, queue, "the message published after the restart"), "after", "body")

    ctx.step("delete the queue")
    queue(conn.default_channel).delete()
    ctx.queues_to_delete.remove(name)


def main():
    return run_all({"ensure_reconnect": s_ensure_reconnect}, SCENARIO_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
