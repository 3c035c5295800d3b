"""Searching executions: the Redis indexes against a full scan of the records.

Starts a private redis-server, stores N finished executions through the store's own scripts (created
RUNNING, then ended: COMPLETED 70 %, FAILED 15 %, TERMINATED 10 %, TIMED_OUT 5 %; 10 workflow names,
N/10 correlation ids, start times over a week), then times each kind of search (a page of 100, with
its totalHits) and, for a name+status query, the same answer by a full scan (SCAN of the records and
their fields, filtered and sorted in Python: what a store without indexes does).

    .venv/bin/python -m benchmarks.search [-n 10000] [--repeat 30]

Prints query kind, hits, median ms and p95 ms; exits 1 when the name+status search's median is not
under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.services import redis_server
from translator.store.search import SUMMARY_FIELDS, search, summary
from translator.store.state import Change, RedisStore

NAMES = [f"workflow_{i}" for i in range(10)]
ENDINGS = ["COMPLETED"] * 14 + ["FAILED"] * 3 + ["TERMINATED"] * 2 + ["TIMED_OUT"]
WEEK_MS = 7 * 24 * 3600 * 1000
TARGET_MS = 100.0


def populate(store: RedisStore, n: int, now: int) -> None:
    rng = random.Random(7)
    for i in range(n):
        start = now - rng.randrange(WEEK_MS)
        record = {
            "workflowId": f"wf-{i:06d}",
            "workflowName": rng.choice(NAMES),
            "workflowVersion": 1,
            "status": "RUNNING",
            "input": {"image": f"s3://bucket/in/{i}.png", "size": [300, 300]},
            "output": {},
            "correlationId": f"order-{i % max(1, n // 10)}",
            "failedReferenceTaskNames": [],
            "priority": 0,
            "createTime": start,
            "startTime": start,
            "updateTime": start,
            "endTime": 0,
        }
        store.create_workflow(record, '{"bench": 1}')
        status = rng.choice(ENDINGS)
        end = start + rng.randrange(100, 60_000)
        fields: dict[str, Any] = {"status": status, "endTime": end, "updateTime": end}
        fields["output"] = {"url": f"s3://bucket/out/{i}.gif"} if status == "COMPLETED" else {}
        if status != "COMPLETED":
            fields["reasonForIncompletion"] = f"{status.lower()} at step resize"
        store.apply(record["workflowId"], Change(finish=fields))


def full_scan(store: RedisStore, name: str, status: str, size: int = 100) -> dict[str, Any]:
    """The name+status search without indexes: every record's fields read, filtered, sorted."""
    client, prefix = store.client, store.prefix
    keys = [
        k
        for k in client.scan_iter(match=f"{prefix}wf:*", count=1000)
        if k.count(":") == prefix.count(":") + 1
    ]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "workflowName", "status", "startTime")
    matched = []
    for key, (raw_name, raw_status, raw_start) in zip(keys, pipe.execute(), strict=True):
        if raw_name == f'"{name}"' and raw_status == f'"{status}"':
            matched.append((int(raw_start), key))
    matched.sort(reverse=True)
    pipe = client.pipeline(transaction=False)
    for _, key in matched[:size]:
        pipe.hmget(key, *SUMMARY_FIELDS)
    results = [
        summary({f: json.loads(v) for f, v in zip(SUMMARY_FIELDS, values, strict=True) if v is not None})
        for values in pipe.execute()
    ]
    return {"totalHits": len(matched), "results": results}


def timed(call: Callable[[], dict[str, Any]], repeat: int) -> tuple[int, float, float, dict[str, Any]]:
    call()  # warm: the script is loaded once
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        found = call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return found["totalHits"], statistics.median(times), p95, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="finished executions stored")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per query")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as url:
        store = RedisStore(url, ttl=7 * 24 * 3600)
        now = int(time.time() * 1000)
        began = time.perf_counter()
        populate(store, args.n, now)
        print(f"{args.n} finished executions stored in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        day_ago = now - 24 * 3600 * 1000
        queries: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("name + status", lambda: search(store, query="workflowType = 'workflow_3' AND status = FAILED")),
            (
                "name + status IN (2)",
                lambda: search(store, query="workflowType = workflow_3 AND status IN (FAILED,TIMED_OUT)"),
            ),
            (
                "name + status + startTime",
                lambda: search(
                    store, query=f"workflowType = workflow_3 AND status = FAILED AND startTime > {day_ago}"
                ),
            ),
            ("name", lambda: search(store, query="workflowType = workflow_3")),
            ("status", lambda: search(store, query="status = COMPLETED")),
            ("correlationId", lambda: search(store, query="correlationId = 'order-42'")),
            (
                "correlationId + status",
                lambda: search(store, query="correlationId = order-42 AND status = FAILED"),
            ),
            ("all, page 100", lambda: search(store, query=None)),
            ("all, page 100 at 5000", lambda: search(store, query=None, start=5000)),
            ("name + status, full scan", lambda: full_scan(store, "workflow_3", "FAILED")),
        ]
        rows = []
        answers: dict[str, dict[str, Any]] = {}
        for kind, call in queries:
            repeat = max(3, args.repeat // 6) if "full scan" in kind else args.repeat
            hits, median, p95, found = timed(call, repeat)
            rows.append((kind, hits, median, p95))
            answers[kind] = found
    assert answers["name + status"] == answers["name + status, full scan"], "the index and the scan disagree"
    print(f"{'query':<28} {'hits':>6} {'median ms':>10} {'p95 ms':>8}")
    for kind, hits, median, p95 in rows:
        print(f"{kind:<28} {hits:>6} {median:>10.2f} {p95:>8.2f}")
    indexed = rows[0][2]
    scan = next(r for r in rows if "full scan" in r[0])[2]
    print(f"name + status: {scan / indexed:.0f}x faster than the full scan (target: < {TARGET_MS:g} ms)")
    return 0 if indexed < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
