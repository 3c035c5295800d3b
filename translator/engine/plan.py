"""The Celery-free intermediate form: what to run, in which order, with which policy.

    Plan
    └── root: Sequence
        └── nodes: Step ...   (SIMPLE tasks; later: Branch, Parallel, Loop, SubWorkflow)

A plan is pure data: it is stored with each execution (JSON), so that every worker step reads the
definition of its task by reference instead of carrying it in each message, and it can be printed
(``translator compile --dry-run``) and unit-tested without Celery.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from translator.definitions.issues import Issue, error
from translator.definitions.loader import WORKFLOWS_DIR, WorkflowBundle, with_file
from translator.definitions.model import TaskDef, WorkflowDef, WorkflowTask
from translator.definitions.tasktypes import (
    SUPPORTED_TYPES,
    SYNC_SYSTEM_TYPES,
    WAIT_TYPES,
    WORKER_SYSTEM_TYPES,
    TaskType,
)
from translator.engine.retry import RetryDelay, retry_delay
from translator.errors import DefinitionError


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything of a TaskDef (and WorkflowTask overrides) that shapes one step's execution."""

    task_def_name: str
    retry_count: int
    retry_logic: str
    retry_delay_seconds: int
    backoff_scale_factor: int
    max_retry_delay_seconds: int
    backoff_jitter_ms: int
    timeout_seconds: int
    timeout_policy: str
    response_timeout_seconds: int
    poll_timeout_seconds: int | None
    total_timeout_seconds: int
    rate_limit_per_frequency: int
    rate_limit_frequency_in_seconds: int
    concurrent_exec_limit: int
    isolation_group_id: str | None
    execution_name_space: str | None
    optional: bool
    permissive: bool
    start_delay: int

    def retry_delay(self, attempt: int, *, jitter: bool = True) -> RetryDelay:
        """Conductor's delay before the retry that follows failed attempt ``attempt``."""
        return retry_delay(
            self.retry_logic,
            self.retry_delay_seconds,
            attempt,
            backoff_scale_factor=self.backoff_scale_factor,
            max_retry_delay_seconds=self.max_retry_delay_seconds,
            backoff_jitter_ms=self.backoff_jitter_ms if jitter else 0,
        )

    @classmethod
    def of(cls, task: WorkflowTask, taskdef: TaskDef) -> Policy:
        retry_count = task.retryCount if task.retryCount is not None else taskdef.retryCount
        return cls(
            task_def_name=taskdef.name or task.name or "",
            retry_count=retry_count,
            retry_logic=taskdef.retryLogic.value,
            retry_delay_seconds=taskdef.retryDelaySeconds,
            backoff_scale_factor=taskdef.backoffScaleFactor,
            max_retry_delay_seconds=taskdef.maxRetryDelaySeconds,
            backoff_jitter_ms=taskdef.backoffJitterMs,
            timeout_seconds=taskdef.timeoutSeconds,
            timeout_policy=taskdef.timeoutPolicy.value,
            response_timeout_seconds=taskdef.responseTimeoutSeconds,
            poll_timeout_seconds=taskdef.pollTimeoutSeconds,
            total_timeout_seconds=taskdef.totalTimeoutSeconds,
            rate_limit_per_frequency=taskdef.effective_rate_limit_per_frequency,
            rate_limit_frequency_in_seconds=taskdef.effective_rate_limit_frequency_seconds,
            concurrent_exec_limit=taskdef.effective_concurrent_exec_limit,
            isolation_group_id=taskdef.isolationGroupId,
            execution_name_space=taskdef.executionNameSpace,
            optional=task.optional,
            permissive=task.permissive,
            start_delay=task.startDelay,
        )


ITERATION = re.compile(r"__(\d+)$")


def base_ref(ref: str) -> str:
    """A task reference without the ``__<iteration>`` suffix of a DO_WHILE body task."""
    return ITERATION.sub("", ref)


def iteration_ref(ref: str, iteration: int) -> str:
    """The reference of ``ref`` in iteration ``iteration`` of its loop (0: not in a loop)."""
    return f"{ref}__{iteration}" if iteration else ref


