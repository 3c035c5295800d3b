"""Registration-time validation: Conductor's rules (reference §1.4, §2.2) plus translator's own.

Each rule is a small function yielding Issues with an RFC 6901 pointer; ``validate_workflow`` and
``validate_taskdef`` run all of them and return every issue found. Conductor's messages are used
verbatim where Conductor has one (including its quirks, such as "atleast"); codes are ours.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translator.definitions import jsonpath
from translator.definitions.expressions import (
    MAX_EXPRESSION_NESTING,
    SYSTEM_PARAMETERS,
    allowed_environment,
    expression_nesting,
    expressions_in,
    first_segment,
)
from translator.definitions.issues import Issue, Level, Report, clip, error, join, unescape_pointer, warning
from translator.definitions.jsonsource import LIMIT_CODE, read_file
from translator.definitions.loader import (
    NOT_A_DEFINITION,
    DocumentKind,
    TaskDefFile,
    WorkflowBundle,
    build_model,
    detect_kind,
    load_workflow,
    parse_taskdefs,
    with_file,
)
from translator.definitions.model import SubWorkflowParams, TaskDef, WorkflowDef, WorkflowTask
from translator.definitions.tasktypes import KNOWN_TYPES, SUPPORTED_TYPES, TaskType
from translator.errors import DefinitionError
from translator.runtime.workers import registered_task_names

_REQUIRED = "{field} field is required for taskType: {type} taskName: {name}"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_KEY_HINTS = {"taskType": "type", "url": "uri", "inputExpression": "inputParameters"}


@dataclass
class Context:
    """What the workflow rules can see."""

    workflow: WorkflowDef
    taskdef: Callable[[str | None], TaskDef | None]
    searched: list[str] = field(default_factory=list)
    taskdef_names: tuple[str, ...] = ()  # for "did you mean"
    env_names: frozenset[str] = frozenset()
    base: str = ""

    def tasks(self) -> list[tuple[str, WorkflowTask]]:
        return [(self.base + ptr, task) for ptr, task in self.workflow.walk()]


# ---------------------------------------------------------------------------------------------
# Unknown keys


_MAX_KEY_HINTS = 20  # unknown keys of one object given a "did you mean" (difflib is costly)


def _unknown_key_issues(model: Any, ptr: str) -> Iterator[Issue]:
    known = sorted(type(model).model_fields)
    for index, key in enumerate(model.unknown_keys):
        hint = _KEY_HINTS.get(key)
        if hint is None and index < _MAX_KEY_HINTS:
            hint = next(iter(difflib.get_close_matches(key, known, 1, 0.75)), None)
        suggestion = f'; did you mean "{hint}"?' if hint else ""
        yield warning(
            join(ptr, key),
            "unknown-key",
            f'unknown key "{clip(key)}" in {type(model).__name__} is ignored by Conductor{suggestion}',
        )


def rule_unknown_keys(ctx: Context) -> Iterator[Issue]:
    yield from _unknown_key_issues(ctx.workflow, ctx.base)
    for ptr, task in ctx.tasks():
        yield from _unknown_key_issues(task, ptr)
        if task.taskDefinition is not None:
            yield from _unknown_key_issues(task.taskDefinition, join(ptr, "taskDefinition"))
        if task.subWorkflowParam is not None:
            yield from _unknown_key_issues(task.subWorkflowParam, join(ptr, "subWorkflowParam"))


# ---------------------------------------------------------------------------------------------
# WorkflowDef-level rules


def rule_workflow_fields(ctx: Context) -> Iterator[Issue]:
    wf, base = ctx.workflow, ctx.base
    if not wf.name:
        yield error(join(base, "name"), "required", "WorkflowDef name cannot be null or empty")
    if not wf.tasks:
        yield error(join(base, "tasks"), "required", "WorkflowTask list cannot be empty")
    if wf.schemaVersion != 2:
        yield error(
            join(base, "schemaVersion"),
            "schema-version",
            "workflowDef schemaVersion: 2 is only supported",
        )
    if wf.timeoutSeconds < 0:
        yield error(
            join(base, "timeoutSeconds"),
            "min",
            f"WorkflowDef timeoutSeconds: {wf.timeoutSeconds} must be >= 0",
        )
    if wf.ownerEmail and not _EMAIL.match(wf.ownerEmail):
        yield error(join(base, "ownerEmail"), "email", "ownerEmail should be valid email address")


def rule_task_fields(ctx: Context) -> Iterator[Issue]:
    for ptr, task in ctx.tasks():
        if not task.name:
            yield error(join(ptr, "name"), "required", "WorkflowTask name cannot be empty or null")
        if not task.taskReferenceName:
            yield error(
                join(ptr, "taskReferenceName"),
                "required",
                "WorkflowTask taskReferenceName name cannot be empty or null",
            )
        elif "__" in task.taskReferenceName:
            yield warning(
                join(ptr, "taskReferenceName"),
                "ref-double-underscore",
                f'taskReferenceName "{task.taskReferenceName}" contains "__", which Conductor '
                "uses for loop iterations: ${...} reads of it inside a DO_WHILE see only the part "
                "before the first __",
            )
        if task.startDelay < 0:
            yield error(
                join(ptr, "startDelay"),
                "min",
                f"WorkflowTask startDelay: {task.startDelay} must be >= 0",
            )
        if task.retryCount is not None and task.retryCount < 0:
            yield error(
                join(ptr, "retryCount"),
                "min",
                f"WorkflowTask retryCount: {task.retryCount} must be >= 0",
            )


def rule_unique_refs(ctx: Context) -> Iterator[Issue]:
    seen: set[str] = set()
    for ptr, task in ctx.tasks():
        ref = task.taskReferenceName
        if not ref:
            continue
        if ref in seen:
            yield error(
                join(ptr, "taskReferenceName"),
                "duplicate-ref",
                f"taskReferenceName: {ref} should be unique across tasks for a given "
                f"workflowDefinition: {ctx.workflow.name}",
            )
        seen.add(ref)


def _sibling_lists(wf: WorkflowDef, base: str) -> Iterator[tuple[str, list[WorkflowTask]]]:
    """Every task list of the definition with the pointer of the list itself."""
    yield join(base, "tasks"), wf.tasks
    for ptr, task in wf.walk():
        ptr = base + ptr
        for case, tasks in task.decisionCases.items():
            yield join(ptr, "decisionCases", case), tasks
        yield join(ptr, "defaultCase"), task.defaultCase
        for b, branch in enumerate(task.forkTasks):
            yield join(ptr, "forkTasks", b), branch
        yield join(ptr, "loopOver"), task.loopOver


def rule_fork_followed_by_join(ctx: Context) -> Iterator[Issue]:
    forks = (TaskType.FORK_JOIN, TaskType.FORK_JOIN_DYNAMIC)
    for list_ptr, tasks in _sibling_lists(ctx.workflow, ctx.base):
        for i, task in enumerate(tasks):
            if task.task_type not in forks:
                continue
            following = tasks[i + 1] if i + 1 < len(tasks) else None
            if following is None or following.task_type != TaskType.JOIN:
                yield error(
                    join(list_ptr, i),
                    "fork-without-join",
                    "Fork task definition is not followed by a join task",
                )


# ---------------------------------------------------------------------------------------------
# Per-type required parameters (WorkflowTaskTypeConstraint)


def _required(ptr: str, field_ptr: str, what: str, task: WorkflowTask) -> Issue:
    return error(
        join(ptr, *unescape_pointer(field_ptr)),
        "required",
        _REQUIRED.format(field=what, type=task.task_type, name=task.name),
    )


def _template_has(ctx: Context, task: WorkflowTask, key: str) -> bool:
    taskdef = task.taskDefinition or ctx.taskdef(task.name)
    return taskdef is not None and key in taskdef.inputTemplate


def _check_decision(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.caseValueParam is None and task.caseExpression is None:
        yield _required(ptr, "/caseValueParam", "caseValueParam or caseExpression", task)
    if not task.decisionCases:
        yield error(
            join(ptr, "decisionCases"),
            "required",
            f"decisionCases should have atleast one task for taskType: {task.task_type} "
            f"taskName: {task.name}",
        )
    if task.caseValueParam is None and task.caseExpression is not None:
        yield from _script_syntax(join(ptr, "caseExpression"), task.caseExpression, task)


def _check_switch(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.evaluatorType is None:
        yield _required(ptr, "/evaluatorType", "evaluatorType", task)
    elif task.expression is None:
        yield _required(ptr, "/expression", "expression", task)
    if not task.decisionCases:
        yield error(
            join(ptr, "decisionCases"),
            "required",
            f"decisionCases should have atleast one task for taskType: SWITCH taskName: {task.name}",
        )
    if task.evaluatorType == "javascript" and task.expression is not None:
        yield from _script_syntax(join(ptr, "expression"), task.expression, task)


def _script_syntax(ptr: str, script: str, task: WorkflowTask) -> Iterator[Issue]:
    """Conductor refuses a JavaScript expression that does not parse (``javascript`` only: a
    ``graaljs`` one is checked when it runs)."""
    from translator.engine.javascript import ScriptError, syntax_error

    try:
        problem = syntax_error(script)
    except ScriptError as exc:
        problem = str(exc)
    if problem is not None:
        yield error(
            ptr,
            "script-syntax",
            f"{problem}: the expression of taskType: {task.task_type} taskName: {task.name}",
        )


def _check_loop(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.loopCondition is None:
        yield _required(ptr, "/loopCondition", "loopCondition", task)
    if not task.loopOver:
        yield _required(ptr, "/loopOver", "loopOver", task)


def _check_dynamic(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.dynamicTaskNameParam is None:
        yield _required(ptr, "/dynamicTaskNameParam", "dynamicTaskNameParam", task)


def _check_dynamic_fork(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    legacy = task.dynamicForkJoinTasksParam is not None
    pair = task.dynamicForkTasksParam is not None or task.dynamicForkTasksInputParamName is not None
    if legacy and pair:
        yield error(
            join(ptr, "dynamicForkJoinTasksParam"),
            "conflict",
            "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and "
            f"dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: {task.name}",
        )
        return
    if legacy or "forkTaskInputs" in task.inputParameters:
        return
    if task.dynamicForkTasksParam is None:
        yield _required(ptr, "/dynamicForkTasksParam", "dynamicForkTasksParam", task)
    if task.dynamicForkTasksInputParamName is None:
        yield _required(ptr, "/dynamicForkTasksInputParamName", "dynamicForkTasksInputParamName", task)


def _check_input_key(key: str) -> Callable[[Context, str, WorkflowTask], Iterator[Issue]]:
    def check(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
        if key in task.inputParameters or _template_has(ctx, task, key):
            return
        if key == "http_request" and "uri" in task.inputParameters:
            return
        yield _required(ptr, f"/inputParameters/{key}", f"inputParameters.{key}", task)

    return check


def _check_fork(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if not task.forkTasks:
        yield error(
            join(ptr, "forkTasks"),
            "required",
            f"forkTasks should have atleast one task for taskType: FORK_JOIN taskName: {task.name}",
        )


def _check_subworkflow(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.subWorkflowParam is None:
        yield _required(ptr, "/subWorkflowParam", "subWorkflowParam", task)


def _check_event(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.sink is None:
        yield _required(ptr, "/sink", "sink", task)


def _check_terminate(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    if task.optional:
        yield error(
            join(ptr, "optional"),
            "terminate-optional",
            f"terminate task cannot be optional, taskName: {task.name}",
        )
    status = task.inputParameters.get("terminationStatus")
    if status is None or str(status).upper() not in ("COMPLETED", "FAILED", "TERMINATED"):
        yield error(
            join(ptr, "inputParameters", "terminationStatus"),
            "terminate-status",
            "terminate task must have an terminationStatus parameter and must be set to "
            f"COMPLETED or FAILED, taskName: {task.name}",
        )


_DURATION = re.compile(
    r"^\s*(?:(\d+)\s*(?:days?|d))?\s*(?:(\d+)\s*(?:hours?|hrs?|h))?\s*"
    r"(?:(\d+)\s*(?:minutes?|mins?|m))?\s*(?:(\d+)\s*(?:seconds?|secs?|s))?\s*$",
    re.IGNORECASE,
)
_UNTIL = re.compile(r"^\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?: \S+)?)?$")


def _check_wait(ctx: Context, ptr: str, task: WorkflowTask) -> Iterator[Issue]:
    duration = str(task.inputParameters.get("duration") or "").strip()
    until = str(task.inputParameters.get("until") or "").strip()
    if duration and until:
        yield error(
            join(ptr, "inputParameters"),
            "wait-conflict",
            "Both 'duration' and 'until' specified. Please provide only one input",
        )
        return
    if duration and not duration.startswith("${") and not _DURATION.match(duration):
        yield error(
            join(ptr, "inputParameters", "duration"),
            "wait-duration",
            f"Wait time specified is invalid. The duration must be in the form '2d 3h 10m 5s' "
            f"(got {clip(duration)!r})",
        )
    if until and not until.startswith("${") and not _UNTIL.match(until):
        yield error(
            join(ptr, "inputParameters", "until"),
            "wait-until",
            f"Unable to parse date {clip(until)!r}; expected yyyy-MM-dd, yyyy-MM-dd HH:mm or "
            "yyyy-MM-dd HH:mm z",
        )


_TYPE_CHECKS: Mapping[str, Callable[[Context, str, WorkflowTask], Iterator[Issue]]] = {
    TaskType.EVENT: _check_event,
    TaskType.DECISION: _check_decision,
    TaskType.SWITCH: _check_switch,
    TaskType.DYNAMIC: _check_dynamic,
    TaskType.FORK_JOIN_DYNAMIC: _check_dynamic_fork,
    TaskType.HTTP: _check_input_key("http_request"),
    TaskType.FORK_JOIN: _check_fork,
    TaskType.TERMINATE: _check_terminate,
    TaskType.KAFKA_PUBLISH: _check_input_key("kafka_request"),
    TaskType.DO_WHILE: _check_loop,
    TaskType.SUB_WORKFLOW: _check_subworkflow,
    TaskType.JSON_JQ_TRANSFORM: _check_input_key("queryExpression"),
    TaskType.WAIT: _check_wait,
}


def rule_task_type_parameters(ctx: Context) -> Iterator[Issue]:
    for ptr, task in ctx.tasks():
        check = _TYPE_CHECKS.get(task.task_type)
        if check is not None:
            yield from check(ctx, ptr, task)


def rule_supported_types(ctx: Context) -> Iterator[Issue]:
    for ptr, task in ctx.tasks():
        kind = task.task_type
        if kind in SUPPORTED_TYPES:
            continue
        if kind == TaskType.KAFKA_PUBLISH:
            message = "task type KAFKA_PUBLISH is not supported: translator has no Kafka client"
        elif kind in KNOWN_TYPES:
            message = f"task type {kind} is not supported by translator yet (it is never run approximately)"
        else:
            hint = next(iter(difflib.get_close_matches(kind.upper(), sorted(KNOWN_TYPES), 1)), None)
            message = (
                f'unknown task type "{clip(kind)}": Conductor treats it as USER_DEFINED, '
                "which translator does not support" + (f'; did you mean "{hint}"?' if hint else "")
            )
        yield error(join(ptr, "type"), "unsupported-task-type", message)


# ---------------------------------------------------------------------------------------------
# ${...} references


def _string_values(value: Any, ptr: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield ptr, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_values(item, join(ptr, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_values(item, join(ptr, index))


def _reference_issues(
    ctx: Context, refs: set[str], value: Any, ptr: str, task: WorkflowTask | None, strict: bool
) -> Iterator[Issue]:
    for value_ptr, text in _string_values(value, ptr):
        if expression_nesting(text) > MAX_EXPRESSION_NESTING:
            yield error(
                value_ptr,
                LIMIT_CODE,
                f"${{...}} expressions nested more than {MAX_EXPRESSION_NESTING} deep, the most "
                "translator resolves",
            )
            continue
        for expr in expressions_in(text):
            body = expr.body.strip()
            if not body or "${" in body:
                continue  # empty, or nested: only known at run time
            if body in SYSTEM_PARAMETERS or body in ctx.env_names:
                continue
            if body.startswith(("workflow.env.", "workflow.secrets.", "$.workflow.env.")):
                yield error(
                    value_ptr,
                    "unsupported-expression",
                    f"${{{clip(body)}}}: workflow.env and workflow.secrets are not supported; pass the "
                    "value in the workflow input instead",
                )
                continue
            try:
                jsonpath.compile_path(body)
            except jsonpath.PathLimitError as exc:
                yield error(value_ptr, LIMIT_CODE, str(exc))
                continue
            except jsonpath.PathSyntaxError as exc:
                yield error(value_ptr, "invalid-expression", str(exc))
                continue
            segment = first_segment(body)
            if segment in ("workflow", "$", "") or segment in refs:
                continue
            tokens = unescape_pointer(value_ptr)
            key = tokens[tokens.index("inputParameters") + 1] if "inputParameters" in tokens else ""
            if strict and task is not None:
                yield error(
                    value_ptr,
                    "unknown-ref",
                    f"taskReferenceName: {clip(segment)} for given task: {clip(task.name or '')} input "
                    f"value: {clip(key)} of input parameter: {clip(text)} is not defined in workflow "
                    "definition.",
                )
            else:
                yield warning(
                    value_ptr,
                    "unknown-ref",
                    f"${{{clip(body)}}} reads {clip(segment)!r}, which is not a taskReferenceName of this "
                    "workflow (nor 'workflow'); it will resolve to null",
                )


def rule_references(ctx: Context) -> Iterator[Issue]:
    refs = {t.taskReferenceName for _, t in ctx.tasks() if t.taskReferenceName}
    top = {id(t) for t in ctx.workflow.tasks}
    for ptr, task in ctx.tasks():
        yield from _reference_issues(
            ctx, refs, task.inputParameters, join(ptr, "inputParameters"), task, id(task) in top
        )
        for index, ref in enumerate(task.joinOn):
            if ref not in refs:
                yield warning(
                    join(ptr, "joinOn", index),
                    "unknown-ref",
                    f"joinOn names {ref!r}, which is not a taskReferenceName of this workflow",
                )
    yield from _reference_issues(
        ctx, refs, ctx.workflow.outputParameters, join(ctx.base, "outputParameters"), None, False
    )


# ---------------------------------------------------------------------------------------------
# Task definitions used by the workflow


def rule_taskdefs(ctx: Context) -> Iterator[Issue]:
    for ptr, task in ctx.tasks():
        if task.taskDefinition is not None:
            # Conductor does not validate inline task definitions (no @Valid): warn only.
            for issue in validate_taskdef(task.taskDefinition, join(ptr, "taskDefinition"), True):
                yield warning(issue.pointer, issue.code, issue.message)
            continue
        if task.task_type != TaskType.SIMPLE or not task.name or ctx.taskdef(task.name):
            continue
        where = ", ".join(ctx.searched) if ctx.searched else "no task definition files"
        hint = _did_you_mean(ctx, task.name)
        yield warning(
            join(ptr, "name"),
            "missing-taskdef",
            f'no task definition named "{clip(task.name)}" (searched: {where}{hint}); '
            "Conductor's defaults apply: retryCount 3, FIXED retryDelaySeconds 60, timeoutSeconds 0, "
            "responseTimeoutSeconds 3600",
        )


def _did_you_mean(ctx: Context, name: str) -> str:
    """The closest defined task name, or registered worker name (those imported in this process)."""
    candidates = sorted({*ctx.taskdef_names, *registered_task_names()})
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def rule_inline_subworkflows(ctx: Context) -> Iterator[Issue]:
    for ptr, task in ctx.tasks():
        params: SubWorkflowParams | None = task.subWorkflowParam
        if params is None:
            continue
        inline = params.workflowDefinition
        inline_ptr = join(ptr, "subWorkflowParam", "workflowDefinition")
        if isinstance(inline, dict):
            model, issues = build_model(WorkflowDef, inline, inline_ptr)
            yield from issues
            if model is not None:
                yield from validate_workflow(
                    model,
                    taskdef=ctx.taskdef,
                    searched=ctx.searched,
                    base=inline_ptr,
                    env_names=ctx.env_names,
                    taskdef_names=ctx.taskdef_names,
                )
        elif isinstance(inline, str):
            if not (inline.startswith("${") and inline.endswith("}")):
                yield error(
                    inline_ptr,
                    "subworkflow-definition",
                    "subWorkflowParam.workflowDefinition must be a workflow definition object "
                    "or a ${...} expression",
                )
        elif not params.name:
            yield error(
                join(ptr, "subWorkflowParam", "name"),
                "required",
                "subWorkflowParam name cannot be null or empty",
            )


WORKFLOW_RULES: tuple[Callable[[Context], Iterable[Issue]], ...] = (
    rule_workflow_fields,
    rule_unknown_keys,
    rule_task_fields,
    rule_unique_refs,
    rule_task_type_parameters,
    rule_fork_followed_by_join,
    rule_references,
    rule_taskdefs,
    rule_inline_subworkflows,
    rule_supported_types,
)


def validate_workflow(
    workflow: WorkflowDef,
    *,
    taskdef: Callable[[str | None], TaskDef | None] = lambda name: None,
    searched: list[str] | None = None,
    base: str = "",
    env_names: Iterable[str] | None = None,
    taskdef_names: Iterable[str] = (),
) -> list[Issue]:
    """Every issue of one WorkflowDef (pointers relative to ``base``)."""
    names = frozenset(allowed_environment() if env_names is None else env_names)
    ctx = Context(workflow, taskdef, list(searched or []), tuple(taskdef_names), names, base)
    issues: list[Issue] = []
    for rule in WORKFLOW_RULES:
        issues.extend(rule(ctx))
    return issues


# ---------------------------------------------------------------------------------------------
# TaskDef rules


def validate_taskdef(td: TaskDef, base: str = "", inline: bool = False) -> list[Issue]:
    """Every issue of one TaskDef. ``inline`` TaskDefs (WorkflowTask.taskDefinition) need no name."""
    issues: list[Issue] = list(_unknown_key_issues(td, base)) if not inline else []
    if not td.name and not inline:
        issues.append(error(join(base, "name"), "required", "TaskDef name cannot be null or empty"))

    def minimum(field_name: str, bound: int, message: str) -> None:
        value = getattr(td, field_name)
        if value is not None and value < bound:
            issues.append(error(join(base, field_name), "min", message.format(value=value)))

    minimum("retryCount", 0, "TaskDef retryCount: 0 must be >= 0 (got {value})")
    minimum("responseTimeoutSeconds", 1, "TaskDef responseTimeoutSeconds: {value} should be minimum 1 second")
    minimum("pollTimeoutSeconds", 0, "TaskDef pollTimeoutSeconds: 0 must be >= 0 (got {value})")
    minimum(
        "backoffScaleFactor",
        1,
        "Backoff scale factor. Applicable for LINEAR_BACKOFF (backoffScaleFactor must be >= 1, got {value})",
    )
    minimum("timeoutSeconds", 0, "TaskDef timeoutSeconds: {value} must be >= 0")
    minimum("retryDelaySeconds", 0, "TaskDef retryDelaySeconds: {value} must be >= 0")
    minimum("maxRetryDelaySeconds", 0, "TaskDef maxRetryDelaySeconds: {value} must be >= 0")
    minimum("backoffJitterMs", 0, "TaskDef backoffJitterMs: {value} must be >= 0")
    minimum("totalTimeoutSeconds", 0, "TaskDef totalTimeoutSeconds: {value} must be >= 0")
    minimum("concurrentExecLimit", 0, "TaskDef concurrentExecLimit: {value} must be >= 0")
    minimum("rateLimitPerFrequency", 0, "TaskDef rateLimitPerFrequency: {value} must be >= 0")
    minimum("rateLimitFrequencyInSeconds", 1, "TaskDef rateLimitFrequencyInSeconds: {value} must be >= 1")
    if td.timeoutSeconds > 0 and td.responseTimeoutSeconds > td.timeoutSeconds:
        issues.append(
            error(
                join(base, "responseTimeoutSeconds"),
                "timeout-order",
                f"TaskDef: {td.name} responseTimeoutSeconds: {td.responseTimeoutSeconds} must be "
                f"less than timeoutSeconds: {td.timeoutSeconds} (fix: lower responseTimeoutSeconds "
                "to at most timeoutSeconds, or raise timeoutSeconds)",
            )
        )
    if td.timeoutSeconds > 0 and td.totalTimeoutSeconds > 0 and td.timeoutSeconds > td.totalTimeoutSeconds:
        issues.append(
            error(
                join(base, "timeoutSeconds"),
                "timeout-order",
                f"TaskDef: {td.name} timeoutSeconds: {td.timeoutSeconds} must be less than or "
                f"equal to totalTimeoutSeconds: {td.totalTimeoutSeconds} (fix: raise "
                "totalTimeoutSeconds or lower timeoutSeconds)",
            )
        )
    if td.ownerEmail and not _EMAIL.match(td.ownerEmail):
        issues.append(error(join(base, "ownerEmail"), "email", "ownerEmail should be valid email address"))
    return issues


# ---------------------------------------------------------------------------------------------
# Putting it together


def _drop_shadowed(issues: list[Issue]) -> list[Issue]:
    """Leave out rule issues at or under a pointer that already has a type/syntax error."""
    type_errors = {(i.file, i.pointer) for i in issues if i.code in ("type", "json-syntax")}
    if not type_errors:
        return issues
    return [
        issue
        for issue in issues
        if issue.code in ("type", "json-syntax") or not _under_any(issue, type_errors)
    ]


def _under_any(issue: Issue, pointers: set[tuple[str, str]]) -> bool:
    """Whether the issue's pointer or one of its ancestors is in ``pointers`` (for its file)."""
    ptr = issue.pointer
    while True:
        if (issue.file, ptr) in pointers:
            return True
        if not ptr:
            return False
        ptr = ptr[: ptr.rfind("/")]


