"""Fork overhead: a FORK_JOIN of 20 no-op branches + JOIN vs a raw Celery chord of 20 no-ops.

Starts a private redis-server and one prefork ``celery -A tasks worker``, then alternates rounds of N
workflows of each kind, all submitted first, then awaited:

* translator: ``FORK_JOIN`` with 20 one-task branches of ``bench_noop``, then a ``JOIN`` on all of them
  (the definition is generated into a temporary directory). The JOIN is decided in the worker by the
  step whose branch ends last; the client polls the workflow's status.
* raw chord (the baseline): ``chord([noop.si()] * 20, noop.si())`` with a Redis result backend. Its
  join also happens in the workers (the backend counts finished header tasks atomically and the last
  one sends the callback), and the client only waits for the callback: the same shape of work.
* raw group, then ``.get()`` (for information): the client waits for the group's 20 results and sends
  the callback itself. The join is a client round trip, so the client must stay alive: not what a
  workflow engine offers, and not the baseline.

    .venv/bin/python -m benchmarks.fork_overhead [-n 100] [--rounds 3] [--branches 20] [--concurrency 2]

Prints workflows/s and the ratio to the chord (target: translator >= 0.8 x the raw chord).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, chord, group

from tests.services import ROOT, celery_worker, redis_server
from translator.engine.plan import Plan
from translator.runner import Session, prepare, submit
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

NOOP = "bench_noop"


@dataclass
class Bench:
    """A private redis-server with one worker pool, and a client for both paths."""

    client: Celery
    session: Session
    url: str  # the broker and state store
    tmp: Path  # a temporary directory for generated definitions


@contextmanager
def bench_pool(concurrency: int, extra_env: dict[str, str] | None = None) -> Iterator[Bench]:
    """Redis (db 0: broker and state, db 1: Celery results) and a prefork ``celery -A tasks worker``
    that has the benchmark tasks, as ``benchmarks/chain_overhead.py`` uses them."""
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as url:
        backend = url.rsplit("/", 1)[0] + "/1"
        env = {"CELERY_RESULT_BACKEND": backend, "TRANSLATOR_STATE_URL": url, **(extra_env or {})}
        with celery_worker(
            url,
            Path(tmp) / "worker.log",
            modules="benchmarks.bench_tasks",
            concurrency=concurrency,
            extra_env=env,
        ):
            client = Celery("bench-client", broker=url, backend=backend)
            client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
            install(client)
            yield Bench(client, Session(client, RedisStore(url), embedded=False), url, Path(tmp))


def plan_from(tmp: Path, definition: dict[str, Any]) -> Plan:
    """Write a generated definition to ``tmp`` and plan it."""
    path = tmp / f"{definition['name']}.json"
    path.write_text(json.dumps(definition))
    return prepare(path)


def noop_task(ref: str) -> dict[str, Any]:
    return {"name": NOOP, "taskReferenceName": ref, "type": "SIMPLE"}


def fork_definition(branches: int) -> dict[str, Any]:
    refs = [f"b{i:02d}" for i in range(branches)]
    return {
        "name": f"bench_fork_{branches}",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [[noop_task(ref)] for ref in refs],
            },
            {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": refs},
        ],
    }


def await_completed(session: Session, ids: list[str], timeout: float = 300) -> None:
    """Poll each workflow's status until it is terminal; it must be COMPLETED."""
    deadline = time.monotonic() + timeout
    for wf_id in ids:
        while True:
            status = session.store.status(wf_id)
            if status is not None and status.terminal:
                assert status.value == "COMPLETED", session.store.workflow_fields(wf_id)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflow {wf_id} still {status} after {timeout:g} s")
            time.sleep(0.005)


def run_translator(session: Session, plan: Plan, n: int) -> float:
    began = time.perf_counter()
    await_completed(session, [submit(session, plan, {}) for _ in range(n)])
    return n / (time.perf_counter() - began)


def run_chord(app: Celery, n: int, branches: int) -> float:
    noop = app.signature("bench.noop", immutable=True)
    began = time.perf_counter()
    results = [chord([noop.clone() for _ in range(branches)], noop.clone()).apply_async() for _ in range(n)]
    for result in results:
        result.get(timeout=300, interval=0.005)
    return n / (time.perf_counter() - began)


def run_group_get(app: Celery, n: int, branches: int) -> float:
    noop = app.signature("bench.noop", immutable=True)
    began = time.perf_counter()
    groups = [group([noop.clone() for _ in range(branches)]).apply_async() for _ in range(n)]
    callbacks = []
    for result in groups:
        result.get(timeout=300, interval=0.005)
        callbacks.append(noop.clone().apply_async())
    for callback in callbacks:
        callback.get(timeout=300, interval=0.005)
    return n / (time.perf_counter() - began)


def row(label: str, values: list[float], baseline: float) -> str:
    median = statistics.median(values)
    rounds = "  ".join(f"{v:.1f}" for v in values)
    return f"{label:30}{median:>12.1f}{median / baseline:>8.2f}   {rounds}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=100, help="workflows per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--branches", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    ours: list[float] = []
    chords: list[float] = []
    gets: list[float] = []
    with bench_pool(args.concurrency) as bench:
        plan = plan_from(bench.tmp, fork_definition(args.branches))
        run_translator(bench.session, plan, 10)  # warm up every path
        run_chord(bench.client, 10, args.branches)
        run_group_get(bench.client, 10, args.branches)
        for _ in range(args.rounds):
            chords.append(run_chord(bench.client, args.n, args.branches))
            ours.append(run_translator(bench.session, plan, args.n))
            gets.append(run_group_get(bench.client, args.n, args.branches))
    baseline = statistics.median(chords)
    print(f"{'':30}{'wf/s (median)':>12}{'ratio':>8}   rounds")
    print(row(f"raw chord ({args.branches} + callback)", chords, baseline))
    print(row(f"translator FORK_JOIN/JOIN ({args.branches})", ours, baseline))
    print(row("raw group, .get(), callback", gets, baseline))
    workers = f"{args.concurrency} prefork worker processes"
    print(f"(n={args.n} per round, {workers}, private redis-server; {ROOT})")


if __name__ == "__main__":
    main()
