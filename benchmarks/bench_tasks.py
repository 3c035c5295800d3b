"""Tasks used by the benchmarks: the same no-op, as a raw Celery task and as a worker.

With ``BENCH_MESSAGE_SIZES=1`` in its environment, a worker that imports this module records the size
of every task message it publishes in its broker's Redis (see :func:`record_message_sizes`); with
``BENCH_PROFILE=<directory>``, each of its pool processes is profiled (:func:`profile_pool_processes`).
"""

from __future__ import annotations

import cProfile
import json
import os
from collections.abc import Callable
from typing import Any

import redis
from celery import signals
from kombu.serialization import dumps

from tasks import app
from translator import worker_task

MESSAGE_SIZES_ENV = "BENCH_MESSAGE_SIZES"
PROFILE_ENV = "BENCH_PROFILE"
RAW_NOOP = "bench.noop"


@app.task(name=RAW_NOOP, acks_late=True)
def raw_noop(*args: object, **kwargs: object) -> None:
    """A hand-written Celery task doing nothing (the baseline)."""
    return None


@worker_task("bench_noop")
def noop() -> dict[str, object]:
    """The same nothing, as the worker of a Conductor SIMPLE task."""
    return {}


def message_sizes_key(owner: str) -> str:
    """The Redis hash of the message sizes of one workflow (its id) or raw chain (its root task id)."""
    return f"bench:message-size:{owner}"


def _serialized_bytes(value: Any) -> int:
    _, _, payload = dumps(value, serializer="json")
    return len(payload.encode() if isinstance(payload, str) else payload)


def record_message_sizes(url: str) -> Callable[[], None]:
    """Record in Redis, for every task message this process publishes, the bytes of its body as
    Celery serializes it (JSON) and of its headers, as ``[body, headers]``: a step message (named by
    its Conductor task) under its workflow id and reference, a raw chain's task under its root id and
    the number of tasks the message still carries (``rest=N``). Returns what stops recording."""
    clients: dict[int, redis.Redis] = {}  # one connection per (forked) process

    def on_publish(sender: str | None = None, body: Any = None, headers: Any = None, **_: Any) -> None:
        if not isinstance(body, (list, tuple)) or len(body) != 3:
            return
        _, kwargs, embed = body
        step = isinstance(kwargs, dict) and {"wf", "ref"} <= set(kwargs)  # any Conductor task name
        if not step and sender != RAW_NOOP:
            return
        if step:
            owner, field = kwargs["wf"], kwargs["ref"]
        else:
            owner, field = headers["root_id"], f"rest={len((embed or {}).get('chain') or [])}"
        client = clients.get(os.getpid())
        if client is None:
            client = clients[os.getpid()] = redis.Redis.from_url(url)
        sizes = [_serialized_bytes(body), _serialized_bytes(headers)]
        client.hset(message_sizes_key(owner), field, json.dumps(sizes))

    signals.before_task_publish.connect(on_publish, weak=False)

    def stop() -> None:
        signals.before_task_publish.disconnect(on_publish)
        for client in clients.values():
            client.close()

    return stop


def profile_pool_processes(directory: str) -> None:
    """Profile each pool process from its start, and write its stats to ``directory/worker-<pid>.prof``
    when it exits (the worker's warm shutdown)."""
    running: list[cProfile.Profile] = []

    def start(**_: Any) -> None:
        profiler = cProfile.Profile()
        running.append(profiler)
        profiler.enable()

    def stop(**_: Any) -> None:
        if running:
            profiler = running.pop()
            profiler.disable()
            profiler.dump_stats(os.path.join(directory, f"worker-{os.getpid()}.prof"))

    signals.worker_process_init.connect(start, weak=False)
    signals.worker_process_shutdown.connect(stop, weak=False)


if os.environ.get(PROFILE_ENV):
    profile_pool_processes(os.environ[PROFILE_ENV])
if os.environ.get(MESSAGE_SIZES_ENV) == "1":
    record_message_sizes(str(app.conf.broker_url))
