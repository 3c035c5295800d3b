"""Worker functions used by the runtime integration tests (loaded by real worker processes)."""

from __future__ import annotations

import contextlib
from typing import Any

from translator import NonRetryableError, worker_task
from translator.runtime.workers import TaskContext


@worker_task("echo")
def echo(**task_input: Any) -> dict[str, Any]:
    """Return the input as output."""
    return dict(task_input)


@worker_task("noop")
def noop() -> dict[str, Any]:
    return {}


@worker_task("flaky")
def flaky(failures: int, task_context: TaskContext, **task_input: Any) -> dict[str, Any]:
    """Fail ``failures`` times, then succeed; the output tells the attempt that succeeded."""
    if task_context.retry_count < int(failures):
        raise RuntimeError(f"planned failure {task_context.retry_count + 1} of {failures}")
    return {"attempt": task_context.retry_count, "taskId": task_context.task_id, "input": task_input}


@worker_task("always_fail")
def always_fail(message: str = "always failing") -> dict[str, Any]:
    raise ValueError(message)


@worker_task("terminal_fail")
def terminal_fail() -> dict[str, Any]:
    raise NonRetryableError("input can never work")


@worker_task("add")
def add(a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b}


@worker_task("sleepy")
def sleepy(task_context: TaskContext, seconds: float = 0.3) -> dict[str, Any]:
    """Take some time (for concurrency limits), sending heartbeats."""
    import time

    began = time.time()
    while time.time() < began + float(seconds):
        time.sleep(min(0.25, max(0.0, began + float(seconds) - time.time())))
        task_context.heartbeat()
    return {"began": began, "ended": time.time()}


@worker_task("stubborn")
def stubborn(seconds: float = 5.0) -> dict[str, Any]:
    """Ignore the soft time limit (only the hard limit can stop it)."""
    import time

    from celery.exceptions import SoftTimeLimitExceeded

    end = time.time() + float(seconds)
    while time.time() < end:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.05)
    return {}


@worker_task("marked")
def marked(seconds: float, task_context: TaskContext) -> dict[str, Any]:
    """Take a little time, then record a side effect (one per attempt id) in the test's Redis."""
    import os
    import time

    import redis

    time.sleep(float(seconds))
    client = redis.Redis.from_url(os.environ["TRANSLATOR_STATE_URL"])
    client.sadd("test:effects", task_context.task_id)
    client.incr(f"test:runs:{task_context.task_id}")
    return {"done": task_context.task_id}


@worker_task("hang_first")
def hang_first(seconds: float, task_context: TaskContext) -> dict[str, Any]:
    """The first attempt hangs for ``seconds`` (then records a side effect); later ones return at once."""
    import os
    import time

    import redis

    if task_context.retry_count == 0:
        time.sleep(float(seconds))
        client = redis.Redis.from_url(os.environ["TRANSLATOR_STATE_URL"])
        client.sadd("test:late", task_context.task_id)
    return {"attempt": task_context.retry_count}
