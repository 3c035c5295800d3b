"""translator: run Netflix/Orkes Conductor workflow definitions on Celery.

Public API (pinned by tests/test_public_api.py):

* ``worker_task(name)`` — register a function as the worker of a Conductor task name;
* ``NonRetryableError`` — raise it in a worker to fail the task without retries;
* ``TaskContext`` — what a worker may ask for with a ``task_context`` parameter;
* ``resolve(template, document)`` — Conductor's ``${...}`` resolution;
* ``complete_task(workflow_id, task_ref, status, output)`` — end a HUMAN / WAIT / asyncComplete task
  of a workflow the worker pool runs, from outside;
* workflows on the worker pool (``translator.operations``, docs/lifecycle.md): ``load_workflow``,
  ``start_workflow``, ``get_workflow``, ``wait_for_workflow``, ``pause_workflow``, ``resume_workflow``,
  ``terminate_workflow``, ``retry_workflow``, ``restart_workflow``, ``rerun_workflow``, ``skip_task``,
  ``remove_workflow``;
* the error hierarchy (``TranslatorError`` and its subclasses).
"""

from translator.definitions.expressions import resolve
from translator.errors import (
    BrokerUnavailable,
    ConflictError,
    DefinitionError,
    DefinitionNotFound,
    ExpressionError,
    NonRetryableError,
    TaskNotPending,
    TranslatorError,
    UnsupportedExpression,
    UsageError,
    WorkflowNotFound,
)
from translator.operations import (
    get_workflow,
    load_workflow,
    pause_workflow,
    remove_workflow,
    rerun_workflow,
    restart_workflow,
    resume_workflow,
    retry_workflow,
    skip_task,
    start_workflow,
    terminate_workflow,
    wait_for_workflow,
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
    "ConflictError",
    "DefinitionError",
    "DefinitionNotFound",
    "ExpressionError",
    "NonRetryableError",
    "TaskContext",
    "TaskNotPending",
    "TranslatorError",
    "UnsupportedExpression",
    "UsageError",
    "WorkflowNotFound",
    "complete_task",
    "get_workflow",
    "load_workflow",
    "pause_workflow",
    "remove_workflow",
    "rerun_workflow",
    "resolve",
    "restart_workflow",
    "resume_workflow",
    "retry_workflow",
    "skip_task",
    "start_workflow",
    "terminate_workflow",
    "wait_for_workflow",
    "worker_task",
]
