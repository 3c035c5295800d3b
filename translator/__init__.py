"""translator: run Netflix/Orkes Conductor workflow definitions on Celery.

Public API (pinned by tests/test_public_api.py):

* ``worker_task(name)`` — register a function as the worker of a Conductor task name;
* ``NonRetryableError`` — raise it in a worker to fail the task without retries;
* ``TaskContext`` — what a worker may ask for with a ``task_context`` parameter;
* ``resolve(template, document)`` — Conductor's ``${...}`` resolution;
* the error hierarchy (``TranslatorError`` and its subclasses).
"""

from translator.definitions.expressions import resolve
from translator.errors import (
    BrokerUnavailable,
    DefinitionError,
    ExpressionError,
    NonRetryableError,
    TranslatorError,
    UnsupportedExpression,
    UsageError,
    WorkflowNotFound,
)
from translator.runtime.workers import TaskContext, worker_task

__all__ = [
    "BrokerUnavailable",
    "DefinitionError",
    "ExpressionError",
    "NonRetryableError",
    "TaskContext",
    "TranslatorError",
    "UnsupportedExpression",
    "UsageError",
    "WorkflowNotFound",
    "resolve",
    "worker_task",
]
