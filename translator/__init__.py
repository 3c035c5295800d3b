"""translator: run Netflix/Orkes Conductor workflow definitions on Celery.

Public API (pinned by tests/test_public_api.py):

* ``worker_task(name)`` — register a function as the worker of a Conductor task name;
* ``NonRetryableError`` — raise it in a worker to fail the task without retries;
* ``TaskContext`` — what a worker may ask for with a ``task_context`` parameter;
* ``resolve(template, document)`` — Conductor's ``${...}`` resolution;
* ``complete_task(workflow_id, task_ref, status, output)`` — end a HUMAN / WAIT / asyncComplete task
  of a workflow the worker pool runs, from outside;
* the error hierarchy (``TranslatorError`` and its subclasses).
"""

from translator.definitions.expressions import resolve
from translator.errors import (
    BrokerUnavailable,
    DefinitionError,
    ExpressionError,
    NonRetryableError,
    TaskNotPending,
    TranslatorError,
    UnsupportedExpression,
    UsageError,
    WorkflowNotFound,
)
from translator.runtime.workers import TaskContext, worker_task


def complete_task(
    workflow_id: str,
    task_ref: str,
    status: str = "COMPLETED",
    output: dict | None = None,
    reason: str | None = None,
) -> dict:
    """End the pending task ``task_ref`` of workflow ``workflow_id`` (a HUMAN task, a WAIT without a
    time, an ``asyncComplete`` task) with ``status`` (COMPLETED, FAILED, FAILED_WITH_TERMINAL_ERROR)
    and ``output`` merged into its output, as Conductor's ``POST /tasks/{workflowId}/{taskRef}/{status}``;
    the workflow goes on, on the worker pool (``CELERY_BROKER_URL``). Returns the task as recorded.
    Raises WorkflowNotFound, TaskNotPending, UsageError."""
    from translator.runner import complete_task as complete

    return complete(workflow_id, task_ref, status, output, reason)


__all__ = [
    "BrokerUnavailable",
    "DefinitionError",
    "ExpressionError",
    "NonRetryableError",
    "TaskContext",
    "TaskNotPending",
    "TranslatorError",
    "UnsupportedExpression",
    "UsageError",
    "WorkflowNotFound",
    "complete_task",
    "resolve",
    "worker_task",
]
