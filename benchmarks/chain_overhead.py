"""Orchestration overhead: a 2-step no-op Conductor workflow vs the hand-written Celery chain.

Starts a private redis-server and one prefork ``celery -A tasks worker``, then, against the same
broker and the same worker, runs N workflows of ``benchmarks/two_noops.json`` through translator and
N ``chain(noop.si(), noop.si())`` by hand (with a Redis result backend, which is how a Celery user
learns that a chain finished). Rounds alternate between the two so that machine noise hits both. A raw
round in which Celery's result consumer misses a stored result is run again (it would stall for
``MISSED_AFTER`` seconds).

    .venv/bin/python -m benchmarks.chain_overhead [-n 300] [--rounds 3] [--concurrency 2]

Prints workflows/s for both and the ratio (target: translator >= 0.85 x the raw chain).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery, chain
from celery.exceptions import TimeoutError as CeleryTimeoutError

from tests.services import ROOT, celery_worker, redis_server
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

HERE = Path(__file__).resolve().parent


def run_translator(session: Session, plan, n: int) -> float:
    began = time.perf_counter()
    ids = [submit(session, plan, {}) for _ in range(n)]
    for wf_id in ids:
        execution = wait(session.store, wf_id, timeout=300, interval=0.005)
        assert execution["status"] == "COMPLETED", execution
    return n / (time.perf_counter() - began)


MISSED_AFTER = 30.0  # seconds: a round takes about 1; a result this late was stored, not delivered


def run_raw(app: Celery, n: int) -> float | None:
    """Chains per second; None when Celery's result consumer missed a result the backend stored
    (a race of its pub/sub subscription, about once in a hundred rounds): the round does not count."""
    noop = app.signature("bench.noop")
    began = time.perf_counter()
    results = [
        chain(noop.clone().set(immutable=True), noop.clone().set(immutable=True)).apply_async()
        for _ in range(n)
    ]
    for result in results:
        try:
            result.get(timeout=MISSED_AFTER, interval=0.005)
        except CeleryTimeoutError:
            if app.backend.get_task_meta(result.id)["status"] != "SUCCESS":
                raise
            print(f"raw round dropped: chain result {result.id} stored but not delivered", file=sys.stderr)
            return None
    return n / (time.perf_counter() - began)


def run_raw_round(app: Celery, n: int, tries: int = 3) -> float:
    """One counted round of raw chains (a dropped round is run again)."""
    for _ in range(tries):
        rate = run_raw(app, n)
        if rate is not None:
            return rate
    raise RuntimeError(f"no raw round of {n} chains without a missed result in {tries} tries")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=300, help="workflows per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as url:
        backend = url.rsplit("/", 1)[0] + "/1"
        with celery_worker(
            url,
            Path(tmp) / "worker.log",
            modules="benchmarks.bench_tasks",
            concurrency=args.concurrency,
            extra_env={"CELERY_RESULT_BACKEND": backend, "TRANSLATOR_STATE_URL": url},
        ):
            client = Celery("bench-client", broker=url, backend=backend)
            client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
            install(client)
            session = Session(client, RedisStore(url), embedded=False)
            plan = prepare(HERE / "two_noops.json")
            run_translator(session, plan, 20)  # warm up both paths
            run_raw_round(client, 20)
            ours, raw = [], []
            for _ in range(args.rounds):
                raw.append(run_raw_round(client, args.n))
                ours.append(run_translator(session, plan, args.n))
    ours_median, raw_median = statistics.median(ours), statistics.median(raw)
    print(f"{'':26}{'workflows/s (median)':>22}   rounds")
    print(f"{'raw Celery chain':26}{raw_median:>22.1f}   {'  '.join(f'{v:.1f}' for v in raw)}")
    print(f"{'translator workflow':26}{ours_median:>22.1f}   {'  '.join(f'{v:.1f}' for v in ours)}")
    print(f"{'ratio translator / raw':26}{ours_median / raw_median:>22.2f}")
    print(
        f"(n={args.n} per round, {args.concurrency} prefork worker processes, private redis-server; {ROOT})"
    )


if __name__ == "__main__":
    main()
