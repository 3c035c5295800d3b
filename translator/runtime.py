"""The step executor that every compiled signature runs, independent of Celery.

One call of :func:`execute_step` is one attempt of one task: resolve the input against the live
execution state (so a retry sees fresh data and a new ``${CPEWF_TASK_ID}``), record the attempt,
call the worker function, then decide with Conductor's rules: continue, retry after a delay computed
by :mod:`translator.retry`, continue despite failure (optional / permissive), or fail the workflow.

Attempts have deterministic task ids (workflow id, reference, attempt number), so a redelivered
message finds its attempt already recorded and does not run it twice once it has finished.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from translator.errors import ExpressionError, NonRetryableError
from translator.expressions import (
    allowed_environment,
    apply_workflow_input_template,
    resolve,
    resolve_task_input,
)
from translator.plan import Plan, Step
from translator.retry import retry_delay
from translator.state import StateStore, now_ms
from translator.status import TaskStatus, WorkflowStatus, workflow_status_for_failed_task
from translator.workers import TaskContext, get_worker

log = logging.getLogger("translator.runtime")

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


class Outcome(Enum):
    CONTINUE = "continue"  # run the next step
    RETRY = "retry"  # run this step again after ``countdown`` seconds
    STOP = "stop"  # the workflow is over (or was never there): run nothing more


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    countdown: float = 0.0
    task_id: str | None = None


def attempt_id(wf_id: str, ref: str, attempt: int) -> str:
    """The taskId of attempt ``attempt`` of ``ref``: stable across redeliveries."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{wf_id}:{ref}:{attempt}"))


# ---------------------------------------------------------------------------------------------
# Plans are immutable per execution: cache them per process.

_PLAN_CACHE: OrderedDict[str, Plan] = OrderedDict()
_PLAN_CACHE_LOCK = threading.Lock()
_PLAN_CACHE_SIZE = 1024


def load_plan(store: StateStore, wf_id: str) -> Plan | None:
    with _PLAN_CACHE_LOCK:
        cached = _PLAN_CACHE.get(wf_id)
        if cached is not None:
            _PLAN_CACHE.move_to_end(wf_id)
            return cached
    data = store.plan(wf_id)
    if data is None:
        return None
    plan = Plan.from_json(data)
    with _PLAN_CACHE_LOCK:
        _PLAN_CACHE[wf_id] = plan
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


def _scheduled_record(
    store: StateStore,
    workflow: Mapping[str, Any],
    step: Step,
    attempt: int,
    *,
    retried_task_id: str | None = None,
    callback_after_seconds: int = 0,
) -> dict[str, Any]:
    wf_id = workflow["workflowId"]
    now = now_ms()
    policy = step.policy
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
        "seq": store.next_seq(wf_id),
        "retryCount": attempt,
        "retriedTaskId": retried_task_id,
        "retried": False,
        "executed": False,
        "pollCount": 0,
        "scheduledTime": now,
        "startTime": 0,
        "endTime": 0,
        "updateTime": now,
        "startDelayInSeconds": policy.start_delay if attempt == 0 else 0,
        "callbackAfterSeconds": callback_after_seconds or (policy.start_delay if attempt == 0 else 0),
        "responseTimeoutSeconds": policy.response_timeout_seconds,
        "rateLimitPerFrequency": policy.rate_limit_per_frequency,
        "rateLimitFrequencyInSeconds": policy.rate_limit_frequency_in_seconds,
        "workflowPriority": workflow.get("priority", 0),
        "iteration": 0,
    }


def mark_scheduled(store: StateStore, wf_id: str, step: Step) -> None:
    """Record the first attempt of ``step`` as SCHEDULED (when its message is sent)."""
    workflow = store.workflow_fields(wf_id)
    if workflow is None or store.task(wf_id, attempt_id(wf_id, step.ref, 0)) is not None:
        return
    store.save_task(wf_id, _scheduled_record(store, workflow, step, 0))


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
) -> str:
    """Create the execution record and schedule the first step; returns the workflow id."""
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
    store.create_workflow(record, plan.to_json())
    steps = plan.steps()
    if steps:
        mark_scheduled(store, wf_id, steps[0])
    return wf_id


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


def end_workflow(
    store: StateStore,
    plan: Plan,
    wf_id: str,
    status: WorkflowStatus,
    reason: str | None = None,
    failed: list[dict[str, Any]] | None = None,
) -> bool:
    """Compute the output and move the workflow to a terminal status (once)."""
    workflow = store.workflow_fields(wf_id)
    if workflow is None:
        return False
    tasks = store.tasks(wf_id)
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
    ended = store.finish_workflow(wf_id, fields)
    if ended:
        log.info("workflow %s (%s) %s", wf_id, plan.name, status.value)
    return ended


def complete_workflow(store: StateStore, wf_id: str) -> bool:
    """The last step of every compiled workflow: COMPLETED, or FAILED for permissive failures."""
    plan = load_plan(store, wf_id)
    if plan is None:
        log.warning("workflow %s: no execution record (expired or removed)", wf_id)
        return False
    latest: dict[str, dict[str, Any]] = {}
    for task in store.tasks(wf_id):
        latest[task["referenceTaskName"]] = task
    failed = [t for t in latest.values() if not TaskStatus(t["status"]).successful]
    if failed:
        first = failed[0]
        reason = _failure_reason(first, WorkflowStatus.FAILED)
        return end_workflow(store, plan, wf_id, WorkflowStatus.FAILED, reason, failed)
    return end_workflow(store, plan, wf_id, WorkflowStatus.COMPLETED)