@dataclass(frozen=True, slots=True)
class Step:
    """A task a worker runs (SIMPLE)."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    input_template: dict[str, Any]
    policy: Policy
    kind: str = "step"


@dataclass(frozen=True, slots=True)
class Sequence:
    """Tasks that run one after the other."""

    nodes: tuple[Node, ...]
    kind: str = "sequence"


@dataclass(frozen=True, slots=True)
class Switch:
    """SWITCH (``evaluator`` value-param / javascript / graaljs) or DECISION (``evaluator``
    value-param for caseValueParam, javascript for caseExpression): run one case, then go on."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    evaluator: str
    expression: str
    cases: tuple[tuple[str, Sequence], ...]
    default: Sequence
    kind: str = "switch"

    def case(self, value: str | None) -> Sequence | None:
        """The tasks of case ``value`` (None: the default), as Conductor picks them."""
        if value is None:
            return self.default
        for name, tasks in self.cases:
            if name == value:
                return tasks
        return None


@dataclass(frozen=True, slots=True)
class Fork:
    """FORK_JOIN: its branches start together; the JOIN that follows waits for them."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    branches: tuple[Sequence, ...]
    kind: str = "fork"


@dataclass(frozen=True, slots=True)
class DynamicFork:
    """FORK_JOIN_DYNAMIC: branches read from the task's input when it runs."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    tasks_param: str | None  # dynamicForkTasksParam (or the legacy dynamicForkJoinTasksParam)
    inputs_param: str | None  # dynamicForkTasksInputParamName
    optional: bool
    kind: str = "dynamic_fork"


@dataclass(frozen=True, slots=True)
class Join:
    """JOIN (waits for every ``join_on`` task) or EXCLUSIVE_JOIN (the first of them that ran)."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    join_on: tuple[str, ...]
    default_join: tuple[str, ...] = ()  # EXCLUSIVE_JOIN: defaultExclusiveJoinTask
    kind: str = "join"


@dataclass(frozen=True, slots=True)
class Loop:
    """DO_WHILE: the body, then ``condition``, again while it holds (or while ``items`` remain)."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    condition: str
    body: Sequence
    items: Any = None
    keep_last_n: int = 0
    kind: str = "loop"


@dataclass(frozen=True, slots=True)
class Terminate:
    """TERMINATE: end the workflow with ``terminationStatus``."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    kind: str = "terminate"


@dataclass(frozen=True, slots=True)
class Dynamic:
    """DYNAMIC: runs the worker task named by input ``name_param``."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    name_param: str
    task: dict[str, Any]  # the WorkflowTask, to plan the named task with
    kind: str = "dynamic"


@dataclass(frozen=True, slots=True)
class SubWorkflow:
    """SUB_WORKFLOW (runs ``plan`` and waits for it) or START_WORKFLOW (starts it and goes on)."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    plan: Plan | None  # the child's plan; None: named at run time (START_WORKFLOW, or ``name_at_run``)
    policy: Policy
    name_at_run: dict[str, Any] | None = None  # SUB_WORKFLOW: subWorkflowParam name/version to resolve
    kind: str = "sub_workflow"


@dataclass(frozen=True, slots=True)
class System:
    """A sync system task (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP: ``engine.system``),
    run inside the decision that reaches it."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    policy: Policy
    kind: str = "system"


