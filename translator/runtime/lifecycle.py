"""Operating a workflow from outside: pause, resume, terminate, retry, restart, rerun, skip a task,
remove — Conductor's ``WorkflowExecutorOps`` (reference §6.3), with its preconditions and messages.

Each operation is one atomic, revision-checked write of the execution (decided again when another
write came first), then what it implies is sent: the attempts it schedules, the tasks the decider
schedules after it. An operation on an ended workflow (retry, restart, rerun) reopens it: its keys
lose their TTL and its plan counts it as running again (``Change.reopen``).

Where Conductor answers a refused operation with HTTP 500 (an ``IllegalStateException``: resume of a
workflow that is not paused, skip of a task that cannot be skipped) or 404 (retry of a running
workflow), these raise :class:`ConflictError` (409) with Conductor's message; see docs/lifecycle.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from celery import Celery

from translator.definitions.expressions import allowed_environment, resolve_task_input
from translator.engine.compiler import timing_of
from translator.engine.deadlines import (
    child_deadline,
    scheduling_deadlines,
    waiting_started,
    workflow_deadline,
)
from translator.engine.decide import (
    MAX_CONFLICTS,
    Dispatch,
    Records,
    Transition,
    child_start,
    child_workflow_id,
    decide,
    evaluation_document,
    failure_workflow_id,
    new_record,
    next_attempt,
    record_order,
    scheduled_record,
    step_of,
)
from translator.engine.plan import Plan, Step, SubWorkflow, System, Wait, base_ref
from translator.engine.system import SYNC_TASKS, Outcome
from translator.errors import ConflictError, ExpressionError, TranslatorError, UsageError, WorkflowNotFound
from translator.runtime.complete import wait_retry_record
from translator.runtime.dispatch import follow_up, resend, stop_workflow
from translator.status import TaskStatus, WorkflowStatus
from translator.store.records import plan_of
from translator.store.state import Change, StateStore, now_ms
from translator.text import REASON_LIMIT, shorten

log = logging.getLogger("translator.runtime.lifecycle")

CONTAINER_TYPES = frozenset({"DO_WHILE", "FORK", "FORK_JOIN", "JOIN", "EXCLUSIVE_JOIN"})
CHILD_TYPES = frozenset({"SUB_WORKFLOW", "START_WORKFLOW"})
UNREVOKE_COMMAND = "translator_unrevoke"


def short(workflow: Mapping[str, Any]) -> str:
    """Conductor's ``WorkflowModel.toShortString()``: ``name.version/id``."""
    return f"{workflow.get('workflowName')}.{workflow.get('workflowVersion')}/{workflow.get('workflowId')}"


def _read(store: StateStore, wf_id: str) -> tuple[dict[str, Any], Plan, list[dict[str, Any]]]:
    """The execution's fields (with ``_rev``), its plan and every task record."""
    fields = store.workflow_fields(wf_id)
    if fields is None:
        raise WorkflowNotFound(f"No such workflow found by id: {wf_id}")
    plan = plan_of(store, fields)
    if plan is None:
        raise WorkflowNotFound(f"workflow {wf_id}: its plan is no longer in the state store")
    return fields, plan, store.tasks(wf_id)


def _store(
    app: Celery,
    store: StateStore,
    wf_id: str,
    build: Callable[[dict[str, Any], Plan, list[dict[str, Any]]], Transition | None],
) -> tuple[Transition, Plan] | None:
    """Read, build the change, store it if nothing was stored meanwhile (else again), follow it up
    with the plan the execution runs after it (a restart may give it another). None when ``build`` has
    nothing to do."""
    for _ in range(MAX_CONFLICTS):
        fields, plan, tasks = _read(store, wf_id)
        transition = build(fields, plan, tasks)
        if transition is None:
            return None
        saved = store.apply(wf_id, transition.change, rev=int(fields.get("_rev") or 0))
        if saved.applied:
            digest = transition.change.update.get("_plan")
            if digest is not None:
                plan = plan_of(store, {"_plan": digest}) or plan
            follow_up(app, store, plan, wf_id, transition)
            return transition, plan
        if not saved.conflict:
            continue  # the status changed under us: read again, the preconditions decide
    raise ConflictError(f"workflow {wf_id} kept changing; the operation was not applied")


