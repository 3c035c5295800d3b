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

from celery.exceptions import SoftTimeLimitExceeded

from translator.errors import ExpressionError, NonRetryableError
from translator.expressions import (
    allowed_environment,
    apply_workflow_input_template,
    resolve,
    resolve_task_input,
)
from translator.limits import Limiter, Limits
from translator.plan import Plan, Step
from translator.state import Deadline, Due, StateStore, now_ms
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
    RETRY = "retry"  # run this step again after ``countdown`` seconds, as a new attempt
    DEFER = "defer"  # a global limit is reached: run the same attempt after ``countdown`` seconds
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
) -> str:
    """Create the execution record with its first task SCHEDULED; returns the workflow id."""
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
    store.create_workflow(record, plan.json_text, first)
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
        reason = _failure_reason(failed[0], WorkflowStatus.FAILED)
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


def _log_end(ended: bool, plan: Plan, wf_id: str, fields: Mapping[str, Any]) -> None:
    if ended:
        log.info("workflow %s (%s) %s", wf_id, plan.name, fields["status"])


def _failure_reason(task: Mapping[str, Any], status: WorkflowStatus) -> str:
    return (
        f"Task {task['taskId']} failed with status: {status.value} and reason: "
        f"'{task.get('reasonForIncompletion') or ''}'"
    )


# ---------------------------------------------------------------------------------------------
# One attempt of one step


@dataclass
class _Attempt:
    """Everything one attempt works with."""

    store: StateStore
    plan: Plan
    workflow: dict[str, Any]
    tasks: list[dict[str, Any]]
    step: Step
    record: dict[str, Any]
    seq: int  # reserved for the one record this attempt may schedule
    next_ref: str | None
    redelivered: bool = False
    expect: tuple[str, int] = ("SCHEDULED", 0)  # the stored record's (status, startTime) writes require

    def with_record(self) -> list[dict[str, Any]]:
        """The tasks with this attempt's record in its current state."""
        others = [t for t in self.tasks if t["taskId"] != self.record["taskId"]]
        return sorted([*others, self.record], key=lambda t: t.get("seq", 0))


def execute_step(
    store: StateStore,
    wf_id: str,
    ref: str,
    attempt: int,
    worker_id: str,
    next_ref: str | None,
    limiter: Limiter | None = None,
    redelivered: bool = False,
) -> StepResult:
    """Run attempt ``attempt`` of step ``ref``; ``next_ref`` is the following step (None: last).

    Never raises for task failures: the result says what the Celery layer must do next. With a
    ``limiter``, a step whose task definition is over its rate or concurrency limit is deferred.
    ``redelivered``: the broker delivers this message again (its worker died): an attempt left
    IN_PROGRESS is taken over; otherwise an IN_PROGRESS attempt belongs to another delivery.
    """
    snap = store.snapshot(wf_id)
    workflow = snap.workflow
    plan = plan_of(store, workflow) if workflow is not None else None
    if plan is None or workflow is None:
        log.warning("workflow %s: no execution record (expired or removed); dropping %s", wf_id, ref)
        return StepResult(Outcome.STOP)
    if WorkflowStatus(workflow["status"]).terminal:
        return StepResult(Outcome.STOP)
    step = plan.step(ref)
    task_id = attempt_id(wf_id, ref, attempt)
    record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
    seq = snap.seq
    if record is None:  # its scheduler died before writing it: create it now
        record = scheduled_record(workflow, step, attempt, seq)
        seq = store.next_seq(wf_id)
    status = TaskStatus(record["status"])
    if status.terminal or (status is TaskStatus.IN_PROGRESS and not redelivered):
        return _already_handled(step, status, task_id)
    expect = (record["status"], int(record.get("startTime") or 0))
    run = _Attempt(store, plan, workflow, snap.tasks, step, record, seq, next_ref, redelivered, expect)
    policy = step.policy
    limits = Limits(
        policy.rate_limit_per_frequency, policy.rate_limit_frequency_in_seconds, policy.concurrent_exec_limit
    )
    if limiter is None or not limits.active:
        return _run_attempt(run, attempt, worker_id)
    admission = limiter.acquire(policy.task_def_name, task_id, limits)
    if not admission.admitted:
        return StepResult(Outcome.DEFER, countdown=admission.wait, task_id=task_id)
    with limiter.hold(policy.task_def_name, task_id, limits):
        return _run_attempt(run, attempt, worker_id, started_ms=admission.at_ms)


