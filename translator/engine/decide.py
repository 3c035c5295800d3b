"""The decider: what a workflow does next, as one pure function of its plan and its records.

``decide(plan, workflow, tasks, changed)`` walks the plan tree against the execution's task records
(``changed``: the records an event just changed, already in their new state) and returns a
:class:`Transition`: the records to write (new task instances and system tasks' updates), the worker
tasks to send now, the sub-workflows to start, the deadlines to add and drop, and the workflow's end
if it ends. No I/O: the caller applies the transition in one atomic store write (``StateStore.apply``,
checked against the execution's revision) and then sends what it says. Everything that moves a
workflow forward goes this way: a step that ended, a timeout the sweeper found, a killed step, a child
workflow that ended, a workflow timeout.

As in Conductor's ``DeciderService``, system tasks are decided inline: SWITCH/DECISION pick a case,
FORK_JOIN starts its branches, JOIN completes when its ``joinOn`` tasks are terminal, DO_WHILE runs
its body again while its condition holds, TERMINATE ends the workflow. Only worker tasks (and
sub-workflows) leave the decider as messages. Retries of a worker task are decided by the step that
ran it (``runtime``), with the task definition's policy; the decider sees a failed attempt only once
it is final.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from translator.definitions.expressions import (
    allowed_environment,
    copy_json,
    java_string,
    referenced_names,
    resolve,
    resolve_task_input,
)
from translator.definitions.tasktypes import WAIT_TYPES
from translator.engine.deadlines import (
    DEFAULT_PARK_AFTER,
    attempt_deadlines,
    child_deadline,
    parks,
    scheduling_deadlines,
    wait_deadlines,
    waiting_started,
    workflow_deadline,
)
from translator.engine.plan import (
    Dynamic,
    DynamicFork,
    Fork,
    Join,
    Loop,
    Node,
    Plan,
    Sequence,
    Step,
    SubWorkflow,
    Switch,
    System,
    Terminate,
    Wait,
    base_ref,
    iteration_ref,
    plan_runtime_task,
    runtime_workflow,
    walk,
)
from translator.engine.system import SYNC_TASKS, Outcome
from translator.engine.waits import WaitError, wait_until
from translator.errors import ExpressionError, TranslatorError
from translator.status import TaskStatus, WorkflowStatus, workflow_status_for_failed_task
from translator.store.state import (
    FAILURE_WORKFLOW_KEY,
    TERMINAL_TASK_STATUSES,
    Change,
    Deadline,
    now_ms,
)
from translator.text import REASON_LIMIT, shorten

log = logging.getLogger("translator.engine.decide")

MAX_CONFLICTS = 1000  # decisions retried after concurrent ones (each conflict: another progressed)
MAX_PASSES = 10_000  # walks per decision: each pass that changes nothing ends it; a bound against bugs
FAILURE_WORKFLOW_STATUSES = (WorkflowStatus.FAILED, WorkflowStatus.TIMED_OUT, WorkflowStatus.TERMINATED)
SUCCESSFUL_TASK = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "SKIPPED"})
TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")


@dataclass(frozen=True, slots=True)
class Timing:
    """Delays that shape scheduling: ``park_after`` (longer delays wait in the store, not the
    broker) and ``resend_after`` (a SCHEDULED attempt's message is sent again that long after it is
    due, when a transport may lose it; None: never)."""

    park_after: float = DEFAULT_PARK_AFTER
    resend_after: float | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A worker task to send now: attempt ``attempt`` of ``ref`` after ``countdown`` seconds
    (None: its startDelay)."""

    ref: str
    step: Step
    attempt: int = 0
    countdown: float | None = None


@dataclass(frozen=True, slots=True)
class ChildStart:
    """A workflow to start once the transition is stored: a SUB_WORKFLOW's child (``parent_task``
    set: it reports its end to that task) or a START_WORKFLOW's (fire and forget)."""

    workflow_id: str
    plan: Plan
    input: dict[str, Any]
    correlation_id: str | None
    parent_task: str | None  # the SUB_WORKFLOW task's id
    ref: str
    attempt: int


DEFAULT_TIMING = Timing()


@dataclass
class Transition:
    """What one decision changes. ``change`` is the store write; the rest is done after it."""

    change: Change = field(default_factory=Change)
    send: list[Dispatch] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    ended: WorkflowStatus | None = None  # the workflow ends with this status
    revoke: list[str] = field(default_factory=list)  # Celery ids of canceled running attempts
    stop_children: list[str] = field(default_factory=list)  # child workflows to terminate


class DecisionError(TranslatorError):
    """A system task could not be decided (bad input, a script error): its task fails with this."""


# ---------------------------------------------------------------------------------------------
# Records


def attempt_id(wf_id: str, ref: str, attempt: int) -> str:
    """The taskId of attempt ``attempt`` of ``ref``: stable across redeliveries. It is
    ``uuid5(NAMESPACE_URL, "translator:<wf_id>:<ref>:<attempt>")``, computed without making a UUID
    object (a decision makes one per task it reaches)."""
    name = f"translator:{wf_id}:{ref}:{attempt}".encode()
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def child_workflow_id(task_id: str) -> str:
    """The id of the workflow a SUB_WORKFLOW / START_WORKFLOW task starts (fixed: started once)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{task_id}:child"))


def new_record(
    workflow: Mapping[str, Any],
    ref: str,
    task_type: str,
    def_name: str,
    attempt: int,
    seq: int,
    *,
    iteration: int = 0,
    status: TaskStatus = TaskStatus.SCHEDULED,
    now: int | None = None,
) -> dict[str, Any]:
    """A task instance in Conductor's Task shape."""
    wf_id = workflow["workflowId"]
    now = now_ms() if now is None else now
    running = status is not TaskStatus.SCHEDULED
    return {
        "taskId": attempt_id(wf_id, ref, attempt),
        "taskType": task_type,
        "taskDefName": def_name,
        "referenceTaskName": ref,
        "status": status.value,
        "inputData": {},
        "outputData": {},
        "workflowInstanceId": wf_id,
        "workflowType": workflow.get("workflowName"),
        "correlationId": workflow.get("correlationId"),
        "seq": seq,
        "retryCount": attempt,
        "retriedTaskId": None,
        "retried": False,
        "executed": False,
        "pollCount": 0,
        "scheduledTime": now,
        "startTime": now if running else 0,
        "endTime": now if status.terminal else 0,
        "updateTime": now,
        "startDelayInSeconds": 0,
        "callbackAfterSeconds": 0,
        "responseTimeoutSeconds": 0,
        "workflowPriority": workflow.get("priority", 0),
        "iteration": iteration,
    }


def next_attempt(failed: Mapping[str, Any], seq: int, now: int, **fields: Any) -> dict[str, Any]:
    """The next attempt of a task, a copy of its ``failed`` one (as Conductor's retries copy it) with
    the next attempt's id and counters, then ``fields``."""
    attempt = int(failed.get("retryCount") or 0) + 1
    return {
        **failed,
        "taskId": attempt_id(failed["workflowInstanceId"], failed["referenceTaskName"], attempt),
        "retryCount": attempt,
        "retriedTaskId": failed["taskId"],
        "retried": False,
        "seq": seq,
        "scheduledTime": now,
        "updateTime": now,
        **fields,
    }