# ---------------------------------------------------------------------------------------------
# pause, resume, terminate, remove


def pause(app: Celery, store: StateStore, wf_id: str) -> None:
    """PAUSED: nothing new is scheduled; running tasks still end (their records are kept)."""

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        status = WorkflowStatus(fields["status"])
        if status.terminal:
            raise ConflictError(f"Workflow {short(fields)} has ended, status cannot be updated.")
        if status is WorkflowStatus.PAUSED:
            return None  # already paused
        return Transition(Change(update={"status": "PAUSED", "updateTime": now_ms()}))

    _store(app, store, wf_id, build)


def resume(app: Celery, store: StateStore, wf_id: str) -> None:
    """RUNNING again, ``lastRetriedTime`` now, and decided from every record: what ended while it
    was paused carries the workflow on; attempts scheduled before the pause are sent again."""

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        if fields["status"] != WorkflowStatus.PAUSED.value:
            raise ConflictError(
                f"The workflow {wf_id} is not PAUSED so cannot resume. Current status is {fields['status']}"
            )
        now = now_ms()
        running = {**fields, "status": "RUNNING", "lastRetriedTime": now, "updateTime": now}
        transition = _decide_all(app, plan, running, tasks)
        transition.change.update.update(status="RUNNING", lastRetriedTime=now, updateTime=now)
        transition.change.add += _workflow_timeout(running, plan)
        return transition

    stored = _store(app, store, wf_id, build)
    if stored is not None:
        _send_scheduled(app, store, wf_id, *stored)


def terminate(app: Celery, store: StateStore, wf_id: str, reason: str | None = None) -> None:
    """TERMINATED: running tasks CANCELED (and stopped), sub-workflows terminated, the parent told; no
    failureWorkflow. A FAILED or TIMED_OUT workflow becomes TERMINATED; a TERMINATED one is left."""
    for _ in range(MAX_CONFLICTS):
        fields, _, _ = _read(store, wf_id)
        status = WorkflowStatus(fields["status"])
        if status is WorkflowStatus.COMPLETED:
            raise ConflictError("Cannot terminate a COMPLETED workflow.")
        if status is WorkflowStatus.TERMINATED:
            return
        if status.terminal:  # FAILED, TIMED_OUT: Conductor sets TERMINATED over them
            changed = {"status": "TERMINATED", "updateTime": now_ms()}
            if reason is not None:
                changed["reasonForIncompletion"] = reason
            store.update_workflow(wf_id, changed)
            return
        if stop_workflow(app, store, wf_id, reason):
            return
    raise ConflictError(f"workflow {wf_id} kept changing; it was not terminated")


def remove(app: Celery, store: StateStore, wf_id: str) -> None:
    """Delete the execution (``DELETE /workflow/{id}/remove``); a running one is terminated first so
    nothing of it keeps running."""
    fields = store.workflow_fields(wf_id)
    if fields is None:
        raise WorkflowNotFound(f"No such workflow found by id: {wf_id}")
    if not WorkflowStatus(fields["status"]).terminal:
        stop_workflow(app, store, wf_id, "Workflow removed")
    store.delete_workflow(wf_id)


# ---------------------------------------------------------------------------------------------
# retry


