"""What an execution did to each node of a plan: the colouring of its graph.

:func:`execution_view` is pure (the execution is the dict ``translator status --tasks`` prints);
:func:`read_execution` reads one from the Redis state store as ``translator status`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translator.engine.plan import DynamicFork, Loop, Plan, Switch, base_ref, iteration_ref, walk
from translator.errors import UsageError
from translator.text import shorten

DONE = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS"})
PENDING = frozenset({"SCHEDULED", "IN_PROGRESS"})
FAILED = frozenset({"FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT"})


@dataclass(frozen=True, slots=True)
class Tally:
    """The branches a dynamic fork spawned (its latest run), by outcome."""

    total: int = 0
    completed: int = 0
    pending: int = 0  # SCHEDULED, IN_PROGRESS, or not recorded yet
    failed: int = 0  # FAILED, FAILED_WITH_TERMINAL_ERROR, TIMED_OUT
    canceled: int = 0  # CANCELED, SKIPPED

    @property
    def status(self) -> str | None:
        """The status the branches are coloured by, as Conductor's UI sums them up (None: none)."""
        if not self.total:
            return None
        if self.pending:
            return "IN_PROGRESS"
        if self.completed == self.total:
            return "COMPLETED"
        return "FAILED" if self.failed else "CANCELED"


@dataclass(frozen=True)
class ExecutionView:
    """An execution as its graph shows it, by plan reference (a DO_WHILE body task's latest
    iteration; a retried task's latest attempt)."""

    workflow_id: str | None
    workflow_status: str | None
    statuses: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # records of the latest task instance
    taken: dict[str, int] = field(default_factory=dict)  # switch -> index of its lane (default last)
    spawned: dict[str, Tally] = field(default_factory=dict)  # dynamic fork -> its branches
    iterations: dict[str, int] = field(default_factory=dict)  # DO_WHILE -> the iteration reached
    ran_as: dict[str, str] = field(default_factory=dict)  # DYNAMIC -> the task it ran
    terminated: bool = False  # a TERMINATE task ended the workflow

    def status(self, ref: str | None) -> str | None:
        return self.statuses.get(ref) if ref is not None else None


def execution_view(plan: Plan, execution: Mapping[str, Any]) -> ExecutionView:
    """The statuses of ``plan``'s nodes in ``execution`` (Conductor's Workflow JSON with its tasks).

    A node takes the status of its latest task record, matched by ``referenceTaskName`` (a DO_WHILE
    body task's ``ref__N`` by ``ref``, the latest iteration winning); a switch the lane its latest
    record chose; a dynamic fork the outcomes of the branches its latest record spawned."""
    records = sorted(
        (r for r in execution.get("tasks") or () if isinstance(r, Mapping) and _ref(r) is not None),
        key=lambda r: _int(r.get("seq")),
    )
    latest: dict[str, Mapping[str, Any]] = {}
    counts: dict[str, int] = {}
    for record in records:  # in seq order: later records win
        ref = _ref(record) or ""
        latest[ref] = record
        counts[ref] = counts.get(ref, 0) + 1
        if record.get("iteration"):
            latest[base_ref(ref)] = record
    statuses: dict[str, str] = {}
    attempts: dict[str, int] = {}
    taken: dict[str, int] = {}
    spawned: dict[str, Tally] = {}
    iterations: dict[str, int] = {}
    ran_as: dict[str, str] = {}
    for node in walk(plan.root):
        ref = getattr(node, "ref", None)
        record = latest.get(ref) if isinstance(ref, str) else None
        if record is None:
            continue
        statuses[ref] = str(record.get("status"))
        attempts[ref] = counts[_ref(record) or ""]
        if isinstance(node, Switch):
            lane = _taken_lane(node, record)
            if lane is not None:
                taken[ref] = lane
        elif isinstance(node, DynamicFork):
            spawned[ref] = _tally(record, latest)
        elif isinstance(node, Loop):
            output = record.get("outputData")
            from_output = output.get("iteration") if isinstance(output, Mapping) else 0
            iterations[ref] = _int(record.get("iteration") or from_output)
        elif getattr(node, "kind", None) == "dynamic" and record.get("taskDefName"):
            ran_as[ref] = str(record["taskDefName"])
    return ExecutionView(
        workflow_id=_text(execution.get("workflowId")),
        workflow_status=_text(execution.get("status")),
        statuses=statuses,
        attempts=attempts,
        taken=taken,
        spawned=spawned,
        iterations=iterations,
        ran_as=ran_as,
        terminated=any(r.get("taskType") == "TERMINATE" and r.get("status") in DONE for r in records),
    )


def _taken_lane(node: Switch, record: Mapping[str, Any]) -> int | None:
    """The index of the lane (cases in order, the default last) the switch's record chose."""
    from translator.engine.decide import selected_case

    output = record.get("outputData")
    if not isinstance(output, Mapping):
        return None
    chosen = output.get("evaluationResult") or output.get("caseOutput")
    if not isinstance(chosen, list) or not chosen:
        return None
    tasks = selected_case(node, None if chosen[0] is None else str(chosen[0]))
    lanes = [case for _, case in node.cases] + [node.default]
    return next(index for index, lane in enumerate(lanes) if lane is tasks)


def _tally(record: Mapping[str, Any], latest: Mapping[str, Mapping[str, Any]]) -> Tally:
    data = record.get("inputData")
    refs = data.get("forkedTasks") if isinstance(data, Mapping) else None
    if not isinstance(refs, list):
        return Tally()
    iteration = _int(record.get("iteration"))
    counts = {"completed": 0, "pending": 0, "failed": 0, "canceled": 0}
    for ref in refs:
        branch = latest.get(iteration_ref(str(ref), iteration))
        status = branch.get("status") if branch is not None else None
        if status in DONE:
            counts["completed"] += 1
        elif status in FAILED:
            counts["failed"] += 1
        elif status is None or status in PENDING:
            counts["pending"] += 1
        else:
            counts["canceled"] += 1
    return Tally(total=len(refs), **counts)


def _ref(record: Mapping[str, Any]) -> str | None:
    ref = record.get("referenceTaskName")
    return ref if isinstance(ref, str) else None


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def read_execution(workflow_id: str, plan: Plan) -> dict[str, Any]:
    """The execution ``workflow_id`` with its tasks, from the state store ``translator status``
    reads (BrokerUnavailable, WorkflowNotFound); a UsageError when it runs another workflow."""
    from translator.runner import read_workflow

    execution = read_workflow(workflow_id)
    name = execution.get("workflowName")
    if name is not None and name != plan.name:
        raise UsageError(
            f"workflow {shorten(workflow_id)} is an execution of {shorten(name)}, "
            f"not of {shorten(plan.name)}: draw it with its own definition"
        )
    return execution
