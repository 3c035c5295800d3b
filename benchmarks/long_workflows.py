"""Long linear workflows: throughput, per-step cost against length, and the size of step messages.

Private redis-server and one prefork ``celery -A tasks worker`` (as ``benchmarks/chain_overhead.py``);
the linear definitions of ``bench_noop`` tasks (references ``s0001``, ``s0002``...) are generated
into a temporary directory. Three measurements, each printed as a table:

(a) throughput: N workflows of 30 steps vs N raw ``chain`` of 30 ``noop.si()`` (``--steps``) (Redis result
    backend), all submitted first, then awaited; rounds alternate. Target: ratio >= 0.85.
(b) per-step cost against length: one 2,000-step workflow vs 100 workflows of 20 steps (the same
    number of steps), ``--lanes`` workflows in flight at a time; ms/step is the execution's own
    duration (its ``endTime - startTime`` as stored) over its steps, so the client's polling is not
    counted. Rounds alternate. Target: 2,000-step ms/step <= 1.5 x the 20-step one.
(c) message size: a second worker (and the client) with ``BENCH_MESSAGE_SIZES`` record the bytes of
    every step message as Celery serializes its body (JSON) and headers, for the 1st, 20th and
    2,000th step of a 2,000-step workflow; for comparison, a raw 30-task chain's 1st, 20th and 30th
    messages and the 1st message of a raw 2,000-task chain (published to a queue nobody consumes).
    Target: a step's message does not grow.

    .venv/bin/python -m benchmarks.long_workflows [-n 30] [--steps 30] [--rounds 3] [--long 2000]
        [--short 20] [--lanes 1] [--concurrency 2] [--skip-sizes]
    .venv/bin/python -m benchmarks.long_workflows --profile [-n 30] [--steps 30] [--top 25]

``--profile`` runs (a)'s two kinds on workers whose pool processes are profiled (cProfile) and prints
where a step's time goes, per step, under Celery's task tracer.

The default run takes about 75 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chain

from benchmarks.bench_tasks import MESSAGE_SIZES_ENV, PROFILE_ENV, message_sizes_key, record_message_sizes
from benchmarks.fork_overhead import Bench, await_completed, bench_pool, noop_task, plan_from
from tests.services import ROOT
from translator.engine.plan import Plan
from translator.runner import Session, submit

UNCONSUMED_QUEUE = "bench-nobody"


def ref(position: int) -> str:
    """The reference of the step at ``position`` (1-based); fixed width, so names do not grow."""
    return f"s{position:04d}"


def linear_definition(steps: int) -> dict[str, Any]:
    return {
        "name": f"bench_linear_{steps}",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [noop_task(ref(i)) for i in range(1, steps + 1)],
    }


def raw_chain(app: Celery, steps: int) -> chain:
    noop = app.signature("bench.noop", immutable=True)
    return chain(*(noop.clone() for _ in range(steps)))


# (a) throughput


def run_translator(session: Session, plan: Plan, n: int) -> float:
    began = time.perf_counter()
    await_completed(session, [submit(session, plan, {}) for _ in range(n)])
    return n / (time.perf_counter() - began)


def run_raw(app: Celery, steps: int, n: int) -> float:
    began = time.perf_counter()
    results = [raw_chain(app, steps).apply_async() for _ in range(n)]
    for result in results:
        result.get(timeout=300, interval=0.005)
    return n / (time.perf_counter() - began)


def throughput(bench: Bench, steps: int, n: int, rounds: int) -> tuple[list[float], list[float]]:
    plan = plan_from(bench.tmp, linear_definition(steps))
    run_translator(bench.session, plan, 5)  # warm up both paths
    run_raw(bench.client, steps, 5)
    ours, raw = [], []
    for _ in range(rounds):
        raw.append(run_raw(bench.client, steps, n))
        ours.append(run_translator(bench.session, plan, n))
    return ours, raw


# (b) per-step cost


@dataclass
class Durations:
    steps: int
    ms_per_step: list[float]  # one per round


def ms_per_step(session: Session, plan: Plan, steps: int, workflows: int, lanes: int) -> float:
    """Run ``workflows`` executions, ``lanes`` at a time; their stored durations over their steps."""
    total_ms = 0
    done = 0
    while done < workflows:
        batch = [submit(session, plan, {}) for _ in range(min(lanes, workflows - done))]
        await_completed(session, batch, timeout=600)
        for wf_id in batch:
            fields = session.store.workflow_fields(wf_id) or {}
            total_ms += int(fields["endTime"]) - int(fields["startTime"])
        done += len(batch)
    return total_ms / (workflows * steps)


def per_step(bench: Bench, long: int, short: int, rounds: int, lanes: int) -> tuple[Durations, Durations]:
    long_plan = plan_from(bench.tmp, linear_definition(long))
    short_plan = plan_from(bench.tmp, linear_definition(short))
    short_count = max(1, long // short)  # as many steps as the long workflow
    ms_per_step(bench.session, short_plan, short, lanes, lanes)  # warm up (plans parsed, cached)
    ms_per_step(bench.session, long_plan, long, 1, 1)
    longs, shorts = Durations(long, []), Durations(short, [])
    for _ in range(rounds):
        shorts.ms_per_step.append(ms_per_step(bench.session, short_plan, short, short_count * lanes, lanes))
        longs.ms_per_step.append(ms_per_step(bench.session, long_plan, long, lanes, lanes))
    return longs, shorts


# (c) message sizes


def sizes_of(bench: Bench, owner: str) -> dict[str, list[int]]:
    client = redis.Redis.from_url(bench.url)
    try:
        found = client.hgetall(message_sizes_key(owner))
    finally:
        client.close()
    return {key.decode(): json.loads(value) for key, value in found.items()}


def message_sizes(concurrency: int, long: int) -> list[tuple[str, list[int] | None]]:
    """(what, [body bytes, header bytes]) of the step messages of a long workflow and of raw chains."""
    positions = sorted({1, min(20, long), long})
    with bench_pool(concurrency, {MESSAGE_SIZES_ENV: "1"}) as bench:
        stop_recording = record_message_sizes(bench.url)  # the client publishes a workflow's first step
        plan = plan_from(bench.tmp, linear_definition(long))
        wf_id = submit(bench.session, plan, {})
        raw = raw_chain(bench.client, 30).apply_async()
        raw.get(timeout=300, interval=0.01)
        unrun = raw_chain(bench.client, long).apply_async(queue=UNCONSUMED_QUEUE)
        await_completed(bench.session, [wf_id], timeout=600)
        ours, chained = sizes_of(bench, wf_id), sizes_of(bench, _root_id(raw))
        first_unrun = sizes_of(bench, _root_id(unrun)).get(f"rest={long - 1}")
        stop_recording()
    rows: list[tuple[str, list[int] | None]] = [
        (f"translator, step {p} of {long}", ours.get(ref(p))) for p in positions
    ]
    rows += [(f"raw chain, task {p} of 30", chained.get(f"rest={30 - p}")) for p in (1, 20, 30)]
    rows.append((f"raw chain, task 1 of {long} (not run)", first_unrun))
    return rows


# Profile (--profile): where a step's time goes in the pool processes


def profile_steps(concurrency: int, steps: int, n: int, top: int) -> None:
    """Run ``n`` workflows of ``steps`` steps, then as many raw chains, each on a worker whose pool
    processes are profiled; print, per step, the time of the task's execution and its top items,
    and the Redis server's time by command (every client's: workers and this one polling)."""

    def translator(bench: Bench) -> int:
        run_translator(bench.session, plan_from(bench.tmp, linear_definition(steps)), n)
        return n * steps

    def raw(bench: Bench) -> int:
        run_raw(bench.client, steps, n)
        return n * steps

    profile_pool(concurrency, "translator", top, translator)
    profile_pool(concurrency, "raw chain", top, raw)


def profile_pool(
    concurrency: int,
    label: str,
    top: int,
    run: Callable[[Bench], int],
    warm_up: Callable[[Bench], int] | None = None,
) -> None:
    """Run ``run`` (after ``warm_up``, if any) on a worker whose pool processes are profiled; print,
    per step, the time under the task tracer and its top items, and the Redis server's time by command
    during ``run`` (every client's: workers and this one polling). Each returns how many steps it ran
    (the warm-up's are profiled too, not counted in the Redis stats)."""
    with tempfile.TemporaryDirectory() as out:
        with bench_pool(concurrency, {PROFILE_ENV: out}) as bench:
            warmed = warm_up(bench) if warm_up is not None else 0
            server = redis.Redis.from_url(bench.url)
            server.config_resetstat()
            steps = run(bench)
            commands = server.info("commandstats")
            server.close()
        files = sorted(str(path) for path in Path(out).glob("worker-*.prof"))
        if not files:
            print(f"{label}: no profile written (the pool processes did not exit cleanly)")
            return
        print_profile(label, pstats.Stats(*files), warmed + steps, top)
        print_commands(commands, steps)


def print_commands(commands: dict[str, Any], steps: int, top: int = 8) -> None:
    total = sum(c["usec"] for c in commands.values())
    print(f"{'Redis usec/step':>18}{'calls/step':>23}  command ({total / steps:.1f} usec/step in all)")
    for name, found in sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:top]:
        usec, calls = found["usec"] / steps, found["calls"] / steps
        print(f"{usec:>18.1f}{calls:>23.2f}  {name.removeprefix('cmdstat_')}")


def print_profile(kind: str, stats: pstats.Stats, steps: int, top: int) -> None:
    """The functions under Celery's task tracer by cumulative time, in ms per step, and by own time."""
    entries = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    traced = max(
        (ct for (_, _, name), (_, _, _, ct, _) in entries.items() if name == "trace_task"), default=0.0
    )
    print(f"\n{kind}: {steps} steps, {traced * 1000 / steps:.3f} ms/step in the task tracer (profiled)")
    idle = ("billiard/", "<built-in method posix.read>")  # a pool process waiting for its next task
    inside = [
        (key, value)
        for key, value in entries.items()
        if value[3] <= traced and not any(mark in key[0] or mark in key[2] for mark in idle)
    ]

    def label(key: tuple[str, int, str]) -> str:
        file, line, name = key
        parts = Path(file).parts
        where = "/".join(parts[-2:]) if len(parts) > 1 else file
        return f"{where}:{line}({name})"[-70:]

    print(f"{'cumulative ms/step':>18}{'own ms/step':>12}{'calls/step':>11}  function")
    for key, (_, calls, own, cumulative, _) in sorted(inside, key=lambda kv: -kv[1][3])[:top]:
        row = f"{cumulative * 1000 / steps:>18.3f}{own * 1000 / steps:>12.3f}{calls / steps:>11.2f}"
        print(f"{row}  {label(key)}")
    print(f"{'cumulative ms/step':>18}{'own ms/step':>12}{'calls/step':>11}  translator's functions")
    ours = [(key, value) for key, value in inside if f"{os.sep}translator{os.sep}" in key[0]]
    for key, (_, calls, own, cumulative, _) in sorted(ours, key=lambda kv: -kv[1][3])[:top]:
        row = f"{cumulative * 1000 / steps:>18.3f}{own * 1000 / steps:>12.3f}{calls / steps:>11.2f}"
        print(f"{row}  {label(key)}")
    print(f"{'own ms/step':>18}{'':12}{'calls/step':>11}  function (by own time)")
    for key, (_, calls, own, _, _) in sorted(inside, key=lambda kv: -kv[1][2])[:top]:
        print(f"{own * 1000 / steps:>18.3f}{'':12}{calls / steps:>11.2f}  {label(key)}")


def _root_id(result: Any) -> str:
    """The id of a chain's first task (its messages' ``root_id``), from the result of its last."""
    while result.parent is not None:
        result = result.parent
    return result.id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=30, help="(a) workflows per round and kind")
    parser.add_argument("--steps", type=int, default=30, help="(a) steps per workflow")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long", type=int, default=2000, help="(b, c) steps of the long workflow")
    parser.add_argument("--short", type=int, default=20, help="(b) steps of the short workflow")
    parser.add_argument("--lanes", type=int, default=1, help="(b) workflows in flight at a time")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--skip-sizes", action="store_true", help="do not measure (c)")
    parser.add_argument(
        "--profile", action="store_true", help="instead: profile the pool processes running (a)'s workflows"
    )
    parser.add_argument("--top", type=int, default=25, help="--profile: functions listed")
    args = parser.parse_args()
    if args.profile:
        profile_steps(args.concurrency, args.steps, args.n, args.top)
        return

    with bench_pool(args.concurrency) as bench:
        ours, raw = throughput(bench, args.steps, args.n, args.rounds)
        longs, shorts = per_step(bench, args.long, args.short, args.rounds, args.lanes)
    sizes = [] if args.skip_sizes else message_sizes(args.concurrency, args.long)

    ours_median, raw_median = statistics.median(ours), statistics.median(raw)
    print(f"(a) {args.steps}-step linear workflow")
    print(f"{'':28}{'workflows/s (median)':>22}   rounds")
    print(f"{'raw Celery chain':28}{raw_median:>22.2f}   {'  '.join(f'{v:.2f}' for v in raw)}")
    print(f"{'translator workflow':28}{ours_median:>22.2f}   {'  '.join(f'{v:.2f}' for v in ours)}")
    print(f"{'ratio translator / raw':28}{ours_median / raw_median:>22.2f}   (target >= 0.85)")
    print()
    print(f"(b) per-step cost, {args.lanes} workflow(s) in flight")
    print(f"{'':28}{'ms/step (median)':>22}   rounds")
    for durations in (shorts, longs):
        label, values = f"{durations.steps}-step workflow", durations.ms_per_step
        print(f"{label:28}{statistics.median(values):>22.3f}   {'  '.join(f'{v:.3f}' for v in values)}")
    ratio = statistics.median(longs.ms_per_step) / statistics.median(shorts.ms_per_step)
    print(f"{'ratio long / short':28}{ratio:>22.2f}   (target <= 1.5)")
    if sizes:
        print()
        print("(c) message size, bytes (JSON body as Celery serializes it; headers)")
        print(f"{'':40}{'body':>8}{'headers':>9}")
        for label, found in sizes:
            body, headers = (f"{found[0]}", f"{found[1]}") if found else ("-", "-")
            print(f"{label:40}{body:>8}{headers:>9}")
    workers = f"{args.concurrency} prefork worker processes"
    print(f"(n={args.n} per round, {workers}, private redis-server; {ROOT})")


if __name__ == "__main__":
    main()