def response_deadline(record: Mapping[str, Any], step: Step) -> Due | None:
    """When an IN_PROGRESS attempt counts as unresponsive (responseTimeoutSeconds after its start)."""
    seconds = step.policy.response_timeout_seconds
    if seconds <= 0:
        return None
    token = int(record["startTime"])
    return Deadline("response", record["workflowInstanceId"], step.ref, record["retryCount"], token), (
        token + seconds * 1000
    )


def poll_deadline(record: Mapping[str, Any] | None, plan: Plan) -> Due | None:
    """When a SCHEDULED attempt counts as never picked up (pollTimeoutSeconds after it is due)."""
    if record is None:
        return None
    seconds = plan.step(record["referenceTaskName"]).policy.poll_timeout_seconds
    if not seconds:
        return None
    token = int(record["scheduledTime"])
    due = token + (int(record.get("callbackAfterSeconds") or 0) + seconds) * 1000
    deadline = Deadline(
        "poll", record["workflowInstanceId"], record["referenceTaskName"], record["retryCount"], token
    )
    return deadline, due


def _over_total_budget(run: _Attempt) -> bool:
    """totalTimeoutSeconds: the time since the first attempt was scheduled is spent."""
    budget = run.step.policy.total_timeout_seconds
    if budget <= 0:
        return False
    first = min(
        (t["scheduledTime"] for t in run.with_record() if t["referenceTaskName"] == run.step.ref),
        default=run.record["scheduledTime"],
    )
    return now_ms() - first >= budget * 1000


def _already_handled(step: Step, status: TaskStatus, task_id: str) -> StepResult:
    """A duplicate delivery: the attempt ended (carry on if it succeeded) or another delivery runs it."""
    if status is TaskStatus.IN_PROGRESS:
        return StepResult(Outcome.STOP, task_id=task_id)  # the running delivery continues the chain
    continues = status.successful or step.policy.optional or step.policy.permissive
    return StepResult(Outcome.CONTINUE if continues else Outcome.STOP, task_id=task_id)


def _run_attempt(run: _Attempt, attempt: int, worker_id: str, started_ms: int | None = None) -> StepResult:
    """``started_ms``: when a limiter admitted the step (its clock is the one the limits count)."""
    wf_id, step, record = run.workflow["workflowId"], run.step, run.record
    now = started_ms or now_ms()
    record.update(
        status=TaskStatus.IN_PROGRESS.value,
        startTime=now,
        updateTime=now,
        pollCount=record.get("pollCount", 0) + 1,
        workerId=worker_id,
    )
    try:
        record["inputData"] = resolve_task_input(
            step.input_parameters,
            evaluation_document(run.workflow, run.tasks),
            input_template=step.input_template,
            task_id=record["taskId"],
            env=allowed_environment(),
        )
    except ExpressionError as exc:
        return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
    taken = run.store.claim_task(
        wf_id, record, takeover=run.redelivered, deadline=response_deadline(record, step)
    )
    if taken is not None:  # another delivery claimed it first, or it ended meanwhile
        return _already_handled(step, TaskStatus(taken), record["taskId"])
    run.expect = (TaskStatus.IN_PROGRESS.value, record["startTime"])

    worker = get_worker(step.name)
    if worker is None:
        reason = (
            f"no worker function is registered for task {step.name!r} in worker {worker_id}: "
            "import the module that defines it "
            "(TRANSLATOR_WORKER_MODULES, or celery -A tasks worker -I MODULE)"
        )
        return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason)
    context = TaskContext(wf_id, record["taskId"], step.ref, step.name, attempt, worker_id)
    try:
        output = worker.call(record["inputData"], context)
    except SoftTimeLimitExceeded:
        return _after_failure(run, TaskStatus.TIMED_OUT, timeout_reason(step, time_limit="soft"))
    except NonRetryableError as exc:
        return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
    except Exception as exc:  # any worker error fails this attempt; the policy decides what follows
        log.warning("task %s (%s) attempt %d failed", step.ref, step.name, attempt, exc_info=True)
        return _after_failure(run, TaskStatus.FAILED, f"{type(exc).__name__}: {exc}")

    end = now_ms()
    timeout = step.policy.timeout_seconds
    if timeout > 0 and (end - record["startTime"]) / 1000 > timeout:  # ALERT_ONLY: no limit was set
        log.warning(
            "task %s (%s) of workflow %s ran %.1f s, over timeoutSeconds %d (timeoutPolicy %s)",
            step.ref,
            step.name,
            wf_id,
            (end - record["startTime"]) / 1000,
            timeout,
            step.policy.timeout_policy,
        )
    record.update(
        status=TaskStatus.COMPLETED.value, outputData=output, endTime=end, updateTime=end, executed=True
    )
    return _carry_on(run)


