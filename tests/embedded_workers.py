"""Worker functions for the embedded-run tests (tests/test_embedded.py), run by ``translator run``
in a subprocess: steps that outlive their timeouts, and one that waits for such a late step."""

from __future__ import annotations

import threading
import time
from typing import Any

from celery.signals import task_postrun

from translator import worker_task
from translator.runtime.workers import TaskContext

_finished: dict[str, int] = {}  # task reference -> steps of it that ended (their record write done)
_changed = threading.Condition()


@task_postrun.connect
def _count_finished(kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    """After a step (worker function and record write) is over: count it by task reference."""
    ref = (kwargs or {}).get("ref")
    with _changed:
        _finished[ref] = _finished.get(ref, 0) + 1
        _changed.notify_all()


@worker_task("nap")
def nap(seconds: float) -> dict[str, Any]:
    """Sleep, deaf to everything (a worker stuck in user code)."""
    time.sleep(float(seconds))
    return {"slept": seconds}


@worker_task("slow_first")
def slow_first(seconds: float, task_context: TaskContext) -> dict[str, Any]:
    """The first attempt takes ``seconds`` and then returns a result; later attempts return at once."""
    if task_context.retry_count == 0:
        time.sleep(float(seconds))
    return {"attempt": task_context.retry_count}


@worker_task("after_steps")
def after_steps(ref: str, count: int, within: float = 60) -> dict[str, Any]:
    """Wait until ``count`` steps of task ``ref`` are over (a late attempt has tried to write)."""
    with _changed:
        over = _changed.wait_for(lambda: _finished.get(ref, 0) >= int(count), timeout=float(within))
    return {"finished": _finished.get(ref, 0), "waited": over}