def validate_bundle(bundle: WorkflowBundle) -> list[Issue]:
    """Every issue of a loaded workflow and of the task definition files found for it."""
    issues = list(bundle.issues)
    for parsed in bundle.taskdef_files:
        issues += parsed.issues
        for located in parsed.taskdefs:
            issues += with_file(validate_taskdef(located.value, located.pointer), parsed.file)
    if bundle.definition is not None:
        found = validate_workflow(
            bundle.definition,
            taskdef=bundle.catalog.taskdef,
            searched=bundle.catalog.searched,
            taskdef_names=list(bundle.catalog.taskdefs),
        )
        issues += with_file(found, bundle.file)
        if not any(i.level is Level.ERROR for i in issues):
            issues += _planning_issues(bundle)
    return _drop_shadowed(issues)


def _planning_issues(bundle: WorkflowBundle) -> list[Issue]:
    """What ``translator run`` would refuse when it plans the workflow (sub-workflows and failure
    workflows not found, cycles, forms only known at run time): validate and run agree."""
    from translator.engine.plan import build_plan

    try:
        build_plan(bundle)
    except DefinitionError as exc:
        return list(exc.issues)
    return []


def check_file(
    path: Path | str, taskdef_paths: list[Path] | None = None, definition_paths: list[Path] | None = None
) -> list[Issue]:
    """Validate one file of any kind (workflow, task definitions, single workflow task)."""
    path = Path(path)
    data, read_issues = read_file(path)
    if data is None:
        return with_file(read_issues, str(path))
    kind = detect_kind(data)
    if kind is DocumentKind.WORKFLOW:
        return validate_bundle(
            load_workflow(path, taskdef_paths or [], definition_paths=definition_paths or [])
        )
    if kind is DocumentKind.WORKFLOW_TASK:
        return _check_workflow_task(path, data, read_issues)
    if kind is DocumentKind.WORKFLOW_INPUT:
        return with_file([*read_issues, error("", "not-a-definition", NOT_A_DEFINITION)], str(path))
    if kind is DocumentKind.TASKDEFS:
        parsed: TaskDefFile = parse_taskdefs(data, str(path))
        issues = read_issues + parsed.issues
        for located in parsed.taskdefs:
            issues += validate_taskdef(located.value, located.pointer)
        return _drop_shadowed(with_file(issues, str(path)))
    return with_file(
        [error("", "type", "expected a workflow definition, a task definition or a list of them")],
        str(path),
    )


