"""Tasks used by benchmarks/chain_overhead.py: the same no-op, as a raw Celery task and as a worker."""

from __future__ import annotations

from tasks import app
from translator import worker_task


@app.task(name="bench.noop", acks_late=True)
def raw_noop(*args: object, **kwargs: object) -> None:
    """A hand-written Celery task doing nothing (the baseline)."""
    return None


@worker_task("bench_noop")
def noop() -> dict[str, object]:
    """The same nothing, as the worker of a Conductor SIMPLE task."""
    return {}
