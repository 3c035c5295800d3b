"""A plan as Conductor's UI draws it, before any format: boxes in series-parallel blocks.

    Diagram
    └── items: start, Box | Split | Frame ..., end (when the flow can reach it)

A ``Split`` is a FORK_JOIN (one lane per branch, ending in its JOIN), a FORK_JOIN_DYNAMIC (one
lane holding the spawned tasks, ending in its JOIN) or a SWITCH/DECISION (one lane per case, the
default last: an empty lane goes straight to what follows). A ``Frame`` is a DO_WHILE: its bar,
its body, its closing bar and the loop-back edge labelled with the condition.

Node ids (``n1``, ``n2``, ... and ``wf_start``, ``wf_end``) never come from the definition, so they
are safe in every format whatever the references contain; labels are escaped by each renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from translator.engine.plan import (
    Dynamic,
    DynamicFork,
    Fork,
    Join,
    Loop,
    Plan,
    Sequence,
    SubWorkflow,
    Switch,
    Terminate,
)
from translator.graph.execution import ExecutionView, execution_view
from translator.graph.style import clip

CONDITION_LIMIT = 40  # characters of a loop condition shown on its loop-back edge


class Shape(StrEnum):
    START = "start"
    END = "end"
    TASK = "task"
    SUB_WORKFLOW = "sub_workflow"
    DYNAMIC = "dynamic"
    TERMINATE = "terminate"
    SWITCH = "switch"
    FORK = "fork"
    DYNAMIC_FORK = "dynamic_fork"
    JOIN = "join"
    LOOP = "loop"
    LOOP_END = "loop_end"
    SPAWNED = "spawned"  # the placeholder lane of a dynamic fork's tasks


BARS = frozenset({Shape.FORK, Shape.DYNAMIC_FORK, Shape.JOIN, Shape.LOOP, Shape.LOOP_END})


@dataclass(frozen=True, slots=True)
class Box:
    """One drawn node: a title (the reference name) and the lines under it."""

    id: str
    shape: Shape
    title: str
    details: tuple[str, ...] = ()
    status: str | None = None  # the status it is coloured by (None: not run, or no execution)
    ref: str | None = None  # the task reference it stands for (the full text, unclipped)

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.title, *self.details)

    @property
    def is_bar(self) -> bool:
        return self.shape in BARS

    @property
    def ran(self) -> bool:
        return self.status is not None


@dataclass(frozen=True, slots=True)
class Lane:
    """A fork's branch or a switch's case."""

    items: tuple[Item, ...]
    label: str | None = None  # switch: the case value, or "default"
    taken: bool | None = None  # switch in an execution: whether it took this case (None: no execution)


@dataclass(frozen=True, slots=True)
class Split:
    head: Box
    lanes: tuple[Lane, ...]
    join: Box | None = None  # the JOIN right after a fork, where its lanes end


@dataclass(frozen=True, slots=True)
class Frame:
    """A DO_WHILE: ``head`` (its task), ``body``, ``foot`` (its end), looping back while ``condition``."""

    head: Box
    body: tuple[Item, ...]
    foot: Box
    condition: str


Item = Box | Split | Frame


@dataclass(frozen=True, slots=True)
class Diagram:
    title: str  # the workflow's name and version
    items: tuple[Item, ...]
    coloured: bool  # an execution's statuses are shown
    workflow_id: str | None = None
    workflow_status: str | None = None


def is_open(items: tuple[Item, ...]) -> bool:
    """Whether the flow can go on after ``items`` (no TERMINATE ends every way through them)."""
    return all(_item_open(item) for item in items)


def _item_open(item: Item) -> bool:
    if isinstance(item, Box):
        return item.shape is not Shape.TERMINATE
    if isinstance(item, Split):
        return any(is_open(lane.items) for lane in item.lanes)
    return True  # a DO_WHILE ends at its closing bar, as Conductor's UI draws it


def diagram(plan: Plan, execution: Mapping[str, Any] | None = None) -> Diagram:
    """The drawing of ``plan``, coloured by ``execution`` (Conductor's Workflow JSON with its tasks)
    when given."""
    view = execution_view(plan, execution) if execution is not None else None
    return _Builder(view).diagram(plan)


class _Builder:
    def __init__(self, view: ExecutionView | None) -> None:
        self.view = view
        self.count = 0

    def diagram(self, plan: Plan) -> Diagram:
        view = self.view
        started = "COMPLETED" if view is not None else None
        start = Box("wf_start", Shape.START, "start", status=started)
        items = (start, *self.sequence(plan.root))
        if is_open(items):
            ended = view is not None and view.workflow_status == "COMPLETED" and not view.terminated
            items = (*items, Box("wf_end", Shape.END, "end", status="COMPLETED" if ended else None))
        return Diagram(
            title=f"{clip(plan.name)} v{plan.version}",
            items=items,
            coloured=view is not None,
            workflow_id=clip(view.workflow_id) if view is not None and view.workflow_id else None,
            workflow_status=clip(view.workflow_status) if view is not None and view.workflow_status else None,
        )

    def sequence(self, sequence: Sequence) -> tuple[Item, ...]:
        items: list[Item] = []
        nodes = list(sequence.nodes)
        index = 0
        while index < len(nodes):
            node = nodes[index]
            item = self.item(node)
            following = nodes[index + 1] if index + 1 < len(nodes) else None
            forks = isinstance(node, Fork | DynamicFork)
            if isinstance(item, Split) and forks and isinstance(following, Join):
                item = replace(item, join=self.box(following, Shape.JOIN))
                index += 1
            items.append(item)
            index += 1
        return tuple(items)

    def item(self, node: Any) -> Item:
        if isinstance(node, Switch):
            return self.switch(node)
        if isinstance(node, Fork):
            head = self.box(node, Shape.FORK)
            lanes = tuple(Lane(self.sequence(branch)) for branch in node.branches)
            return Split(head, lanes or (Lane(()),))
        if isinstance(node, DynamicFork):
            head = self.box(node, Shape.DYNAMIC_FORK)
            return Split(head, (Lane((self.spawned(node),)),))
        if isinstance(node, Loop):
            return self.loop(node)
        if isinstance(node, Join):
            return self.box(node, Shape.JOIN)
        if isinstance(node, Terminate):
            status = node.input_parameters.get("terminationStatus")
            return self.box(node, Shape.TERMINATE, *([f"ends {status}"] if isinstance(status, str) else []))
        if isinstance(node, SubWorkflow):
            return self.box(node, Shape.SUB_WORKFLOW, _child(node))
        if isinstance(node, Dynamic):
            ran = self.view.ran_as.get(node.ref) if self.view is not None else None
            return self.box(node, Shape.DYNAMIC, f"ran {ran}" if ran else f"task named by {node.name_param}")
        return self.box(node, Shape.TASK)  # SIMPLE, system tasks, and node kinds added later

    def new_id(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def box(self, node: Any, shape: Shape, *extra: str) -> Box:
        """The box of a plan node (any object with ``ref``, ``name`` and ``type``)."""
        ref, name, kind = (str(getattr(node, field, "") or "") for field in ("ref", "name", "type"))
        status = self.view.status(ref) if self.view is not None else None
        if shape in BARS:  # bars are thin: the type beside the reference, the name left out
            details: tuple[str, ...] = ()
            title = f"{clip(ref)} ({clip(kind)})"
        else:
            title, details = clip(ref), (clip(name), clip(kind))
        details += tuple(clip(line) for line in extra)
        if shape is Shape.LOOP and self.view is not None and self.view.iterations.get(ref):
            title += f", iteration {self.view.iterations[ref]}"
        attempts = self.view.attempts.get(ref, 0) if self.view is not None else 0
        if attempts > 1:
            details += (f"{attempts} attempts",)
        return Box(self.new_id(), shape, title, details, status, ref)

    def switch(self, node: Switch) -> Split:
        head = self.box(node, Shape.SWITCH)
        taken = self.view.taken.get(node.ref) if self.view is not None else None
        cases = [*((clip(value), tasks) for value, tasks in node.cases), ("default", node.default)]
        lanes = tuple(
            Lane(self.sequence(tasks), label, None if self.view is None else taken == index)
            for index, (label, tasks) in enumerate(cases)
        )
        return Split(head, lanes)

    def spawned(self, node: DynamicFork) -> Box:
        tally = self.view.spawned.get(node.ref) if self.view is not None else None
        status = self.view.status(node.ref) if self.view is not None else None
        if tally is None or status is None:
            source = node.tasks_param or "forkTaskName"
            return Box(self.new_id(), Shape.SPAWNED, "dynamic tasks", (clip(f"from {source}"),))
        if not tally.total:
            return Box(self.new_id(), Shape.SPAWNED, "no tasks spawned", (), status)
        counts = ((tally.pending, "pending"), (tally.failed, "failed"), (tally.canceled, "canceled"))
        lines = [f"{count} {what}" for count, what in counts if count]
        title = f"{tally.completed} of {tally.total} tasks succeeded"
        return Box(self.new_id(), Shape.SPAWNED, title, tuple(lines), tally.status)

    def loop(self, node: Loop) -> Frame:
        head = self.box(node, Shape.LOOP)
        body = self.sequence(node.body)
        foot = Box(self.new_id(), Shape.LOOP_END, f"end of {clip(node.ref)}", (), head.status, node.ref)
        condition = " ".join(node.condition.split())
        if condition:
            condition = f"while {condition}"
        elif node.items is not None:
            condition = f"for each of {' '.join(str(node.items).split())}"
        return Frame(head, body, foot, clip(condition, CONDITION_LIMIT))


def _child(node: SubWorkflow) -> str:
    """The workflow a SUB_WORKFLOW runs (``name vN``) or a START_WORKFLOW starts."""
    if node.plan is not None:
        return f"{node.plan.name} v{node.plan.version}"
    named = node.name_at_run or node.input_parameters.get("startWorkflow")
    starts = "starts " if node.type == "START_WORKFLOW" else ""
    if isinstance(named, Mapping) and named.get("name"):
        version = named.get("version")
        return f"{starts}{named['name']}" + (f" v{version}" if version is not None else "")
    if isinstance(named, str):
        return f"{starts}{named}"
    return f"{starts}a workflow named at run time"
