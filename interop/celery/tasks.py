"""Celery app and tasks for the Warren interop scenarios.

The broker URL and the task queue name come from the environment
(INTEROP_AMQP_URL, INTEROP_QUEUE), set by scenario.py for both the caller and
the worker it starts, so each run uses its own queue and exchange.
"""

import os

from celery import Celery
from kombu import Exchange, Queue

URL = os.environ.get("INTEROP_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("INTEROP_QUEUE", "celery.interop")

app = Celery("interop", broker=URL, backend="rpc://")
app.conf.update(
    # One direct exchange and one queue per run, removed by scenario.py at the
    # end; x-expires and auto-delete are a safety net if a run dies.
    task_queues=[
        Queue(
            QUEUE,
            Exchange(QUEUE, type="direct", durable=False, auto_delete=True),
            routing_key=QUEUE,
            durable=False,
            queue_arguments={"x-expires": 300000},
        )
    ],
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=300,  # x-expires of the rpc:// reply queue
    broker_transport_options={"confirm_publish": True},
    # AMQP heartbeats on the worker's connection, checked every second: this
    # also bounds the worker's event-loop sleep (kombu's hub polls for up to
    # 10 s when no timer is due), so a warm shutdown takes ~1 s, not 10.
    broker_heartbeat=4,
    broker_heartbeat_checkrate=4,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    # Fast, quiet worker: no pidbox (remote control), no events.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_prefetch_multiplier=1,
)


@app.task
def add(x, y):
    return x + y


@app.task
def greet(name, greeting="Hello", punctuation="!"):
    return "%s, %s%s" % (greeting, name, punctuation)


@app.task
def describe(*args, **kwargs):
    """Echo what arrived, to check argument types survive the trip."""
    return {"args": list(args), "kwargs": kwargs}


class InteropError(Exception):
    pass


@app.task
def fail(message):
    raise ValueError(message)


@app.task(bind=True, max_retries=3, default_retry_delay=0.1)
def flaky(self, token):
    """Fails the first time (retry re-publishes the task), succeeds after."""
    if self.request.retries == 0:
        raise self.retry(exc=InteropError("first attempt of %s" % token), countdown=0.1)
    return {"token": token, "retries": self.request.retries}
