"""Workers for the SIMPLE tasks of the reference corpus workflows that translator can run.

Every worker is the same deterministic function. For a task named NAME with reference REF its output is::

    {**task_input, "op": "NAME.op", "uuid": "NAME.uuid", "taskReferenceName": REF}

so ``integration_task_1`` at ``t1`` with input ``{"p1": "a"}`` returns
``{"p1": "a", "op": "integration_task_1.op", "uuid": "integration_task_1.uuid", "taskReferenceName": "t1"}``.
The input is echoed (the stamp keys win) so that values the corpus wires from one task to the next
(``${t1.output.op}``, ``${task1.output.payload}``) can be checked downstream.

Tests steer single tasks through the environment of the run, as the Java specs steer them by
completing polled tasks with chosen results. A task is selected by its reference name or its task
name (a REF inside a DO_WHILE also matches ``REF__<n>``):

* ``CORPUS_WORKERS_EMIT``: JSON object ``{REF or NAME: {extra output keys}}`` merged into the output;
* ``CORPUS_WORKERS_FAIL``: comma-separated REFs or NAMEs whose every attempt fails with a retriable
  error (``RuntimeError("NAME failed at REF")``);
* ``CORPUS_WORKERS_FAIL_TERMINAL``: comma-separated REFs or NAMEs that fail without retries
  (FAILED_WITH_TERMINAL_ERROR) with reason ``NAME failed at REF``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from translator import NonRetryableError, worker_task
from translator.runtime.workers import TaskContext

EMIT = "CORPUS_WORKERS_EMIT"
FAIL = "CORPUS_WORKERS_FAIL"
FAIL_TERMINAL = "CORPUS_WORKERS_FAIL_TERMINAL"

# The SIMPLE task names used by the runnable corpus workflows (tests/test_corpus_runs.py checks
# that this list covers them).
TASK_NAMES = (
    "integration_task_0",
    "integration_task_1",
    "integration_task_2",
    "integration_task_3",
    "integration_task_4",
    "integration_task_5",
    "integration_task_10",
    "integration_task_20",
    "fail_on_purpose",
    "simple",
    "simple_1",
    "simple_2",
    "simple_3",
    "simple_task_in_sub_wf",
    "task_1",
    "task_4",
    "task_5",
    "task_6",
    "task_10",
    "task_11",
    "task_30",
    "task_optional",
    "task_permissive",
    "task_rt",
    "test_simple_task_with_rateLimits",
)


def output_for(name: str, ref: str, task_input: dict[str, Any]) -> dict[str, Any]:
    """The output of task ``name`` at reference ``ref`` (without CORPUS_WORKERS_EMIT)."""
    return {**task_input, "op": f"{name}.op", "uuid": f"{name}.uuid", "taskReferenceName": ref}


def _keys(name: str, ref: str) -> tuple[str, ...]:
    return (ref, ref.split("__")[0], name)


def _listed(variable: str, name: str, ref: str) -> bool:
    listed = {item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()}
    return any(key in listed for key in _keys(name, ref))


def _emitted(name: str, ref: str) -> dict[str, Any]:
    table = json.loads(os.environ.get(EMIT) or "{}")
    return next((table[key] for key in _keys(name, ref) if key in table), {})


def corpus_task(task_context: TaskContext, **task_input: Any) -> dict[str, Any]:
    """The worker of every name in TASK_NAMES (see the module docstring)."""
    name, ref = task_context.task_name, task_context.reference_task_name
    if _listed(FAIL_TERMINAL, name, ref):
        raise NonRetryableError(f"{name} failed at {ref}")
    if _listed(FAIL, name, ref):
        raise RuntimeError(f"{name} failed at {ref}")
    return {**output_for(name, ref, task_input), **_emitted(name, ref)}


for _name in TASK_NAMES:
    worker_task(_name)(corpus_task)