def _failure_reason(task: Mapping[str, Any], status: WorkflowStatus) -> str:
    return (
        f"Task {task['taskId']} failed with status: {status.value} and reason: "
        f"'{task.get('reasonForIncompletion') or ''}'"
    )


# ---------------------------------------------------------------------------------------------
# One attempt of one step


def execute_step(store: StateStore, wf_id: str, ref: str, attempt: int, worker_id: str) -> StepResult:
    """Run attempt ``attempt`` of step ``ref`` of workflow ``wf_id``; never raises for task failures."""
    plan = load_plan(store, wf_id)
    workflow = store.workflow_fields(wf_id)
    if plan is None or workflow is None:
        log.warning("workflow %s: no execution record (expired or removed); dropping %s", wf_id, ref)
        return StepResult(Outcome.STOP)
    if WorkflowStatus(workflow["status"]).terminal:
        return StepResult(Outcome.STOP)
    step = plan.step(ref)
    task_id = attempt_id(wf_id, ref, attempt)
    record = store.task(wf_id, task_id) or _scheduled_record(store, workflow, step, attempt)
    status = TaskStatus(record["status"])
    if status.terminal:  # a redelivered message of an attempt that already finished
        outcome = Outcome.CONTINUE if status.successful or _continues_after(step) else Outcome.STOP
        return StepResult(outcome, task_id=task_id)

    now = now_ms()
    record.update(
        status=TaskStatus.IN_PROGRESS.value,
        startTime=now,
        updateTime=now,
        pollCount=record.get("pollCount", 0) + 1,
        workerId=worker_id,
    )
    try:
        document = evaluation_document(workflow, store.tasks(wf_id))
        record["inputData"] = resolve_task_input(
            step.input_parameters,
            document,
            input_template=step.input_template,
            task_id=task_id,
            env=allowed_environment(),
        )
    except ExpressionError as exc:
        return _after_failure(
            store, plan, workflow, step, record, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc)
        )
    store.save_task(wf_id, record)

    worker = get_worker(step.name)
    if worker is None:
        reason = (
            f"no worker function is registered for task {step.name!r} in worker {worker_id}: "
            "import the module that defines it "
            "(TRANSLATOR_WORKER_MODULES, or celery -A tasks worker -I MODULE)"
        )
        return _after_failure(
            store, plan, workflow, step, record, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason
        )
    context = TaskContext(wf_id, task_id, ref, step.name, attempt, worker_id)
    try:
        output = worker.call(record["inputData"], context)
    except NonRetryableError as exc:
        return _after_failure(
            store, plan, workflow, step, record, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc)
        )
    except Exception as exc:  # any worker error fails this attempt; the policy decides what follows
        log.warning("task %s (%s) attempt %d failed", ref, step.name, attempt, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
        return _after_failure(store, plan, workflow, step, record, TaskStatus.FAILED, reason)

    end = now_ms()
    record.update(
        status=TaskStatus.COMPLETED.value, outputData=output, endTime=end, updateTime=end, executed=True
    )
    store.save_task(wf_id, record)
    return StepResult(Outcome.CONTINUE, task_id=task_id)


def _continues_after(step: Step) -> bool:
    return step.policy.optional or step.policy.permissive


def _after_failure(
    store: StateStore,
    plan: Plan,
    workflow: Mapping[str, Any],
    step: Step,
    record: dict[str, Any],
    status: TaskStatus,
    reason: str,
) -> StepResult:
    """Conductor's decision after a failed attempt: retry, carry on, or fail the workflow."""
    wf_id = workflow["workflowId"]
    now = now_ms()
    record.update(status=status.value, reasonForIncompletion=reason, endTime=now, updateTime=now)
    attempt = record["retryCount"]
    policy = step.policy
    if status.retriable and attempt < policy.retry_count:
        delay = retry_delay(
            policy.retry_logic,
            policy.retry_delay_seconds,
            attempt,
            backoff_scale_factor=policy.backoff_scale_factor,
            max_retry_delay_seconds=policy.max_retry_delay_seconds,
            backoff_jitter_ms=policy.backoff_jitter_ms,
        )
        record["retried"] = True
        store.save_task(wf_id, record)
        retry = _scheduled_record(
            store,
            workflow,
            step,
            attempt + 1,
            retried_task_id=record["taskId"],
            callback_after_seconds=delay.seconds,
        )
        store.save_task(wf_id, retry)
        return StepResult(Outcome.RETRY, countdown=delay.countdown, task_id=retry["taskId"])
    if policy.optional:
        record["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
        store.save_task(wf_id, record)
        return StepResult(Outcome.CONTINUE, task_id=record["taskId"])
    store.save_task(wf_id, record)
    if policy.permissive:
        return StepResult(Outcome.CONTINUE, task_id=record["taskId"])
    final = workflow_status_for_failed_task(status)
    end_workflow(store, plan, wf_id, final, _failure_reason(record, final), [record])
    return StepResult(Outcome.STOP, task_id=record["taskId"])
