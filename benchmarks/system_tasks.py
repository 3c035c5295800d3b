"""Sync system tasks cost: 2 SIMPLE tasks with 10 sync system tasks between them vs the 2 SIMPLE tasks.

The sync system tasks (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP) run inside the decision that
reaches them, with no message of their own; this measures what they add. Same services as
``benchmarks/fork_overhead.py`` (a private redis-server, one prefork ``celery -A tasks worker``); rounds
alternate between the two workflows.

    .venv/bin/python -m benchmarks.system_tasks [-n 200] [--rounds 5] [--concurrency 2]

Prints workflows/s for both and the ratio of their costs (target: the 12-task workflow costs at most
1.2 x the 2-task one).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks.fork_overhead import bench_pool, noop_task, plan_from, row, run_translator
from tests.services import ROOT


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=200, help="workflows per round and kind")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

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
