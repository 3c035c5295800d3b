"""Typed Conductor metadata: TaskDef, WorkflowDef, WorkflowTask, SubWorkflowParams.

Field names, types and defaults follow Conductor's Java classes (reference §1.1, §2.1, §3), not its
docs. Models accept both sparse JSON and the fully populated form that Conductor exports, keep keys
they do not know (the validator warns about them), and round-trip: ``to_json()`` returns the keys
that were given, with their values, plus nothing else.

Required fields (``name``, ``taskReferenceName``, ``tasks``...) are optional here so that a model can
be built from an incomplete file; the validator reports them with Conductor's messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from translator.definitions.tasktypes import TaskType


class RetryLogic(StrEnum):
    FIXED = "FIXED"
    EXPONENTIAL_BACKOFF = "EXPONENTIAL_BACKOFF"
    LINEAR_BACKOFF = "LINEAR_BACKOFF"


class TimeoutPolicy(StrEnum):
    RETRY = "RETRY"
    TIME_OUT_WF = "TIME_OUT_WF"
    ALERT_ONLY = "ALERT_ONLY"


class WorkflowTimeoutPolicy(StrEnum):
    TIME_OUT_WF = "TIME_OUT_WF"
    ALERT_ONLY = "ALERT_ONLY"


class _Conductor(BaseModel):
    """Shared configuration: camelCase JSON names, unknown keys kept, assignment validated."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, validate_assignment=True, coerce_numbers_to_str=True
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON object this model was read from (only the keys that were set)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @property
    def unknown_keys(self) -> list[str]:
        return list(self.__pydantic_extra__ or {})


class _Auditable(_Conductor):
    ownerApp: str | None = None
    createTime: int | None = None
    updateTime: int | None = None
    createdBy: str | None = None
    updatedBy: str | None = None


class TaskDef(_Auditable):
    """A task definition: the retry, timeout and rate-limit policy of a task name."""

    name: str | None = None
    description: str | None = None
    retryCount: int = 3
    retryLogic: RetryLogic = RetryLogic.FIXED
    retryDelaySeconds: int = 60
    backoffScaleFactor: int = 1
    maxRetryDelaySeconds: int = 0
    backoffJitterMs: int = 0
    timeoutSeconds: int = 0
    timeoutPolicy: TimeoutPolicy = TimeoutPolicy.TIME_OUT_WF
    responseTimeoutSeconds: int = 3600
    pollTimeoutSeconds: int | None = None
    totalTimeoutSeconds: int = 0
    concurrentExecLimit: int | None = None
    rateLimitPerFrequency: int | None = None
    rateLimitFrequencyInSeconds: int | None = None
    inputKeys: list[str] = Field(default_factory=list)
    outputKeys: list[str] = Field(default_factory=list)
    inputTemplate: dict[str, Any] = Field(default_factory=dict)
    isolationGroupId: str | None = None
    executionNameSpace: str | None = None
    ownerEmail: str | None = None
    baseType: str | None = None
    inputSchema: dict[str, Any] | None = None
    outputSchema: dict[str, Any] | None = None
    enforceSchema: bool = False
    runtimeMetadata: dict[str, Any] | None = None
    taskStatusListenerEnabled: bool = True

    @property
    def effective_rate_limit_per_frequency(self) -> int:
        """``getRateLimitPerFrequency``: null means 0, i.e. unlimited."""
        return self.rateLimitPerFrequency or 0

    @property
    def effective_rate_limit_frequency_seconds(self) -> int:
        """``getRateLimitFrequencyInSeconds``: null means 1 second."""
        return 1 if self.rateLimitFrequencyInSeconds is None else self.rateLimitFrequencyInSeconds

    @property
    def effective_concurrent_exec_limit(self) -> int:
        """``concurrencyLimit()``: null means 0, i.e. unlimited."""
        return self.concurrentExecLimit or 0


class SubWorkflowParams(_Conductor):
    name: str | None = None
    version: int | None = None
    taskToDomain: dict[str, str] | None = None
    # An inline WorkflowDef object, or a "${...}" string resolved at run time. Kept as raw JSON here;
    # the loader parses and validates an inline object as a WorkflowDef of its own.
    workflowDefinition: dict[str, Any] | str | None = None
    idempotencyKey: str | None = None
    idempotencyStrategy: str | None = None
    priority: Any = None


