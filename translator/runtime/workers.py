"""Worker functions: plain Python functions registered as the worker of a Conductor task name.

    @worker_task("image_convert_resize")
    def resize(fileLocation: str, outputWidth: int = 100) -> dict:
        ...
        return {"fileLocation": path}

The task's input keys are bound to keyword parameters (extra keys are dropped unless the function
takes ``**kwargs``); a parameter named ``task_context`` receives a :class:`TaskContext`. The
function returns a dict (the task's output) or None (empty output). Raise
:class:`translator.NonRetryableError` for a failure that must not be retried; any other exception
fails the attempt and is retried according to the task definition.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from translator.errors import NonRetryableError, UsageError

CONTEXT_PARAMETER = "task_context"


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a worker may know about the task instance it runs."""

    workflow_id: str
    task_id: str
    reference_task_name: str
    task_name: str
    retry_count: int
    worker_id: str
    beat: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def heartbeat(self) -> None:
        """Tell the runtime this attempt is alive: its responseTimeoutSeconds counts from now.

        A worker that runs longer than its task's responseTimeoutSeconds must call this (as a
        Conductor worker updates its task IN_PROGRESS), or the attempt is timed out and retried."""
        if self.beat is not None:
            self.beat()


@dataclass(frozen=True)
class Worker:
    task_name: str
    function: Callable[..., Any]
    accepts_any: bool
    parameters: tuple[str, ...]
    required: tuple[str, ...]
    wants_context: bool

    def call(self, task_input: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        """Run the function on a task input; returns the output dict."""
        missing = [name for name in self.required if name not in task_input]
        if missing:
            raise NonRetryableError(
                f"input key(s) {', '.join(missing)} missing for worker of task {self.task_name!r}"
            )
        if self.accepts_any:
            kwargs = {k: v for k, v in task_input.items() if k != CONTEXT_PARAMETER}
        else:
            kwargs = {k: task_input[k] for k in self.parameters if k in task_input}
        if self.wants_context:
            kwargs[CONTEXT_PARAMETER] = context
        result = self.function(**kwargs)
        return _as_output(result, self.task_name)


def _as_output(result: Any, task_name: str) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise NonRetryableError(
            f"worker of task {task_name!r} returned {type(result).__name__}; it must return a dict"
        )
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise NonRetryableError(f"worker of task {task_name!r} returned non-JSON output: {exc}") from None


_REGISTRY: dict[str, Worker] = {}


def worker_task(task_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the worker of Conductor task ``task_name``."""
    if not task_name or not isinstance(task_name, str):
        raise UsageError("worker_task needs a non-empty task name")

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(task_name)
        if existing is not None and existing.function is not function:
            qualified = f"{existing.function.__module__}.{existing.function.__qualname__}"
            if qualified != f"{function.__module__}.{function.__qualname__}":
                raise UsageError(f"task {task_name!r} already has a worker: {qualified}")
        signature = inspect.signature(function)
        params = signature.parameters.values()
        positional_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = tuple(p.name for p in params if p.kind in positional_kinds and p.name != CONTEXT_PARAMETER)
        required = tuple(
            p.name
            for p in params
            if p.kind in positional_kinds
            and p.default is inspect.Parameter.empty
            and p.name != CONTEXT_PARAMETER
        )
        _REGISTRY[task_name] = Worker(
            task_name=task_name,
            function=function,
            accepts_any=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
            parameters=names,
            required=required,
            wants_context=CONTEXT_PARAMETER in signature.parameters,
        )
        return function

    return register


def get_worker(task_name: str) -> Worker | None:
    return _REGISTRY.get(task_name)


def registered_task_names() -> list[str]:
    return sorted(_REGISTRY)
