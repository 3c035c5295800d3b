"""Execution records: plans by digest, starting workflows, what a failure workflow is started with.

The records themselves (Conductor's Task shape, the evaluation document, ending fields) are built by
:mod:`translator.engine.decide`, which decides every change; they are re-exported here.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from translator.definitions.expressions import apply_workflow_input_template
from translator.engine.deadlines import workflow_deadline
from translator.engine.decide import (
    DEFAULT_TIMING,
    FAILURE_WORKFLOW_STATUSES,
    Records,
    Timing,
    Transition,
    attempt_id,
    decide,
    end,
    ending_fields,
    evaluation_document,
    failure_reason,
    failure_workflow_id,
    scheduled_record,
)
from translator.engine.plan import Plan
from translator.status import WorkflowStatus
from translator.store.state import FAILURE_WORKFLOW_KEY, Change, Snapshot, StateStore, now_ms

log = logging.getLogger("translator.runtime.step")

__all__ = [
    "FAILURE_WORKFLOW_KEY",
    "FAILURE_WORKFLOW_STATUSES",
    "attempt_id",
    "ending_fields",
    "evaluation_document",
    "failure_reason",
    "failure_workflow_id",
    "failure_workflow_input",
    "log_end",
    "new_workflow_id",
    "plan_of",
    "scheduled_record",
    "start_workflow",
    "terminate",
]


# ---------------------------------------------------------------------------------------------
# Plans are immutable per execution: cache them per process.

_PLAN_CACHE: OrderedDict[str, Plan] = OrderedDict()
_PLAN_CACHE_LOCK = threading.Lock()
_PLAN_CACHE_SIZE = 1024


def cached_plan(digest: str) -> Plan | None:
    """The plan of digest ``digest`` if this process has parsed it (no store read)."""
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
    cached = cached_plan(digest)
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


def store_records(store: StateStore, wf_id: str, snap: Snapshot) -> Records:
    """The records a decision reads: the snapshot's, and any other from the store on demand (none
    when the snapshot read them all)."""
    if snap.complete:
        return Records(snap.tasks, snap.open_ids, seq=snap.seq)
    return Records(
        snap.tasks,
        snap.open_ids,
        fetch_latest=lambda refs: store.latest_records(wf_id, refs),
        fetch_all=lambda: store.tasks(wf_id),
        seq=snap.seq,
    )


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
    priority: int = 0,
    timing: Timing = DEFAULT_TIMING,
    parent: tuple[str, str] | None = None,
) -> tuple[str, Transition] | None:
    """Create the execution record with what it starts with (its first tasks, decided); returns the
    workflow id and that first transition, whose ``send`` the caller sends (None when
    ``workflow_id`` is taken). ``parent``: (workflow id, task id) of the SUB_WORKFLOW task that
    started it."""
    wf_id = workflow_id or new_workflow_id()
    now = now_ms()
    record: dict[str, Any] = {
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
        "priority": priority,
        "schemaVersion": 2,
        "createTime": now,
        "startTime": now,
        "updateTime": now,
        "endTime": 0,
    }
    if parent is not None:
        record["parentWorkflowId"], record["parentWorkflowTaskId"] = parent
    transition = decide(plan, record, [], timing=timing, now=now)
    change = transition.change
    record.update(change.update)  # what the first decision set (SET_VARIABLE's variables)
    deadlines = list(change.add)
    timeout = workflow_deadline(record, plan)
    if timeout is not None:
        deadlines.append(timeout)
    if not store.create_workflow(record, plan.json_text, list(change.records.values()), deadlines):
        return None
    if change.finish is not None:  # it ends at once (a TERMINATE first, nothing to run)
        follow_ups = [d for d in change.add if d[0].kind in ("failure", "parent")]
        finish = Change(
            finish=change.finish, add=follow_ups, drop=change.drop + ([timeout[0]] if timeout else [])
        )
        store.apply(wf_id, finish)
    return wf_id, transition


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


def terminate(store: StateStore, wf_id: str, reason: str | None) -> Transition | None:
    """End a running workflow as TERMINATED (e.g. it could not be sent); its tasks are canceled.
    Returns the stored transition (its ``revoke`` and ``stop_children`` are the caller's), or None
    when the workflow is not running."""
    for _ in range(100):
        snap = store.snapshot(wf_id)
        plan = plan_of(store, snap.workflow) if snap.workflow is not None else None
        if plan is None or snap.workflow is None or WorkflowStatus(snap.workflow["status"]).terminal:
            return None
        transition = end(plan, snap.workflow, store.tasks(wf_id), WorkflowStatus.TERMINATED, reason)
        saved = store.apply(wf_id, transition.change, rev=int(snap.workflow.get("_rev") or 0))
        if saved.applied:
            log_end(True, plan, wf_id, transition.change.finish or {})
            return transition
        if not saved.conflict:
            return None
    return None


def log_end(ended: bool, plan: Plan, wf_id: str, fields: Mapping[str, Any]) -> None:
    if ended:
        log.info("workflow %s (%s) %s", wf_id, plan.name, fields["status"])
