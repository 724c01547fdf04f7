#!/usr/bin/env python3
"""Warren interop scenarios for Celery: a real worker executes tasks sent
through the broker, and the caller gets the results through the rpc://
result backend.

Usage: scenario.py [AMQP_URL] [SCENARIO ...]

Starts `celery -A tasks worker` (threads pool of 2, no mingle/gossip/event
heartbeat, no remote control) as a subprocess on a queue of its own, runs the scenarios,
stops the worker with SIGTERM (warm shutdown) and deletes the queue and
exchange. Prints ``PASS celery <scenario>`` / ``FAIL celery <scenario>: ...``
and exits non-zero if any failed.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

CLIENT = "celery"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
HERE = os.path.dirname(os.path.abspath(__file__))
STARTUP_TIMEOUT = 40  # seconds for the worker to log "ready"
SCENARIO_TIMEOUT = 30  # seconds, hard limit for one scenario (SIGALRM)
RESULT_TIMEOUT = 10  # seconds for one result
STOP_TIMEOUT = 20  # seconds for the warm shutdown

url = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL
only = sys.argv[2:]
QUEUE = "%s.tasks.%s" % (CLIENT, uuid.uuid4().hex[:10])
os.environ["INTEROP_AMQP_URL"] = url
os.environ["INTEROP_QUEUE"] = QUEUE

import celery.exceptions  # noqa: E402
from celery import chain, group  # noqa: E402

import tasks  # noqa: E402


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
    def __init__(self, scenario):
        self.scenario = scenario
        self.step_name = "start"

    def step(self, name):
        self.step_name = name
        if os.environ.get("INTEROP_DEBUG"):
            print("%.3f step %s" % (time.monotonic(), name), file=sys.stderr)


def get(ctx, result, what, **kwargs):
    try:
        return result.get(timeout=RESULT_TIMEOUT, **kwargs)
    except celery.exceptions.TimeoutError:
        raise Failure("waited %d s for the result of %s (state %s)" % (RESULT_TIMEOUT, what, result.state)) from None


# ---------------------------------------------------------------- worker


def die_with_parent():
    """In the worker: get SIGTERM if this script dies (e.g. killed by the
    runner's timeout), so no worker is left running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Worker:
    def __init__(self):
        self.log = tempfile.NamedTemporaryFile(prefix="celery-interop-worker.", suffix=".log", delete=False)
        self.proc = None

    def start(self):
        cmd = [
            sys.executable, "-m", "celery", "-A", "tasks", "worker",
            "--pool=" + os.environ.get("INTEROP_WORKER_POOL", "threads"), "--concurrency=2",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
            "--loglevel=" + os.environ.get("INTEROP_WORKER_LOGLEVEL", "INFO"), "-n", "%s@%%h" % QUEUE,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ.copy(), preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("the worker exited with %d while starting: %s" % (self.proc.returncode, self.tail()))
            if " ready." in self.text():
                return
            time.sleep(0.1)
        raise Failure("the worker did not log 'ready' within %d s: %s" % (STARTUP_TIMEOUT, self.tail()))

    def stop(self):
        """Warm shutdown (SIGTERM); fails unless the worker exits with 0."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise Failure("the worker was not running at the end (exit code %s): %s" % (code, self.tail()))
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("the worker did not stop within %d s of SIGTERM: %s" % (STOP_TIMEOUT, self.tail()))
        if code != 0:
            raise Failure("the worker exited with %d after SIGTERM: %s" % (code, self.tail()))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def tail(self, n=6):
        lines = [l for l in self.text().splitlines() if l.strip()]
        return " | ".join(lines[-n:])

    def errors(self):
        """Worker log lines that report a problem, other than the failing
        task raising on purpose."""
        bad = ("ERROR", "CRITICAL", "consumer: Cannot connect", "Connection to broker lost")
        return [
            line.strip()
            for line in self.text().splitlines()
            if any(b in line for b in bad) and "boom from the worker" not in line
        ]


# ---------------------------------------------------------------- scenarios


def s_celery_task(ctx):
    ctx.step("add.delay(2, 3)")
    r = tasks.add.delay(2, 3)
    check_eq(get(ctx, r, "add(2, 3)"), 5, "add(2, 3)")
    check_eq((r.state, r.successful()), ("SUCCESS", True), "add(2, 3) state")

    ctx.step("apply_async with args and kwargs")
    r = tasks.greet.apply_async(args=("Warren",), kwargs={"greeting": "Hi", "punctuation": "?"})
    check_eq(get(ctx, r, "greet"), "Hi, Warren?", "greet(...)")
    r = tasks.describe.apply_async(
        args=(1, "two", 3.5, None, [1, 2], {"k": "v"}),
        kwargs={"flag": True, "n": -7, "text": "héllo ✓"},
        priority=3,
    )
    check_eq(
        get(ctx, r, "describe"),
        {"args": [1, "two", 3.5, None, [1, 2], {"k": "v"}], "kwargs": {"flag": True, "n": -7, "text": "héllo ✓"}},
        "describe(...) echo of args and kwargs",
    )

    ctx.step("several tasks in flight")
    pending = [tasks.add.delay(i, 100) for i in range(10)]
    check_eq([get(ctx, p, "add(%d, 100)" % i) for i, p in enumerate(pending)], [i + 100 for i in range(10)], "10 results")

    ctx.step("group")
    g = group(tasks.add.s(i, i) for i in range(5))()
    check_eq(get(ctx, g, "the group"), [0, 2, 4, 6, 8], "group results")

    ctx.step("chain (the worker publishes the next task)")
    c = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.add.s(100))()
    check_eq(get(ctx, c, "the chain"), 113, "chain result")

    ctx.step("a task that raises")
    r = tasks.fail.delay("boom from the worker")
    try:
        get(ctx, r, "fail(...)")
        raise Failure("fail(...).get(): expected ValueError, it returned")
    except ValueError as e:
        check_eq(str(e), "boom from the worker", "exception message")
    check_eq(r.state, "FAILURE", "state of the failed task")
    check("ValueError" in (r.traceback or ""), "traceback of the failed task", "mentions ValueError", r.traceback)
    exc = get(ctx, r, "fail(...) with propagate=False", propagate=False)
    check(isinstance(exc, ValueError), "result with propagate=False", "a ValueError", exc)

    ctx.step("the worker is still fine after the failure")
    check_eq(get(ctx, tasks.add.delay(20, 22), "add(20, 22)"), 42, "add(20, 22) after the failure")


def s_celery_retry(ctx):
    token = uuid.uuid4().hex[:8]
    ctx.step("flaky task: retries once, then succeeds")
    r = tasks.flaky.delay(token)
    check_eq(get(ctx, r, "flaky(...)"), {"token": token, "retries": 1}, "flaky(...) result")
    check_eq(r.state, "SUCCESS", "state after the retry")


SCENARIOS = {"celery_task": s_celery_task, "celery_retry": s_celery_retry}


# ---------------------------------------------------------------- harness


def describe(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def on_alarm(signum, frame):
    raise ScenarioTimeout()


def run_scenario(name, fn):
    ctx = Ctx(name)
    started = time.monotonic()
    signal.alarm(SCENARIO_TIMEOUT)
    try:
        fn(ctx)
        return None
    except ScenarioTimeout:
        return "timed out after %d s in step %r" % (SCENARIO_TIMEOUT, ctx.step_name)
    except Failure as e:
        return "step %r: %s" % (ctx.step_name, e)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        return "step %r: %s" % (ctx.step_name, describe(e))
    finally:
        signal.alarm(0)
        print("%s %s took %.2f s" % (CLIENT, name, time.monotonic() - started), file=sys.stderr)


def delete_queue_and_exchange():
    with tasks.app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=2)
        channel = conn.channel()
        channel.queue_delete(QUEUE)
        channel.exchange_delete(QUEUE)


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    names = [n for n in SCENARIOS if not only or n in only]
    failures = {n: "unknown scenario" for n in only if n not in SCENARIOS}
    worker = Worker()
    started = time.monotonic()
    try:
        try:
            worker.start()
            print("celery worker ready after %.2f s" % (time.monotonic() - started), file=sys.stderr)
        except Failure as e:
            for n in names:
                failures[n] = "start the worker: %s" % e
            names = []
        for n in names:
            reason = run_scenario(n, SCENARIOS[n])
            if reason:
                failures[n] = reason
        if names:
            # Stopping cleanly belongs to celery_task (or whatever ran).
            owner = "celery_task" if "celery_task" in names else names[0]
            t = time.monotonic()
            try:
                worker.stop()
                print("celery worker stopped after %.2f s" % (time.monotonic() - t), file=sys.stderr)
            except Failure as e:
                failures.setdefault(owner, "stop the worker: %s" % e)
            errors = worker.errors()
            if errors:
                failures.setdefault(owner, "worker log reports problems: %s" % " | ".join(errors[:3]))
    finally:
        worker.kill()
        signal.alarm(15)
        t = time.monotonic()
        try:
            delete_queue_and_exchange()
            print("celery: deleted the queue and exchange in %.2f s" % (time.monotonic() - t), file=sys.stderr)
        except BaseException as e:
            print("%s: deleting %s failed: %s" % (CLIENT, QUEUE, describe(e)), file=sys.stderr)
            for n in names:
                failures.setdefault(n, "cleanup: deleting the queue failed: %s" % describe(e))
        finally:
            signal.alarm(0)
        tasks.app.close()
        if failures or os.environ.get("INTEROP_KEEP_WORKER_LOG"):
            print("worker log %s:\n%s" % (worker.log.name, worker.text()[-4000:]), file=sys.stderr)
        if not os.environ.get("INTEROP_KEEP_WORKER_LOG"):
            os.unlink(worker.log.name)

    for n in list(SCENARIOS) + [n for n in failures if n not in SCENARIOS]:
        if n in failures:
            print("FAIL %s %s: %s" % (CLIENT, n, failures[n]), flush=True)
        elif n in names:
            print("PASS %s %s" % (CLIENT, n), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