class WorkflowTask(_Conductor):
    """One task configuration inside a workflow definition."""

    name: str | None = None
    taskReferenceName: str | None = None
    type: str = TaskType.SIMPLE.value
    description: str | None = None
    inputParameters: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    permissive: bool = False
    startDelay: int = 0
    asyncComplete: bool = False
    retryCount: int | None = None
    taskDefinition: TaskDef | None = None
    decisionCases: dict[str, list[WorkflowTask]] = Field(default_factory=dict)
    defaultCase: list[WorkflowTask] = Field(default_factory=list)
    caseValueParam: str | None = None
    caseExpression: str | None = None
    evaluatorType: str | None = None
    expression: str | None = None
    forkTasks: list[list[WorkflowTask]] = Field(default_factory=list)
    joinOn: list[str] = Field(default_factory=list)
    defaultExclusiveJoinTask: list[str] = Field(default_factory=list)
    loopCondition: str | None = None
    loopOver: list[WorkflowTask] = Field(default_factory=list)
    items: Any = None
    subWorkflowParam: SubWorkflowParams | None = None
    dynamicTaskNameParam: str | None = None
    dynamicForkTasksParam: str | None = None
    dynamicForkTasksInputParamName: str | None = None
    dynamicForkJoinTasksParam: str | None = None
    sink: str | None = None
    scriptExpression: str | None = None
    rateLimited: bool | None = None
    onStateChange: dict[str, Any] | None = None
    joinStatus: str | None = None
    joinMode: str | None = None
    cacheConfig: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @property
    def task_type(self) -> str:
        return self.type or TaskType.SIMPLE.value

    def children(self) -> list[tuple[tuple[str | int, ...], WorkflowTask]]:
        """Directly nested tasks with their pointer tokens relative to this task."""
        nested: list[tuple[tuple[str | int, ...], WorkflowTask]] = []
        for case, tasks in self.decisionCases.items():
            nested += [(("decisionCases", case, i), t) for i, t in enumerate(tasks)]
        nested += [(("defaultCase", i), t) for i, t in enumerate(self.defaultCase)]
        for b, branch in enumerate(self.forkTasks):
            nested += [(("forkTasks", b, i), t) for i, t in enumerate(branch)]
        nested += [(("loopOver", i), t) for i, t in enumerate(self.loopOver)]
        return nested


class WorkflowDef(_Auditable):
    """A workflow definition: a named, versioned list of tasks."""

    name: str | None = None
    description: str | None = None
    version: int = 1
    tasks: list[WorkflowTask] = Field(default_factory=list)
    inputParameters: list[str] = Field(default_factory=list)
    outputParameters: dict[str, Any] = Field(default_factory=dict)
    inputTemplate: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    schemaVersion: int = 2
    restartable: bool = True
    failureWorkflow: str | None = None
    failureWorkflowVersion: int | None = None
    timeoutSeconds: int = 0
    timeoutPolicy: WorkflowTimeoutPolicy = WorkflowTimeoutPolicy.ALERT_ONLY
    workflowStatusListenerEnabled: bool = False
    workflowStatusListenerSink: str | None = None
    ownerEmail: str | None = None
    rateLimitConfig: dict[str, Any] | None = None
    inputSchema: dict[str, Any] | None = None
    outputSchema: dict[str, Any] | None = None
    enforceSchema: bool = True
    metadata: dict[str, Any] | None = None
    cacheConfig: dict[str, Any] | None = None
    maskedFields: list[str] | None = None

    def walk(self) -> list[tuple[str, WorkflowTask]]:
        """Every task, nested ones included, with its JSON pointer, in definition order."""
        from translator.definitions.issues import join

        found: list[tuple[str, WorkflowTask]] = []

        def visit(ptr: str, task: WorkflowTask) -> None:
            found.append((ptr, task))
            for tokens, child in task.children():
                visit(join(ptr, *tokens), child)

        for index, task in enumerate(self.tasks):
            visit(join("", "tasks", index), task)
        return found


WorkflowTask.model_rebuild()
