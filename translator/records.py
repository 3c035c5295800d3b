"""Execution records in Conductor's Workflow/Task shape: building them, starting and ending workflows.

The evaluation document ``${...}`` reads, a new SCHEDULED attempt, a new execution with its first task
and deadlines, the fields that end a workflow (output per §2.3, reason, failed tasks), and what a
failure workflow is started with.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from translator.deadlines import (
    DEFAULT_PARK_AFTER,
    failure_deadline,
    scheduling_deadlines,
    workflow_deadline,
)
from translator.errors import ExpressionError
from translator.expressions import allowed_environment, apply_workflow_input_template, resolve
from translator.plan import Plan, Step
from translator.state import FAILURE_WORKFLOW_KEY, Due, StateStore, now_ms
from translator.status import TaskStatus, WorkflowStatus

log = logging.getLogger("translator.runtime")

FAILURE_START_GRACE_MS = 30_000  # the sweeper starts a failureWorkflow its ender did not start by then
FAILURE_WORKFLOW_STATUSES = (WorkflowStatus.FAILED, WorkflowStatus.TIMED_OUT, WorkflowStatus.TERMINATED)

_TASK_DOCUMENT_FIELDS = (
    "taskType",
    "status",
    "referenceTaskName",
    "retryCount",
    "correlationId",
    "pollCount",
    "taskDefName",
    "scheduledTime",
    "startTime",
    "endTime",
    "workflowInstanceId",
    "taskId",
    "reasonForIncompletion",
    "callbackAfterSeconds",
    "workerId",
    "iteration",
)


def attempt_id(wf_id: str, ref: str, attempt: int) -> str:
    """The taskId of attempt ``attempt`` of ``ref``: stable across redeliveries."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{wf_id}:{ref}:{attempt}"))


# ---------------------------------------------------------------------------------------------
# Plans are immutable per execution: cache them per process.

_PLAN_CACHE: OrderedDict[str, Plan] = OrderedDict()
_PLAN_CACHE_LOCK = threading.Lock()
_PLAN_CACHE_SIZE = 1024


def _cached_plan(digest: str) -> Plan | None:
    with _PLAN_CACHE_LOCK:
        cached = _PLAN_CACHE.get(digest)
        if cached is not None:
            _PLAN_CACHE.move_to_end(digest)
        return cached


def plan_of(store: StateStore, workflow: Mapping[str, Any]) -> Plan | None:
    """The plan of an execution record, parsed once per process per distinct plan."""
    digest = workflow.get("_plan")
    if not digest:
        return None
    cached = _cached_plan(digest)
    if cached is not None:
        return cached
    data = store.plan(digest)
    if data is None:
        return None
    plan = Plan.from_json(data)
    with _PLAN_CACHE_LOCK:
        _PLAN_CACHE[digest] = plan
        while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
            _PLAN_CACHE.popitem(last=False)
    return plan


# ---------------------------------------------------------------------------------------------
# Records and the evaluation document


