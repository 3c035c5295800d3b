"""Sync system tasks (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP), WAIT and HUMAN in the
decider, on plain dicts (the simulator of test_decide): they run inside the decision that reaches
them, with no worker message of their own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_decide import Run, plan_of, simple
from translator.engine.decide import decide
from translator.engine.system import run_inline, run_lambda, run_set_variable
from translator.errors import DefinitionError


def task(ref: str, kind: str, **params: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": kind, "inputParameters": params}


def test_sync_system_tasks_run_in_the_same_decision_without_messages(tmp_path):
    tasks = [
        simple("a"),
        task("js", "INLINE", evaluatorType="javascript", expression="$.x * 2", x="${a.output.n}"),
        task("lam", "LAMBDA", scriptExpression="return {sum: $.v + 1}", v="${js.output.result}"),
        task("jq", "JSON_JQ_TRANSFORM", queryExpression=".list | map(. + 1)", list=[1, 2]),
        task("nothing", "NOOP"),
        task("setv", "SET_VARIABLE", total="${lam.output.result.sum}"),
        simple("b", seen="${workflow.variables.total}"),
    ]
    run = Run(plan_of(tmp_path, tasks))
    assert run.pending == ["a"]
    run.finish("a", output={"n": 20})
    assert run.pending == ["b"]  # five system tasks ran in the decision that ended a
    assert run.by_ref("js")["outputData"] == {"result": 40}
    assert run.by_ref("lam")["outputData"] == {"result": {"sum": 41}}
    assert run.by_ref("jq")["outputData"]["result"] == [2, 3]
    assert run.by_ref("nothing")["status"] == "COMPLETED"
    assert run.workflow["variables"] == {"total": 41}
    assert run.by_ref("b")["inputData"] == {"seen": 41}
    run.drive()
    assert run.sent == ["a", "b"]
    assert run.workflow["status"] == "COMPLETED"


def test_a_script_that_throws_fails_the_task_and_the_workflow_with_the_engine_message(tmp_path):
    run = Run(plan_of(tmp_path, [task("js", "INLINE", evaluatorType="javascript", expression="nope.x")]))
    record = run.by_ref("js")
    assert record["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert record["reasonForIncompletion"].startswith("Error evaluating the script `ReferenceError: nope")
    assert record["outputData"]["error"] == record["reasonForIncompletion"]
    assert run.workflow["status"] == "FAILED"


def test_an_optional_failing_system_task_completes_with_errors_and_the_flow_goes_on(tmp_path):
    failing = {**task("lam", "LAMBDA", scriptExpression="throw new Error('no')"), "optional": True}
    run = Run(plan_of(tmp_path, [failing, simple("b")]))
    assert run.by_ref("lam")["status"] == "COMPLETED_WITH_ERRORS"
    assert run.pending == ["b"]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        ({"evaluatorType": "", "expression": "1"}, "FAILED_WITH_TERMINAL_ERROR", "Empty 'evaluatorType'"),
        ({"evaluatorType": "python", "expression": "1"}, "FAILED_WITH_TERMINAL_ERROR", "Unknown evaluator"),
        ({"evaluatorType": "javascript"}, "FAILED_WITH_TERMINAL_ERROR", "Empty 'expression'"),
        ({"evaluatorType": "value-param", "expression": "k", "k": [1]}, "COMPLETED", None),
        ({"expression": "1 + 1"}, "COMPLETED", None),  # javascript by default
    ],
)
def test_inline_checks_its_evaluator_and_expression_as_conductor(data, status, reason):
    outcome = run_inline(data, {})
    assert outcome.status.value == status
    assert (outcome.reason or "").startswith(reason or "")


def test_lambda_without_a_script_fails_retriably():
    outcome = run_lambda({}, {})
    assert outcome.status.value == "FAILED" and "Empty 'scriptExpression'" in (outcome.reason or "")
    assert run_lambda({"scriptExpression": "return $.a", "a": 3}, {}).output == {"result": 3}


def test_set_variable_over_the_cap_changes_nothing_and_fails_terminally(monkeypatch):
    monkeypatch.setenv("TRANSLATOR_MAX_VARIABLES_KB", "1")
    outcome = run_set_variable({"big": "x" * 2000}, {"workflowId": "w", "variables": {"a": 1}})
    assert outcome.status.value == "FAILED_WITH_TERMINAL_ERROR" and outcome.variables is None
    assert "is greater than the permissible limit: 1 kilobytes" in (outcome.reason or "")
    kept = run_set_variable({"b": 2}, {"variables": {"a": 1}})
    assert kept.variables == {"a": 1, "b": 2}


def test_a_human_task_waits_in_progress_with_nothing_sent_until_completed_from_outside(tmp_path):
    run = Run(plan_of(tmp_path, [simple("a"), task("approve", "HUMAN"), simple("b")])).drive()
    assert run.by_ref("approve")["status"] == "IN_PROGRESS"
    assert run.sent == ["a"] and run.workflow["status"] == "RUNNING"
    run.finish("approve", output={"approved": True})
    assert run.pending == ["b"]


def test_a_wait_with_a_duration_registers_its_deadline_and_a_past_until_completes_at_once(tmp_path):
    run = Run(plan_of(tmp_path, [task("w", "WAIT", duration="1 hours 30 minutes"), simple("b")]))
    record = run.by_ref("w")
    assert record["status"] == "IN_PROGRESS"
    assert record["waitTimeout"] - record["startTime"] == 90 * 60 * 1000
    transition = decide(run.plan, {**run.workflow, "status": "RUNNING"}, [])
    assert [d.kind for d, _ in transition.change.add if d.kind == "wait"] == ["wait"]
    past = Run(plan_of(tmp_path, [task("w", "WAIT", until="2020-01-01 00:00"), simple("b")]))
    assert past.by_ref("w")["status"] == "COMPLETED" and past.pending == ["b"]


def test_a_wait_with_an_unparsable_duration_fails_with_a_clear_reason(tmp_path):
    run = Run(plan_of(tmp_path, [task("w", "WAIT", duration="${workflow.input.d}")]), {"d": "soon"})
    record = run.by_ref("w")
    assert record["status"] == "FAILED_WITH_TERMINAL_ERROR" and "soon" in record["reasonForIncompletion"]
    assert run.workflow["status"] == "FAILED"


def _with_def(entry: dict[str, Any], **taskdef: Any) -> dict[str, Any]:
    return {**entry, "taskDefinition": {"name": entry["name"], **taskdef}}


def test_a_wait_and_a_human_with_retries_are_planned_a_sync_task_with_retries_is_refused(tmp_path):
    # Conductor retries a WAIT / HUMAN as any task (DeciderService.retry); our sync tasks refuse
    plan_of(
        tmp_path, [_with_def(task("w", "WAIT"), retryCount=2), _with_def(task("h", "HUMAN"), retryCount=1)]
    )
    with pytest.raises(DefinitionError, match="unsupported-retry"):
        plan_of(tmp_path, [_with_def(task("n", "NOOP"), retryCount=1)])


def test_a_waiting_task_registers_its_task_definitions_timeouts(tmp_path):
    # timeoutSeconds for both (not ALERT_ONLY); responseTimeoutSeconds only for a HUMAN (Conductor's
    # system task executor refreshes a waiting WAIT before it could pass)
    limits = {"timeoutSeconds": 5, "responseTimeoutSeconds": 2, "timeoutPolicy": "RETRY"}
    run = Run(
        plan_of(
            tmp_path,
            [
                {
                    "name": "f",
                    "taskReferenceName": "f",
                    "type": "FORK_JOIN",
                    "forkTasks": [
                        [_with_def(task("w", "WAIT", duration="1 minutes"), **limits)],
                        [_with_def(task("h", "HUMAN"), **limits)],
                        [_with_def(task("a", "WAIT"), **{**limits, "timeoutPolicy": "ALERT_ONLY"})],
                    ],
                },
                {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["w", "h", "a"]},
            ],
        )
    )
    transition = decide(run.plan, {**run.workflow, "status": "RUNNING"}, [])
    due = {(d.kind, d.ref): at for d, at in transition.change.add if d.ref in ("w", "h", "a")}
    started = {r["referenceTaskName"]: r["startTime"] for r in transition.change.records.values()}
    assert set(due) == {("wait", "w"), ("wait_timeout", "w"), ("wait_timeout", "h"), ("wait_response", "h")}
    assert due[("wait_timeout", "w")] == started["w"] + 5000
    assert due[("wait_response", "h")] == started["h"] + 2000