def retry(app: Celery, store: StateStore, wf_id: str, resume_subworkflow_tasks: bool = False) -> None:
    """Run an ended workflow again from its failed tasks: for each reference, the newest FAILED,
    FAILED_WITH_TERMINAL_ERROR, TIMED_OUT or CANCELED task is scheduled again as a new attempt
    (``retryCount`` + 1, input resolved again); a JOIN or DO_WHILE is set IN_PROGRESS in place."""
    if resume_subworkflow_tasks:
        raise UsageError("resumeSubworkflowTasks is not supported: retry the sub-workflow itself")

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        status = WorkflowStatus(fields["status"])
        if not status.terminal:
            raise ConflictError(f"Workflow is still running.  status={status.value}")
        if not tasks:
            raise ConflictError("Workflow has not started yet")
        retriable: dict[str, dict[str, Any]] = {}
        for task in sorted(tasks, key=record_order):
            if task["status"] in ("FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT", "CANCELED"):
                retriable[task["referenceTaskName"]] = task
            else:
                retriable.pop(task["referenceTaskName"], None)
        if not retriable and status is not WorkflowStatus.TIMED_OUT:
            raise ConflictError(
                "There are no retryable tasks! Use restart if you want to attempt entire workflow "
                "execution again."
            )
        now = now_ms()
        running = {**fields, "status": "RUNNING", "lastRetriedTime": now, "reasonForIncompletion": None}
        change = Change(reopen=True)
        change.update = {"status": "RUNNING", "lastRetriedTime": now, "reasonForIncompletion": None}
        change.update["updateTime"] = now
        seq = max((int(t.get("seq") or 0) for t in tasks), default=0)
        transition = Transition(change)
        document = evaluation_document(running, tasks)
        for task in sorted(retriable.values(), key=record_order):
            kind = task.get("taskType")
            if kind in CONTAINER_TYPES:
                change.write({**task, "status": "IN_PROGRESS", "retryCount": int(task["retryCount"]) + 1})
                continue
            step = _worker_step(plan, task)
            if step is None:
                seq += 1
                _retry_in_place(plan, running, task, seq, transition, document)
                continue
            seq += 1
            record = _next_attempt(running, plan, step, task, seq, document, now)
            change.write({**task, "retried": True})
            change.create(record)
            change.add += scheduling_deadlines(
                record, step, timing_of(app).park_after, timing_of(app).resend_after
            )
            transition.send.append(Dispatch(task["referenceTaskName"], step, int(record["retryCount"]), 0))
        change.add += _workflow_timeout(running, plan)
        return transition

    stored = _store(app, store, wf_id, build)
    if stored is not None:
        _kick(app, store, wf_id)
        log.info("workflow %s retried", wf_id)


def _retry_in_place(
    plan: Plan,
    workflow: dict[str, Any],
    task: dict[str, Any],
    seq: int,
    transition: Transition,
    document: dict[str, Any],
) -> None:
    """A retry's new attempt of a task no worker runs: a sync system task runs again now, a WAIT /
    HUMAN waits again (as its own retries make it), a SUB_WORKFLOW starts a new child workflow.
    Other types are refused."""
    try:
        node = plan.node(task["referenceTaskName"])
    except KeyError:
        node = None
    change = transition.change
    if isinstance(node, System) and node.type in SYNC_TASKS:
        record = _sync_attempt(node, workflow, task, seq, document)
        change.write({**task, "retried": True})
        change.create(record)
        if record.get("_variables") is not None:
            change.update["variables"] = record.pop("_variables")
        return
    if isinstance(node, Wait):
        record = wait_retry_record(node, task, seq, 0)
        change.write({**task, "retried": True})
        change.create(record)
        change.add += waiting_started(record, node)
        return
    if isinstance(node, SubWorkflow) and task.get("taskType") == "SUB_WORKFLOW":
        now = now_ms()
        record = next_attempt(
            task, seq, now, status=TaskStatus.IN_PROGRESS.value, executed=False, startTime=now, endTime=0
        )
        child_id = child_workflow_id(record["taskId"])
        record.update(
            reasonForIncompletion=None, subWorkflowId=child_id, outputData={"subWorkflowId": child_id}
        )
        start = child_start(plan, workflow, record)
        if start is not None:
            change.write({**task, "retried": True})
            change.create(record)
            change.add.append(child_deadline(record))
            transition.children.append(start)
            return
    raise ConflictError(
        f"Task {task['referenceTaskName']} ({task.get('taskType')}) cannot be retried: worker, system, WAIT, "
        "HUMAN and SUB_WORKFLOW tasks get a new attempt and JOIN / DO_WHILE are reset; rerun the workflow "
        "from an earlier task, or restart it"
    )