def scheduled_record(
    workflow: Mapping[str, Any],
    step: Step,
    attempt: int,
    seq: int,
    *,
    ref: str | None = None,
    iteration: int = 0,
    retried_task_id: str | None = None,
    callback_after_seconds: int = 0,
) -> dict[str, Any]:
    """A new SCHEDULED attempt of a worker task (``ref``: its reference in a loop iteration)."""
    policy = step.policy
    start_delay = policy.start_delay if attempt == 0 else 0
    task_type = step.name if step.type == "SIMPLE" else step.type  # Conductor: a SIMPLE task's is its name
    record = new_record(
        workflow, ref or step.ref, task_type, policy.task_def_name, attempt, seq, iteration=iteration
    )
    record.update(
        retriedTaskId=retried_task_id,
        startDelayInSeconds=start_delay,
        callbackAfterSeconds=callback_after_seconds or start_delay,
        responseTimeoutSeconds=policy.response_timeout_seconds,
        rateLimitPerFrequency=policy.rate_limit_per_frequency,
        rateLimitFrequencyInSeconds=policy.rate_limit_frequency_in_seconds,
    )
    return record


_RUNTIME_STEPS: dict[tuple[str, str], Step] = {}
_RUNTIME_STEPS_SIZE = 4096


def _runtime_step(plan: Plan, task: Mapping[str, Any]) -> Step:
    """A worker task planned at run time, once per process per (plan, task)."""
    key = (plan.json_text, json.dumps(task, sort_keys=True))
    found = _RUNTIME_STEPS.get(key)
    if found is None:
        if len(_RUNTIME_STEPS) >= _RUNTIME_STEPS_SIZE:
            _RUNTIME_STEPS.clear()
        found = _RUNTIME_STEPS[key] = plan_runtime_task(plan, dict(task))
    return found


def step_of(plan: Plan, record: Mapping[str, Any]) -> Step:
    """The worker task a record is an attempt of: the plan's, or the one planned at run time (a
    dynamic fork's branch, a DYNAMIC task) from the ``workflowTask`` the record carries."""
    task = record.get("workflowTask")
    if task:
        return _runtime_step(plan, task)
    return plan.step(record["referenceTaskName"])


