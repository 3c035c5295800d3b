"""Sync system tasks: the types Conductor runs inside its decider (reference §4), run here inside the
decision that reaches them, with no broker message of their own.

Each type is one function from the task's resolved input (and the workflow, for SET_VARIABLE) to its
outcome, and one row of :data:`SYNC_TASKS`; the planner makes a ``System`` node of every type in the
table, and the decider runs the row when the node is reached. Failures are values (a status and a
reason, and Conductor's ``error`` output), never exceptions: a bad script fails its task, not the
decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from translator.engine.javascript import ScriptError, evaluate, evaluate_function_body
from translator.engine.jq import JqError, transform
from translator.settings import env_int
from translator.status import TaskStatus

INLINE_EVALUATORS = ("javascript", "graaljs", "value-param")
VARIABLES_LIMIT_VARIABLE = "TRANSLATOR_MAX_VARIABLES_KB"
DEFAULT_VARIABLES_LIMIT_KB = 256  # Conductor's maxWorkflowVariablesPayloadSizeThreshold


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a sync system task ended: its status, output, reason, and (SET_VARIABLE) the workflow's
    variables after it."""

    status: TaskStatus
    output: dict[str, Any]
    reason: str | None = None
    variables: dict[str, Any] | None = None


SyncTask = Callable[[dict[str, Any], Mapping[str, Any]], Outcome]


def _failed(reason: str, status: TaskStatus = TaskStatus.FAILED) -> Outcome:
    return Outcome(status, {"error": reason}, reason)


_AT_LINE = re.compile(r"^(?P<message>.*) at line (?P<line>\d+)$", re.DOTALL)


def script_failure(exc: ScriptError) -> Outcome:
    """A script that threw or did not parse: FAILED_WITH_TERMINAL_ERROR with Conductor's wording
    (``Error evaluating the script `…` at line N``); one that ran out of time or memory: FAILED."""
    message = str(exc)
    if exc.transient:
        return _failed(message)
    found = _AT_LINE.match(message)
    if found is not None:
        text = f"Error evaluating the script `{found['message']}` at line {found['line']}"
    else:
        text = f"Error evaluating the script `{message}`"
    return _failed(text, TaskStatus.FAILED_WITH_TERMINAL_ERROR)


def run_inline(data: dict[str, Any], workflow: Mapping[str, Any]) -> Outcome:
    """INLINE (Inline.execute): ``expression`` evaluated by ``evaluatorType`` (default javascript)
    with the whole input as ``$``; output ``result``."""
    evaluator = data.get("evaluatorType", "javascript")
    expression = data.get("expression")
    terminal = TaskStatus.FAILED_WITH_TERMINAL_ERROR
    if not isinstance(evaluator, str) or not evaluator.strip():
        return _failed(
            "Empty 'evaluatorType' in INLINE task's input parameters. "
            "A non-empty String value must be provided.",
            terminal,
        )
    if evaluator not in INLINE_EVALUATORS:
        return _failed(f"Unknown evaluator '{evaluator}' in INLINE task.", terminal)
    if not isinstance(expression, str) or not expression.strip():
        return _failed(
            "Empty 'expression' in Inline task's input parameters. "
            "A non-empty String value must be provided.",
            terminal,
        )
    if evaluator == "value-param":
        return Outcome(TaskStatus.COMPLETED, {"result": data.get(expression)})
    try:
        result = evaluate(expression, {"$": data})
    except ScriptError as exc:
        return script_failure(exc)
    return Outcome(TaskStatus.COMPLETED, {"result": result})


def run_lambda(data: dict[str, Any], workflow: Mapping[str, Any]) -> Outcome:
    """LAMBDA (Lambda.execute): ``scriptExpression`` run as a function body with the input as ``$``;
    output ``result``. Every failure is FAILED (retried by the task definition)."""
    script = data.get("scriptExpression")
    if not isinstance(script, str) or not script.strip():
        reason = (
            "Empty 'scriptExpression' in Lambda task's input parameters. "
            "A non-empty String value must be provided."
        )
        return Outcome(TaskStatus.FAILED, {}, reason)
    try:
        result = evaluate_function_body(script, {"$": data})
    except ScriptError as exc:
        return _failed(str(exc))
    return Outcome(TaskStatus.COMPLETED, {"result": result})


def run_jq(data: dict[str, Any], workflow: Mapping[str, Any]) -> Outcome:
    """JSON_JQ_TRANSFORM (JsonJqTransform.execute): ``queryExpression`` over the whole input."""
    try:
        return Outcome(TaskStatus.COMPLETED, transform(data.get("queryExpression"), data))
    except JqError as exc:
        return Outcome(TaskStatus.FAILED, exc.output, str(exc))


def variables_limit_kb() -> int:
    """The cap on a workflow's serialized variables, in kilobytes (``TRANSLATOR_MAX_VARIABLES_KB``)."""
    return env_int(VARIABLES_LIMIT_VARIABLE, DEFAULT_VARIABLES_LIMIT_KB)


def run_set_variable(data: dict[str, Any], workflow: Mapping[str, Any]) -> Outcome:
    """SET_VARIABLE (SetVariable.execute): each input key overwrites that workflow variable; over
    the size cap nothing changes and the task ends FAILED_WITH_TERMINAL_ERROR."""
    variables = {**(workflow.get("variables") or {}), **data}
    size = len(json.dumps(variables, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    limit = variables_limit_kb()
    if size > limit * 1024:
        reason = (
            f"The variables payload size: {size} of workflow: {workflow.get('workflowId')} "
            f"is greater than the permissible limit: {limit} kilobytes"
        )
        return Outcome(TaskStatus.FAILED_WITH_TERMINAL_ERROR, {}, reason)
    return Outcome(TaskStatus.COMPLETED, {}, variables=variables if data else None)


def run_noop(data: dict[str, Any], workflow: Mapping[str, Any]) -> Outcome:
    """NOOP: completes at once, with no output."""
    return Outcome(TaskStatus.COMPLETED, {})


SYNC_TASKS: Mapping[str, SyncTask] = {
    "INLINE": run_inline,
    "LAMBDA": run_lambda,
    "JSON_JQ_TRANSFORM": run_jq,
    "SET_VARIABLE": run_set_variable,
    "NOOP": run_noop,
}
