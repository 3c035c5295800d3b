"""Ending a task from outside the worker pool: how HUMAN, WAIT without a time and ``asyncComplete``
tasks end (Conductor's ``POST /tasks/{workflowId}/{taskRefName}/{status}``), and how the sweeper
ends a WAIT whose time has passed, times out a WAIT / HUMAN per its task definition and starts a
retried WAIT whose delay is over.

The pending task of a reference (the newest that is not terminal) gets the status, its output merged
with the given one (Conductor's ``TaskResult``) and the reason; the workflow then goes on
(``decide``), in one atomic write that is decided again if another write came first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery

from translator.engine.compiler import timing_of
from translator.engine.deadlines import attempt_deadlines, wait_deadlines, waiting_started, wake_deadline
from translator.engine.decide import Records, Transition, attempt_id, decide, next_attempt, step_of
from translator.engine.plan import Plan, Step, Wait, base_ref
from translator.errors import TaskNotPending, UsageError, WorkflowNotFound
from translator.runtime.dispatch import decide_and_store
from translator.status import TaskStatus, WorkflowStatus
from translator.store.records import store_records
from translator.store.state import Change, Deadline, Expect, Snapshot, StateStore, now_ms

log = logging.getLogger("translator.runtime.complete")

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
    node = _wait_node(plan, record)
    if node is not None:
        return wait_deadlines(record, node)
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
    ended), UsageError (a status that cannot be set from outside, or a FAILED that a worker task's
    retries would have to retry; a WAIT / HUMAN with retries left is retried)."""
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
        records = store_records(store, workflow_id, snap)
        node = _wait_node(plan, record)
        if node is not None and status is not TaskStatus.COMPLETED:  # WAIT / HUMAN: retried as any task
            updated = _ended_record(record, status, output, reason, now_ms())
            transition = _retry_or_decide(app, plan, node, workflow, records, updated, True)
        else:
            _check_retries(plan, record, status)
            final = status
            if status is not TaskStatus.COMPLETED and _optional(plan, record):
                final = TaskStatus.COMPLETED_WITH_ERRORS  # as the decider ends a failed optional task
            updated = _ended_record(record, final, output, reason, now_ms())
            transition = decide(plan, workflow, records, [updated], timing_of(app))
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
        transition.change.drop += _deadlines_of(plan, record)
        return transition, (record["taskId"], record["status"], int(record.get("startTime") or 0))

    decide_and_store(app, store, wf_id, [], build)


def _wait_node(plan: Plan, record: Mapping[str, Any]) -> Wait | None:
    try:
        node = plan.node(record["referenceTaskName"])
    except KeyError:
        return None
    return node if isinstance(node, Wait) else None


def _waiting(snap: Snapshot, plan: Plan, task_id: str) -> tuple[dict[str, Any], Wait] | None:
    """The WAIT / HUMAN record ``task_id`` of a workflow that has not ended, and its plan node."""
    record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
    if snap.workflow is None or WorkflowStatus(snap.workflow["status"]).terminal or record is None:
        return None
    node = _wait_node(plan, record)
    return (record, node) if node is not None else None


def wait_timed_out(app: Celery, store: StateStore, deadline: Deadline) -> None:
    """A WAIT / HUMAN attempt's ``wait_timeout`` (TaskDef timeoutSeconds: DeciderService.checkTaskTimeout)
    or ``wait_response`` (a HUMAN's responseTimeoutSeconds: isResponseTimedOut) fell due: if it still
    waits, it is TIMED_OUT; then a retry per its retry policy (none after TIME_OUT_WF: the workflow
    times out), else the decision that follows a failure."""
    task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)

    def build(snap: Snapshot, plan: Plan) -> tuple[Transition, Expect | None] | None:
        workflow = snap.workflow or {}
        found = _waiting(snap, plan, task_id)
        if found is None:
            return None
        record, node = found
        if record["status"] != "IN_PROGRESS" or int(record.get("startTime") or 0) != deadline.token:
            return None
        policy, now = node.policy, now_ms()
        if deadline.kind == "wait_response":
            reason = (
                f"responseTimeout: {policy.response_timeout_seconds} exceeded for the taskId: "
                f"{task_id} with Task Definition: {record.get('taskDefName')}"
            )
            time_out_workflow = False  # DeciderService.timeoutTask: the retry rules only
        else:
            started = deadline.token + int(record.get("startDelayInSeconds") or 0) * 1000
            reason = (
                f"Task timed out after {(now - started) // 1000} seconds. Timeout configured as "
                f"{policy.timeout_seconds} seconds. Timeout policy configured to {policy.timeout_policy}"
            )
            time_out_workflow = policy.timeout_policy == "TIME_OUT_WF"
        log.warning("workflow %s task %s: %s", deadline.wf, deadline.ref, reason)
        timed_out = _ended_record(record, TaskStatus.TIMED_OUT, None, reason, now)
        records = store_records(store, deadline.wf, snap)
        transition = _retry_or_decide(app, plan, node, workflow, records, timed_out, not time_out_workflow)
        transition.change.drop += wait_deadlines(record, node)
        return transition, (task_id, "IN_PROGRESS", deadline.token)

    decide_and_store(app, store, deadline.wf, [task_id], build)


