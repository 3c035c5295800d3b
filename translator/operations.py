"""The Python API over a worker pool: start workflows, read them, wait for them, and operate them
(pause, resume, terminate, retry, restart, rerun, skip a task, remove), as Conductor's
``WorkflowClient`` does over REST. Every function talks to the pool that ``CELERY_BROKER_URL`` names
(its state store: ``TRANSLATOR_STATE_URL``, else the result backend, else the broker); ``settings``
overrides the environment. Re-exported by :mod:`translator`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from translator.engine.plan import Plan
from translator.runtime import lifecycle
from translator.settings import Settings


def load_workflow(
    definition: Path | str,
    taskdefs: list[Path] | None = None,
    definitions: list[Path] | None = None,
) -> Plan:
    """Load, validate and plan a workflow definition file; ``taskdefs``: task definition files or
    directories, ``definitions``: where sub-workflows and failure workflows are found. Raises
    DefinitionError with every issue (file and JSON pointer)."""
    from translator.runner import prepare

    return prepare(definition, [Path(p) for p in taskdefs or []], [Path(p) for p in definitions or []])


def start_workflow(
    workflow: Plan | Path | str,
    workflow_input: Mapping[str, Any] | None = None,
    *,
    correlation_id: str | None = None,
    priority: int = 0,
    settings: Settings | None = None,
) -> str:
    """Start ``workflow`` (a plan from :func:`load_workflow`, or a definition file) on the worker
    pool with ``workflow_input``; returns the workflow id at once. ``priority``: 0-99."""
    from translator.runner import pool_session, submit

    plan = workflow if isinstance(workflow, Plan) else load_workflow(workflow)
    session = pool_session(settings)
    return submit(session, plan, dict(workflow_input or {}), correlation_id=correlation_id, priority=priority)


def get_workflow(workflow_id: str, include_tasks: bool = True, *, settings: Settings | None = None) -> dict:
    """The execution as Conductor's ``GET /workflow/{id}`` shows it. Raises WorkflowNotFound."""
    from translator.errors import WorkflowNotFound

    execution = _session(settings).store.workflow(workflow_id, include_tasks=include_tasks)
    if execution is None:
        raise WorkflowNotFound(f"No such workflow found by id: {workflow_id}")
    return execution


def wait_for_workflow(
    workflow_id: str, timeout: float | None = None, *, settings: Settings | None = None
) -> dict:
    """Wait until the workflow has ended (or ``timeout`` seconds, then TranslatorError); returns the
    execution with its tasks."""
    from translator.runner import wait

    return wait(_session(settings).store, workflow_id, timeout=timeout, interval=0.2)


def pause_workflow(workflow_id: str, *, settings: Settings | None = None) -> None:
    """PAUSED: nothing new is scheduled until resumed. ConflictError when it has ended."""
    session = _session(settings)
    lifecycle.pause(session.app, session.store, workflow_id)


def resume_workflow(workflow_id: str, *, settings: Settings | None = None) -> None:
    """RUNNING again. ConflictError when it is not PAUSED."""
    session = _session(settings)
    lifecycle.resume(session.app, session.store, workflow_id)


def terminate_workflow(
    workflow_id: str, reason: str | None = None, *, settings: Settings | None = None
) -> None:
    """TERMINATED, its running tasks canceled and stopped. ConflictError when it COMPLETED."""
    session = _session(settings)
    lifecycle.terminate(session.app, session.store, workflow_id, reason)


def retry_workflow(workflow_id: str, *, settings: Settings | None = None) -> None:
    """Run an ended workflow again from its failed tasks. ConflictError when it is running or has
    nothing to retry."""
    session = _session(settings)
    lifecycle.retry(session.app, session.store, workflow_id)


def restart_workflow(
    workflow_id: str, latest: Plan | None = None, *, settings: Settings | None = None
) -> None:
    """Run an ended workflow again from the start (same id, original input); ``latest``: run this
    plan (the latest definition) instead of the one it ran."""
    session = _session(settings)
    lifecycle.restart(session.app, session.store, workflow_id, latest is not None, latest)


def rerun_workflow(
    workflow_id: str,
    from_task_id: str | None = None,
    *,
    task_input: Mapping[str, Any] | None = None,
    workflow_input: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Rerun an ended workflow from the task ``from_task_id`` (its taskId), or from the start;
    Conductor's RerunWorkflowRequest. Returns the workflow id."""
    session = _session(settings)
    request = {
        "reRunFromWorkflowId": workflow_id,
        "reRunFromTaskId": from_task_id,
        "taskInput": task_input,
        "workflowInput": workflow_input,
        "correlationId": correlation_id,
    }
    return lifecycle.rerun(session.app, session.store, workflow_id, request)


def skip_task(
    workflow_id: str,
    task_ref: str,
    *,
    task_input: Mapping[str, Any] | None = None,
    task_output: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> None:
    """Skip the task ``task_ref`` of a RUNNING workflow before it is reached (SKIPPED, with this
    input and output); ConflictError when it cannot be skipped."""
    session = _session(settings)
    request = {"taskInput": task_input, "taskOutput": task_output}
    lifecycle.skip_task(session.app, session.store, workflow_id, task_ref, request)


def remove_workflow(workflow_id: str, *, settings: Settings | None = None) -> None:
    """Delete the execution (terminated first when it is running)."""
    session = _session(settings)
    lifecycle.remove(session.app, session.store, workflow_id)


def _session(settings: Settings | None) -> Any:
    from translator.runner import pool_session

    return pool_session(settings)