def _sync_attempt(
    node: System, workflow: dict[str, Any], task: dict[str, Any], seq: int, document: dict[str, Any]
) -> dict[str, Any]:
    """A sync system task (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP) run again as a new
    attempt, ended as the decider ends it (``_variables``: SET_VARIABLE's variables after it)."""
    now = now_ms()
    record = next_attempt(
        task, seq, now, executed=True, startTime=now, endTime=now, reasonForIncompletion=None
    )
    task_id = record["taskId"]
    try:
        data = resolve_task_input(node.input_parameters, document, task_id=task_id, env=allowed_environment())
    except ExpressionError as exc:
        outcome = Outcome(TaskStatus.FAILED_WITH_TERMINAL_ERROR, {}, str(exc))
        data = task.get("inputData") or {}
    else:
        outcome = SYNC_TASKS[node.type](data, workflow)
    status = outcome.status
    if node.policy.optional and not status.successful:
        status = TaskStatus.COMPLETED_WITH_ERRORS
    record.update(inputData=data, status=status.value, outputData=outcome.output)
    if outcome.reason is not None:
        record["reasonForIncompletion"] = shorten(outcome.reason, REASON_LIMIT, quote=False)
    if outcome.variables is not None:
        record["_variables"] = outcome.variables
    return record


def _next_attempt(
    workflow: dict[str, Any],
    plan: Plan,
    step: Step,
    task: dict[str, Any],
    seq: int,
    document: dict[str, Any],
    now: int,
) -> dict[str, Any]:
    """The new attempt a retry schedules for ``task`` (Conductor's ``taskToBeRescheduled``)."""
    attempt = int(task.get("retryCount") or 0) + 1
    record = scheduled_record(
        workflow,
        step,
        attempt,
        seq,
        ref=task["referenceTaskName"],
        iteration=int(task.get("iteration") or 0),
        retried_task_id=task["taskId"],
    )
    record["scheduledTime"] = record["updateTime"] = now
    for carried in ("workflowTask", "_fork", "taskType"):
        if carried in task:
            record[carried] = task[carried]
    try:
        record["inputData"] = resolve_task_input(
            step.input_parameters,
            document,
            input_template=step.input_template,
            task_id=record["taskId"],
            env=allowed_environment(),
        )
    except Exception:  # an input that no longer resolves keeps the one it had
        record["inputData"] = task.get("inputData") or {}
    return record


# ---------------------------------------------------------------------------------------------
# restart, rerun


