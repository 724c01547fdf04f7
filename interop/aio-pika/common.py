"""Shared harness for the aio-pika interop programs (scenario.py, recover.py).

Each scenario is an ``async def scenario(ctx)``. The harness runs it under a
hard timeout, records the step it was in, prints exactly one
``PASS aio-pika <name>`` / ``FAIL aio-pika <name>: <reason>`` line, and then
removes whatever the scenario registered for deletion (on a fresh connection,
so a scenario that broke its own channel still leaves nothing behind).
"""

import asyncio
import sys
import time
import traceback
import uuid

import aio_pika

CLIENT = "aio-pika"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CONNECT_TIMEOUT = 5


class Failure(Exception):
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
        self.queues_to_delete = []
        self.exchanges_to_delete = []

    def step(self, name):
        self.step_name = name

    def name(self, what=""):
        """A broker-side name: client, scenario, what, random suffix."""
        parts = [CLIENT, self.scenario] + ([what] if what else [])
        return ".".join(parts) + "." + uuid.uuid4().hex[:10]

    def delete_queue_later(self, name):
        self.queues_to_delete.append(name)

    def delete_exchange_later(self, name):
        self.exchanges_to_delete.append(name)

    async def connect(self, url=None, **kwargs):
        return await aio_pika.connect(url or self.url, timeout=CONNECT_TIMEOUT, **kwargs)

    async def within(self, seconds, awaitable, what):
        """Await with a timeout; a timeout fails naming what was awaited."""
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise Failure("waited %.1f s for %s" % (seconds, what)) from None

    async def cleanup(self):
        if not (self.queues_to_delete or self.exchanges_to_delete):
            return
        conn = await self.connect()
        try:
            channel = await conn.channel()
            for q in self.queues_to_delete:
                await channel.queue_delete(q)
            for x in self.exchanges_to_delete:
                await channel.exchange_delete(x)
        finally:
            await conn.close()


async def run_scenario(url, name, fn, timeout):
    """Run one scenario; return its result line."""
    ctx = Ctx(url, name)
    started = time.monotonic()
    task = asyncio.ensure_future(fn(ctx))
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
        line = "PASS %s %s" % (CLIENT, name)
    except asyncio.TimeoutError:
        if task.done():  # a timeout raised inside the scenario itself
            line = "FAIL %s %s: step %r: %s" % (CLIENT, name, ctx.step_name, describe(task.exception()))
        else:
            task.cancel()
            line = "FAIL %s %s: timed out after %d s in step %r" % (CLIENT, name, timeout, ctx.step_name)
            await asyncio.gather(task, return_exceptions=True)
    except Failure as e:
        line = "FAIL %s %s: step %r: %s" % (CLIENT, name, ctx.step_name, e)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        line = "FAIL %s %s: step %r: %s" % (CLIENT, name, ctx.step_name, describe(e))
    try:
        await asyncio.wait_for(ctx.cleanup(), 10)
    except Exception as e:
        print("%s %s: cleanup failed: %s" % (CLIENT, name, describe(e)), file=sys.stderr)
        if line.startswith("PASS"):
            line = "FAIL %s %s: cleanup: %s" % (CLIENT, name, describe(e))
    print("%s %s took %.2f s" % (CLIENT, name, time.monotonic() - started), file=sys.stderr)
    return line


def describe(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


async def run_all(url, scenarios, only, timeout, concurrent=()):
    """Run the scenarios (a dict name -> fn) named in `only` (or all).

    The names in `concurrent` run in the background alongside the others
    (they mostly wait). Prints a line per scenario; returns the exit code.
    """
    names = [n for n in scenarios if not only or n in only]
    unknown = [n for n in (only or []) if n not in scenarios]
    failed = False
    for n in unknown:
        print("FAIL %s %s: unknown scenario" % (CLIENT, n), flush=True)
        failed = True
    background = [
        asyncio.ensure_future(run_scenario(url, n, scenarios[n], timeout))
        for n in names
        if n in concurrent
    ]
    for n in names:
        if n in concurrent:
            continue
        line = await run_scenario(url, n, scenarios[n], timeout)
        print(line, flush=True)
        failed |= not line.startswith("PASS")
    for line in await asyncio.gather(*background):
        print(line, flush=True)
        failed |= not line.startswith("PASS")
    return 1 if failed else 0
