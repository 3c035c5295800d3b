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
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from translator.errors import DefinitionError
from translator.issues import Issue, error
from translator.loader import WORKFLOWS_DIR, WorkflowBundle, with_file
from translator.model import TaskDef, WorkflowDef, WorkflowTask
from translator.retry import RetryDelay, retry_delay
from translator.tasktypes import SUPPORTED_TYPES, TaskType


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


@dataclass(frozen=True, slots=True)
class Step:
    """One SIMPLE task of the workflow."""

    ref: str
    name: str
    type: str
    input_parameters: dict[str, Any]
    input_template: dict[str, Any]
    policy: Policy
    kind: str = "step"


@dataclass(frozen=True, slots=True)
class Sequence:
    nodes: tuple[Step, ...]
    kind: str = "sequence"


@dataclass(frozen=True)
class Plan:
    """A workflow ready to compile: its definition, its steps, its output rules."""

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

    def steps(self) -> list[Step]:
        return list(self.root.nodes)

    def step(self, ref: str) -> Step:
        for node in self.root.nodes:
            if node.ref == ref:
                return node
        raise KeyError(ref)

    def next_ref(self, ref: str) -> str | None:
        """The reference of the step that runs after ``ref`` (None when ``ref`` is the last)."""
        refs = [node.ref for node in self.root.nodes]
        index = refs.index(ref)
        return refs[index + 1] if index + 1 < len(refs) else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def json_text(self) -> str:
        """The plan as compact JSON text (computed once)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        nodes = tuple(Step(**{**node, "policy": Policy(**node["policy"])}) for node in data["root"]["nodes"])
        return cls(
            name=data["name"],
            version=data["version"],
            root=Sequence(nodes),
            output_parameters=data["output_parameters"],
            input_template=data["input_template"],
            variables=data["variables"],
            definition=data["definition"],
            timeout_seconds=data.get("timeout_seconds", 0),
            timeout_policy=data.get("timeout_policy", "ALERT_ONLY"),
            failure=cls.from_json(data["failure"]) if data.get("failure") else None,
        )


def _taskdef_for(task: WorkflowTask, bundle: WorkflowBundle) -> TaskDef:
    """The TaskDef in force: inline, else the catalog's, else Conductor's ad-hoc default."""
    if task.taskDefinition is not None:
        return task.taskDefinition
    return bundle.catalog.taskdef(task.name) or TaskDef(name=task.name)


def build_plan(bundle: WorkflowBundle) -> Plan:
    """Lower a validated workflow (and its failureWorkflow) to the intermediate form."""
    workflow: WorkflowDef | None = bundle.definition
    if workflow is None:
        raise DefinitionError(f"{bundle.file}: no workflow definition to plan")
    return _plan_workflow(workflow, bundle, bundle.file, ())


def _failure_plan(
    workflow: WorkflowDef, bundle: WorkflowBundle, file: str, within: tuple[str, ...]
) -> Plan | None:
    """The failureWorkflow's plan, found by name (and version) among the workflows next to the file.

    ``within``: the workflows whose failure workflow this is (a cycle is an error)."""
    name = workflow.failureWorkflow
    if not name:
        return None

    def problem(code: str, message: str) -> DefinitionError:
        issues = with_file([error("/failureWorkflow", code, message)], file)
        return DefinitionError(f"{file}: cannot plan the workflow", issues)

    if name.startswith("$"):
        raise problem(
            "unsupported",
            f"failureWorkflow {name!r}: a name read from the workflow input is not supported; "
            "name the failure workflow",
        )
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
    return _plan_workflow(found.value, bundle, found.file, within)


def _plan_workflow(workflow: WorkflowDef, bundle: WorkflowBundle, file: str, within: tuple[str, ...]) -> Plan:
    problems: list[Issue] = []
    steps: list[Step] = []
    for index, task in enumerate(workflow.tasks):
        if task.task_type not in SUPPORTED_TYPES:
            problems.append(
                error(f"/tasks/{index}/type", "unsupported-task-type", f"cannot plan {task.task_type}")
            )
            continue
        taskdef = _taskdef_for(task, bundle)
        steps.append(
            Step(
                ref=task.taskReferenceName or "",
                name=task.name or "",
                type=TaskType.SIMPLE.value,
                input_parameters=task.inputParameters,
                input_template=taskdef.inputTemplate,
                policy=Policy.of(task, taskdef),
            )
        )
    if problems:
        raise DefinitionError(f"{file}: cannot plan the workflow", with_file(problems, file))
    return Plan(
        name=workflow.name or "",
        version=workflow.version,
        root=Sequence(tuple(steps)),
        output_parameters=workflow.outputParameters,
        input_template=workflow.inputTemplate,
        variables=workflow.variables,
        definition=workflow.to_json(),
        timeout_seconds=workflow.timeoutSeconds,
        timeout_policy=workflow.timeoutPolicy.value,
        failure=_failure_plan(workflow, bundle, file, (*within, workflow.name or "")),
    )


def message_expiry(step: Step, countdown: float) -> float | None:
    """Seconds until a step's message expires: pollTimeoutSeconds after it is due. None when there is
    no poll timeout, or when the timeoutPolicy is ALERT_ONLY (the attempt must still run late). An
    expired message is dropped by the worker; the poll deadline times the attempt out."""
    policy = step.policy
    if not policy.poll_timeout_seconds or policy.timeout_policy == "ALERT_ONLY":
        return None
    return countdown + policy.poll_timeout_seconds
