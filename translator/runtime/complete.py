"""Ending a task from outside the worker pool: how HUMAN, WAIT without a time and ``asyncComplete``
tasks end (Conductor's ``POST /tasks/{workflowId}/{taskRefName}/{status}``), and how the sweeper
ends a WAIT whose time has passed.

The pending task of a reference (the newest that is not terminal) gets the status, its output merged
with the given one (Conductor's ``TaskResult``) and the reason; the workflow then goes on
(``decide``), in one atomic write that is decided again if another write came first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from translator.engine.compiler import timing_of
from translator.engine.deadlines import attempt_deadlines, wait_deadline
from translator.engine.decide import Transition, decide, step_of
from translator.engine.plan import Plan, Step, base_ref
from translator.errors import TaskNotPending, UsageError, WorkflowNotFound
from translator.runtime.dispatch import decide_and_store
from translator.status import TaskStatus, WorkflowStatus
from translator.store.records import store_records
from translator.store.state import Expect, Snapshot, StateStore, now_ms

OUTSIDE_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR)


def pending_task(snap: Snapshot, ref: str) -> dict[str, Any] | None:
    """The newest open record of ``ref`` (``ref__N`` of a DO_WHILE body task, or its plain reference
    for the newest iteration)."""
    found = [
        t
        for t in snap.tasks
        if t["taskId"] in snap.open_ids and ref in (t["referenceTaskName"], base_ref(t["referenceTaskName"]))
    ]
    return max(found, key=lambda t: (int(t.get("seq") or 0), int(t.get("retryCount") or 0)), default=None)


def _ended_record(
    record: Mapping[str, Any],
    status: TaskStatus,
    output: Mapping[str, Any] | None,
    reason: str | None,
    now: int,
) -> dict[str, Any]:
    updated = {
        **record,
        "status": status.value,
        "outputData": {**(record.get("outputData") or {}), **(output or {})},
        "endTime": now,
        "updateTime": now,
        "executed": True,
    }
    if not record.get("startTime"):
        updated["startTime"] = now
    if reason is not None:
        updated["reasonForIncompletion"] = reason
    return updated


def _deadlines_of(plan: Plan, record: Mapping[str, Any]) -> list[Any]:
    """The deadlines an open record registered, dropped when it ends."""
    if record.get("waitTimeout"):
        return [wait_deadline(record, int(record["waitTimeout"]))[0]]
    try:
        step = step_of(plan, record)
    except KeyError:
        return []
    return attempt_deadlines(record, step) if isinstance(step, Step) else []


def complete_task(
    app: Celery,
    store: StateStore,
    workflow_id: str,
    ref: str,
    status: TaskStatus | str,
    output: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """End the pending task ``ref`` of workflow ``workflow_id`` with ``status`` (COMPLETED, FAILED or
    FAILED_WITH_TERMINAL_ERROR) and ``output``; the workflow goes on. Returns the ended record.

    Raises WorkflowNotFound, TaskNotPending (nothing of ``ref`` is pending, or the workflow has
    ended), UsageError (a status that cannot be set from outside, or a FAILED that the task's
    retries would have to retry)."""
    status = TaskStatus(status) if isinstance(status, str) else status
    if status not in OUTSIDE_STATUSES:
        allowed = ", ".join(s.value for s in OUTSIDE_STATUSES)
        raise UsageError(f"a task can be ended from outside as {allowed}, not {status.value}")
    if output is not None and not isinstance(output, Mapping):
        raise UsageError("a task's output must be a JSON object")
    ended: dict[str, Any] = {}

    def build(snap: Snapshot, plan: Plan) -> tuple[Transition, Expect | None] | None:
        workflow = snap.workflow or {}
        if WorkflowStatus(workflow["status"]).terminal:
            raise TaskNotPending(f"workflow {workflow_id} has ended ({workflow['status']})")
        record = pending_task(snap, ref)
        if record is None:
            raise TaskNotPending(f"workflow {workflow_id} has no pending task {ref!r}")
        _check_retries(plan, record, status)
        final = status
        if status is not TaskStatus.COMPLETED and _optional(plan, record):
            final = TaskStatus.COMPLETED_WITH_ERRORS  # as the decider ends a failed optional task
        updated = _ended_record(record, final, output, reason, now_ms())
        transition = decide(
            plan, workflow, store_records(store, workflow_id, snap), [updated], timing_of(app)
        )
        transition.change.drop += _deadlines_of(plan, record)
        ended.clear()
        ended.update(updated)
        return transition, (record["taskId"], record["status"], int(record.get("startTime") or 0))

    if not decide_and_store(app, store, workflow_id, [], build):
        if store.workflow_fields(workflow_id) is None:
            raise WorkflowNotFound(f"no workflow {workflow_id} in the state store")
        raise TaskNotPending(f"workflow {workflow_id}: task {ref!r} ended meanwhile")
    return ended


def wait_over(app: Celery, store: StateStore, wf_id: str, ref: str, token: int) -> None:
    """A ``wait`` deadline fell due: complete the WAIT task it was set for, if it still waits."""

    def build(snap: Snapshot, plan: Plan) -> tuple[Transition, Expect | None] | None:
        workflow = snap.workflow or {}
        record = pending_task(snap, ref)
        if WorkflowStatus(workflow["status"]).terminal or record is None:
            return None
        if int(record.get("scheduledTime") or 0) != token or record["status"] != "IN_PROGRESS":
            return None
        updated = _ended_record(record, TaskStatus.COMPLETED, None, None, now_ms())
        transition = decide(plan, workflow, store_records(store, wf_id, snap), [updated], timing_of(app))
        return transition, (record["taskId"], record["status"], int(record.get("startTime") or 0))

    decide_and_store(app, store, wf_id, [], build)


def _node_policy(plan: Plan, record: Mapping[str, Any]) -> Any:
    try:
        node: Any = (
            step_of(plan, record) if record.get("workflowTask") else plan.node(record["referenceTaskName"])
        )
    except KeyError:
        return None
    return getattr(node, "policy", None)


def _optional(plan: Plan, record: Mapping[str, Any]) -> bool:
    policy = _node_policy(plan, record)
    return bool(policy is not None and policy.optional)


def _check_retries(plan: Plan, record: Mapping[str, Any], status: TaskStatus) -> None:
    """A FAILED from outside that the task's definition would retry is refused (retrying it is not
    supported): end it FAILED_WITH_TERMINAL_ERROR instead, or COMPLETED."""
    policy = _node_policy(plan, record)
    if (
        status is TaskStatus.FAILED
        and policy is not None
        and int(record.get("retryCount") or 0) < policy.retry_count
    ):
        raise UsageError(
            f"task {record['referenceTaskName']!r} has retries left (retryCount {policy.retry_count}): "
            "retrying a task failed from outside is not supported; end it FAILED_WITH_TERMINAL_ERROR"
        )