def evaluation_document(workflow: Mapping[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The document ``${...}`` reads (reference §5.1); the latest attempt of each ref wins."""
    document: dict[str, Any] = {
        "workflow": {
            "input": workflow.get("input", {}),
            "output": workflow.get("output", {}),
            "status": workflow.get("status"),
            "workflowId": workflow.get("workflowId"),
            "parentWorkflowId": workflow.get("parentWorkflowId"),
            "parentWorkflowTaskId": workflow.get("parentWorkflowTaskId"),
            "workflowType": workflow.get("workflowName"),
            "version": workflow.get("workflowVersion"),
            "correlationId": workflow.get("correlationId"),
            "reasonForIncompletion": workflow.get("reasonForIncompletion"),
            "schemaVersion": 2,
            "variables": workflow.get("variables", {}),
        }
    }
    for task in tasks:  # seq order: later attempts overwrite earlier ones
        entry = {name: task.get(name) for name in _TASK_DOCUMENT_FIELDS}
        entry["input"] = task.get("inputData", {})
        entry["output"] = task.get("outputData", {})
        document[task["referenceTaskName"]] = entry
    return document


def scheduled_record(
    workflow: Mapping[str, Any],
    step: Step,
    attempt: int,
    seq: int,
    *,
    retried_task_id: str | None = None,
    callback_after_seconds: int = 0,
) -> dict[str, Any]:
    """A new SCHEDULED task instance in Conductor's Task shape."""
    wf_id = workflow["workflowId"]
    now = now_ms()
    policy = step.policy
    start_delay = policy.start_delay if attempt == 0 else 0
    return {
        "taskId": attempt_id(wf_id, step.ref, attempt),
        "taskType": step.name,
        "taskDefName": policy.task_def_name,
        "referenceTaskName": step.ref,
        "status": TaskStatus.SCHEDULED.value,
        "inputData": {},
        "outputData": {},
        "workflowInstanceId": wf_id,
        "workflowType": workflow.get("workflowName"),
        "correlationId": workflow.get("correlationId"),
        "seq": seq,
        "retryCount": attempt,
        "retriedTaskId": retried_task_id,
        "retried": False,
        "executed": False,
        "pollCount": 0,
        "scheduledTime": now,
        "startTime": 0,
        "endTime": 0,
        "updateTime": now,
        "startDelayInSeconds": start_delay,
        "callbackAfterSeconds": callback_after_seconds or start_delay,
        "responseTimeoutSeconds": policy.response_timeout_seconds,
        "rateLimitPerFrequency": policy.rate_limit_per_frequency,
        "rateLimitFrequencyInSeconds": policy.rate_limit_frequency_in_seconds,
        "workflowPriority": workflow.get("priority", 0),
        "iteration": 0,
    }


# ---------------------------------------------------------------------------------------------
# Starting and ending workflows


def new_workflow_id() -> str:
    return str(uuid.uuid4())


def start_workflow(
    store: StateStore,
    plan: Plan,
    workflow_input: Mapping[str, Any],
    *,
    workflow_id: str | None = None,
    correlation_id: str | None = None,
    park_after: float = DEFAULT_PARK_AFTER,
    resend_after: float | None = None,
) -> str | None:
    """Create the execution record with its first task SCHEDULED; returns the workflow id (None when
    ``workflow_id`` is taken). ``resend_after``: see ``deadlines.wake_deadline``."""
    wf_id = workflow_id or new_workflow_id()
    now = now_ms()
    record = {
        "workflowId": wf_id,
        "workflowName": plan.name,
        "workflowVersion": plan.version,
        "status": WorkflowStatus.RUNNING.value,
        "input": apply_workflow_input_template(workflow_input, plan.input_template),
        "output": {},
        "variables": plan.variables,
        "correlationId": correlation_id,
        "reasonForIncompletion": None,
        "failedReferenceTaskNames": [],
        "failedTaskNames": [],
        "priority": 0,
        "schemaVersion": 2,
        "createTime": now,
        "startTime": now,
        "updateTime": now,
        "endTime": 0,
    }
    steps = plan.steps()
    first = scheduled_record(record, steps[0], 0, 1) if steps else None
    deadlines = scheduling_deadlines(first, steps[0] if steps else None, park_after, resend_after)
    timeout = workflow_deadline(record, plan)
    if timeout is not None:
        deadlines.append(timeout)
    if not store.create_workflow(record, plan.json_text, first, deadlines):
        return None
    return wf_id


def failure_workflow_id(wf_id: str) -> str:
    """The id of the failureWorkflow started for ``wf_id`` (fixed, so it is started once)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{wf_id}:failureWorkflow"))


def failure_workflow_input(execution: Mapping[str, Any]) -> dict[str, Any]:
    """Conductor's input of a failureWorkflow: the failed workflow's input plus what went wrong."""
    data: dict[str, Any] = dict(execution.get("input") or {})
    data.update(
        workflowId=execution["workflowId"],
        reason=execution.get("reasonForIncompletion"),
        failureStatus=execution["status"],
    )
    failed_refs = set(execution.get("failedReferenceTaskNames") or [])
    failed = [t for t in execution.get("tasks", []) if t["referenceTaskName"] in failed_refs]
    if failed:
        data["failureTaskId"] = failed[-1]["taskId"]
    data["failedWorkflow"] = dict(execution)
    return data


def with_failure_workflow(plan: Plan, wf_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any], list[Due]]:
    """Ending fields that start the failureWorkflow (its id in the output, a fallback deadline)."""
    status = WorkflowStatus(fields["status"])
    if plan.failure is None or status not in FAILURE_WORKFLOW_STATUSES:
        return fields, []
    output = fields.get("output")
    output = dict(output) if isinstance(output, dict) else {}
    output[FAILURE_WORKFLOW_KEY] = failure_workflow_id(wf_id)
    return {**fields, "output": output}, [(failure_deadline(wf_id), now_ms() + FAILURE_START_GRACE_MS)]


def workflow_output(plan: Plan, workflow: Mapping[str, Any], tasks: list[dict[str, Any]]) -> Any:
    """Reference §2.3: outputParameters resolved, else the last executed task's output."""
    if plan.output_parameters:
        document = evaluation_document(workflow, tasks)
        try:
            return resolve(plan.output_parameters, document, env=allowed_environment())
        except ExpressionError as exc:
            log.warning("workflow %s: output parameters: %s", workflow.get("workflowId"), exc)
            return {}
    executed = [t for t in tasks if t.get("status") != TaskStatus.SCHEDULED.value]
    return executed[-1].get("outputData", {}) if executed else {}


def ending_fields(
    plan: Plan,
    workflow: Mapping[str, Any],
    tasks: list[dict[str, Any]],
    status: WorkflowStatus,
    reason: str | None = None,
    failed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The fields that end a workflow: status, output (§2.3), times, reason, failed tasks."""
    now = now_ms()
    fields: dict[str, Any] = {
        "status": status.value,
        "output": workflow_output(plan, workflow, tasks),
        "endTime": now,
        "updateTime": now,
    }
    if reason is not None:
        fields["reasonForIncompletion"] = reason
    if failed:
        fields["failedReferenceTaskNames"] = sorted({t["referenceTaskName"] for t in failed})
        fields["failedTaskNames"] = sorted({t["taskDefName"] for t in failed})
    return fields


def completion_fields(plan: Plan, workflow: Mapping[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """After the last step: COMPLETED, or FAILED when a permissive task failed on the way."""
    latest: dict[str, dict[str, Any]] = {}
    for task in tasks:
        latest[task["referenceTaskName"]] = task
    failed = [t for t in latest.values() if not TaskStatus(t["status"]).successful]
    if failed:
        reason = failure_reason(failed[0], WorkflowStatus.FAILED)
        return ending_fields(plan, workflow, tasks, WorkflowStatus.FAILED, reason, failed)
    return ending_fields(plan, workflow, tasks, WorkflowStatus.COMPLETED)


def terminate(store: StateStore, wf_id: str, reason: str) -> bool:
    """End a workflow as TERMINATED (e.g. its canvas could not be sent)."""
    snap = store.snapshot(wf_id)
    plan = plan_of(store, snap.workflow) if snap.workflow is not None else None
    if plan is None or snap.workflow is None:
        return False
    fields = ending_fields(plan, snap.workflow, snap.tasks, WorkflowStatus.TERMINATED, reason)
    return store.finish_workflow(wf_id, fields)


def log_end(ended: bool, plan: Plan, wf_id: str, fields: Mapping[str, Any]) -> None:
    if ended:
        log.info("workflow %s (%s) %s", wf_id, plan.name, fields["status"])


def failure_reason(task: Mapping[str, Any], status: WorkflowStatus) -> str:
    return (
        f"Task {task['taskId']} failed with status: {status.value} and reason: "
        f"'{task.get('reasonForIncompletion') or ''}'"
    )
