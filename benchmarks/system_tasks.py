"""Sync system tasks cost: 2 SIMPLE tasks with 10 sync system tasks between them vs the 2 SIMPLE tasks.

The sync system tasks (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP) run inside the decision that
reaches them, with no message of their own; this measures what they add. Same services as
``benchmarks/fork_overhead.py`` (a private redis-server, one prefork ``celery -A tasks worker``); rounds
alternate between the two workflows.

    .venv/bin/python -m benchmarks.system_tasks [-n 200] [--rounds 5] [--concurrency 2]
    .venv/bin/python -m benchmarks.system_tasks --profile [-n 200] [--top 25]

Prints workflows/s for both and the ratio of their costs (target: the 12-task workflow costs at most
1.2 x the 2-task one). ``--profile`` instead runs N of each on workers whose pool processes are profiled
(cProfile, as ``benchmarks/long_workflows.py --profile``) and prints, per workflow, where their time goes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.fork_overhead import Bench, bench_pool, noop_task, plan_from, row, run_translator
from benchmarks.long_workflows import profile_pool
from tests.services import ROOT
from translator.engine.plan import Plan


def sync_tasks() -> list[dict[str, Any]]:
    """Ten sync system tasks of every kind, wired to each other as real workflows wire them."""

    def task(ref: str, kind: str, **params: Any) -> dict[str, Any]:
        return {"name": ref, "taskReferenceName": ref, "type": kind, "inputParameters": params}

    return [
        task("js1", "INLINE", evaluatorType="javascript", expression="$.n * 2", n=21),
        task("js2", "INLINE", evaluatorType="value-param", expression="v", v="${js1.output.result}"),
        task("lam1", "LAMBDA", scriptExpression="return {doubled: $.v * 2};", v="${js2.output.result}"),
        task("jq1", "JSON_JQ_TRANSFORM", queryExpression=".x + 1", x="${lam1.output.result.doubled}"),
        task("jq2", "JSON_JQ_TRANSFORM", queryExpression="[.a, .b] | add", a=[1], b=[2]),
        task("set1", "SET_VARIABLE", total="${jq1.output.result}"),
        task("set2", "SET_VARIABLE", list="${jq2.output.result}"),
        task("noop1", "NOOP"),
        task("noop2", "NOOP"),
        task(
            "js3", "INLINE", evaluatorType="javascript", expression="$.t + 1", t="${workflow.variables.total}"
        ),
    ]


def definition(name: str, middle: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [noop_task("first"), *middle, noop_task("second")],
    }


def profile(concurrency: int, n: int, top: int) -> None:
    """Run ``n`` workflows of each kind on a worker whose pool processes are profiled; print, per
    workflow, the time under the task tracer and its top items, and the Redis server's time by command."""
    kinds = {"2 SIMPLE": [], "2 SIMPLE + 10 sync system": sync_tasks()}
    with tempfile.TemporaryDirectory() as tmp:
        for number, (kind, middle) in enumerate(kinds.items()):
            plan = plan_from(Path(tmp), definition(f"bench_profile_{number}", middle))

            def warm_up(bench: Bench, plan: Plan = plan) -> int:
                run_translator(bench.session, plan, 10)
                return 10

            def run(bench: Bench, plan: Plan = plan) -> int:
                run_translator(bench.session, plan, n)
                return n

            profile_pool(concurrency, f"{kind} (a 'step' below is one workflow)", top, run, warm_up)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=200, help="workflows per round and kind")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--profile", action="store_true", help="instead: profile the pool processes running N of each"
    )
    parser.add_argument("--top", type=int, default=25, help="--profile: functions listed")
    args = parser.parse_args()
    if args.profile:
        profile(args.concurrency, args.n, args.top)
        return

    two: list[float] = []
    twelve: list[float] = []
    with bench_pool(args.concurrency) as bench:
        plain = plan_from(bench.tmp, definition("bench_two", []))
        mixed = plan_from(bench.tmp, definition("bench_two_and_ten_sync", sync_tasks()))
        run_translator(bench.session, plain, 10)  # warm up every path
        run_translator(bench.session, mixed, 10)
        for _ in range(args.rounds):
            two.append(run_translator(bench.session, plain, args.n))
            twelve.append(run_translator(bench.session, mixed, args.n))
    baseline = statistics.median(two)
    print(f"{'':30}{'wf/s (median)':>12}{'ratio':>8}   rounds")
    print(row("2 SIMPLE", two, baseline))
    print(row("2 SIMPLE + 10 sync system", twelve, baseline))
    cost = baseline / statistics.median(twelve)
    print(f"cost of the 12-task workflow: {cost:.2f} x the 2-task one (target <= 1.2)")
    print(
        f"(n={args.n} per round, {args.concurrency} prefork worker processes, private redis-server; {ROOT})"
    )


if __name__ == "__main__":
    main()
