"""Sending work to the pool: new workflows, continuations decided outside a running chain (by the
sweeper or a timed-out step's errback), and failure workflows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from translator.compiler import compile_plan, park_after, resend_after
from translator.deadlines import failure_deadline, wake_deadline
from translator.plan import Plan
from translator.records import (
    FAILURE_WORKFLOW_KEY,
    FAILURE_WORKFLOW_STATUSES,
    attempt_id,
    failure_workflow_input,
    plan_of,
    start_workflow,
)
from translator.runtime import Outcome, StepResult
from translator.state import StateStore, now_ms
from translator.status import WorkflowStatus

log = logging.getLogger("translator.dispatch")
BROKER_RETRY_MS = 5000  # a continuation the broker refused is tried again this much later


def launch(
    app: Celery,
    store: StateStore,
    plan: Plan,
    workflow_input: Mapping[str, Any],
    *,
    workflow_id: str | None = None,
    correlation_id: str | None = None,
) -> str | None:
    """Create an execution and send its canvas; the workflow id (None: ``workflow_id`` exists).

    Raises what the broker raises when the canvas cannot be sent (the execution stays RUNNING)."""
    parking = park_after(app)
    wf_id = start_workflow(
        store,
        plan,
        workflow_input,
        workflow_id=workflow_id,
        correlation_id=correlation_id,
        park_after=parking,
        resend_after=resend_after(app),
    )
    if wf_id is None:
        return None
    steps = plan.steps()
    if steps and steps[0].policy.start_delay > parking:
        return wf_id  # parked: its wake deadline sends the first step when it is due
    compile_plan(plan, wf_id, app).apply_async()
    return wf_id


def send_from(
    app: Celery, plan: Plan, wf_id: str, ref: str, attempt: int = 0, countdown: float | None = None
) -> None:
    """Send the rest of a workflow: step ``ref`` (as attempt ``attempt``) and the steps after it."""
    compile_plan(plan, wf_id, app, start=ref, attempt=attempt, countdown=countdown).apply_async()


def follow(app: Celery, store: StateStore, plan: Plan, wf_id: str, ref: str, result: StepResult) -> None:
    """Carry a workflow on after an attempt of ``ref`` was decided outside its chain."""
    if result.outcome is Outcome.RETRY:
        _send_or_wake(app, store, plan, wf_id, ref, result.attempt, result.countdown)
    elif result.outcome is Outcome.CONTINUE:
        following = plan.next_ref(ref)
        if following is not None:
            _send_or_wake(app, store, plan, wf_id, following, 0, None)
    if result.ended in FAILURE_WORKFLOW_STATUSES:
        start_failure_workflow(app, store, wf_id)


def _send_or_wake(
    app: Celery, store: StateStore, plan: Plan, wf_id: str, ref: str, attempt: int, countdown: float | None
) -> None:
    """Send the continuation; if the broker refuses it, the recorded SCHEDULED attempt gets a wake
    deadline instead, so the sweeper sends it later (the decision is already stored)."""
    try:
        send_from(app, plan, wf_id, ref, attempt, countdown)
    except (OperationalError, OSError) as exc:
        record = next((t for t in store.tasks(wf_id) if t["taskId"] == attempt_id(wf_id, ref, attempt)), None)
        if record is None:
            raise
        log.warning("workflow %s: %s not sent (%s); the sweeper sends it later", wf_id, ref, exc)
        deadline, due = wake_deadline(record)
        store.add_deadlines([(deadline, max(due, now_ms() + BROKER_RETRY_MS))])


def start_failure_workflow(app: Celery, store: StateStore, wf_id: str) -> str | None:
    """Start the failureWorkflow of an ended execution, once (its id is fixed in the execution's
    output when it ends). Returns its id, or None when there is none to start."""
    fields = store.workflow_fields(wf_id)
    plan = plan_of(store, fields) if fields is not None else None
    if fields is None or plan is None or plan.failure is None:
        return None
    output = fields.get("output")
    failure_id = output.get(FAILURE_WORKFLOW_KEY) if isinstance(output, dict) else None
    if not failure_id or WorkflowStatus(fields["status"]) not in FAILURE_WORKFLOW_STATUSES:
        store.done([failure_deadline(wf_id)])
        return None
    execution = store.workflow(wf_id)
    if execution is None:
        return None
    try:
        started = launch(
            app,
            store,
            plan.failure,
            failure_workflow_input(execution),
            workflow_id=failure_id,
            correlation_id=execution.get("correlationId"),
        )
    except Exception:
        # Created but not sent: the failure deadline comes back and sends it (below).
        log.warning("workflow %s: failure workflow %s not sent", wf_id, failure_id, exc_info=True)
        return failure_id
    if started is not None:
        log.info("workflow %s %s: failure workflow %s started", wf_id, fields["status"], failure_id)
    else:  # created earlier: send it again if it never started (a duplicate message is harmless)
        _resend_if_unstarted(app, store, plan.failure, failure_id)
    store.done([failure_deadline(wf_id)])
    return failure_id


def _resend_if_unstarted(app: Celery, store: StateStore, plan: Plan, wf_id: str) -> None:
    execution = store.workflow(wf_id)
    if execution is None or execution["status"] != WorkflowStatus.RUNNING.value:
        return
    tasks = execution.get("tasks") or []
    if len(tasks) == 1 and tasks[0]["status"] == "SCHEDULED":
        send_from(app, plan, wf_id, tasks[0]["referenceTaskName"])
