"""End-to-end image workflows per second with 1 and 2 worker processes.

    .venv/bin/python -m benchmarks.image_workflows [-n 40]

Starts a private redis-server and moto's S3 server on loopback, then for each worker concurrency
starts ``celery -A tasks worker -c N`` (prefork), submits N runs of the seed's workflow
(``definitions/image_convert_resize.json``: the 900x900 sample PNG -> 300x300 GIF -> S3) at once, and
waits for all of them. Prints workflows/s and the mean time per workflow.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from celery import Celery

from tests.services import ROOT, celery_worker, redis_server, s3_server
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

INPUT = {
    "fileLocation": "sample.png",
    "recipeParameters": {"outputFormat": "gif", "outputSize": {"width": 300, "height": 300}},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=40, help="workflows per configuration")
    args = parser.parse_args()
    plan = prepare(ROOT / "definitions" / "image_convert_resize.json")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, s3_server() as s3_env:
        base = Path(tmp)
        (base / "input").mkdir()
        shutil.copy(ROOT / "examples" / "sample.png", base / "input" / "sample.png")
        for concurrency in (1, 2):
            with redis_server(base / f"redis-{concurrency}") as url:
                env = {
                    **s3_env,
                    "TRANSLATOR_SHARED_DIR": str(base / "shared"),
                    "TRANSLATOR_INPUT_ROOT": str(base / "input"),
                }
                log = base / f"worker-{concurrency}.log"
                with celery_worker(url, log, modules=None, concurrency=concurrency, extra_env=env):
                    client = Celery("bench-images", broker=url)
                    client.conf.update(task_serializer="json", accept_content=["json"])
                    install(client)
                    session = Session(client, RedisStore(url), embedded=False)
                    wait(session.store, submit(session, plan, INPUT), timeout=120)  # warm up
                    began = time.perf_counter()
                    ids = [submit(session, plan, INPUT) for _ in range(args.n)]
                    for wf_id in ids:
                        execution = wait(session.store, wf_id, timeout=600, interval=0.01)
                        assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
                    elapsed = time.perf_counter() - began
                    rows.append((concurrency, args.n / elapsed, elapsed / args.n * 1000))
    print(f"{'worker processes':>18}{'workflows/s':>14}{'ms per workflow':>18}")
    for concurrency, rate, per in rows:
        print(f"{concurrency:>18}{rate:>14.2f}{per:>18.0f}")
    print(
        f"speed-up with 2 processes: {rows[1][1] / rows[0][1]:.2f}x (n={args.n}, 2-core machine, S3 = moto)"
    )


if __name__ == "__main__":
    main()
