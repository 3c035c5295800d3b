"""The built-in workers of the system tasks that run on the worker pool: HTTP (``http_task``) and
EVENT (``event_task``). The step executor calls them instead of a registered worker function, with
the same retries, timeouts and limits as any worker task.

HTTP steps go to their own queue (``translator_http_queue``, default ``http``) so that slow
endpoints do not hold the slots of other tasks; EVENT steps go where the task's other steps go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from translator.definitions.tasktypes import TaskType
from translator.errors import TranslatorError
from translator.runtime.event_task import publish_event
from translator.runtime.http_task import HttpTaskFailed, HttpTransportError, call_http
from translator.runtime.workers import TaskContext
from translator.settings import fetch_allow

_app: Celery | None = None  # the app whose broker EVENT publishes to (set by ``install``)


def bind(app: Celery) -> None:
    """Publish EVENT messages through ``app``'s broker connection."""
    global _app
    _app = app


class SystemTaskFailed(TranslatorError):
    """A system task failed with an output to keep (Conductor's ``response`` of a failed HTTP call)."""

    def __init__(self, message: str, output: dict[str, Any]) -> None:
        super().__init__(message)
        self.output = output

    def __reduce__(self):
        return (self.__class__, (self.message, self.output))


def run_system_task(
    task_type: str, task_input: dict[str, Any], context: TaskContext, workflow: Mapping[str, Any]
) -> dict[str, Any]:
    """Run one attempt of an HTTP or EVENT task; its output. Raises NonRetryableError for what retrying
    cannot fix, SystemTaskFailed (retried per the task definition) for a failed call, and other
    errors for network trouble."""
    if task_type == TaskType.HTTP:
        try:
            return call_http(task_input, allow=fetch_allow())
        except (HttpTaskFailed, HttpTransportError) as exc:  # Conductor: FAILED with its ``response``
            raise SystemTaskFailed(str(exc), exc.output) from None
    if task_type == TaskType.EVENT:
        if _app is None:
            raise TranslatorError("EVENT tasks need the Celery app (translator.runtime.celery_app.install)")
        with _app.connection_for_write() as connection:
            return publish_event(connection, task_input, workflow, task_ref=context.reference_task_name)
    raise TranslatorError(f"no built-in worker for task type {task_type}")