def _retry_or_decide(
    app: Celery,
    plan: Plan,
    node: Wait,
    workflow: Mapping[str, Any],
    records: Records,
    failed: dict[str, Any],
    may_retry: bool,
) -> Transition:
    """After a WAIT / HUMAN attempt failed or timed out: a new attempt when its retries allow
    (DeciderService.retry: retryCount, retryLogic, retryDelaySeconds), else the decision that
    follows (an optional task ends COMPLETED_WITH_ERRORS; otherwise the workflow fails, or times
    out, unless it is permissive)."""
    policy, attempt = node.policy, int(failed.get("retryCount") or 0)
    if may_retry and TaskStatus(failed["status"]).retriable and attempt < policy.retry_count:
        failed["retried"] = True
        retry = wait_retry_record(node, failed, records.seq + 1, policy.retry_delay(attempt).seconds)
        change = Change()
        change.write(failed)
        change.create(retry)
        if retry["status"] == TaskStatus.SCHEDULED.value:
            change.add.append(wake_deadline(retry))
        else:
            change.add += waiting_started(retry, node)
        return Transition(change)
    if policy.optional:
        failed["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
    return decide(plan, workflow, records, [failed], timing_of(app))


def wait_retry_record(node: Wait, failed: Mapping[str, Any], seq: int, delay: int) -> dict[str, Any]:
    """The next attempt of a WAIT / HUMAN task, a copy of the failed one as DeciderService.retry makes
    it (its input and ``waitTimeout`` kept, its delay as startDelayInSeconds and
    callbackAfterSeconds). A WAIT is SCHEDULED until its delay is over (a ``wake`` deadline starts
    it); a HUMAN, a synchronous system task, starts at once."""
    now = now_ms()
    retry = next_attempt(
        failed,
        seq,
        now,
        executed=False,
        status=TaskStatus.SCHEDULED.value,
        outputData={},
        pollCount=0,
        startTime=0,
        endTime=0,
        startDelayInSeconds=delay,
        callbackAfterSeconds=delay,
    )
    if node.type == "HUMAN" or delay <= 0:
        retry.update(status=TaskStatus.IN_PROGRESS.value, startTime=now)
    return retry


def wait_wake(app: Celery, store: StateStore, deadline: Deadline) -> None:
    """A retried WAIT's delay is over: it starts waiting (IN_PROGRESS; its ``waitTimeout``, kept from
    the first attempt as Conductor keeps it, completes it at once when already past)."""
    task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)

    def build(snap: Snapshot, plan: Plan) -> tuple[Transition, Expect | None] | None:
        found = _waiting(snap, plan, task_id)
        if found is None:
            return None
        record, node = found
        if record["status"] != "SCHEDULED" or int(record["scheduledTime"]) != deadline.token:
            return None
        now = now_ms()
        started = {**record, "status": TaskStatus.IN_PROGRESS.value, "startTime": now, "updateTime": now}
        change = Change(add=waiting_started(started, node), drop=[deadline])
        change.write(started)
        return Transition(change), (task_id, "SCHEDULED", 0)

    decide_and_store(app, store, deadline.wf, [task_id], build)


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
    """A FAILED from outside that a worker task's definition would retry is refused (retrying it is
    not supported): end it FAILED_WITH_TERMINAL_ERROR instead, or COMPLETED. (A WAIT / HUMAN is
    retried: ``_retry_or_decide``.)"""
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