def evaluation_document(
    workflow: Mapping[str, Any],
    tasks: Iterable[Mapping[str, Any]],
    workflow_entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The document ``${...}`` reads (reference §5.1). The latest attempt of each reference wins;
    a DO_WHILE body task is found by its reference without ``__<iteration>`` (latest iteration).
    ``workflow_entry``: the document's ``workflow`` entry, when the caller has it
    (:func:`workflow_document`)."""
    document: dict[str, Any] = {
        "workflow": workflow_document(workflow) if workflow_entry is None else workflow_entry
    }
    for task in sorted(tasks, key=lambda t: t.get("seq", 0)):  # later attempts overwrite earlier ones
        entry = {name: task.get(name) for name in _TASK_DOCUMENT_FIELDS}
        entry["input"] = task.get("inputData", {})
        entry["output"] = task.get("outputData", {})
        ref = task["referenceTaskName"]
        document[base_ref(ref) if task.get("iteration") else ref] = entry
    return document


def workflow_document(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The ``workflow`` entry of the evaluation document (``${workflow.input.x}``...)."""
    return {
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


# ---------------------------------------------------------------------------------------------
# Ending a workflow


def failure_reason(task: Mapping[str, Any], status: WorkflowStatus) -> str:
    return (
        f"Task {task['taskId']} failed with status: {status.value} and reason: "
        f"'{task.get('reasonForIncompletion') or ''}'"
    )


def workflow_output(plan: Plan, workflow: Mapping[str, Any], tasks: list[dict[str, Any]]) -> Any:
    """Reference §2.3: a completed TERMINATE's output, else outputParameters resolved, else the
    output of the last task in execution order."""
    for task in tasks:
        if task.get("taskType") == "TERMINATE" and task.get("status") == "COMPLETED":
            return task.get("outputData") or {}
    if plan.output_parameters:
        document = evaluation_document(workflow, tasks)
        try:
            return resolve(plan.output_parameters, document, env=allowed_environment())
        except ExpressionError as exc:
            log.warning("workflow %s: output parameters: %s", workflow.get("workflowId"), exc)
            return {}
    executed = [t for t in tasks if t.get("status") != TaskStatus.SCHEDULED.value]
    return executed[-1].get("outputData", {}) if executed else {}


def failure_plan(plan: Plan, workflow: Mapping[str, Any]) -> Plan | None:
    """The failureWorkflow to start when ``workflow`` fails: named, or read from its input."""
    if plan.failure is not None:
        return plan.failure
    if plan.failure_from_input:
        name = (workflow.get("input") or {}).get(plan.failure_from_input)
        if isinstance(name, str) and name:
            found = runtime_workflow(plan, name)
            if found is None:
                log.warning(
                    "workflow %s: failure workflow %r (from input %r) is not among the known definitions",
                    workflow.get("workflowId"),
                    name,
                    plan.failure_from_input,
                )
            return found
    return None


def failure_workflow_id(wf_id: str) -> str:
    """The id of the failureWorkflow started for ``wf_id`` (fixed, so it is started once)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{wf_id}:failureWorkflow"))


def ending_fields(
    plan: Plan,
    workflow: Mapping[str, Any],
    tasks: list[dict[str, Any]],
    status: WorkflowStatus,
    reason: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """The fields that end a workflow: status, output (§2.3), times, reason, failed tasks (every
    FAILED / FAILED_WITH_TERMINAL_ERROR instance, retried ones included; none for a timeout)."""
    now = now_ms() if now is None else now
    fields: dict[str, Any] = {
        "status": status.value,
        "output": workflow_output(plan, workflow, tasks),
        "endTime": now,
        "updateTime": now,
    }
    if reason is not None:
        fields["reasonForIncompletion"] = reason
    if status in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED):
        failed = [t for t in tasks if t.get("status") in ("FAILED", "FAILED_WITH_TERMINAL_ERROR")]
        if failed:
            fields["failedReferenceTaskNames"] = sorted({t["referenceTaskName"] for t in failed})
            fields["failedTaskNames"] = sorted({t.get("taskDefName") or "" for t in failed})
    if status in FAILURE_WORKFLOW_STATUSES and failure_plan(plan, workflow) is not None:
        output = fields["output"] if isinstance(fields["output"], dict) else {}
        fields["output"] = {**output, FAILURE_WORKFLOW_KEY: failure_workflow_id(workflow["workflowId"])}
    return fields


def end(
    plan: Plan,
    workflow: Mapping[str, Any],
    tasks: list[dict[str, Any]],
    status: WorkflowStatus,
    reason: str | None,
    transition: Transition | None = None,
    now: int | None = None,
) -> Transition:
    """End the workflow: every non-terminal task CANCELED (running attempts revoked, child
    workflows terminated), its deadlines dropped, the ending fields written."""
    from translator.engine.deadlines import ended_deadlines

    transition = transition or Transition()
    change = transition.change
    now = now_ms() if now is None else now
    for task in tasks:
        if TaskStatus(task["status"]).terminal:
            continue
        canceled = {
            **task,
            "status": TaskStatus.CANCELED.value,
            "endTime": now,
            "updateTime": now,
            "reasonForIncompletion": reason or f"Workflow is {status.value}",
        }
        change.write(canceled)
        if task.get("celeryTaskId") and task["status"] == TaskStatus.IN_PROGRESS.value:
            transition.revoke.append(task["celeryTaskId"])
        if task.get("subWorkflowId") and task.get("taskType") == "SUB_WORKFLOW":
            transition.stop_children.append(task["subWorkflowId"])
        change.drop += _task_deadlines(plan, task)
    final = [change.records.get(t["taskId"], t) for t in tasks]
    change.finish = ending_fields(plan, workflow, final, status, reason, now)
    timeout = workflow_deadline(workflow, plan)
    if timeout is not None:
        change.drop.append(timeout[0])
    change.add += ended_deadlines(workflow, change.finish, failure_plan(plan, workflow) is not None)
    transition.send.clear()
    transition.children = [c for c in transition.children if c.parent_task is None]
    transition.ended = status
    return transition


def _task_deadlines(plan: Plan, task: Mapping[str, Any]) -> list[Deadline]:
    if task.get("taskType") in ("SUB_WORKFLOW", "START_WORKFLOW"):
        return [child_deadline(task)[0]]
    if task.get("taskType") in WAIT_TYPES:
        try:
            node = plan.node(task["referenceTaskName"])
        except KeyError:
            return []
        return wait_deadlines(task, node) if isinstance(node, Wait) else []
    try:
        step = step_of(plan, task)
    except (KeyError, TranslatorError):
        return []
    return attempt_deadlines(task, step)


# ---------------------------------------------------------------------------------------------
# The decision


class Records:
    """The task records a decision reads: those it was given (all of them, or the open ones and the
    ones an event names), and, through ``fetch_latest`` / ``fetch_all``, any other on demand (read in
    the same revision: a decision is stored only if nothing changed since)."""

    def __init__(
        self,
        known: Iterable[Mapping[str, Any]],
        open_ids: Iterable[str] | None = None,
        fetch_latest: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None,
        fetch_all: Callable[[], list[dict[str, Any]]] | None = None,
        seq: int = 0,
    ) -> None:
        self.known = {t["taskId"]: dict(t) for t in known}
        # numbers below this are taken: the store's counter (reserved by the read), else the known max
        self.seq = max(seq - 1, max((int(t.get("seq") or 0) for t in self.known.values()), default=0))
        self.complete = fetch_latest is None
        self.open_ids = (
            set(open_ids)
            if open_ids is not None
            else {i for i, t in self.known.items() if not TaskStatus(t["status"]).terminal}
        )
        self.fetch_latest, self.fetch_all = fetch_latest, fetch_all
        self.latest: dict[str, dict[str, Any] | None] = {}
        for record in sorted(self.known.values(), key=record_order):
            self.latest[record["referenceTaskName"]] = record
            if record.get("iteration"):
                self.latest[base_ref(record["referenceTaskName"])] = record

    def get(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The newest record of each reference that has one."""
        refs = list(dict.fromkeys(refs))
        missing = [r for r in refs if r not in self.latest]
        if missing and not self.complete and self.fetch_latest is not None:
            found = self.fetch_latest(missing)
            for ref in missing:
                self.latest[ref] = found.get(ref)
        return {r: self.latest[r] for r in refs if self.latest.get(r) is not None}  # type: ignore[misc]

    def all(self) -> list[dict[str, Any]]:
        if self.complete or self.fetch_all is None:
            return list(self.known.values())
        return self.fetch_all()


def decide(
    plan: Plan,
    workflow: Mapping[str, Any],
    tasks: Records | Iterable[Mapping[str, Any]],
    changed: Iterable[Mapping[str, Any]] = (),
    timing: Timing = DEFAULT_TIMING,
    now: int | None = None,
) -> Transition:
    """What happens next in ``workflow``, given its task records and the ones an event ``changed``."""
    records = tasks if isinstance(tasks, Records) else Records(tasks)
    decider = _Decider(plan, workflow, records, changed, timing, now_ms() if now is None else now)
    return decider.run()


class _Decider:
    """One decision. The walk starts, in each task list, at the first task that is running or that
    the event changed (everything before it is done: a task starts only after those before it), so a
    decision reads and walks what is near the tasks in flight, not the whole workflow."""

    def __init__(
        self,
        plan: Plan,
        workflow: Mapping[str, Any],
        records: Records,
        changed: Iterable[Mapping[str, Any]],
        timing: Timing,
        now: int,
    ) -> None:
        self.plan, self.workflow, self.timing, self.now = plan, workflow, timing, now
        # the evaluation document's ``workflow`` entry, for the workflow as it was when made
        self.workflow_entry: tuple[Mapping[str, Any] | None, dict[str, Any]] = (None, {})
        self.source = records
        self.records: dict[str, dict[str, Any]] = dict(records.known)  # read or written here
        self.latest = records.latest
        self.open = set(records.open_ids)
        self.transition = Transition()
        self.frontier: dict[tuple[int, int], int] = {}  # (task list, iteration) -> where its walk starts
        self.ancestors: set[str] = set()  # references on the way to a running or changed task
        self.fresh: set[tuple[int, int]] = set()  # task lists started by this decision
        self.ended_now: set[str] = set()  # references whose task ended in this decision
        self.seq = records.seq
        self.failed: dict[str, Any] | None = None
        self.permissive_failed: list[dict[str, Any]] = []
        self.terminated: tuple[WorkflowStatus, str] | None = None
        self.progress = False
        for record in self.records.values():
            if record["taskId"] in self.open:
                self.touch(record)
        for record in changed:
            self.records[record["taskId"]] = dict(record)
            self.transition.change.write(dict(record))
            self.seq = max(self.seq, int(record.get("seq") or 0))
            self.index(record)
            self.touch(record)
        if not self.records and not self.open:
            self.fresh.add((id(plan.root), 0))  # a new workflow: everything starts here

    # -- bookkeeping ---------------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def index(self, record: Mapping[str, Any]) -> None:
        ref = record["referenceTaskName"]
        terminal = record["status"] in TERMINAL_TASK_STATUSES
        if terminal:
            self.ended_now.add(ref)
        self.latest[ref] = dict(record)
        if record.get("iteration"):
            self.latest[base_ref(ref)] = dict(record)
        if terminal:
            self.open.discard(record["taskId"])
        else:
            self.open.add(record["taskId"])

    def touch(self, record: Mapping[str, Any]) -> None:
        """Put a record's way from the root on the frontier."""
        ref, iteration = record["referenceTaskName"], int(record.get("iteration") or 0)
        anchor = record.get("_fork") or ref  # a dynamic fork's branch hangs under its fork
        path = self.plan.paths.get(base_ref(anchor))
        if path is None:
            return
        for seq_id, index, node_ref in path:
            it = iteration if seq_id in self.plan.loop_sequences else 0
            key = (seq_id, it)
            self.frontier[key] = min(self.frontier.get(key, index), index)
            self.ancestors.add(iteration_ref(node_ref, it))
        self.ancestors.add(ref)

    def get(self, ref: str, fresh: bool = False) -> dict[str, Any] | None:
        """The newest record of ``ref`` (``fresh``: in a task list this decision started, where
        nothing can exist that it did not write)."""
        if fresh or ref in self.latest:
            return self.latest.get(ref)
        return self.source.get([ref]).get(ref)

    def put(self, record: dict[str, Any]) -> dict[str, Any]:
        """Record a new or changed task instance."""
        new = record["taskId"] not in self.records
        self.records[record["taskId"]] = record
        self.index(record)
        self.touch(record)
        if new:
            self.transition.change.create(record)
        else:
            self.transition.change.write(record)
        self.progress = True
        return record

    def system_record(
        self, node: Node, ref: str, iteration: int, status: TaskStatus, task_type: str | None = None
    ) -> dict[str, Any]:
        record = new_record(
            self.workflow,
            ref,
            task_type or node.type,
            node.name,
            0,
            self.next_seq(),
            iteration=iteration,
            status=status,
            now=self.now,
        )
        record["executed"] = status.terminal
        return record

    def document(self, params: Any = None) -> dict[str, Any]:
        """The evaluation document, with the records ``params``' expressions read (all of them when
        their paths are built at run time)."""
        names = _template_names(params)
        if names is None:
            records: Iterable[Mapping[str, Any]] = {
                **{t["taskId"]: t for t in self.source.all()},
                **self.records,
            }.values()
        else:
            found = self.source.get(n for n in names if n != "workflow")
            records = {t["taskId"]: t for t in found.values()}.values()
        if self.workflow_entry[0] is not self.workflow:  # not made yet, or a SET_VARIABLE replaced it
            self.workflow_entry = (self.workflow, workflow_document(self.workflow))
        return evaluation_document(self.workflow, records, self.workflow_entry[1])

    def step_input(self, step: Step, task_id: str) -> dict[str, Any]:
        """A worker task's input: its inputParameters with its TaskDef's inputTemplate (§5.6)."""
        document = self.document([step.input_parameters, step.input_template])
        return resolve_task_input(
            step.input_parameters,
            document,
            input_template=step.input_template,
            task_id=task_id,
            env=self.env,
        )

    def resolve_input(self, params: Mapping[str, Any], task_id: str) -> dict[str, Any]:
        if not params:
            return {}
        document = self.document(params)
        return resolve_task_input(params, document, task_id=task_id, env=self.env)

    @cached_property
    def env(self) -> dict[str, str]:
        """The environment variables ``${NAME}`` may read, looked up once per decision."""
        return allowed_environment()

    def finish_record(
        self, record: dict[str, Any], status: TaskStatus, output: Any = None, reason: str | None = None
    ) -> dict[str, Any]:
        updated = {**record, "status": status.value, "endTime": self.now, "updateTime": self.now}
        if output is not None:
            updated["outputData"] = output
        if reason is not None:
            updated["reasonForIncompletion"] = shorten(reason, REASON_LIMIT, quote=False)
        updated["executed"] = True
        return self.put(updated)

    def fail(self, record: Mapping[str, Any]) -> None:
        if self.failed is None:
            self.failed = dict(record)

    def all_records(self) -> list[dict[str, Any]]:
        """Every record, as this decision leaves them (read once, when the workflow ends)."""
        merged = {t["taskId"]: t for t in self.source.all()}
        merged.update(self.records)
        for task_id in self.transition.change.remove:
            merged.pop(task_id, None)
        return sorted(merged.values(), key=record_order)

    # -- the walk ------------------------------------------------------------------------------

    def run(self) -> Transition:
        status = WorkflowStatus(self.workflow["status"])
        if status.terminal or status is WorkflowStatus.PAUSED:
            # PAUSED (DeciderService.decide): the records an event changed are stored, nothing new is
            # scheduled and nothing ends; ``lifecycle.resume`` decides again from every record
            return self.transition
        done = False
        for _ in range(MAX_PASSES):
            self.progress = False
            done = self.sequence(self.plan.root, 0)
            if self.failed is not None or self.terminated is not None or not self.progress:
                break
        if self.terminated is not None:
            status, reason = self.terminated
            return end(
                self.plan, self.workflow, self.all_records(), status, reason, self.transition, self.now
            )
        if self.failed is not None:
            status = workflow_status_for_failed_task(TaskStatus(self.failed["status"]))
            reason = failure_reason(self.failed, status)
            return end(
                self.plan, self.workflow, self.all_records(), status, reason, self.transition, self.now
            )
        if done and not self.open:
            tasks = self.all_records()
            failed = self.permissive_failed or _unsuccessful(tasks)
            if failed:
                reason = failure_reason(failed[0], WorkflowStatus.FAILED)
                return end(
                    self.plan, self.workflow, tasks, WorkflowStatus.FAILED, reason, self.transition, self.now
                )
            return end(
                self.plan, self.workflow, tasks, WorkflowStatus.COMPLETED, None, self.transition, self.now
            )
        return self.transition

    def sequence(self, sequence: Sequence, iteration: int) -> bool:
        """Advance a task list; True when every task of it is done. A list neither started by this
        decision nor on the frontier is finished (or was never started, which the caller knows)."""
        key = (id(sequence), iteration)
        fresh = key in self.fresh
        start = 0 if fresh else self.frontier.get(key)
        if start is None:
            return True
        previous: Node | None = sequence.nodes[start - 1] if start > 0 else None
        for node in sequence.nodes[start:]:
            # a task whose predecessor ended only now cannot have started: nothing to read
            follows = previous is not None and iteration_ref(previous.ref, iteration) in self.ended_now
            if not self.node(node, iteration, previous, fresh or follows):
                return False
            if self.failed is not None or self.terminated is not None:
                return False
            previous = node
        return True

    def start(self, sequence: Sequence, iteration: int) -> bool:
        """Start a task list (a case picked, a branch forked, an iteration begun) and advance it."""
        self.fresh.add((id(sequence), iteration))
        return self.sequence(sequence, iteration)

    def node(self, node: Node, iteration: int, previous: Node | None, fresh: bool = False) -> bool:
        ref = iteration_ref(node.ref, iteration)
        record = self.get(ref, fresh)
        kind = type(node)
        if kind is Join:
            return self.join(node, ref, iteration, record, previous)  # type: ignore[arg-type]
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise TypeError(f"unknown plan node {node!r}")
        return handler(self, node, ref, iteration, record)

    def ended(self, record: Mapping[str, Any], optional: bool = False, permissive: bool = False) -> bool:
        """Whether a task is done (successful, or a failure the flow goes past); a final failure
        fails the workflow."""
        status = record["status"]
        if status not in TERMINAL_TASK_STATUSES:
            return False
        if status in SUCCESSFUL_TASK:
            return True
        if permissive and status != TaskStatus.CANCELED.value:
            if all(r["taskId"] != record["taskId"] for r in self.permissive_failed):
                self.permissive_failed.append(dict(record))
            return True
        self.fail(record)
        return False

    # -- worker tasks --------------------------------------------------------------------------

    def schedule(
        self,
        step: Step,
        ref: str,
        iteration: int,
        task: dict[str, Any] | None = None,
        fork: str | None = None,
    ) -> dict[str, Any]:
        """A new attempt 0 of a worker task, sent now unless it waits for a long delay; its input
        resolved now (one that cannot be resolved fails the task at once)."""
        record = scheduled_record(self.workflow, step, 0, self.next_seq(), ref=ref, iteration=iteration)
        record["scheduledTime"] = record["updateTime"] = self.now
        if task is not None:
            record["workflowTask"] = task
            record["taskType"] = step.name
        if fork is not None:
            record["_fork"] = fork  # the dynamic fork it is a branch of
        try:  # resolved when scheduled, as Conductor's mappers do (reference §5.3)
            record["inputData"] = self.step_input(step, record["taskId"])
        except ExpressionError as exc:
            record.update(status=TaskStatus.FAILED_WITH_TERMINAL_ERROR.value, endTime=self.now)
            record["reasonForIncompletion"] = shorten(str(exc), REASON_LIMIT, quote=False)
            if step.policy.optional:
                record["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
            return self.put(record)
        self.put(record)
        change = self.transition.change
        change.add += scheduling_deadlines(record, step, self.timing.park_after, self.timing.resend_after)
        if not parks(record, self.timing.park_after):
            self.transition.send.append(Dispatch(ref, step))
        return record

    def step(self, step: Step, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        if record is None:
            record = self.schedule(step, ref, iteration)
        return self.ended(record, step.policy.optional, step.policy.permissive)

    def dynamic(self, node: Dynamic, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        if record is None:
            task_id = attempt_id(self.workflow["workflowId"], ref, 0)
            try:
                data = self.resolve_input(node.input_parameters, task_id)
            except ExpressionError as exc:
                return self.refuse(node, ref, iteration, str(exc))
            name = data.get(node.name_param)
            if name is None or name == "":
                reason = (
                    "Cannot map a dynamic task based on the parameter and input. "
                    f"Parameter= {node.name_param}"
                )
                return self.refuse(node, ref, iteration, reason)
            task = {**node.task, "name": str(name), "type": "SIMPLE", "taskReferenceName": ref}
            record = self.schedule(step_of(self.plan, {"workflowTask": task}), ref, iteration, task)
        step = step_of(self.plan, record) if record.get("workflowTask") else None
        policy = step.policy if step is not None else None
        return self.ended(record, bool(policy and policy.optional), bool(policy and policy.permissive))

    def refuse(
        self,
        node: Node,
        ref: str,
        iteration: int,
        reason: str,
        status: TaskStatus = TaskStatus.FAILED_WITH_TERMINAL_ERROR,
    ) -> bool:
        """A system task that cannot run: it ends ``status`` (by default FAILED_WITH_TERMINAL_ERROR)
        and the workflow fails."""
        record = self.system_record(node, ref, iteration, status)
        record["reasonForIncompletion"] = shorten(reason, REASON_LIMIT, quote=False)
        self.put(record)
        self.fail(record)
        return False

    # -- sync system tasks, WAIT and HUMAN -----------------------------------------------------

    def system(self, node: System | Wait, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        """INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP: run now (``engine.system``). WAIT and
        HUMAN: IN_PROGRESS until their time passes (a ``wait`` deadline) or they are completed from
        outside (``runtime.complete``)."""
        optional, permissive = node.policy.optional, node.policy.permissive
        if record is not None:
            return self.ended(record, optional, permissive)
        record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
        try:
            data = self.resolve_input(node.input_parameters, record["taskId"])
            until = wait_until(data, self.now) if node.type == "WAIT" else None
        except (ExpressionError, WaitError) as exc:
            return self.refuse(node, ref, iteration, str(exc))
        record["inputData"] = data
        record["startTime"] = self.now
        if isinstance(node, Wait):
            if until is None or until > self.now:  # a past time completes promptly (Conductor)
                if until is not None:
                    record["waitTimeout"] = until
                self.transition.change.add += waiting_started(record, node)
                self.put(record)
                return False
            outcome = Outcome(TaskStatus.COMPLETED, {})
        else:
            outcome = SYNC_TASKS[node.type](data, self.workflow)
        # created ended (finish_record): the IN_PROGRESS record is never seen outside this decision
        if outcome.variables is not None:
            self.workflow = {**self.workflow, "variables": outcome.variables}
            self.transition.change.update["variables"] = outcome.variables
        status = outcome.status
        if optional and not status.successful:
            status = TaskStatus.COMPLETED_WITH_ERRORS
        self.finish_record(record, status, outcome.output, outcome.reason)
        return self.ended(self.latest[ref], optional, permissive)

    # -- SWITCH / DECISION ---------------------------------------------------------------------

    def switch(self, node: Switch, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        created = record is None
        if record is None:
            record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
            try:
                data = self.resolve_input(node.input_parameters, record["taskId"])
                case = switch_case(node, data)
            except (ExpressionError, DecisionError) as exc:
                record["inputData"] = {}
                self.put(record)
                self.finish_record(record, TaskStatus.FAILED, reason=str(exc))
                self.fail(self.latest[ref])
                return False
            record["inputData"] = {**data, "case": case}
            output: dict[str, Any] = {"evaluationResult": [case]}
            if node.type == "SWITCH":
                output["selectedCase"] = case
            else:
                output = {"caseOutput": [case]}
            self.put(record)
            record = self.finish_record(record, TaskStatus.COMPLETED, output)
        if not self.ended(record):
            return False
        output = record.get("outputData") or {}
        chosen = (output.get("evaluationResult") or output.get("caseOutput") or [None])[0]
        tasks = selected_case(node, chosen)
        return self.start(tasks, iteration) if created else self.sequence(tasks, iteration)

    # -- forks and joins -----------------------------------------------------------------------

    def fork(self, node: Fork, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        created = record is None
        if record is None:
            record = self.system_record(node, ref, iteration, TaskStatus.COMPLETED, "FORK")
            try:
                record["inputData"] = self.resolve_input(node.input_parameters, record["taskId"])
            except ExpressionError:
                record["inputData"] = {}
            self.put(record)
        if not self.ended(record):
            return False
        for branch in node.branches:  # a branch not on the frontier of an older fork is finished
            if created:
                self.start(branch, iteration)
            else:
                self.sequence(branch, iteration)
            if self.failed is not None or self.terminated is not None:
                return False
        return True

    def dynamic_fork(
        self, node: DynamicFork, ref: str, iteration: int, record: dict[str, Any] | None
    ) -> bool:
        created = record is None
        if record is None:
            task_id = attempt_id(self.workflow["workflowId"], ref, 0)
            try:
                data = self.resolve_input(node.input_parameters, task_id)
                branches = dynamic_branches(node, data, self.document(data))
            except (ExpressionError, DecisionError) as exc:
                return self.refuse(node, ref, iteration, str(exc))
            record = self.system_record(node, ref, iteration, TaskStatus.COMPLETED, "FORK")
            record["inputData"] = {
                **data,
                "forkedTasks": [task["taskReferenceName"] for task in branches],
                "forkedTaskDefs": branches,
            }
            self.put(record)
        if not self.ended(record):
            return False
        for task in record["inputData"].get("forkedTaskDefs") or []:
            branch_ref = iteration_ref(task["taskReferenceName"], iteration)
            if not created and branch_ref not in self.ancestors:
                continue  # neither running nor changed: finished
            found = self.get(branch_ref, fresh=created)
            step = step_of(self.plan, {"workflowTask": task})
            if found is None:
                found = self.schedule(step, branch_ref, iteration, task, fork=ref)
            self.ended(found, step.policy.optional, step.policy.permissive)
            if self.failed is not None:
                return False
        return True

    def join_refs(self, node: Join, iteration: int, previous: Node | None) -> list[str]:
        if isinstance(previous, DynamicFork):
            fork = self.get(iteration_ref(previous.ref, iteration))
            refs = list((fork or {}).get("inputData", {}).get("forkedTasks") or [])
        else:
            refs = list(node.join_on)
        return [iteration_ref(r, iteration) for r in refs]

    def join(
        self, node: Join, ref: str, iteration: int, record: dict[str, Any] | None, previous: Node | None
    ) -> bool:
        refs = self.join_refs(node, iteration, previous)
        if record is None:
            record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
            record["inputData"] = {"joinOn": refs}
            if node.type == "EXCLUSIVE_JOIN":
                record["inputData"]["defaultExclusiveJoinTask"] = list(node.default_join)
            self.put(record)
        if TaskStatus(record["status"]).terminal:
            return self.ended(record)
        if node.type == "EXCLUSIVE_JOIN":
            return self.exclusive_join(node, record, refs, iteration)
        running = {self.records[i]["referenceTaskName"] for i in self.open if i in self.records}
        if any(r in running for r in refs):
            return False
        found = self.source.get([r for r in refs if r not in self.latest])
        joined = [self.latest.get(r) or found.get(r) for r in refs]
        if any(t is None or not TaskStatus(t["status"]).terminal for t in joined):
            return False
        output = {t["referenceTaskName"]: t.get("outputData") for t in joined if t and t.get("outputData")}
        unsuccessful = [t for t in joined if t and t["status"] not in SUCCESSFUL_TASK]
        if unsuccessful:
            canceled = all(t["status"] == "CANCELED" for t in unsuccessful)
            status = TaskStatus.CANCELED if canceled else TaskStatus.FAILED
            # Conductor (Join.execute): the unsuccessful joined tasks' reasons, joined by spaces
            reasons = [t["reasonForIncompletion"] for t in unsuccessful if t.get("reasonForIncompletion")]
            self.finish_record(record, status, output, " ".join(reasons))
            self.fail(self.latest[ref])
            return False
        # an optional joined task that failed: "<taskDefName>/<taskId> … completed with errors"
        errors = [
            f"{t['taskDefName']}/{t['taskId']} "
            for t in joined
            if t and t["status"] == "COMPLETED_WITH_ERRORS" and self.optional(t)
        ]
        if errors:
            reason = "".join(errors) + "completed with errors"
            self.finish_record(record, TaskStatus.COMPLETED_WITH_ERRORS, output, reason)
        else:
            self.finish_record(record, TaskStatus.COMPLETED, output)
        return True

    def optional(self, record: Mapping[str, Any]) -> bool:
        """Whether the task of a record is marked optional."""
        task = record.get("workflowTask")
        if task:
            return bool(task.get("optional"))
        try:
            node = self.plan.node(record["referenceTaskName"])
        except KeyError:
            return False
        return bool(getattr(getattr(node, "policy", None), "optional", False))

    def exclusive_join(self, node: Join, record: dict[str, Any], refs: list[str], iteration: int) -> bool:
        chosen = None
        for group in (refs, [iteration_ref(r, iteration) for r in node.default_join]):
            found = {r: self.get(r) for r in group}
            chosen = next((t for t in found.values() if t is not None and t["status"] != "SKIPPED"), None)
            if chosen is not None:
                break
        if chosen is None or not TaskStatus(chosen["status"]).terminal:
            return False
        if chosen["status"] in SUCCESSFUL_TASK:
            self.finish_record(record, TaskStatus.COMPLETED, dict(chosen.get("outputData") or {}))
            return True
        self.finish_record(record, TaskStatus.FAILED, reason=chosen.get("reasonForIncompletion") or "")
        self.fail(self.latest[record["referenceTaskName"]])
        return False

    # -- DO_WHILE ------------------------------------------------------------------------------

    def loop(self, node: Loop, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        created = record is None
        if record is None:
            record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
            try:
                data = self.resolve_input(node.input_parameters, record["taskId"])
                items = loop_items(node, data, self.document(node.items))
            except (ExpressionError, DecisionError) as exc:
                self.put(record)
                self.finish_record(record, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason=str(exc))
                self.fail(self.latest[ref])
                return False
            record["inputData"] = data if items is None else {**data, "items": items}
            if items is not None and not items:
                record["iteration"] = 0
                self.put(record)
                self.finish_record(record, TaskStatus.COMPLETED, {"iteration": 0})
                return True
            record["iteration"] = 1
            record["outputData"] = {"iteration": 1, **_item_fields(items, 0)}
            self.put(record)
        if TaskStatus(record["status"]).terminal:
            return self.ended(record)
        current = int(record.get("iteration") or 1)
        key = (id(node.body), current)
        if not created and key not in self.frontier and key not in self.fresh:
            return False  # its body runs (a loop IN_PROGRESS always has a body task in flight)
        body_done = self.start(node.body, current) if created else self.sequence(node.body, current)
        if not body_done:
            if self.failed is not None and self.failed.get("referenceTaskName") != ref:
                self.finish_record(record, TaskStatus.FAILED, reason=self.failed.get("reasonForIncompletion"))
            return False
        # the body of this iteration is done: record its outputs, then ask the condition
        output = dict(record.get("outputData") or {})
        output[str(current)] = self.iteration_outputs(node, current)
        items = (record.get("inputData") or {}).get("items")
        try:
            again = self.condition(node, record, output)
        except DecisionError as exc:
            self.finish_record(record, TaskStatus.FAILED_WITH_TERMINAL_ERROR, output, str(exc))
            self.fail(self.latest[ref])
            return False
        if items is not None:
            again = current < len(items) and (again or not node.condition.strip())
        if node.keep_last_n:  # keep the last keepLastN iterations' outputs and tasks
            for old in range(1, current - node.keep_last_n + 1):
                output.pop(str(old), None)
            self.forget_iterations(node, current - node.keep_last_n + 1)
        if not again:
            self.finish_record(record, TaskStatus.COMPLETED, {**output, "iteration": current})
            return True
        following = current + 1
        updated = {**record, "iteration": following, "updateTime": self.now}
        updated["outputData"] = {**output, "iteration": following, **_item_fields(items, following - 1)}
        self.put(updated)
        self.start(node.body, following)
        return False

    def iteration_outputs(self, node: Loop, iteration: int) -> dict[str, Any]:
        """The outputs of the body's tasks in ``iteration``, by reference without ``__<iteration>``."""
        refs = [iteration_ref(n.ref, iteration) for n in walk(node.body)]
        found = self.source.get([r for r in refs if r not in self.latest])
        outputs: dict[str, Any] = {}
        for ref in refs:
            record = self.latest.get(ref) or found.get(ref)
            if record is not None:
                outputs[base_ref(ref)] = record.get("outputData") or {}
        return outputs

    def forget_iterations(self, node: Loop, before: int) -> None:
        """keepLastN: remove the task instances of iterations before ``before``."""
        inside = {n.ref for n in walk(node.body)}
        for record in self.all_records():
            it = int(record.get("iteration") or 0)
            ref = record["referenceTaskName"]
            if 0 < it < before and base_ref(ref) in inside:
                self.transition.change.remove.append(record["taskId"])
                self.transition.change.forget.append(ref)
                self.records.pop(record["taskId"], None)
                self.latest.pop(ref, None)

    def condition(self, node: Loop, record: Mapping[str, Any], output: Mapping[str, Any]) -> bool:
        if not node.condition.strip():
            return False
        from translator.engine import javascript

        bindings: dict[str, Any] = dict(record.get("inputData") or {})
        bindings.pop("items", None)
        bindings[node.ref] = {**output, "iteration": record.get("iteration")}
        for body_ref, body_output in output.get(str(record.get("iteration")), {}).items():
            bindings[body_ref] = body_output
        try:
            value = javascript.evaluate(node.condition, {"$": bindings})
        except TranslatorError as exc:
            raise DecisionError(f"loopCondition of {node.ref}: {exc}") from None
        return javascript.eval_bool(value)

    # -- TERMINATE -----------------------------------------------------------------------------

    def terminate(self, node: Terminate, ref: str, iteration: int, record: dict[str, Any] | None) -> bool:
        if record is not None:
            return self.ended(record)
        record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
        try:
            data = self.resolve_input(node.input_parameters, record["taskId"])
        except ExpressionError as exc:
            return self.refuse(node, ref, iteration, str(exc))
        record["inputData"] = data
        self.put(record)
        status = data.get("terminationStatus")
        if status not in TERMINATION_STATUSES:
            reason = f"terminationStatus must be one of {', '.join(TERMINATION_STATUSES)}, got {status!r}"
            self.finish_record(record, TaskStatus.FAILED, reason=reason)
            self.fail(self.latest[ref])
            return False
        value = data.get("workflowOutput")
        output = value if isinstance(value, dict) else ({} if value is None else {"output": value})
        record = self.finish_record(record, TaskStatus.COMPLETED, copy_json(output))
        reason = (
            data.get("terminationReason") or f"Workflow is {status} by TERMINATE task: {record['taskId']}"
        )
        self.terminated = (WorkflowStatus(status), str(reason))
        return False

    # -- SUB_WORKFLOW / START_WORKFLOW ---------------------------------------------------------

    def named_at_run(self, node: SubWorkflow) -> Plan:
        """The plan of a sub-workflow whose name (and version) are expressions."""
        param = resolve(node.name_at_run or {}, self.document(), env=allowed_environment())
        name, version = param.get("name"), param.get("version")
        found = runtime_workflow(self.plan, str(name), version if isinstance(version, int) else None)
        if found is None:
            raise DecisionError(f"sub-workflow {name!r} is not among the known workflow definitions")
        return found

    def sub_workflow(
        self, node: SubWorkflow, ref: str, iteration: int, record: dict[str, Any] | None
    ) -> bool:
        if record is not None:
            return self.ended(record, node.policy.optional, node.policy.permissive)
        record = self.system_record(node, ref, iteration, TaskStatus.IN_PROGRESS)
        try:
            data = self.resolve_input(node.input_parameters, record["taskId"])
        except ExpressionError as exc:
            return self.refuse(node, ref, iteration, str(exc))
        if node.type == "START_WORKFLOW":
            request = data.get("startWorkflow")
            # Conductor (StartWorkflow.execute): a missing, invalid or unknown request FAILS the task
            if request is None:
                reason = "Missing 'startWorkflow' in input data."
                return self.refuse(node, ref, iteration, reason, TaskStatus.FAILED)
            if not isinstance(request, dict) or not request.get("name"):
                reason = "startWorkflow validation failed. 'name' -> Workflow name cannot be null or empty. "
                return self.refuse(node, ref, iteration, reason, TaskStatus.FAILED)
            record["inputData"] = data
            start = child_start(self.plan, self.workflow, record)
            if start is None:
                version = request.get("version")
                reason = f"No such workflow found by name: {request['name']}, version: {version}"
                return self.refuse(node, ref, iteration, reason, TaskStatus.FAILED)
            self.put(record)
            self.finish_record(record, TaskStatus.COMPLETED, {"workflowId": start.workflow_id})
        else:
            child_plan = node.plan
            if child_plan is None:
                try:
                    child_plan = self.named_at_run(node)
                except (ExpressionError, DecisionError) as exc:
                    return self.refuse(node, ref, iteration, str(exc))
            record["inputData"] = {
                **data,
                "subWorkflowName": child_plan.name,
                "subWorkflowVersion": child_plan.version,
            }
            record["subWorkflowId"] = child_workflow_id(record["taskId"])
            record["outputData"] = {"subWorkflowId": record["subWorkflowId"]}
            start = child_start(self.plan, self.workflow, record)
            assert start is not None
            self.put(record)
        self.transition.children.append(start)
        self.transition.change.add.append(child_deadline(record))
        return node.type == "START_WORKFLOW"


# The decider's method for each kind of plan node but Join (which also takes the node before it).
_HANDLERS: dict[type, Callable[..., bool]] = {
    Step: _Decider.step,
    Switch: _Decider.switch,
    Fork: _Decider.fork,
    DynamicFork: _Decider.dynamic_fork,
    Loop: _Decider.loop,
    Terminate: _Decider.terminate,
    Dynamic: _Decider.dynamic,
    SubWorkflow: _Decider.sub_workflow,
    System: _Decider.system,
    Wait: _Decider.system,
}


_NAMES: dict[int, tuple[Any, frozenset[str] | None]] = {}  # id(template) -> (template, its names)


def _template_names(template: Any) -> frozenset[str] | None:
    """``referenced_names`` of a plan's template (never mutated: a plan is read-only), worked out once
    per process. The cache holds the template, so its id names it as long as the entry lives."""
    known = _NAMES.get(id(template))
    if known is not None and known[0] is template:
        return known[1]
    names = referenced_names(template)
    if len(_NAMES) >= 4096:
        _NAMES.clear()
    found = None if names is None else frozenset(names)
    _NAMES[id(template)] = (template, found)
    return found


def child_start(plan: Plan, workflow: Mapping[str, Any], record: Mapping[str, Any]) -> ChildStart | None:
    """The workflow a SUB_WORKFLOW / START_WORKFLOW task record starts (None: unknown workflow)."""
    data = record.get("inputData") or {}
    node = plan.node(record["referenceTaskName"])
    correlation = workflow.get("correlationId")
    child_id = child_workflow_id(record["taskId"])
    ref, attempt = record["referenceTaskName"], int(record.get("retryCount") or 0)
    if record.get("taskType") == "START_WORKFLOW":
        request = data.get("startWorkflow") or {}
        version = request.get("version")
        found = runtime_workflow(
            plan, str(request.get("name")), version if isinstance(version, int) else None
        )
        if found is None:
            return None
        child_input = request.get("input") if isinstance(request.get("input"), dict) else {}
        correlation = request.get("correlationId") or correlation
        return ChildStart(child_id, found, copy_json(child_input), correlation, None, ref, attempt)
    assert isinstance(node, SubWorkflow)
    child_plan = node.plan
    if child_plan is None:
        version = data.get("subWorkflowVersion")
        child_plan = runtime_workflow(plan, str(data.get("subWorkflowName")), version)
        if child_plan is None:
            return None
    bookkeeping = ("subWorkflowName", "subWorkflowVersion")
    child_input = (
        {k: v for k, v in data.items() if k not in bookkeeping} if node.input_parameters else dict(data)
    )
    return ChildStart(
        child_id, child_plan, copy_json(child_input), correlation, record["taskId"], ref, attempt
    )


def _unsuccessful(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed tasks a completed flow went past (permissive ones), newest attempt of each."""
    latest: dict[str, dict[str, Any]] = {}
    for task in tasks:
        latest[task["referenceTaskName"]] = task
    failed = ("FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT")
    return [t for t in latest.values() if t["status"] in failed]


def record_order(record: Mapping[str, Any]) -> tuple[int, int]:
    """Task records in the order they were made: by ``seq``, then attempt."""
    return int(record.get("seq") or 0), int(record.get("retryCount") or 0)


def _item_fields(items: list[Any] | None, index: int) -> dict[str, Any]:
    if items is None or index >= len(items):
        return {}
    return {"loopItem": items[index], "loopIndex": index}


# ---------------------------------------------------------------------------------------------
# Evaluating system tasks


def switch_case(node: Switch, data: Mapping[str, Any]) -> str:
    """The case a SWITCH / DECISION picks, as Conductor's string form of the value."""
    if node.evaluator == "value-param":
        return java_string(data.get(node.expression))
    if node.evaluator in ("javascript", "graaljs"):
        from translator.engine import javascript

        try:
            value = javascript.evaluate(node.expression, {"$": dict(data)})
        except TranslatorError as exc:
            raise DecisionError(f"{node.ref}: expression failed: {exc}") from None
        return javascript.case_string(value)
    raise DecisionError(f"No evaluator registered for type {node.evaluator!r}")


def selected_case(node: Switch, case: str | None) -> Sequence:
    """The tasks a case value runs: SWITCH falls to the default only when no case matched (an
    empty matched case runs nothing); DECISION also when the matched case is empty."""
    tasks = node.case(case) if case is not None else None
    if tasks is None or (node.type == "DECISION" and not tasks.nodes):
        return node.default
    return tasks


def dynamic_branches(node: DynamicFork, data: Mapping[str, Any], document: Any) -> list[dict[str, Any]]:
    """A dynamic fork's branch tasks (WorkflowTask JSON, each with its inputParameters), from
    ``dynamicForkTasksParam`` + ``dynamicForkTasksInputParamName``, or ``forkTaskName`` +
    ``forkTaskInputs``."""
    if node.tasks_param:
        tasks = data.get(node.tasks_param)
        if not isinstance(tasks, list):
            raise DecisionError(
                f"Input '{node.tasks_param}' of dynamic fork {node.ref} must be a list of tasks"
            )
        inputs = data.get(node.inputs_param or "") if node.inputs_param else {}
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise DecisionError(f"Input '{node.inputs_param}' of dynamic fork {node.ref} must be a map")
        branches = []
        for index, task in enumerate(tasks):
            if not isinstance(task, dict) or not task.get("taskReferenceName"):
                raise DecisionError(f"dynamic fork {node.ref}: task {index} has no taskReferenceName")
            branch = dict(task)
            params = dict(branch.get("inputParameters") or {})
            extra = inputs.get(branch["taskReferenceName"])
            if isinstance(extra, dict):
                params.update(extra)
            branch["inputParameters"] = resolve(params, document, env=allowed_environment())
            branches.append(_branch_task(node, branch))
        return branches
    name = data.get("forkTaskName")
    inputs = data.get("forkTaskInputs")
    if not name or not isinstance(inputs, list):
        raise DecisionError(f"dynamic fork {node.ref}: forkTaskName and a forkTaskInputs list are required")
    if data.get("forkTaskType") not in (None, "SIMPLE"):
        raise DecisionError(
            f"dynamic fork {node.ref}: forkTaskType {data.get('forkTaskType')!r} is not supported"
        )
    branches = []
    for index, item in enumerate(inputs):
        params = dict(item) if isinstance(item, dict) else {"input": item}
        params["__index"] = index
        task = {
            "name": name,
            "taskReferenceName": f"_{name}_{index}",
            "type": "SIMPLE",
            "inputParameters": params,
            "optional": node.optional,
        }
        branches.append(_branch_task(node, task))
    return branches


def _branch_task(node: DynamicFork, task: dict[str, Any]) -> dict[str, Any]:
    kind = task.get("type") or "SIMPLE"
    if kind != "SIMPLE":
        raise DecisionError(
            f"dynamic fork {node.ref}: branch {task['taskReferenceName']} is a {kind} task; "
            "only SIMPLE tasks are supported in dynamic forks"
        )
    return {**task, "type": "SIMPLE"}


def loop_items(node: Loop, data: Mapping[str, Any], document: Any) -> list[Any] | None:
    """DO_WHILE list mode: the items to iterate (``items``, or the ``_items`` input), else None."""
    items = node.items
    if items is None and "_items" in data:
        items = data["_items"]
    if items is None:
        return None
    value = resolve(items, document, env=allowed_environment()) if isinstance(items, str) else items
    if not isinstance(value, list):
        raise DecisionError(f"items of {node.ref} must be a list, got {type(value).__name__}")
    return value