def restart(
    app: Celery,
    store: StateStore,
    wf_id: str,
    use_latest_definitions: bool = False,
    plan: Plan | None = None,
) -> None:
    """Run an ended workflow again from its first task, same id and original input; every task
    record is removed. ``use_latest_definitions``: run ``plan`` (the latest definition, which the
    caller loads) instead of the one it ran."""
    if use_latest_definitions and plan is None:
        raise UsageError("useLatestDefinitions needs the latest definition: none was given")

    def build(fields: dict[str, Any], current: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        if not WorkflowStatus(fields["status"]).terminal:
            raise ConflictError(f"Workflow: {short(fields)} is not in terminal state, unable to restart.")
        chosen = plan if use_latest_definitions and plan is not None else current
        if not chosen.definition.get("restartable", True) and fields["status"] == "COMPLETED":
            raise ConflictError(f"Workflow: {short(fields)} is non-restartable")
        return _start_over(app, store, fields, chosen, tasks, None, None)

    _prepare_reuse(app, store, wf_id)
    _store(app, store, wf_id, build)
    log.info("workflow %s restarted", wf_id)


def rerun(app: Celery, store: StateStore, wf_id: str, request: Mapping[str, Any] | None = None) -> str:
    """Conductor's RerunWorkflowRequest on an ended workflow: without ``reRunFromTaskId``, from the
    start (``workflowInput`` and ``correlationId`` may replace the workflow's); with it, from that
    task: every task scheduled after it is removed and it runs again (``taskInput`` replaces its
    input). Returns the workflow id."""
    request = dict(request or {})
    task_id = request.get("reRunFromTaskId")
    task_input, workflow_input = request.get("taskInput"), request.get("workflowInput")
    correlation_id = request.get("correlationId")
    for name, value in (("taskInput", task_input), ("workflowInput", workflow_input)):
        if value is not None and not isinstance(value, Mapping):
            raise UsageError(f"{name} must be a JSON object")

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        if not WorkflowStatus(fields["status"]).terminal:
            raise ConflictError(f"Workflow: {short(fields)} is not in terminal state, unable to rerun.")
        if task_id is None:
            return _start_over(app, store, fields, plan, tasks, workflow_input, correlation_id)
        target = next((t for t in tasks if t["taskId"] == task_id), None)
        if target is None:
            raise UsageError(f"Task {task_id} not found")
        return _rerun_from(app, plan, fields, tasks, target, task_input, workflow_input, correlation_id)

    _prepare_reuse(app, store, wf_id, task_id)
    stored = _store(app, store, wf_id, build)
    if stored is not None and task_id is not None:
        _kick(app, store, wf_id)
    log.info("workflow %s rerun%s", wf_id, f" from task {task_id}" if task_id else "")
    return wf_id


def _start_over(
    app: Celery,
    store: StateStore,
    fields: dict[str, Any],
    plan: Plan,
    tasks: list[dict[str, Any]],
    workflow_input: Mapping[str, Any] | None,
    correlation_id: str | None,
) -> Transition:
    """The write that runs an ended workflow from its start: records cleared, first tasks decided."""
    now = now_ms()
    update: dict[str, Any] = {
        "status": "RUNNING",
        "reasonForIncompletion": None,
        "output": {},
        "createTime": now,
        "startTime": now,
        "updateTime": now,
        "endTime": 0,
        "lastRetriedTime": 0,
        "failedReferenceTaskNames": [],
        "failedTaskNames": [],
    }
    if workflow_input is not None:
        update["input"] = dict(workflow_input)
    if correlation_id is not None:
        update["correlationId"] = correlation_id
    if plan.json_text != (plan_of(store, fields) or plan).json_text:
        update["_plan"] = store.save_plan(plan.json_text)
        update["workflowVersion"] = plan.version
    running = {**fields, **update}
    transition = decide(plan, running, [], timing=timing_of(app), now=now)
    change = transition.change
    change.reopen = change.clear = True
    change.update = {**update, **change.update}
    change.add += _workflow_timeout(running, plan)
    return transition


def _rerun_from(
    app: Celery,
    plan: Plan,
    fields: dict[str, Any],
    tasks: list[dict[str, Any]],
    target: dict[str, Any],
    task_input: Mapping[str, Any] | None,
    workflow_input: Mapping[str, Any] | None,
    correlation_id: str | None,
) -> Transition:
    """The write that reruns an ended workflow from ``target``: the records scheduled after it are
    removed, it is scheduled again in place, the JOIN / DO_WHILE records it runs under run again."""
    step = _worker_step(plan, target)
    if step is None:
        raise ConflictError(
            f"Task {target['taskId']} is a {target.get('taskType')} task: a rerun starts from a worker "
            "task (or from the start)"
        )
    now = now_ms()
    update: dict[str, Any] = {
        "status": "RUNNING",
        "reasonForIncompletion": None,
        "failedReferenceTaskNames": [],
        "failedTaskNames": [],
        "updateTime": now,
        "endTime": 0,
    }
    if workflow_input is not None:
        update["input"] = dict(workflow_input)
    if correlation_id is not None:
        update["correlationId"] = correlation_id
    change = Change(reopen=True, update=update)
    kept, removed = _split(tasks, target)
    change.remove = [t["taskId"] for t in removed]
    removed_names = {name for t in removed for name in _names_of(t)}
    newest: dict[str, dict[str, Any]] = {}
    for task in sorted(kept, key=record_order):
        for name in _names_of(task):
            newest[name] = task
    for name in removed_names & set(newest):  # a kept record is a name's newest again: indexed again
        if newest[name]["taskId"] != target["taskId"]:
            change.write(newest[name])
    change.forget = sorted(removed_names - set(newest))
    reset = {
        **target,
        "status": "SCHEDULED",
        "scheduledTime": now,
        "startTime": 0,
        "endTime": 0,
        "updateTime": now,
        "outputData": {},
        "retried": False,
        "executed": False,
        "pollCount": 0,
        "callbackAfterSeconds": 0,
        "reasonForIncompletion": None,
    }
    reset.pop("workerId", None)
    reset.pop("celeryTaskId", None)
    if task_input is not None:
        reset["inputData"] = dict(task_input)
    change.write(reset)
    for container in _containers_of(plan, kept, target):
        change.write({**container, "status": "IN_PROGRESS", "endTime": 0, "updateTime": now})
    timing = timing_of(app)
    change.add += scheduling_deadlines(reset, step, timing.park_after, timing.resend_after)
    running = {**fields, **update}
    change.add += _workflow_timeout(running, plan)
    transition = Transition(change)
    transition.send.append(Dispatch(target["referenceTaskName"], step, int(target.get("retryCount") or 0), 0))
    return transition


def _containers_of(plan: Plan, kept: list[dict[str, Any]], target: dict[str, Any]) -> list[dict[str, Any]]:
    """The DO_WHILE records ``target`` runs in, and the JOINs waiting for the fork branches it is in,
    that are no longer IN_PROGRESS: they run again with it."""
    path = plan.paths.get(base_ref(target.get("_fork") or target["referenceTaskName"])) or ()
    refs = {node_ref for _, _, node_ref in path}
    joins = {
        ref
        for ref, node in plan.nodes.items()
        if node.type in ("JOIN", "EXCLUSIVE_JOIN") and _joins_after(plan, ref, refs)
    }
    found = []
    for task in kept:
        ref = base_ref(task["referenceTaskName"])
        if task["status"] == "IN_PROGRESS" or task["taskId"] == target["taskId"]:
            continue
        if (ref in refs and task.get("taskType") == "DO_WHILE") or ref in joins:
            found.append(task)
    return found


def _joins_after(plan: Plan, join_ref: str, ancestors: set[str]) -> bool:
    """Whether the JOIN ``join_ref`` comes right after a fork among ``ancestors``."""
    path = plan.paths.get(join_ref) or ()
    if not path:
        return False
    seq_id, index, _ = path[-1]
    for ref, node in plan.nodes.items():
        node_path = plan.paths.get(ref) or ()
        forks = ref in ancestors and node.type in ("FORK_JOIN", "FORK_JOIN_DYNAMIC")
        if forks and node_path and node_path[-1][:2] == (seq_id, index - 1):
            return True
    return False


def _split(
    tasks: list[dict[str, Any]], target: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The records a rerun from ``target`` keeps (scheduled up to it) and removes."""
    limit = int(target.get("seq") or 0)
    kept = [t for t in tasks if int(t.get("seq") or 0) <= limit]
    return kept, [t for t in tasks if int(t.get("seq") or 0) > limit]


def _prepare_reuse(app: Celery, store: StateStore, wf_id: str, from_task: str | None = None) -> None:
    """Before a restart or rerun: the task ids it may use again were stopped (revoked) when the
    workflow ended, so the workers forget those revocations; the ended child workflows and failure
    workflow whose ids the new run would take are removed (their tasks are gone with the run).
    ``from_task``: a rerun from that task, which keeps the records scheduled before it."""
    fields = store.workflow_fields(wf_id)
    if fields is None or not WorkflowStatus(fields["status"]).terminal:
        return  # the operation itself refuses
    tasks = store.tasks(wf_id)
    target = next((t for t in tasks if t["taskId"] == from_task), None) if from_task else None
    if from_task is not None:
        if target is None:
            return  # the operation itself refuses
        tasks = _split(tasks, target)[1] + [target]
    revoked = [t["celeryTaskId"] for t in tasks if t.get("celeryTaskId")]
    if revoked:
        try:
            app.control.broadcast(UNREVOKE_COMMAND, arguments={"ids": revoked}, reply=True, timeout=2.0)
        except Exception:  # no worker answering is no worker remembering
            log.warning("workflow %s: workers could not be told to forget revoked ids", wf_id, exc_info=True)
    children = [child_workflow_id(t["taskId"]) for t in tasks if t.get("taskType") in CHILD_TYPES]
    for child_id in [*children, failure_workflow_id(wf_id)]:
        child = store.workflow_fields(child_id)
        if child is not None and WorkflowStatus(child["status"]).terminal:
            store.delete_workflow(child_id)


# ---------------------------------------------------------------------------------------------
# skip a task


def skip_task(
    app: Celery, store: StateStore, wf_id: str, task_ref: str, request: Mapping[str, Any] | None = None
) -> None:
    """Record a SKIPPED task for ``task_ref`` (a task of the definition not reached yet); the decider
    goes past it. ``request``: Conductor's SkipTaskRequest (``taskInput``, ``taskOutput``)."""
    request = dict(request or {})
    for name in ("taskInput", "taskOutput"):
        if request.get(name) is not None and not isinstance(request[name], Mapping):
            raise UsageError(f"{name} must be a JSON object")

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        if fields["status"] != WorkflowStatus.RUNNING.value:
            raise ConflictError(
                f"The workflow {wf_id} is not running so the task referenced by {task_ref} cannot be skipped"
            )
        node = plan.nodes.get(task_ref)
        if node is None:
            raise ConflictError(
                f"The task referenced by {task_ref} does not exist in the WorkflowDefinition "
                f"{fields.get('workflowName')}"
            )
        if any(t["referenceTaskName"] == task_ref for t in tasks):
            raise ConflictError(
                f"The task referenced {task_ref} has already been processed, cannot be skipped"
            )
        now = now_ms()
        seq = max((int(t.get("seq") or 0) for t in tasks), default=0) + 1
        record = new_record(
            fields, task_ref, node.name, node.name, 0, seq, status=TaskStatus.SKIPPED, now=now
        )
        record.update(
            inputData=dict(request.get("taskInput") or {}),
            outputData=dict(request.get("taskOutput") or {}),
            startTime=0,
        )
        records = Records(tasks)
        return decide(plan, fields, records, [record], timing_of(app), now)

    _store(app, store, wf_id, build)


# ---------------------------------------------------------------------------------------------
# helpers


def _decide_all(app: Celery, plan: Plan, workflow: dict[str, Any], tasks: list[dict[str, Any]]) -> Transition:
    """A decision from every record (each one as if it had just changed): what ended while nothing
    was decided (a pause) carries the workflow on."""
    latest: dict[str, dict[str, Any]] = {}
    for task in sorted(tasks, key=record_order):
        latest[task["referenceTaskName"]] = task
    return decide(plan, workflow, Records(tasks), list(latest.values()), timing_of(app))


def _kick(app: Celery, store: StateStore, wf_id: str) -> None:
    """Decide a reopened workflow from every record, and store what follows (the tasks after a
    reset JOIN, a workflow that had timed out with nothing to retry...)."""

    def build(fields: dict[str, Any], plan: Plan, tasks: list[dict[str, Any]]) -> Transition | None:
        if fields["status"] != WorkflowStatus.RUNNING.value:
            return None
        transition = _decide_all(app, plan, fields, tasks)
        return transition if transition.change.records or transition.change.finish else None

    _store(app, store, wf_id, build)


def _send_scheduled(app: Celery, store: StateStore, wf_id: str, transition: Transition, plan: Plan) -> None:
    """Send again every SCHEDULED worker attempt a decision from every record (``_decide_all``) wrote
    and did not send (a duplicate of an attempt's message is harmless: it runs once)."""
    sent = {(d.ref, d.attempt) for d in transition.send}
    for task in list(transition.change.records.values()):
        if task["status"] != "SCHEDULED" or _worker_step(plan, task) is None:
            continue
        if (task["referenceTaskName"], int(task.get("retryCount") or 0)) not in sent:
            resend(app, store, plan, wf_id, task)


def _worker_step(plan: Plan, record: Mapping[str, Any]) -> Step | None:
    """The worker task (SIMPLE, HTTP, EVENT, a dynamic or forked one) ``record`` is an attempt of."""
    try:
        return step_of(plan, record)
    except (KeyError, TranslatorError):
        return None


def _workflow_timeout(workflow: Mapping[str, Any], plan: Plan) -> list[Any]:
    found = workflow_deadline(workflow, plan)
    return [found] if found is not None else []


def _names_of(task: Mapping[str, Any]) -> list[str]:
    """The names a record is the newest of: its reference, and a DO_WHILE body task's plain one."""
    ref = task["referenceTaskName"]
    return [ref, base_ref(ref)] if task.get("iteration") else [ref]


__all__ = [
    "pause",
    "remove",
    "rerun",
    "restart",
    "resume",
    "retry",
    "skip_task",
    "terminate",
]