@dataclass(frozen=True, slots=True)
class Wait:
    """WAIT (until its ``duration`` or ``until`` passes, else until completed from outside) or
    HUMAN (until completed from outside): IN_PROGRESS with no message in flight. Its TaskDef's
    timeoutSeconds (HUMAN: also responseTimeoutSeconds) times it out; retries make new records."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    policy: Policy
    kind: str = "wait"


Node = Step | Switch | Fork | DynamicFork | Join | Loop | Terminate | Dynamic | SubWorkflow | System | Wait
CONTAINERS = ("switch", "loop")  # nodes whose tasks are nested under them (forks: branches)


def children(node: Node) -> list[Sequence]:
    """The task lists nested directly in ``node``."""
    if isinstance(node, Switch):
        return [tasks for _, tasks in node.cases] + [node.default]
    if isinstance(node, Fork):
        return list(node.branches)
    if isinstance(node, Loop):
        return [node.body]
    return []


def walk(sequence: Sequence) -> Iterator[Node]:
    """Every node of ``sequence``, nested ones included, in definition order."""
    for node in sequence.nodes:
        yield node
        for nested in children(node):
            yield from walk(nested)


def _node_from_json(data: dict[str, Any]) -> Any:
    kind = data.get("kind")
    if kind == "sequence":
        return Sequence(tuple(_node_from_json(n) for n in data["nodes"]))
    fields = dict(data)
    if "policy" in fields:
        fields["policy"] = Policy(**fields["policy"])
    if kind == "switch":
        fields["cases"] = tuple((name, _node_from_json(seq)) for name, seq in fields["cases"])
        fields["default"] = _node_from_json(fields["default"])
    elif kind == "fork":
        fields["branches"] = tuple(_node_from_json(b) for b in fields["branches"])
    elif kind == "loop":
        fields["body"] = _node_from_json(fields["body"])
    elif kind == "join":
        fields["join_on"] = tuple(fields["join_on"])
        fields["default_join"] = tuple(fields.get("default_join") or ())
    elif kind == "sub_workflow":
        fields["plan"] = Plan.from_json(fields["plan"]) if fields.get("plan") else None
    return NODE_TYPES[kind](**fields)


NODE_TYPES: dict[str, type] = {
    "step": Step,
    "switch": Switch,
    "fork": Fork,
    "dynamic_fork": DynamicFork,
    "join": Join,
    "loop": Loop,
    "terminate": Terminate,
    "dynamic": Dynamic,
    "sub_workflow": SubWorkflow,
    "system": System,
    "wait": Wait,
}


@dataclass(frozen=True)
class Plan:
    """A workflow ready to run: its task tree, its output rules, its failure workflow."""

    name: str
    version: int
    root: Sequence
    output_parameters: dict[str, Any]
    input_template: dict[str, Any]
    variables: dict[str, Any]
    definition: dict[str, Any] = field(repr=False)
    timeout_seconds: int = 0  # the workflow's timeoutSeconds (0: none)
    timeout_policy: str = "ALERT_ONLY"
    failure: Plan | None = None  # the failureWorkflow, planned with this one
    failure_from_input: str | None = None  # failureWorkflow ``$workflow.input.<key>``: the key
    taskdefs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # for runtime tasks
    workflows: dict[str, Plan] = field(default_factory=dict, repr=False)  # "name:version" for runtime

    def steps(self) -> list[Step]:
        """Every worker task of the definition, nested ones included."""
        return [node for node in walk(self.root) if isinstance(node, Step)]

    @cached_property
    def nodes(self) -> dict[str, Node]:
        """Every node by reference."""
        return {node.ref: node for node in walk(self.root) if not isinstance(node, Sequence)}

    @cached_property
    def paths(self) -> dict[str, tuple[tuple[int, int, str], ...]]:
        """For each node, the way from the root to it: (id of a Sequence, index in it, reference of
        the node there) for every level, the node itself last."""
        found: dict[str, tuple[tuple[int, int, str], ...]] = {}

        def visit(sequence: Sequence, above: tuple[tuple[int, int, str], ...]) -> None:
            for index, node in enumerate(sequence.nodes):
                here = (*above, (id(sequence), index, node.ref))
                found[node.ref] = here
                for nested in children(node):
                    visit(nested, here)

        visit(self.root, ())
        return found

    @cached_property
    def loop_sequences(self) -> frozenset[int]:
        """The ids of the sequences inside a DO_WHILE's body (their tasks run once per iteration)."""
        inside: set[int] = set()
        for node in walk(self.root):
            if isinstance(node, Loop):
                inside.add(id(node.body))
                inside.update(id(seq) for n in walk(node.body) for seq in children(n))
        return frozenset(inside)

    def node(self, ref: str) -> Node:
        """The node of a task reference (a DO_WHILE body task's ``ref__N`` included)."""
        found = self.nodes.get(ref) or self.nodes.get(base_ref(ref))
        if found is None:
            raise KeyError(ref)
        return found

    def step(self, ref: str) -> Step:
        node = self.node(ref)
        if not isinstance(node, Step):
            raise KeyError(ref)
        return node

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def json_text(self) -> str:
        """The plan as compact JSON text (computed once)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            name=data["name"],
            version=data["version"],
            root=_node_from_json(data["root"]),
            output_parameters=data["output_parameters"],
            input_template=data["input_template"],
            variables=data["variables"],
            definition=data["definition"],
            timeout_seconds=data.get("timeout_seconds", 0),
            timeout_policy=data.get("timeout_policy", "ALERT_ONLY"),
            failure=cls.from_json(data["failure"]) if data.get("failure") else None,
            failure_from_input=data.get("failure_from_input"),
            taskdefs=data.get("taskdefs") or {},
            workflows={k: cls.from_json(v) for k, v in (data.get("workflows") or {}).items()},
        )


def _taskdef_for(task: WorkflowTask, bundle: WorkflowBundle) -> TaskDef:
    """The TaskDef in force: inline, else the catalog's, else Conductor's ad-hoc default."""
    if task.taskDefinition is not None:
        return task.taskDefinition
    return bundle.catalog.taskdef(task.name) or TaskDef(name=task.name)


def _system_taskdef(task: WorkflowTask, bundle: WorkflowBundle) -> TaskDef:
    """The TaskDef of a system task: inline, else the catalog's, else Conductor's ad-hoc default for a
    non-SIMPLE type (retryCount 0, responseTimeoutSeconds 0: reference §2.2)."""
    if task.taskDefinition is not None:
        return task.taskDefinition
    return bundle.catalog.taskdef(task.name) or TaskDef(
        name=task.name, retryCount=0, responseTimeoutSeconds=0
    )


def build_plan(bundle: WorkflowBundle) -> Plan:
    """Lower a validated workflow (and its failureWorkflow) to the intermediate form."""
    workflow: WorkflowDef | None = bundle.definition
    if workflow is None:
        raise DefinitionError(f"{bundle.file}: no workflow definition to plan")
    return _plan_workflow(workflow, bundle, bundle.file, ())


def _located_plan(
    name: str, version: int | None, bundle: WorkflowBundle, within: tuple[str, ...]
) -> Plan | None:
    """The plan of a workflow found by name (and version) in the catalog (None: not found)."""
    found = bundle.catalog.located_workflow(name, version)
    if found is None or name in within:
        return None
    try:  # a candidate read at run time; its own run-time names are not followed further
        return _plan_workflow(found.value, bundle, found.file, within, collect=False)
    except DefinitionError:
        return None  # cannot run here: naming it at run time fails with a clear reason


def _failure_plan(
    workflow: WorkflowDef, bundle: WorkflowBundle, file: str, within: tuple[str, ...], collect: bool = True
) -> tuple[Plan | None, str | None, dict[str, Plan]]:
    """The failureWorkflow's plan, found by name (and version) among the workflows next to the file;
    or, for a name read from the input (``$workflow.input.<key>``), the key and every workflow of the
    catalog it may name.

    ``within``: the workflows whose failure workflow this is (a cycle is an error)."""
    name = workflow.failureWorkflow
    if not name:
        return None, None, {}

    def problem(code: str, message: str) -> DefinitionError:
        issues = with_file([error("/failureWorkflow", code, message)], file)
        return DefinitionError(f"{file}: cannot plan the workflow", issues)

    if name.startswith("$"):
        key = failure_input_key(name)
        if key is None:
            raise problem(
                "unsupported",
                f"failureWorkflow {name!r}: only a name read from the workflow input "
                "($workflow.input.<key> or ${workflow.input.<key>}) is supported",
            )
        candidates: dict[str, Plan] = {}
        for wf_name, wf_version in sorted(bundle.catalog.workflows) if collect else ():
            if wf_name in within:
                continue
            plan = _located_plan(wf_name, wf_version, bundle, within)
            if plan is not None:
                candidates[f"{wf_name}:{wf_version}"] = plan
        return None, key, candidates
    found = bundle.catalog.located_workflow(name, workflow.failureWorkflowVersion)
    if found is None:
        version = f" version {workflow.failureWorkflowVersion}" if workflow.failureWorkflowVersion else ""
        raise problem(
            "failure-workflow-not-found",
            f"failure workflow {name!r}{version} not found: put its definition in "
            f"{Path(bundle.file).parent} or its {WORKFLOWS_DIR}/ directory",
        )
    if name in within:
        cycle = " -> ".join([*within, name])
        raise problem("failure-workflow-cycle", f"failure workflows form a cycle: {cycle}")
    return _plan_workflow(found.value, bundle, found.file, within), None, {}


def failure_input_key(name: str) -> str | None:
    """The input key of a failureWorkflow named ``$<x>.<y>.<key>`` or ``${workflow.input.<key>}``
    (Conductor reads the third segment of the first form), else None."""
    text = name[2:-1] if name.startswith("${") and name.endswith("}") else name[1:]
    parts = text.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    if name.startswith("${") and parts[:2] != ["workflow", "input"]:
        return None
    return parts[2]


def runtime_workflow(plan: Plan, name: str, version: int | None = None) -> Plan | None:
    """A workflow the plan may start at run time, by name (and version; None: the highest)."""
    if version is not None:
        return plan.workflows.get(f"{name}:{version}")
    versions = [int(key.rsplit(":", 1)[1]) for key in plan.workflows if key.rsplit(":", 1)[0] == name]
    return plan.workflows.get(f"{name}:{max(versions)}") if versions else None


class _Planner:
    """Lowers the task lists of one workflow definition, collecting every problem."""

    def __init__(self, bundle: WorkflowBundle, file: str, within: tuple[str, ...]) -> None:
        self.bundle, self.file, self.within = bundle, file, within
        self.problems: list[Issue] = []
        self.runtime_tasks = False  # DYNAMIC / FORK_JOIN_DYNAMIC: task definitions needed at run time
        self.runtime_workflows = False  # START_WORKFLOW: workflows needed at run time

    def sequence(self, tasks: list[WorkflowTask], ptr: str, in_loop: bool = False) -> Sequence:
        nodes = []
        for index, task in enumerate(tasks):
            node = self.node(task, f"{ptr}/{index}", in_loop)
            if node is not None:
                nodes.append(node)
        return Sequence(tuple(nodes))

    def unsupported(self, ptr: str, message: str) -> None:
        self.problems.append(error(f"{ptr}/type", "unsupported-task-type", message))

    def node(self, task: WorkflowTask, ptr: str, in_loop: bool) -> Node | None:
        kind = task.task_type
        if kind not in SUPPORTED_TYPES:
            self.unsupported(ptr, f"cannot plan {kind}")
            return None
        ref, name, params = task.taskReferenceName or "", task.name or "", task.inputParameters
        if kind == TaskType.SIMPLE.value:
            taskdef = _taskdef_for(task, self.bundle)
            return Step(ref, name, kind, params, taskdef.inputTemplate, Policy.of(task, taskdef))
        if kind in (TaskType.SWITCH.value, TaskType.DECISION.value):
            if kind == TaskType.SWITCH.value:
                evaluator, expression = task.evaluatorType or "", task.expression or ""
            elif task.caseValueParam:
                evaluator, expression = "value-param", task.caseValueParam
            else:
                evaluator, expression = "javascript", task.caseExpression or ""
            cases = tuple(
                (case, self.sequence(tasks, f"{ptr}/decisionCases/{_escape(case)}", in_loop))
                for case, tasks in task.decisionCases.items()
            )
            default = self.sequence(task.defaultCase, f"{ptr}/defaultCase", in_loop)
            return Switch(ref, name, kind, params, evaluator, expression, cases, default)
        if kind == TaskType.FORK_JOIN.value:
            branches = tuple(
                self.sequence(branch, f"{ptr}/forkTasks/{b}", in_loop)
                for b, branch in enumerate(task.forkTasks)
            )
            return Fork(ref, name, kind, params, branches)
        if kind == TaskType.FORK_JOIN_DYNAMIC.value:
            self.runtime_tasks = True
            tasks_param = task.dynamicForkTasksParam or task.dynamicForkJoinTasksParam
            inputs_param = task.dynamicForkTasksInputParamName
            return DynamicFork(ref, name, kind, params, tasks_param, inputs_param, task.optional)
        if kind in (TaskType.JOIN.value, TaskType.EXCLUSIVE_JOIN.value):
            return Join(ref, name, kind, params, tuple(task.joinOn), tuple(task.defaultExclusiveJoinTask))
        if kind == TaskType.DO_WHILE.value:
            if in_loop:
                self.unsupported(ptr, "a DO_WHILE inside another DO_WHILE's loopOver is not supported")
                return None
            body = self.sequence(task.loopOver, f"{ptr}/loopOver", True)
            keep = params.get("keepLastN")
            return Loop(
                ref,
                name,
                kind,
                params,
                task.loopCondition or "",
                body,
                task.items,
                keep if isinstance(keep, int) and not isinstance(keep, bool) and keep > 0 else 0,
            )
        if kind == TaskType.TERMINATE.value:
            return Terminate(ref, name, kind, params)
        if kind in SYNC_SYSTEM_TYPES or kind in WAIT_TYPES:
            policy = Policy.of(task, _system_taskdef(task, self.bundle))
            # WAIT and HUMAN are retried as any task (a new record waits again); a sync task's
            # retries are not run
            if policy.retry_count > 0 and kind in SYNC_SYSTEM_TYPES:
                self.problems.append(
                    error(
                        f"{ptr}/retryCount" if task.retryCount else ptr,
                        "unsupported-retry",
                        f"a {kind} task with retries (retryCount {policy.retry_count}, from its "
                        "task definition or the task) is not supported: retries of system tasks "
                        "are not run; set retryCount 0",
                    )
                )
                return None
            node_type = System if kind in SYNC_SYSTEM_TYPES else Wait
            return node_type(ref, name, kind, params, policy)
        if kind in WORKER_SYSTEM_TYPES:
            taskdef = _system_taskdef(task, self.bundle)
            # Conductor's HTTP and EVENT mappers add these to the task's input
            added: dict[str, Any] = {"asyncComplete": task.asyncComplete}
            if kind == TaskType.EVENT.value:
                added["sink"] = task.sink
            params = {**params, **added}
            return Step(ref, name, kind, params, taskdef.inputTemplate, Policy.of(task, taskdef))
        if kind == TaskType.DYNAMIC.value:
            self.runtime_tasks = True
            return Dynamic(ref, name, kind, params, task.dynamicTaskNameParam or "", task.to_json())
        if kind in (TaskType.SUB_WORKFLOW.value, TaskType.START_WORKFLOW.value):
            policy = Policy.of(task, task.taskDefinition or TaskDef(name=name, retryCount=0))
            if kind == TaskType.START_WORKFLOW.value:
                self.runtime_workflows = True
                return SubWorkflow(ref, name, kind, params, None, policy)
            child = self.sub_workflow(task, ptr)
            param = task.subWorkflowParam
            if child is None and param is not None and "${" in (param.name or ""):
                self.runtime_workflows = True
                at_run = {"name": param.name, "version": param.version}
                return SubWorkflow(ref, name, kind, params, None, policy, at_run)
            return SubWorkflow(ref, name, kind, params, child, policy) if child is not None else None
        self.unsupported(ptr, f"cannot plan {kind}")
        return None

    def sub_workflow(self, task: WorkflowTask, ptr: str) -> Plan | None:
        param = task.subWorkflowParam
        where = f"{ptr}/subWorkflowParam"
        if param is None:
            return None  # the validator reports it
        if isinstance(param.workflowDefinition, dict):
            definition = WorkflowDef.model_validate(param.workflowDefinition)
            return _plan_workflow(definition, self.bundle, self.file, self.within)
        if param.workflowDefinition is not None:
            self.problems.append(
                error(
                    f"{where}/workflowDefinition",
                    "unsupported",
                    "a workflowDefinition read at run time is not supported; inline the definition",
                )
            )
            return None
        name = param.name or ""
        if "${" in name:
            return None  # named at run time: among the workflows the plan carries
        found = self.bundle.catalog.located_workflow(name, param.version)
        if found is None:
            version = f" version {param.version}" if param.version is not None else ""
            self.problems.append(
                error(
                    f"{where}/name",
                    "sub-workflow-not-found",
                    f"sub-workflow {name!r}{version} not found: put its definition in "
                    f"{Path(self.bundle.file).parent}, its {WORKFLOWS_DIR}/ directory "
                    "or a --definitions path",
                )
            )
            return None
        if name in self.within:
            cycle = " -> ".join([*self.within, name])
            self.problems.append(
                error(f"{where}/name", "sub-workflow-cycle", f"sub-workflows form a cycle: {cycle}")
            )
            return None
        return _plan_workflow(found.value, self.bundle, found.file, self.within)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _plan_workflow(
    workflow: WorkflowDef, bundle: WorkflowBundle, file: str, within: tuple[str, ...], collect: bool = True
) -> Plan:
    """``collect``: gather the workflows a name read at run time may pick (not for those workflows)."""
    within = (*within, workflow.name or "")
    planner = _Planner(bundle, file, within)
    root = planner.sequence(workflow.tasks, "/tasks")
    if planner.problems:
        raise DefinitionError(f"{file}: cannot plan the workflow", with_file(planner.problems, file))
    failure, failure_key, candidates = _failure_plan(workflow, bundle, file, within, collect)
    taskdefs: dict[str, dict[str, Any]] = {}
    if planner.runtime_tasks:
        taskdefs = {
            name: located.value.to_json() for name, located in sorted(bundle.catalog.taskdefs.items())
        }
    if planner.runtime_workflows and collect:
        for wf_name, wf_version in sorted(bundle.catalog.workflows):
            if wf_name not in within and f"{wf_name}:{wf_version}" not in candidates:
                plan = _located_plan(wf_name, wf_version, bundle, within)
                if plan is not None:
                    candidates[f"{wf_name}:{wf_version}"] = plan
    return Plan(
        name=workflow.name or "",
        version=workflow.version,
        root=root,
        output_parameters=workflow.outputParameters,
        input_template=workflow.inputTemplate,
        variables=workflow.variables,
        definition=workflow.to_json(),
        timeout_seconds=workflow.timeoutSeconds,
        timeout_policy=workflow.timeoutPolicy.value,
        failure=failure,
        failure_from_input=failure_key,
        taskdefs=taskdefs,
        workflows=candidates,
    )


def plan_runtime_task(plan: Plan, task: dict[str, Any]) -> Step:
    """A worker task met at run time (a dynamic fork's branch, a DYNAMIC task's named task), planned
    with the task definitions the plan carries (else Conductor's ad-hoc default)."""
    workflow_task = WorkflowTask.model_validate(task)
    name = workflow_task.name or ""
    if workflow_task.taskDefinition is not None:
        taskdef = workflow_task.taskDefinition
    elif name in plan.taskdefs:
        taskdef = TaskDef.model_validate(plan.taskdefs[name])
    else:
        taskdef = TaskDef(name=name)
    return Step(
        workflow_task.taskReferenceName or "",
        name,
        TaskType.SIMPLE.value,
        workflow_task.inputParameters,
        taskdef.inputTemplate,
        Policy.of(workflow_task, taskdef),
    )


def message_expiry(step: Step, countdown: float) -> float | None:
    """Seconds until a step's message expires: pollTimeoutSeconds after it is due. None when there is
    no poll timeout, or when the timeoutPolicy is ALERT_ONLY (the attempt must still run late). An
    expired message is dropped by the worker; the poll deadline times the attempt out."""
    policy = step.policy
    if not policy.poll_timeout_seconds or policy.timeout_policy == "ALERT_ONLY":
        return None
    return countdown + policy.poll_timeout_seconds