def _check_workflow_task(path: Path, data: Any, read_issues: list[Issue]) -> list[Issue]:
    """A lone WorkflowTask (a documentation snippet): checked as a one-task workflow."""
    issues = list(read_issues)
    task, model_issues = build_model(WorkflowTask, data)
    issues += model_issues
    if task is not None:
        wrapper = WorkflowDef(name="snippet", tasks=[task])
        for issue in validate_workflow(wrapper):
            if issue.pointer.startswith("/tasks/0"):
                rest = issue.pointer[len("/tasks/0") :]
                issues.append(Issue(rest, issue.code, issue.message, issue.level))
    return _drop_shadowed(with_file(issues, str(path)))


def check_files(
    paths: Iterable[Path], taskdef_paths: list[Path] | None = None, definition_paths: list[Path] | None = None
) -> Report:
    report = Report()
    for path in paths:
        report.extend(check_file(path, taskdef_paths, definition_paths))
    return report


def load_valid_workflow(
    path: Path | str, taskdef_paths: list[Path] | None = None, definition_paths: list[Path] | None = None
) -> WorkflowBundle:
    """Load a workflow for running: raises DefinitionError listing every error (and warning)."""
    bundle = load_workflow(Path(path), taskdef_paths or [], definition_paths=definition_paths or [])
    issues = validate_bundle(bundle)
    if any(i.level is Level.ERROR for i in issues) or bundle.definition is None:
        count = sum(1 for i in issues if i.level is Level.ERROR)
        raise DefinitionError(f"{path}: {count} error(s) in the definitions", issues)
    bundle.issues = issues
    return bundle