def _carry_on(run: _Attempt) -> StepResult:
    """Save the finished record and schedule the next step, or complete the workflow."""
    wf_id = run.workflow["workflowId"]
    following = None
    if run.next_ref is not None:
        following = scheduled_record(run.workflow, run.plan.step(run.next_ref), 0, run.seq)
    finish = None
    if run.next_ref is None:  # the last step ends the workflow in the same round trip
        finish = completion_fields(run.plan, run.workflow, run.with_record())
    saved = run.store.save_tasks(
        wf_id, run.record, following, finish, expect=run.expect, deadline=poll_deadline(following, run.plan)
    )
    if not saved.applied:  # timed out or canceled meanwhile: whoever did it carries the workflow on
        return StepResult(Outcome.STOP, task_id=run.record["taskId"])
    if finish is not None:
        _log_end(saved.ended, run.plan, wf_id, finish)
    return StepResult(Outcome.CONTINUE, task_id=run.record["taskId"])


def timeout_reason(step: Step, time_limit: str) -> str:
    """Conductor's timeout message, and which limit tripped."""
    seconds = step.policy.timeout_seconds
    return (
        f"Task timed out after {seconds} seconds. Timeout configured as {seconds} seconds. "
        f"Timeout policy configured to {step.policy.timeout_policy} ({time_limit} time limit)"
    )


def hard_timeout(store: StateStore, wf_id: str, ref: str, attempt: int, next_ref: str | None) -> StepResult:
    """A worker process was killed at its hard time limit: time the attempt out, apply the policy."""
    snap = store.snapshot(wf_id)
    workflow = snap.workflow
    plan = plan_of(store, workflow) if workflow is not None else None
    if plan is None or workflow is None or WorkflowStatus(workflow["status"]).terminal:
        return StepResult(Outcome.STOP)
    step = plan.step(ref)
    task_id = attempt_id(wf_id, ref, attempt)
    record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
    if record is None or TaskStatus(record["status"]).terminal:
        return StepResult(Outcome.STOP)
    expect = (record["status"], int(record.get("startTime") or 0))
    run = _Attempt(store, plan, workflow, snap.tasks, step, record, snap.seq, next_ref, expect=expect)
    return _after_failure(run, TaskStatus.TIMED_OUT, timeout_reason(step, time_limit="hard"))


def _after_failure(
    run: _Attempt, status: TaskStatus, reason: str, consult_timeout_policy: bool = True
) -> StepResult:
    """Conductor's decision after a failed attempt: retry, carry on, or fail the workflow."""
    wf_id, record, policy = run.workflow["workflowId"], run.record, run.step.policy
    now = now_ms()
    record.update(status=status.value, reasonForIncompletion=reason, endTime=now, updateTime=now)
    attempt = record["retryCount"]
    time_out_workflow = (
        consult_timeout_policy and status is TaskStatus.TIMED_OUT and policy.timeout_policy == "TIME_OUT_WF"
    )
    may_retry = status.retriable and attempt < policy.retry_count and not time_out_workflow
    if may_retry and _over_total_budget(run):  # totalTimeoutSeconds spent: no more retries
        may_retry = False
        record["reasonForIncompletion"] = (
            f"{reason} (totalTimeoutSeconds {policy.total_timeout_seconds} spent)"
        )
    if may_retry:
        delay = policy.retry_delay(attempt)
        record["retried"] = True
        retry = scheduled_record(
            run.workflow,
            run.step,
            attempt + 1,
            run.seq,
            retried_task_id=record["taskId"],
            callback_after_seconds=delay.seconds,
        )
        saved = run.store.save_tasks(
            wf_id, record, retry, expect=run.expect, deadline=poll_deadline(retry, run.plan)
        )
        if not saved.applied:
            return StepResult(Outcome.STOP, task_id=record["taskId"])
        return StepResult(Outcome.RETRY, countdown=delay.countdown, task_id=retry["taskId"])
    if policy.optional:
        record["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
        return _carry_on(run)
    if policy.permissive:
        return _carry_on(run)
    final = workflow_status_for_failed_task(status)
    finish = ending_fields(
        run.plan, run.workflow, run.with_record(), final, _failure_reason(record, final), [record]
    )
    saved = run.store.save_tasks(wf_id, record, None, finish, expect=run.expect)
    _log_end(saved.ended, run.plan, wf_id, finish)
    return StepResult(Outcome.STOP, task_id=record["taskId"])
