"""Sending work to the pool, and everything a stored decision says to do after it is stored.

A decision (``decide``) is stored first, then followed up here: its worker tasks are sent (one small
message each), its sub-workflows started, canceled attempts revoked, child workflows of an ended one
terminated; an ended workflow starts its failureWorkflow and reports to its parent's SUB_WORKFLOW
task. Each follow-up is also registered as a deadline by the write it follows (``wake``, ``child``,
``failure``, ``parent``), so the sweeper does it if the process dies first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from translator.engine.compiler import step_signature, timing_of
from translator.engine.deadlines import child_deadline, failure_deadline, parent_deadline, wake_deadline
from translator.engine.decide import (
    FAILURE_WORKFLOW_STATUSES,
    MAX_CONFLICTS,
    ChildStart,
    Dispatch,
    Transition,
    attempt_id,
    decide,
    step_of,
)
from translator.engine.plan import Plan
from translator.status import TaskStatus, WorkflowStatus
from translator.store.records import (
    FAILURE_WORKFLOW_KEY,
    failure_workflow_input,
    plan_of,
    start_workflow,
    store_records,
    terminate,
)
from translator.store.state import Deadline, Expect, Snapshot, StateStore, now_ms

log = logging.getLogger("translator.runtime.dispatch")
BROKER_RETRY_MS = 5000  # a message the broker refused is tried again this much later


def launch(
    app: Celery,
    store: StateStore,
    plan: Plan,
    workflow_input: Mapping[str, Any],
    *,
    workflow_id: str | None = None,
    correlation_id: str | None = None,
    priority: int = 0,
    parent: tuple[str, str] | None = None,
) -> str | None:
    """Create an execution and send its first tasks; the workflow id (None: ``workflow_id`` exists).

    Raises what the broker raises when a first task cannot be sent (the execution stays RUNNING;
    its wake deadline sends it later when the transport may lose messages)."""
    started = start_workflow(
        store,
        plan,
        workflow_input,
        workflow_id=workflow_id,
        correlation_id=correlation_id,
        priority=priority,
        timing=timing_of(app),
        parent=parent,
    )
    if started is None:
        return None
    wf_id, transition = started
    for dispatch in transition.send:
        _publish(app, wf_id, dispatch)
    rest = Transition(transition.change, children=transition.children, ended=transition.ended)
    follow_up(app, store, plan, wf_id, rest)
    return wf_id


def _publish(app: Celery, wf_id: str, dispatch: Dispatch) -> None:
    """Send the message of one attempt. Its Celery result is never stored (``StepTask.ignore_result``):
    the sender does not wait for one (no subscription to the result backend)."""
    signature = step_signature(app, dispatch.step, wf_id, dispatch.ref, dispatch.attempt, dispatch.countdown)
    signature.apply_async(ignore_result=True)


def send(app: Celery, store: StateStore, wf_id: str, dispatch: Dispatch) -> None:
    """Send one worker task; if the broker refuses it, its SCHEDULED record gets a wake deadline
    instead, so the sweeper sends it later (the decision is already stored)."""
    try:
        _publish(app, wf_id, dispatch)
    except (OperationalError, OSError) as exc:
        task_id = attempt_id(wf_id, dispatch.ref, dispatch.attempt)
        record = _task(store, wf_id, task_id)
        if record is None:
            raise
        log.warning("workflow %s: %s not sent (%s); the sweeper sends it later", wf_id, dispatch.ref, exc)
        deadline, due = wake_deadline(record)
        store.add_deadlines([(deadline, max(due, now_ms() + BROKER_RETRY_MS))])


def _task(store: StateStore, wf_id: str, task_id: str) -> dict[str, Any] | None:
    """One task record (read with the open ones: cheap whatever the workflow's length)."""
    return next((t for t in store.snapshot(wf_id, [task_id]).tasks if t["taskId"] == task_id), None)


def follow_up(app: Celery, store: StateStore, plan: Plan, wf_id: str, transition: Transition | None) -> None:
    """Do what a stored transition says after its write."""
    if transition is None:
        return
    for dispatch in transition.send:
        send(app, store, wf_id, dispatch)
    for child in transition.children:
        start_child(app, store, wf_id, child)
    if transition.revoke:
        try:
            app.control.revoke(transition.revoke, terminate=True, signal="SIGTERM")
        except Exception:
            log.warning("workflow %s: could not revoke %s", wf_id, transition.revoke, exc_info=True)
    for child_id in transition.stop_children:
        stop_workflow(app, store, child_id, f"Parent workflow {wf_id} ended")
    if transition.ended is not None:
        # The ending write registered a deadline for each follow-up it needs (``ended_deadlines``):
        # none, no follow-up (and nothing to read).
        kinds = {deadline.kind for deadline, _ in transition.change.add if deadline.wf == wf_id}
        if "failure" in kinds:
            start_failure_workflow(app, store, wf_id)
        if "parent" in kinds:
            notify_parent(app, store, wf_id)


def start_child(app: Celery, store: StateStore, wf_id: str, child: ChildStart) -> None:
    """Start a SUB_WORKFLOW's or START_WORKFLOW's workflow (once: its id is fixed)."""
    parent = (wf_id, child.parent_task) if child.parent_task else None
    started = launch(
        app,
        store,
        child.plan,
        child.input,
        workflow_id=child.workflow_id,
        correlation_id=child.correlation_id,
        parent=parent,
    )
    if started is None:
        _resend_if_unstarted(app, store, child.plan, child.workflow_id)
    store.done(_child_deadline(store, wf_id, child))
    log.info("workflow %s: %s started workflow %s (%s)", wf_id, child.ref, child.workflow_id, child.plan.name)


def _child_deadline(store: StateStore, wf_id: str, child: ChildStart) -> list[Deadline]:
    """The ``child`` deadline of the task that starts ``child`` (none if its record is gone)."""
    task_id = attempt_id(wf_id, child.ref, child.attempt)
    record = _task(store, wf_id, task_id)
    return [child_deadline(record)[0]] if record is not None else []


def stop_workflow(app: Celery, store: StateStore, wf_id: str, reason: str | None) -> bool:
    """Terminate a running workflow (its tasks canceled, its children terminated); no failureWorkflow
    is started for it, as with Conductor's terminate, but its parent hears of it."""
    transition = terminate(store, wf_id, reason)
    if transition is None:
        return False
    plan = plan_of(store, store.workflow_fields(wf_id) or {})
    if plan is not None:
        follow_up(app, store, plan, wf_id, transition)
    return True


CHILD_TASK_STATUS = {
    "COMPLETED": TaskStatus.COMPLETED,
    "FAILED": TaskStatus.FAILED,
    "TIMED_OUT": TaskStatus.TIMED_OUT,
    "TERMINATED": TaskStatus.CANCELED,
}


Build = Callable[[Snapshot, Plan], "tuple[Transition, Expect | None] | None"]


def decide_and_store(app: Celery, store: StateStore, wf_id: str, task_ids: list[str], build: Build) -> bool:
    """Read the execution (with records ``task_ids``), let ``build`` decide what changes, store it if
    nothing was stored meanwhile (else read and decide again), then follow it up. False when
    ``build`` had nothing to do or the record it expects changed."""
    for _ in range(MAX_CONFLICTS):
        snap = store.snapshot(wf_id, task_ids)
        plan = plan_of(store, snap.workflow) if snap.workflow is not None else None
        if snap.workflow is None or plan is None:
            return False
        made = build(snap, plan)
        if made is None:
            return False
        transition, expect = made
        saved = store.apply(wf_id, transition.change, expect=expect, rev=int(snap.workflow.get("_rev") or 0))
        if saved.applied:
            follow_up(app, store, plan, wf_id, transition)
            return True
        if not saved.conflict:
            return False
    raise RuntimeError(f"workflow {wf_id}: no decision could be stored after {MAX_CONFLICTS} conflicts")


def child_failure_reason(child_id: str, child: dict[str, Any]) -> str:
    """The reason a SUB_WORKFLOW task gets from a child that did not complete, as Conductor words
    it (``SubWorkflow.updateTaskStatus``): ``Sub workflow <name>.<version>/<id> failure reason: …``."""
    short = f"{child.get('workflowName')}.{child.get('workflowVersion')}/{child_id}"
    return f"Sub workflow {short} failure reason: {child.get('reasonForIncompletion')}"


def notify_parent(app: Celery, store: StateStore, child_id: str) -> None:
    """Report an ended sub-workflow to its parent's SUB_WORKFLOW task, which ends with the child's
    status (TERMINATED: CANCELED), output and reason; then the parent goes on (``decide``)."""
    child = store.workflow_fields(child_id)
    if child is None or not WorkflowStatus(child["status"]).terminal or not child.get("parentWorkflowId"):
        store.done([parent_deadline(child_id)])
        return
    parent_id, task_id = child["parentWorkflowId"], child.get("parentWorkflowTaskId")

    def build(snap: Snapshot, plan: Plan) -> tuple[Transition, Expect | None] | None:
        record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
        workflow = snap.workflow or {}
        if record is None or record["status"] != "IN_PROGRESS" or WorkflowStatus(workflow["status"]).terminal:
            return None
        status = CHILD_TASK_STATUS[child["status"]]
        node = plan.node(record["referenceTaskName"])
        if status is not TaskStatus.COMPLETED and getattr(getattr(node, "policy", None), "optional", False):
            status = TaskStatus.COMPLETED_WITH_ERRORS
        now = now_ms()
        output = child.get("output") if isinstance(child.get("output"), dict) else {}
        updated = {
            **record,
            "status": status.value,
            "outputData": {**output, "subWorkflowId": child_id},
            "endTime": now,
            "updateTime": now,
            "executed": True,
        }
        if status is not TaskStatus.COMPLETED:
            updated["reasonForIncompletion"] = child_failure_reason(child_id, child)
        transition = decide(plan, workflow, store_records(store, parent_id, snap), [updated], timing_of(app))
        transition.change.drop.append(child_deadline(record)[0])
        return transition, (task_id, "IN_PROGRESS", int(record.get("startTime") or 0))

    decide_and_store(app, store, parent_id, [task_id] if task_id else [], build)
    store.done([parent_deadline(child_id)])


def start_failure_workflow(app: Celery, store: StateStore, wf_id: str) -> str | None:
    """Start the failureWorkflow of an ended execution, once (its id is fixed in the execution's
    output when it ends). Returns its id, or None when there is none to start."""
    from translator.engine.decide import failure_plan

    fields = store.workflow_fields(wf_id)
    plan = plan_of(store, fields) if fields is not None else None
    if fields is None or plan is None:
        return None
    output = fields.get("output")
    failure_id = output.get(FAILURE_WORKFLOW_KEY) if isinstance(output, dict) else None
    failure = failure_plan(plan, fields)
    if not failure_id or failure is None or WorkflowStatus(fields["status"]) not in FAILURE_WORKFLOW_STATUSES:
        store.done([failure_deadline(wf_id)])
        return None
    execution = store.workflow(wf_id)
    if execution is None:
        return None
    try:
        started = launch(
            app,
            store,
            failure,
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
        _resend_if_unstarted(app, store, failure, failure_id)
    store.done([failure_deadline(wf_id)])
    return failure_id


def _resend_if_unstarted(app: Celery, store: StateStore, plan: Plan, wf_id: str) -> None:
    """Send again the first tasks of a workflow none of whose tasks has started (its creator died
    before sending them; a duplicate message is harmless)."""
    execution = store.workflow(wf_id)
    if execution is None or execution["status"] != WorkflowStatus.RUNNING.value:
        return
    tasks = execution.get("tasks") or []
    if any(
        t["status"] != "SCHEDULED" for t in tasks if t.get("workflowTask") is not None or _is_worker(plan, t)
    ):
        return
    for task in tasks:
        if task["status"] == "SCHEDULED" and _is_worker(plan, task):
            dispatch = Dispatch(task["referenceTaskName"], step_of(plan, task), int(task["retryCount"]), 0)
            send(app, store, wf_id, dispatch)


def _is_worker(plan: Plan, record: Mapping[str, Any]) -> bool:
    try:
        step_of(plan, record)
    except KeyError:
        return False
    return True


def resend(app: Celery, store: StateStore, plan: Plan, wf_id: str, record: Mapping[str, Any]) -> None:
    """Send a SCHEDULED attempt again (a parked one that is due, or one whose message was lost)."""
    dispatch = Dispatch(record["referenceTaskName"], step_of(plan, record), int(record["retryCount"]), 0)
    send(app, store, wf_id, dispatch)


def follow(app: Celery, store: StateStore, plan: Plan, wf_id: str, result: Any) -> None:
    """Carry a workflow on after an attempt was decided outside a step (a killed step, a deadline):
    send its retry, or follow up the stored transition."""
    from translator.runtime.step import Outcome

    if result.outcome is Outcome.RETRY:
        record = _task(store, wf_id, result.task_id) if result.task_id else None
        if record is not None:
            dispatch = Dispatch(
                record["referenceTaskName"], step_of(plan, record), result.attempt, result.countdown
            )
            send(app, store, wf_id, dispatch)
    elif result.outcome is Outcome.CONTINUE:
        follow_up(app, store, plan, wf_id, result.transition)
