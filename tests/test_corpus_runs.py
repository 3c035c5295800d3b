"""Every corpus workflow translator can run, run end to end and checked against Conductor's semantics.

Each row of CASES is one embedded ``translator run FILE --input - --full``: a corpus file, the
workflow input, how the workers of tests/corpus_workers.py behave (``fail``, ``fail_terminal``,
``emit``), and what Conductor gives for that run, with where it comes from: a section of
shared/reference/conductor-semantics.md ("§") or the conductor-oss test that runs the same file
(test-harness/src/test/groovy/.../integration/*Spec.groovy, "Spec"), whose expectations were read
from Conductor's source, never from a translator run. A case may set translator settings (``env``), its
own task definitions, or the hosts whose calls must fail (skipped where they resolve); a case whose
``deviation`` is set states Conductor's behaviour where translator differs and is a strict xfail.
Workflows that wait for a person run on a worker pool instead: tests/test_corpus_system_runs.py.

Task definitions are the ones the Java test harness registers (``WorkflowTestUtil.taskDefinitions``):
JAVA_TASKDEFS, passed with ``--taskdefs``. Where the corpus comes from: tests/conftest.py.
"""

from __future__ import annotations

import ast
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, ROOT, corpus_missing, corpus_params, require_corpus
from tests.services import embedded_env, translator_cli
from translator.definitions.issues import Level
from translator.definitions.jsonsource import read_file
from translator.definitions.loader import DocumentKind, detect_kind
from translator.definitions.validate import check_file

pytestmark = pytest.mark.integration

WORKERS = "tests.corpus_workers"
C, CWE, F, FT = "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "FAILED_WITH_TERMINAL_ERROR"
P = {"param1": "p1 value", "param2": "p2 value"}
OWN_ID = "<this task's taskId>"  # expected value: the id of the task whose input holds it
AN_ID = "<an id>"  # expected value: some non-empty string (a generated id)


def _java_taskdef(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "ownerEmail": "test@harness.com", **fields}


# WorkflowTestUtil.taskDefinitions(): integration_task_0..20 are TaskDef(name, name, email, 1, 120, 120)
# (retryCount 1, timeoutSeconds 120, responseTimeoutSeconds 120; retryDelaySeconds stays 60); the
# others as set there field by field (RETRY_COUNT = 1).
JAVA_TASKDEFS = [
    *(
        _java_taskdef(
            f"integration_task_{i}",
            description=f"integration_task_{i}",
            retryCount=1,
            timeoutSeconds=120,
            responseTimeoutSeconds=120,
        )
        for i in range(21)
    ),
    _java_taskdef(
        "task_rt", timeoutSeconds=120, retryCount=1, retryDelaySeconds=0, responseTimeoutSeconds=10
    ),
    _java_taskdef(
        "task_optional",
        timeoutSeconds=5,
        retryCount=1,
        timeoutPolicy="RETRY",
        retryDelaySeconds=0,
        responseTimeoutSeconds=5,
    ),
    _java_taskdef("simple_task_in_sub_wf", retryCount=0),
    _java_taskdef("sub_workflow_task", retryCount=1, responseTimeoutSeconds=5, retryDelaySeconds=0),
    _java_taskdef(
        "test_simple_task_with_rateLimits", rateLimitFrequencyInSeconds=10, rateLimitPerFrequency=1
    ),
    _java_taskdef(
        "waitTimeout",
        timeoutSeconds=2,
        responseTimeoutSeconds=2,
        retryCount=1,
        timeoutPolicy="RETRY",
        retryDelaySeconds=10,
    ),
    # TaskDef's own defaults where the harness sets nothing: retryCount 3.
    _java_taskdef("eventX", timeoutSeconds=10, responseTimeoutSeconds=10, retryCount=3),
]


def stamp(name: str, ref: str, **task_input: Any) -> dict[str, Any]:
    """The output tests/corpus_workers.py documents for task ``name`` at ``ref`` given ``task_input``."""
    return {**task_input, "op": f"{name}.op", "uuid": f"{name}.uuid", "taskReferenceName": ref}


class Execution:
    """A finished execution as ``translator run --full`` prints it."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def attempts(self, ref: str) -> list[dict[str, Any]]:
        return [t for t in self.raw["tasks"] if t["referenceTaskName"] == ref]

    def task(self, ref: str) -> dict[str, Any]:
        """The latest attempt of ``ref``."""
        found = self.attempts(ref)
        assert found, f"no task {ref}: {[t['referenceTaskName'] for t in self.raw['tasks']]}"
        return found[-1]

    def statuses(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for t in self.raw["tasks"]:
            table.setdefault(t["referenceTaskName"], []).append(t["status"])
        return table


def task_failure(ref: str) -> Callable[[Execution], str]:
    """Conductor's workflow reason when ``ref`` exhausted its retries (§1.2, DeciderService.retry)."""

    def reason(e: Execution) -> str:
        last = e.task(ref)
        why = last["reasonForIncompletion"]
        return f"Task {last['taskId']} failed with status: FAILED and reason: '{why}'"

    return reason


@dataclass(frozen=True)
class Case:
    file: str  # corpus file name
    name: str
    why: str
    input: dict[str, Any]
    status: str
    tasks: dict[str, list[str]] | None  # every task reference -> its attempts' statuses (None: see check)
    output: dict[str, Any] | None = None  # the exact workflow output
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # exact inputData (latest attempt)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # exact outputData (latest attempt)
    reason: Callable[[Execution], str] | None = None  # the exact reasonForIncompletion
    task_reasons: dict[str, str] = field(default_factory=dict)  # text each task's reason contains
    # failedReferenceTaskNames, sorted: every ref with a FAILED or FAILED_WITH_TERMINAL_ERROR attempt,
    # set when the workflow ends, completed or not (WorkflowExecutorOps.completeWorkflow/terminate).
    failed_refs: list[str] = field(default_factory=list)
    check: Callable[[Execution], None] | None = None
    fail: tuple[str, ...] = ()
    fail_terminal: tuple[str, ...] = ()
    emit: dict[str, dict[str, Any]] = field(default_factory=dict)
    definitions: tuple[str, ...] = ()  # corpus files that sub-workflows and failure workflows name
    taskdefs: tuple[dict[str, Any], ...] | None = None  # instead of JAVA_TASKDEFS
    env: dict[str, str] = field(default_factory=dict)  # settings for the run (TRANSLATOR_...)
    run_timeout: int = 60  # translator run --timeout
    offline: tuple[str, ...] = ()  # hosts whose calls must fail: the case is skipped where they resolve
    deviation: str = ""  # where translator differs from Conductor: the case is an expected failure

    @property
    def id(self) -> str:
        return f"{self.file.removeprefix('oss__').removesuffix('.json')}:{self.name}"


def _child_failure(e: Execution) -> None:
    t2 = e.task("t2")
    assert t2["reasonForIncompletion"].endswith(
        "failed with status: FAILED and reason: 'simple_task_in_sub_wf failed at t1'"
    )
    assert t2["retryCount"] == 0  # the workflow task's retryCount 0 beats the TaskDef's 1 (§1.2)


def _child_failure_reason_prefix(e: Execution) -> None:
    _child_failure(e)
    t2 = e.task("t2")
    child = t2["outputData"]["subWorkflowId"]
    # SubWorkflow.updateTaskStatus: "Sub workflow <name>.<version>/<id> failure reason: <child's reason>"
    assert t2["reasonForIncompletion"].startswith(
        f"Sub workflow sub_workflow.1/{child} failure reason: Task "
    )


def _fork_branch_fails(e: Execution) -> None:
    # The failed branch ends the workflow at once (§6.2): the JOIN is not awaited, t4 never runs; the
    # other branch's tasks are COMPLETED or CANCELED by then (or t3 was never scheduled).
    states = e.statuses()
    assert states["t2"] == [FT]
    assert states["fanouttask"] == [C]
    assert states["fanouttask_join"] == ["CANCELED"]
    assert states["t1"] in ([C], ["CANCELED"])
    assert states.get("t3", [C]) in ([C], ["CANCELED"])
    assert "t4" not in states


def _start_workflow_fails(e: Execution) -> None:
    assert list(e.statuses()) == ["st"]
    assert e.task("st")["reasonForIncompletion"]  # StartWorkflowSpec: "reasonForIncompletion != null"


def _loop_iteration(i: int) -> dict[str, Any]:
    """DO_WHILE output for iteration ``i`` of do_while_integration_test.json (DoWhile.execute: every body
    task's output under its reference without ``__i``; JOIN output keyed by the suffixed joinOn refs).
    A body task's worker sees its reference with ``__i`` (the polled Task's referenceTaskName)."""

    def body(name: str) -> dict[str, Any]:
        return stamp(name, f"{name}__{i}")

    one, two = body("integration_task_1"), body("integration_task_2")
    return {
        "integration_task_0": body("integration_task_0"),
        "fork": {},
        "integration_task_1": one,
        "integration_task_2": two,
        "join": {f"integration_task_1__{i}": one, f"integration_task_2__{i}": two},
    }


DYNAMIC_TASKS = {  # DynamicForkJoinSpec "Test dynamic fork join success flow": integration_task_1's output
    "dynamicTasks": [
        {"name": "integration_task_2", "taskReferenceName": "xdt1"},
        {"name": "integration_task_3", "taskReferenceName": "xdt2"},
    ],
    "dynamicTasksInput": {"xdt1": {"k1": "v1"}, "xdt2": {"k2": "v2"}},
}

T1_OP = "integration_task_1.op"
TEMPLATE = {"param2": ["list", "of", "strings"], "param3": "string"}


def _decision_cases(file: str, system: str, result: Callable[[str], dict[str, Any]], spec: str) -> list[Case]:
    """DecisionWorkflow / SwitchWorkflow: case c runs t1, t2; anything else the default t5; then t20."""
    inp = {"p1": "p1 value", "p2": "p2 value"}
    after = stamp("integration_task_20", "t20", **inp)
    return [
        Case(
            file,
            "case-c",
            f"{spec}; case 'c' selects [t1, t2], then t20; output = last task's (§2.3)",
            {**P, "case": "c"},
            C,
            {system: [C], "t1": [C], "t2": [C], "t20": [C]},
            output=after,
            inputs={"t1": inp, "t2": inp, "t20": inp},
            outputs={system: result("c")},
        ),
        Case(
            file,
            "default",
            f"{spec}; an unmatched case runs defaultCase [t5] (§4)",
            {**P, "case": "x"},
            C,
            {system: [C], "t5": [C], "t20": [C]},
            output=after,
            outputs={system: result("x"), "t5": stamp("integration_task_5", "t5", **inp)},
        ),
        Case(
            file,
            "no-case",
            'a missing case value is the string "null" (mapper: "" + null), unmatched: default (§4)',
            P,
            C,
            {system: [C], "t5": [C], "t20": [C]},
            output=after,
            outputs={system: result("null")},
        ),
    ]


def _switch_result(case: str) -> dict[str, Any]:
    return {"evaluationResult": [case], "selectedCase": case}  # SwitchTaskMapper


def _decision_result(case: str) -> dict[str, Any]:
    return {"caseOutput": [case]}  # DecisionTaskMapper


def _conditional_cases(file: str, result: Callable[[str], dict[str, Any]]) -> list[Case]:
    """ConditionalTaskWF: nested DECISION/SWITCH on param1 then param2, then finalCase (notify or nothing)."""
    last = stamp("integration_task_4", "integration_task_4")
    return [
        Case(
            file,
            "nested-one-notify",
            "nested -> one runs t1; finalCase notify runs integration_task_4 (§4 SWITCH/DECISION, §3 flow)",
            {"param1": "nested", "param2": "one", "finalCase": "notify"},
            C,
            {
                "conditional": [C],
                "nestedCondition": [C],
                "t1": [C],
                "finalCase": [C],
                "integration_task_4": [C],
            },
            output=last,
            inputs={"t1": {"p1": "nested", "p2": "one"}, "integration_task_4": {}},
            outputs={"conditional": result("nested"), "nestedCondition": result("one")},
        ),
        Case(
            file,
            "nested-two",
            "nested -> two runs t2; finalCase null matches nothing and there is no default, so the "
            "finalCase task is the last one and its output is the workflow's (§2.3)",
            {"param1": "nested", "param2": "two"},
            C,
            {"conditional": [C], "nestedCondition": [C], "t2": [C], "finalCase": [C]},
            output=result("null"),
            inputs={"t2": {"tp1": "nested"}},
        ),
        Case(
            file,
            "three",
            "three runs t3, whose input is a literal (no ${}) string (§5.2)",
            {"param1": "three", "param2": "ignored", "finalCase": "notify"},
            C,
            {"conditional": [C], "t3": [C], "finalCase": [C], "integration_task_4": [C]},
            output=last,
            inputs={"t3": {"tp3": "workflow.input.param2"}},
        ),
        Case(
            file,
            "default",
            "an unknown param1 runs the default t10 (§4)",
            {"param1": "other"},
            C,
            {"conditional": [C], "t10": [C], "finalCase": [C]},
            output=result("null"),
            inputs={"t10": {"tp10": "workflow.input.param2"}},
            outputs={"conditional": result("other")},
        ),
    ]


def _terminate_cases(file: str, system: str, spec: str) -> list[Case]:
    """ConditionalTerminateWorkflow: t1, then case one -> t2, case two -> TERMINATE(FAILED), then t3."""
    return [
        Case(
            file,
            "one",
            f"{spec}; case one runs t2 then t3; output from outputParameters (§2.3)",
            {**P, "case": "one"},
            C,
            {"t1": [C], system: [C], "t2": [C], "t3": [C]},
            output={"o2": "integration_task_3.op"},
            inputs={"t2": {"tp21": "p1 value"}, "t3": {"tp31": "p2 value"}},
        ),
        Case(
            file,
            "two-terminates",
            "TERMINATE FAILED: the task COMPLETED, workflow FAILED, its output the task's "
            "({output: value} for a scalar workflowOutput), outputParameters ignored, reason 'Workflow "
            "is FAILED by TERMINATE task: <id>', t3 never runs (§4 TERMINATE, §2.3)",
            {**P, "case": "two"},
            F,
            {"t1": [C], system: [C], "terminate0": [C]},
            output={"output": T1_OP},
            outputs={"terminate0": {"output": T1_OP}},
            reason=lambda e: f"Workflow is FAILED by TERMINATE task: {e.task('terminate0')['taskId']}",
        ),
        Case(
            file,
            "no-case",
            "no case and no default: straight to t3 (§4)",
            P,
            C,
            {"t1": [C], system: [C], "t3": [C]},
            output={"o2": "integration_task_3.op"},
        ),
    ]


def _exclusive(
    name: str, decisions: dict[str, str], ran: list[str], chosen: tuple[str, str], why: str
) -> Case:
    tasks = {ref: [C] for ref in ran}
    picked = stamp(*chosen, payload="P")
    return Case(
        "oss__th__exclusive_join_integration_test.json",
        name,
        f"ExclusiveJoinSpec; {why}; EXCLUSIVE_JOIN output = the selected task's (§4), which is the "
        "workflow output as the last task (§2.3); payload flows task1 -> task2/task4 -> task3/task5",
        {"payload": "P", **decisions},
        C,
        {**tasks, "exclusiveJoin": [C]},
        output=picked,
        outputs={"exclusiveJoin": picked},
    )


_INLINE_SUB = "oss__th__simple_workflow_with_sub_workflow_inline_def_integration_test.json"
_SUB_WF = "oss__th__simple_one_task_sub_workflow_integration_test.json"
_SIMPLE_1 = "oss__th__simple_workflow_1_integration_test.json"
_T1_IN = {"p1": "p1 value", "p2": "p2 value", "p3": OWN_ID, "someNullKey": None}

CASES: list[Case] = [
    Case(
        _SIMPLE_1,
        "completes",
        "SimpleWorkflowSpec 'simple workflow completion': whole-string ${} keep types, null values kept "
        "(someNullKey), ${CPEWF_TASK_ID} is the task's own id (§5.2); output from outputParameters (§2.3)",
        P,
        C,
        {"t1": [C], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": T1_OP},
        inputs={"t1": _T1_IN, "t2": {"tp1": "p1 value", "tp2": T1_OP, "tp3": OWN_ID}},
    ),
    Case(
        _SIMPLE_1,
        "terminal-error-starts-failure-workflow",
        "SimpleWorkflowSpec 'terminal error condition': FAILED_WITH_TERMINAL_ERROR is not retried; "
        "workflow FAILED with Conductor's reason, output still computed (§1.2, §2.3); failureWorkflow "
        "'$workflow.input.failureWfName' names sub_workflow, whose id goes to output "
        "conductor.failure_workflow (§2.1)",
        {**P, "failureWfName": "sub_workflow"},
        F,
        {"t1": [FT]},
        output={"o1": "p1 value", "o2": None, "o3": None, "conductor.failure_workflow": AN_ID},
        inputs={"t1": _T1_IN},
        reason=task_failure("t1"),
        task_reasons={"t1": "integration_task_1 failed at t1"},
        failed_refs=["t1"],
        fail_terminal=("t1",),
        definitions=(_SUB_WF,),
    ),
    Case(
        "oss__th__simple_workflow_1_input_template_integration_test.json",
        "template-fills-absent-keys",
        "inputTemplate keys absent from a non-empty input are added, supplied ones win (§5.6)",
        {"param1": "mine", "param4": "four"},
        C,
        {"t1": [C]},
        output={"output": T1_OP, "param1": "mine", **TEMPLATE},
        inputs={"t1": {"p1": "mine", "p2": TEMPLATE["param2"], "p3": OWN_ID, "someNullKey": None}},
    ),
    Case(
        "oss__th__simple_workflow_1_input_template_integration_test.json",
        "template-not-applied-to-empty-input",
        "starting with {} gives {}: the inputTemplate is not applied (§5.6, §9.7)",
        {},
        C,
        {"t1": [C]},
        output={"output": T1_OP, "param1": None, "param2": None, "param3": None},
        inputs={"t1": {"p1": None, "p2": None, "p3": OWN_ID, "someNullKey": None}},
    ),
    Case(
        "oss__th__simple_workflow_3_integration_test.json",
        "completes",
        "three tasks in sequence; no outputParameters: output = last task's output (§2.3)",
        P,
        C,
        {"t1": [C], "t2": [C], "t3": [C]},
        output=stamp("integration_task_3", "t3", tp1="p1 value", tp2=T1_OP),
        inputs={"t2": {"tp1": "p1 value", "tp2": T1_OP}},
    ),
    Case(
        "oss__kitchensink__sub_flow_1.json",
        "completes",
        "two tasks without inputs; output = last task's output (§2.3)",
        {},
        C,
        {"task_5": [C], "task_6": [C]},
        output=stamp("task_6", "task_6"),
        inputs={"task_5": {}, "task_6": {}},
    ),
    Case(
        "oss__th__rate_limited_simple_task_workflow_integration_test.json",
        "completes",
        "one task; its rate limit (1 per 10 s) lets the first run through (§1.1)",
        {},
        C,
        {"test_simple_task_with_rateLimits": [C]},
        output=stamp("test_simple_task_with_rateLimits", "test_simple_task_with_rateLimits"),
    ),
    Case(
        _SUB_WF,
        "completes",
        "one task; output = its output (§2.3)",
        {},
        C,
        {"t1": [C]},
        output=stamp("simple_task_in_sub_wf", "t1"),
    ),
    Case(
        "oss__th__simple_workflow_with_optional_task_integration_test.json",
        "completes",
        "optional task that succeeds: nothing special (§3)",
        P,
        C,
        {"t1": [C], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": "task_optional.op"},
    ),
    Case(
        "oss__th__simple_workflow_with_optional_task_integration_test.json",
        "fails-twice-completes-with-errors",
        "task_optional has retryCount 1, retryDelaySeconds 0: two attempts; the last one of an optional "
        "task becomes COMPLETED_WITH_ERRORS and the flow goes on (§1.2, §3, DeciderService); "
        "${t1.output.op} of a failed attempt is null",
        P,
        C,
        {"t1": [F, CWE], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": None},
        inputs={"t2": {"tp1": "p1 value", "tp2": None}},
        task_reasons={"t1": "task_optional failed at t1"},
        failed_refs=["t1"],
        fail=("t1",),
    ),
    Case(
        "oss__th__simple_workflow_with_permissive_task_integration_test.json",
        "completes",
        "permissive tasks that succeed: nothing special (§3)",
        P,
        C,
        {"t1": [C], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": "task_permissive.op"},
    ),
    Case(
        "oss__th__simple_workflow_with_permissive_task_integration_test.json",
        "failure-continues-then-fails",
        "inline taskDefinition retryCount 1, retryDelaySeconds 0: two attempts; a permissive task keeps "
        "FAILED, t2 still runs, and at the end the workflow FAILS naming the task (§3 permissive, "
        "DeciderService.decide)",
        P,
        F,
        {"t1": [F, F], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": None},
        reason=task_failure("t1"),
        task_reasons={"t1": "task_permissive failed at t1"},
        failed_refs=["t1"],
        fail=("t1",),
    ),
    Case(
        "oss__th__simple_workflow_with_resp_time_out_integration_test.json",
        "completes",
        "task_rt within its response timeout (§1.1)",
        P,
        C,
        {"t1": [C], "t2": [C]},
        output={"o1": "p1 value", "o2": "integration_task_2.uuid", "o3": "task_rt.op"},
    ),
    Case(
        "oss__th__simple_workflow_with_resp_time_out_integration_test.json",
        "retries-exhausted",
        "task_rt retryCount 1, retryDelaySeconds 0: two attempts then the workflow FAILS with the last "
        "attempt in the reason; no failureWfName in the input: no failure workflow (§1.2, §2.1)",
        P,
        F,
        {"t1": [F, F]},
        output={"o1": "p1 value", "o2": None, "o3": None},
        reason=task_failure("t1"),
        task_reasons={"t1": "task_rt failed at t1"},
        failed_refs=["t1"],
        fail=("t1",),
    ),
    Case(
        _INLINE_SUB,
        "completes",
        "SUB_WORKFLOW with an inline definition: the child gets the resolved inputParameters, the task's "
        "output is subWorkflowId + the child's output (§4 SUB_WORKFLOW)",
        P,
        C,
        {"t1": [C], "swt": [C], "t2": [C]},
        output={"o3": T1_OP},
        outputs={"swt": {"subWorkflowId": AN_ID, "op": "integration_task_3.op"}},
        inputs={"t2": {"op": T1_OP}},
        check=lambda e: _subset(e.task("swt")["inputData"], {"op": T1_OP, "imageType": "PNG"}),
        emit={"t1": {"imageType": "PNG"}},
    ),
    Case(
        "oss__th__workflow_with_sub_workflow_1_integration_test.json",
        "completes",
        "sub-workflow named by ${workflow.input.subwf}; no outputParameters: output = the SUB_WORKFLOW "
        "task's output = subWorkflowId + the child's output (§4, §2.3)",
        {**P, "subwf": "sub_workflow"},
        C,
        {"t1": [C], "t2": [C]},
        output={"subWorkflowId": AN_ID, **stamp("simple_task_in_sub_wf", "t1")},
        definitions=(_SUB_WF,),
    ),
    Case(
        "oss__th__workflow_with_sub_workflow_1_integration_test.json",
        "child-fails",
        "the child FAILS, so the SUB_WORKFLOW task FAILS with 'Sub workflow ... failure reason: ...' "
        "(SubWorkflow.updateTaskStatus), retryCount 0 on the workflow task: the parent FAILS (§1.2, §4)",
        {**P, "subwf": "sub_workflow"},
        F,
        {"t1": [C], "t2": [F]},
        reason=task_failure("t2"),
        failed_refs=["t2"],
        check=_child_failure_reason_prefix,
        fail_terminal=("simple_task_in_sub_wf",),
        definitions=(_SUB_WF,),
    ),
    *_decision_cases(
        "oss__th__simple_decision_task_integration_test.json",
        "decisionTask",
        _decision_result,
        "DecisionTaskSpec",
    ),
    *_decision_cases(
        "oss__th__simple_switch_task_integration_test.json", "switchTask", _switch_result, "SwitchTaskSpec"
    ),
    Case(
        "oss__th__switch_with_no_default_case_integration_test.json",
        "case-c",
        "case c runs t1, then t2 (§4 SWITCH)",
        {**P, "case": "c"},
        C,
        {"switchTask": [C], "t1": [C], "t2": [C]},
        output=stamp("integration_task_2", "t2", p1="p1 value", p2="p2 value"),
    ),
    Case(
        "oss__th__switch_with_no_default_case_integration_test.json",
        "unmatched",
        "an unmatched case with no defaultCase runs nothing; t2 follows (§4 SWITCH)",
        {**P, "case": "d"},
        C,
        {"switchTask": [C], "t2": [C]},
        output=stamp("integration_task_2", "t2", p1="p1 value", p2="p2 value"),
        outputs={"switchTask": _switch_result("d")},
    ),
    *_terminate_cases("oss__th__switch_and_terminate_integration_test.json", "switch", "SwitchTaskSpec"),
    *_terminate_cases(
        "oss__th__decision_and_terminate_integration_test.json", "decision", "DecisionTaskSpec"
    ),
    *_conditional_cases("oss__th__conditional_task_workflow_integration_test.json", _decision_result),
    *_conditional_cases("oss__th__conditional_switch_task_workflow_integration_test.json", _switch_result),
    _exclusive(
        "default",
        {"decision_1": "null"},
        ["task1", "decision1"],
        ("integration_task_1", "task1"),
        "'null' matches no case, defaultCase is empty; joinOn and task2/task4 absent: task1",
    ),
    _exclusive(
        "true-null",
        {"decision_1": "true", "decision_2": "null"},
        ["task1", "decision1", "task2", "decision2"],
        ("integration_task_2", "task2"),
        "task3 absent: the default list gives task2",
    ),
    _exclusive(
        "true-true",
        {"decision_1": "true", "decision_2": "true"},
        ["task1", "decision1", "task2", "decision2", "task3"],
        ("integration_task_3", "task3"),
        "joinOn task3",
    ),
    _exclusive(
        "false-true",
        {"decision_1": "false", "decision_3": "true"},
        ["task1", "decision1", "task4", "decision3", "task5"],
        ("integration_task_5", "task5"),
        "joinOn task5",
    ),
    _exclusive(
        "false-false",
        {"decision_1": "false", "decision_3": "false"},
        ["task1", "decision1", "task4", "decision3"],
        ("integration_task_4", "task4"),
        "no joinOn task ran, task2 absent: the default list gives task4",
    ),
    Case(
        "oss__th__fork_join_integration_test.json",
        "completes",
        "ForkJoinSpec: the fork task is a FORK, the JOIN's output holds its joinOn tasks' outputs only "
        "(t3, t2, not t1); literal 'workflow.input.param1' strings stay literal (§4 FORK_JOIN/JOIN, §5.2)",
        P,
        C,
        {"fanouttask": [C], "t1": [C], "t2": [C], "t3": [C], "fanouttask_join": [C], "t4": [C]},
        output=stamp("integration_task_4", "t4", tp1="workflow.input.param1"),
        outputs={
            "fanouttask_join": {
                "t3": stamp(
                    "integration_task_3", "t3", p1="workflow.input.param1", p2="workflow.input.param2"
                ),
                "t2": stamp("integration_task_2", "t2", tp1="workflow.input.param1"),
            }
        },
        check=lambda e: _equal(e.task("fanouttask")["taskType"], "FORK"),
    ),
    Case(
        "oss__th__fork_join_integration_test.json",
        "branch-fails",
        "a non-optional branch task failing ends the workflow at once, the JOIN is CANCELED (§6.2, §1.2)",
        P,
        F,
        None,
        reason=task_failure("t2"),
        task_reasons={"t2": "integration_task_2 failed at t2"},
        failed_refs=["t2"],
        check=_fork_branch_fails,
        fail_terminal=("t2",),
    ),
    Case(
        "oss__th__fork_join_permissive_integration_test.json",
        "completes",
        "ForkJoinSpec: both permissive branches succeed; JOIN output = both outputs (§4 JOIN)",
        P,
        C,
        {"fanouttask": [C], "t1": [C], "t2": [C], "fanouttask_join": [C], "t3": [C]},
        output=stamp("integration_task_3", "t3", p1="workflow.input.param1", p2="workflow.input.param2"),
        outputs={
            "fanouttask_join": {
                "t1": stamp(
                    "integration_task_1", "t1", p1="workflow.input.param1", p2="workflow.input.param2"
                ),
                "t2": stamp("integration_task_2", "t2", tp1="workflow.input.param1"),
            }
        },
    ),
    Case(
        "oss__th__fork_join_permissive_integration_test.json",
        "permissive-branch-fails",
        "ForkJoinSpec 'fork join permissive failure flow': t1 keeps its failure, the JOIN waits for t2 "
        "then FAILS with t1's reason and an output without t1's empty one; the workflow FAILS naming the "
        "JOIN, t3 never runs (Join.execute, §1.2)",
        P,
        F,
        {"fanouttask": [C], "t1": [FT], "t2": [C], "fanouttask_join": [F]},
        outputs={"fanouttask_join": {"t2": stamp("integration_task_2", "t2", tp1="workflow.input.param1")}},
        reason=lambda e: (
            f"Task {e.task('fanouttask_join')['taskId']} failed with status: FAILED and reason: "
            f"'{e.task('t1')['reasonForIncompletion']}'"
        ),
        task_reasons={
            "t1": "integration_task_1 failed at t1",
            "fanouttask_join": "integration_task_1 failed at t1",
        },
        failed_refs=["fanouttask_join", "t1"],
        fail_terminal=("t1",),
    ),
    Case(
        "oss__th__fork_join_sync_nested_integration_test.json",
        "completes",
        "ForkJoinSyncModeIntegrationTest 'Nested SYNC join': both JOINs COMPLETE; a JOIN's output holds "
        "each joinOn task's output, the inner JOIN's included (§4 JOIN)",
        {},
        C,
        {
            "outer_fork": [C],
            "inner_fork": [C],
            "inner_a": [C],
            "inner_b": [C],
            "inner_join": [C],
            "outer_c": [C],
            "outer_join": [C],
            "postJoinTask": [C],
        },
        output=stamp("integration_task_4", "postJoinTask"),
        outputs={
            "inner_join": {
                "inner_a": stamp("integration_task_1", "inner_a"),
                "inner_b": stamp("integration_task_2", "inner_b"),
            },
            "outer_join": {
                "inner_join": {
                    "inner_a": stamp("integration_task_1", "inner_a"),
                    "inner_b": stamp("integration_task_2", "inner_b"),
                },
                "outer_c": stamp("integration_task_3", "outer_c"),
            },
        },
    ),
    Case(
        "oss__th__fork_join_sync_optional_fail_integration_test.json",
        "optional-branch-fails",
        "the optional branch fails (no retry): COMPLETED_WITH_ERRORS; the JOIN is COMPLETED_WITH_ERRORS "
        "with reason '<name>/<taskId> completed with errors' and the workflow goes on (DeciderService, "
        "Join.execute, §4 JOIN)",
        {},
        C,
        {
            "forkTask": [C],
            "branch_required": [C],
            "branch_optional": [CWE],
            "joinTask": [CWE],
            "postJoinTask": [C],
        },
        output=stamp("integration_task_3", "postJoinTask"),
        outputs={"joinTask": {"branch_required": stamp("integration_task_1", "branch_required")}},
        check=lambda e: _equal(
            e.task("joinTask").get("reasonForIncompletion"),
            f"integration_task_2/{e.task('branch_optional')['taskId']} completed with errors",
        ),
        fail_terminal=("branch_optional",),
    ),
    Case(
        "oss__th__dynamic_fork_join_integration_test.json",
        "completes",
        "DynamicForkJoinSpec 'success flow': dt1's dynamicTasks fork xdt1 (integration_task_2) and xdt2 "
        "(integration_task_3) with inputs from dynamicTasksInput; the JOIN's joinOn becomes [xdt1, xdt2] "
        "and its output theirs (§4 FORK_JOIN_DYNAMIC)",
        {},
        C,
        {
            "dt1": [C],
            "dynamicfanouttask": [C],
            "xdt1": [C],
            "xdt2": [C],
            "dynamicfanouttask_join": [C],
            "task4": [C],
        },
        output=stamp("integration_task_4", "task4"),
        inputs={"xdt1": {"k1": "v1"}, "xdt2": {"k2": "v2"}},
        outputs={
            "dynamicfanouttask_join": {
                "xdt1": stamp("integration_task_2", "xdt1", k1="v1"),
                "xdt2": stamp("integration_task_3", "xdt2", k2="v2"),
            }
        },
        check=lambda e: _equal(
            (
                e.task("dynamicfanouttask")["taskType"],
                e.task("xdt1")["taskType"],
                e.task("xdt2")["taskType"],
                e.task("dynamicfanouttask_join")["inputData"]["joinOn"],
            ),
            ("FORK", "integration_task_2", "integration_task_3", ["xdt1", "xdt2"]),
        ),
        emit={"dt1": DYNAMIC_TASKS},
    ),
    Case(
        "oss__th__do_while_integration_test.json",
        "two-iterations",
        "DoWhileSpec: body refs get __<iteration>; loop=2 runs two iterations "
        "($.loopTask['iteration'] < $.value); DO_WHILE output = iteration + each iteration's body "
        "outputs (DoWhile.execute); workflow output = the last task in execution order, join__2 (§2.3)",
        {"loop": 2},
        C,
        {
            "loopTask": [C],
            **{
                f"{ref}__{i}": [C]
                for i in (1, 2)
                for ref in (
                    "integration_task_0",
                    "fork",
                    "integration_task_1",
                    "integration_task_2",
                    "join",
                )
            },
        },
        output=_loop_iteration(2)["join"],
        outputs={"loopTask": {"iteration": 2, "1": _loop_iteration(1), "2": _loop_iteration(2)}},
    ),
    Case(
        "oss__th__workflow_that_starts_another_workflow.json",
        "starts",
        "StartWorkflowSpec: START_WORKFLOW COMPLETES at once with output {workflowId}, which is the "
        "workflow output as the last task's (§4 START_WORKFLOW, §2.3)",
        {"startWorkflow": {"name": "integration_test_wf", "version": 1, "input": P}},
        C,
        {"st": [C]},
        output={"workflowId": AN_ID},
        outputs={"st": {"workflowId": AN_ID}},
        definitions=(_SIMPLE_1,),
    ),
    Case(
        "oss__th__workflow_that_starts_another_workflow.json",
        "not-a-start-request",
        "StartWorkflowSpec 'does not conform to StartWorkflowRequest': the input key is start_workflow, "
        "so startWorkflow is null: the task FAILS and, with no retries for a system task, the workflow "
        "(§4 START_WORKFLOW, §2.2 ad-hoc TaskDef retryCount 0)",
        {"start_workflow": {"param1": "value1", "param2": "value2"}},
        F,
        {"st": [F]},
        reason=task_failure("st"),
        failed_refs=["st"],
        check=_start_workflow_fails,
        definitions=(_SIMPLE_1,),
    ),
]


# The corpus files that run since the system tasks run (INLINE, LAMBDA, JSON_JQ_TRANSFORM, SET_VARIABLE, NOOP,
# WAIT, HUMAN, HTTP, EVENT). The ones that wait for a person are in tests/test_corpus_system_runs.py.

_FAILURE_WF = "oss__th__failure_workflow_for_terminate_task_workflow.json"
_FAILED_SUB = "oss__th__test_task_failed_sub_workflow.json"
_SIMPLE_JQ = "oss__th__simple_json_jq_transform_integration_test.json"
_SIMPLE_SET_VARIABLE = "oss__th__simple_set_variable_workflow_integration_test.json"
_WAIT_TIMEOUT = "oss__th__simple_wait_task_workflow_integration_test.json"
_HTTP_CHECK = "oss__e2e__concurrency_check_http.json"
_API_TESTER = "orkes-api-tester.orkesconductor.com"
HTTP_FAILURE = (
    "Failed to invoke HTTP task due to: "  # HttpTask.start: "Failed to invoke " + type + " task due to: " + e
)
TRUE, FALSE = {"result": {"testvalue": True}}, {"result": {"testvalue": False}}
JQ_ARRAYS = {"in1": {"array": ["a", "b"]}, "in2": {"array": ["c", "d"]}}
JQ_JOINED = {"out": ["a", "b", "c", "d"]}
LOCATION = {"out": {"locationId": "some location id"}}
BIG_VARIABLE = "01234567" * 257  # SetVariableTaskSpec: (1 + 2 * 1024 / 8) copies of "01234567"
SEQUENTIAL_INPUT = {
    "method": "POST",
    "body": {"name": "Beary Beariston", "title": "the Brown Bear"},
    "requestTransform": '{name: (.body.name + " you are " + .body.title) }',
    "responseTransform": '{result: "reply: " + .response.body.message}',
}


def _jq(result: Any) -> dict[str, Any]:
    """JsonJqTransform's output for a single result."""
    return {"result": result, "resultList": [result]}


def _event_output(task_input: dict[str, Any], workflow: str, queue: str) -> dict[str, Any]:
    """Event.start: the task input (sink and asyncComplete included, EventTaskMapper) with the workflow's
    fields, and event_produced = the queue name (computeQueueName)."""
    return {
        **task_input,
        "workflowInstanceId": AN_ID,
        "workflowType": workflow,
        "workflowVersion": 1,
        "correlationId": None,
        "taskToDomain": {},
        "event_produced": queue,
    }


def _published_by_this_workflow(ref: str) -> Callable[[Execution], None]:
    def check(e: Execution) -> None:
        assert e.task(ref)["outputData"]["workflowInstanceId"] == e.raw["workflowId"]

    return check


def _terminated_by(status: str) -> Callable[[Execution], str]:
    """WorkflowExecutorOps.endExecution: the reason when the TERMINATE task gives none."""
    return lambda e: f"Workflow is {status} by TERMINATE task: {e.task('terminate0')['taskId']}"


def _http_call_failed(ref: str) -> Callable[[Execution], None]:
    def check(e: Execution) -> None:
        assert e.task(ref)["reasonForIncompletion"].startswith(HTTP_FAILURE)

    return check


def _http_response_is_the_exception(e: Execution) -> None:
    # HttpTask.start: reason "Failed to invoke HTTP task due to: " + e, output response = e.toString()
    task = e.task("http_ref")
    assert task["outputData"] == {"response": task["reasonForIncompletion"].removeprefix(HTTP_FAILURE)}


def _sub_workflow_terminated(e: Execution) -> None:
    task = e.task("test_task_failed_sub_wf")
    child = task["outputData"]["subWorkflowId"]
    assert task["reasonForIncompletion"].startswith(
        f"Sub workflow test_task_failed_sub_wf.1/{child} failure reason: "
        "Workflow is FAILED by TERMINATE task: "
    )


def _case_inputs(*pairs: tuple[str, str]) -> Callable[[Execution], None]:
    """Each DECISION's ``case`` input (DecisionTaskMapper puts the evaluated case there)."""

    def check(e: Execution) -> None:
        assert [(ref, e.task(ref)["inputData"]["case"]) for ref, _ in pairs] == list(pairs)

    return check


def _own_id_forked(e: Execution) -> None:
    task = e.task("fail_on_purpose_ref")
    expected = stamp("fail_on_purpose", "fail_on_purpose_ref", task_id=task["taskId"])
    assert e.raw["output"] == {"fail_on_purpose_ref": expected}


def _rerun_timestamp(e: Execution) -> None:
    first, second = e.task("inline_ref_1"), e.task("inline_ref_2")
    assert isinstance(first["outputData"]["result"], str) and first["outputData"]["result"].endswith("Z")
    assert second["outputData"] == first["outputData"]
    wait_task = e.task("wait_ref")
    assert wait_task["endTime"] - wait_task["startTime"] >= 2000


def _five_loop_iteration(i: int) -> dict[str, Any]:
    return {
        "lambda_locs": {"result": {"locationRanId": "some location id"}},
        "jq_add_location": _jq(LOCATION),
        "integration_task_1": stamp("integration_task_1", f"integration_task_1__{i}"),
        "jq_create_hydrus_input": _jq(LOCATION),
        "integration_task_2": stamp("integration_task_2", f"integration_task_2__{i}"),
    }


def _sub_flow(ref: str) -> Callable[[Execution], None]:
    """SubWorkflow: the task's output is the child's (sub_flow_1: task_6's) plus subWorkflowId."""

    def check(e: Execution) -> None:
        out = e.task(ref)["outputData"]
        assert out == {**stamp("task_6", "task_6"), "subWorkflowId": out["subWorkflowId"]}

    return check


def _all(*checks: Callable[[Execution], None]) -> Callable[[Execution], None]:
    def check(e: Execution) -> None:
        for one in checks:
            one(e)

    return check


def _variables(expected: dict[str, Any]) -> Callable[[Execution], None]:
    return lambda e: _equal(e.raw["variables"], expected)


CASES += [
    Case(
        "oss__ai__36a-ai-route-support-ticket.json",
        "completes",
        "NOOP completes with no output; outputParameters mix literals and workflow input (§2.3)",
        {"request": "reset my password", "routingReason": "account"},
        C,
        {"record_support_route": [C]},
        output={"route": "support", "request": "reset my password", "routingReason": "account"},
        outputs={"record_support_route": {}},
    ),
    Case(
        "oss__docs__publish-internal-event-workflow.json",
        "publishes",
        "EVENT with sink conductor:<queue> publishes to conductor:<workflow>:<queue> and COMPLETES; its "
        "output is its input plus the workflow's fields (Event.start/computeQueueName); last task's "
        "output is the workflow's (§2.3)",
        {"orderId": "o-1", "status": "SHIPPED"},
        C,
        {"publish_order_status": [C]},
        output=_event_output(
            {
                "orderId": "o-1",
                "status": "SHIPPED",
                "eventVersion": 1,
                "sink": "conductor:order-status",
                "asyncComplete": False,
            },
            "publish_order_event",
            "conductor:publish_order_event:order-status",
        ),
        check=_published_by_this_workflow("publish_order_status"),
    ),
    Case(
        "oss__th__event_workflow_integration_test.json",
        "completes",
        "EventTaskSpec 'event based simple workflow': the EVENT task COMPLETES with event_produced "
        "conductor:<workflow>:<ref>, then integration_task_1 runs (Event.start/execute)",
        {},
        C,
        {"wait0": [C], "t1": [C]},
        output=stamp("integration_task_1", "t1"),
        outputs={
            "wait0": _event_output(
                {"sink": "conductor", "asyncComplete": False},
                "test_event_workflow",
                "conductor:test_event_workflow:wait0",
            )
        },
        check=_published_by_this_workflow("wait0"),
    ),
    Case(
        "oss__docs__workflow.json",
        "call-fails",
        "the HTTP call cannot be made: FAILED with 'Failed to invoke HTTP task due to: ...' "
        "(HttpTask.start); "
        "an ad-hoc system task has retryCount 0 (§2.2), so the workflow FAILS with Conductor's reason; "
        "parse_ref never runs and the outputParameters resolve to null (§2.3)",
        {},
        F,
        {"fetch_ref": [F]},
        output={"summary": None, "apiResponse": None},
        reason=task_failure("fetch_ref"),
        failed_refs=["fetch_ref"],
        check=_http_call_failed("fetch_ref"),
        offline=(_API_TESTER,),
    ),
    Case(
        _HTTP_CHECK,
        "call-fails",
        "uri and method at the top of the input (HttpTask.start uses the whole input when there is no "
        "http_request); the call fails: task and workflow FAILED (§2.2); output = the task's (§2.3)",
        {},
        F,
        {"http_ref": [F]},
        reason=task_failure("http_ref"),
        failed_refs=["http_ref"],
        check=_all(
            _http_call_failed("http_ref"), lambda e: _equal(e.raw["output"], e.task("http_ref")["outputData"])
        ),
        offline=(_API_TESTER,),
    ),
    Case(
        _HTTP_CHECK,
        "response-is-the-exception",
        "HttpTask.start on an exception: reasonForIncompletion 'Failed to invoke HTTP task due to: ' + e, "
        "output response = e.toString() (without that prefix)",
        {},
        F,
        {"http_ref": [F]},
        reason=task_failure("http_ref"),
        failed_refs=["http_ref"],
        check=_http_response_is_the_exception,
        offline=(_API_TESTER,),
    ),
    Case(
        "oss__e2e__cpewf_task_id_dyn_fork_wf.json",
        "completes",
        "INLINE builds the dynamic task list (a JSON string parsed by the script); the forked task's "
        "${CPEWF_TASK_ID} is its own id (§5.2); the script JOIN returns true: COMPLETED with the joinOn "
        "outputs (§4 JOIN), the workflow's output as the last task (§2.3)",
        {},
        C,
        {
            "inline_ref": [C],
            "extracted_file_data_fork_ref": [C],
            "fail_on_purpose_ref": [C],
            "extracted_file_data_join_ref": [C],
        },
        inputs={"fail_on_purpose_ref": {"task_id": OWN_ID}},
        check=_own_id_forked,
    ),
    Case(
        "oss__e2e__dyn_fork_test.json",
        "completes",
        "INLINE returns {tasks, inputs}; the dynamic fork runs simple_1..3 with those inputs; the script "
        "JOIN "
        "completes once all are COMPLETED, with their outputs (§4 FORK_JOIN_DYNAMIC, JOIN)",
        {},
        C,
        {
            "inline_ref": [C],
            "dyn_fork_ref": [C],
            "simple_1": [C],
            "simple_2": [C],
            "simple_3": [C],
            "join_1": [C],
        },
        output={f"simple_{i}": stamp(f"simple_{i}", f"simple_{i}") for i in (1, 2, 3)},
        inputs={f"simple_{i}": {} for i in (1, 2, 3)},
        check=lambda e: _equal(e.task("join_1")["inputData"]["joinOn"], ["simple_1", "simple_2", "simple_3"]),
    ),
    Case(
        "oss__e2e__switch_rerun_issue.json",
        "yes",
        "INLINE's result is a timestamp; WAIT '2 seconds' holds the flow for 2 s (Wait, DurationParser); "
        "SWITCH value-param selects 'yes', whose INLINE returns the same timestamp (§4, §5.2)",
        {"case": "yes"},
        C,
        {"inline_ref_1": [C], "wait_ref": [C], "switch_ref": [C], "inline_ref_2": [C]},
        inputs={"wait_ref": {"duration": "2 seconds"}},
        outputs={"switch_ref": _switch_result("yes"), "wait_ref": {}},
        check=_rerun_timestamp,
    ),
    Case(
        "oss__kitchensink__kitchensink.json",
        "odd-branch-then-search-fails",
        "task_1, EVENT (conductor:kitchensink:event_0), DYNAMIC task_2 runs the task named by task2Name; "
        "its oddEven 1 selects the FORK of two branches each ending in sub_flow_1, JOIN on wf3/wf4; the "
        "HTTP search of localhost:9200 finds nothing listening: FAILED, the workflow FAILS (§2.2), task_30 "
        "never runs; outputParameters' deep scans ($..status) of the failed call's output are [] (§2.3)",
        {"task2Name": "task_5", "mod": 5, "oddEven": 1},
        F,
        {
            "task_1": [C],
            "event_0": [C],
            "task_2": [C],
            "oddEvenDecision": [C],
            "forkx": [C],
            "task_10": [C],
            "task_11": [C],
            "wf3": [C],
            "wf4": [C],
            "join2": [C],
            "get_es_1": [F],
        },
        output={"statues": [], "workflowIds": []},
        inputs={
            "task_2": {"taskToExecute": "task_5"},
            "wf3": {"mod": 5, "oddEven": 1, "subWorkflowName": "sub_flow_1", "subWorkflowVersion": 1},
        },
        outputs={
            "oddEvenDecision": _decision_result("1"),
            "event_0": _event_output(
                {"mod": 5, "oddEven": 1, "sink": "conductor", "asyncComplete": False},
                "kitchensink",
                "conductor:kitchensink:event_0",
            ),
        },
        reason=task_failure("get_es_1"),
        failed_refs=["get_es_1"],
        check=_all(
            lambda e: _equal(e.task("task_2")["taskType"], "task_5"),
            _sub_flow("wf3"),
            _sub_flow("wf4"),
            _http_call_failed("get_es_1"),
        ),
        emit={"task_2": {"oddEven": 1}},
        env={"TRANSLATOR_FETCH_ALLOW": "localhost:9200"},
        definitions=("oss__kitchensink__sub_flow_1.json",),
    ),
    Case(
        "oss__th__do_while_five_loop_over_integration_test.json",
        "two-iterations",
        "DoWhileSpec 'Test workflow with 2 iterations of five tasks': LAMBDA, JQ, worker, JQ, worker per "
        "iteration, the JQ tasks reading the LAMBDA's result; then integration_task_3 outside the loop "
        "(DoWhile.execute; §2.3)",
        {"loop": 2},
        C,
        {
            "loopTask": [C],
            **{
                f"{ref}__{i}": [C]
                for i in (1, 2)
                for ref in (
                    "lambda_locs",
                    "jq_add_location",
                    "integration_task_1",
                    "jq_create_hydrus_input",
                    "integration_task_2",
                )
            },
            "integration_task_3": [C],
        },
        output=stamp("integration_task_3", "integration_task_3"),
        outputs={"loopTask": {"iteration": 2, "1": _five_loop_iteration(1), "2": _five_loop_iteration(2)}},
        check=lambda e: _equal(
            [(t["referenceTaskName"], t["iteration"]) for t in e.raw["tasks"]][-2:],
            [("integration_task_2__2", 2), ("integration_task_3", 0)],
        ),
    ),
    Case(
        "oss__th__do_while_iteration_fix_test.json",
        "two-iterations",
        "DoWhileSpec 'loop over task that use iteration in script expression': ${loopTask['iteration']} "
        "is 1 then 2, so the LAMBDA results are 0 and 1",
        {"loop": 2},
        C,
        {"loopTask": [C], "form_uri__1": [C], "form_uri__2": [C]},
        output={"result": 1},
        outputs={
            "form_uri__1": {"result": 0},
            "form_uri__2": {"result": 1},
            "loopTask": {"iteration": 2, "1": {"form_uri": {"result": 0}}, "2": {"form_uri": {"result": 1}}},
        },
    ),
    Case(
        "oss__th__do_while_set_variable_fix.json",
        "one-iteration",
        "DoWhileSpec 'Do While task contains set variable task': the loop reads workflow.variables.value, "
        "null when it starts (the input's value is not a variable): one iteration; SET_VARIABLE input "
        "value '0'; last task's output is the workflow's (§2.3)",
        {"value": 2},
        C,
        {"loopTask": [C], "set_variable__1": [C]},
        output={},
        inputs={"loopTask": {"value": None}, "set_variable__1": {"value": "0"}},
    ),
    Case(
        "oss__th__do_while_set_variable_fix.json",
        "variables-kept",
        "SetVariable.execute: the SET_VARIABLE task's input is merged into the workflow's variables, "
        "which the execution keeps",
        {"value": 2},
        C,
        {"loopTask": [C], "set_variable__1": [C]},
        check=_variables({"value": "0"}),
    ),
    Case(
        _FAILURE_WF,
        "a-is-not-1",
        "LAMBDA: the scriptExpression is the body of a function (Lambda.execute): {testvalue: false}",
        {"a": 2},
        C,
        {"lambda0": [C]},
        output=FALSE,
        outputs={"lambda0": FALSE},
    ),
    Case(
        "oss__th__simple_lambda_workflow_integration_test.json",
        "completes",
        "LambdaAndTerminateTaskSpec 'Test workflow with lambda task': output [result:[testvalue:true]]",
        {"a": 1},
        C,
        {"lambda0": [C]},
        output=TRUE,
        outputs={"lambda0": TRUE},
    ),
    Case(
        "oss__th__terminate_task_completed_workflow_integration_test.json",
        "terminates-completed",
        "LambdaAndTerminateTaskSpec 'terminate task when the status is completed': COMPLETED with reason "
        "'Workflow is COMPLETED by TERMINATE task: <id>', output = the TERMINATE's workflowOutput only "
        "(outputParameters ignored), t2 never runs",
        {"a": 1},
        C,
        {"lambda0": [C], "terminate0": [C]},
        output=TRUE,
        outputs={"terminate0": TRUE},
        reason=_terminated_by("COMPLETED"),
    ),
    Case(
        "oss__th__terminate_task_failed_workflow_integration.json",
        "terminates-failed",
        "FailureWorkflowSpec / LambdaAndTerminateTaskSpec 'status is failed': FAILED with the "
        "terminationReason, both tasks COMPLETED; failure_workflow runs and its id is in the output",
        {"a": 1},
        F,
        {"lambda0": [C], "terminate0": [C]},
        output={**TRUE, "conductor.failure_workflow": AN_ID},
        reason=lambda e: "Early exit in terminate",
        definitions=(_FAILURE_WF,),
    ),
    Case(
        "oss__th__terminate_task_terminated_status_test.json",
        "terminates-terminated",
        "TERMINATE with terminationStatus TERMINATED ends the workflow TERMINATED with its reason "
        "(WorkflowExecutorOps.endExecution); the LAMBDA body 'function e(){...} e();' returns nothing "
        "(Lambda wraps it in function scriptFun(){...}): result null; lambda1 never runs",
        {},
        "TERMINATED",
        {"lambda0": [C], "terminate0": [C]},
        output={"result": None},
        outputs={"lambda0": {"result": None}},
        reason=lambda e: "Early exit with TERMINATED status",
    ),
    Case(
        _FAILED_SUB,
        "terminates-failed",
        "TERMINATE FAILED without a reason: 'Workflow is FAILED by TERMINATE task: <id>' "
        "(FailureWorkflowSpec "
        "checks it on the sub-workflow), t2 never runs",
        {"a": 1},
        F,
        {"lambda0": [C], "terminate0": [C]},
        output=TRUE,
        reason=_terminated_by("FAILED"),
    ),
    Case(
        "oss__th__test_task_failed_parent_workflow.json",
        "sub-workflow-fails",
        "FailureWorkflowSpec 'task failed in subworkflow': the child ends FAILED by its TERMINATE; the "
        "SUB_WORKFLOW task FAILS (retryCount 0) with 'Sub workflow <name>.<version>/<id> failure reason: "
        "...', the parent FAILS, lambdaTask2 never runs, failure_workflow starts (§2.1, §4 SUB_WORKFLOW)",
        {"a": 1},
        F,
        {"lambdaTask1": [C], "test_task_failed_sub_wf": [F]},
        output={**FALSE, "subWorkflowId": AN_ID, "conductor.failure_workflow": AN_ID},
        outputs={"lambdaTask1": {"result": {"testvalue": "Lambda value was NOT 1", "iValue": 13}}},
        reason=task_failure("test_task_failed_sub_wf"),
        failed_refs=["test_task_failed_sub_wf"],
        check=_sub_workflow_terminated,
        definitions=(_FAILURE_WF, _FAILED_SUB),
    ),
    Case(
        _SIMPLE_JQ,
        "joins-arrays",
        "JsonJQTransformSpec 'json jq transform task succeeds': result and resultList",
        JQ_ARRAYS,
        C,
        {"jq_1": [C]},
        output=_jq(JQ_JOINED),
        outputs={"jq_1": _jq(JQ_JOINED)},
    ),
    Case(
        _SIMPLE_JQ,
        "query-fails",
        "JsonJQTransformSpec 'json jq transform task fails': in1 is a string: FAILED, output error = the "
        "reason (JsonJqTransform.start); the workflow FAILS (§2.2)",
        {"in1": "a", "in2": "b"},
        F,
        {"jq_1": [F]},
        reason=task_failure("jq_1"),
        task_reasons={"jq_1": "Cannot index string with string"},
        failed_refs=["jq_1"],
        check=lambda e: _equal(
            e.task("jq_1")["outputData"], {"error": e.task("jq_1")["reasonForIncompletion"]}
        ),
    ),
    Case(
        _SIMPLE_JQ,
        "query-fails-with-jq-text",
        "JsonJQTransformSpec: reasonForIncompletion == 'Cannot index string with string \"array\"'",
        {"in1": "a", "in2": "b"},
        F,
        {"jq_1": [F]},
        failed_refs=["jq_1"],
        check=lambda e: _equal(
            e.task("jq_1")["reasonForIncompletion"], 'Cannot index string with string "array"'
        ),
    ),
    Case(
        "oss__th__sequential_json_jq_transform_integration_test.json",
        "nested-objects",
        "JsonJQTransformSpec 'nested json object': the first JQ's result (with // defaults) feeds the "
        "second's queryExpression",
        SEQUENTIAL_INPUT,
        C,
        {"default_variables": [C], "request_transform": [C]},
        output=_jq({"name": "Beary Beariston you are the Brown Bear"}),
        outputs={
            "default_variables": _jq(
                {
                    "requestTransform": SEQUENTIAL_INPUT["requestTransform"],
                    "responseTransform": SEQUENTIAL_INPUT["responseTransform"],
                    "method": "POST",
                    "document": "rgt_results",
                    "successExpression": "true",
                }
            )
        },
    ),
    Case(
        "oss__th__json_jq_transform_result_integration_test.json",
        "create-then-true",
        "JsonJQTransformSpec 'different json object results': an empty data gives CREATE, the list of "
        "names holds redeliver, so decide_2's case is 'true', which has no branch (§4 DECISION)",
        {"requestedAction": "redeliver"},
        C,
        {"json_jq_1": [C], "decide_1": [C], "json_jq_2": [C], "decide_2": [C]},
        output=_decision_result("true"),
        outputs={
            "json_jq_1": _jq("CREATE"),
            "json_jq_2": _jq(["redeliver", "redeliver_from_validation_error", "redelivery"]),
        },
        check=_case_inputs(("decide_1", "CREATE"), ("decide_2", "true")),
    ),
    Case(
        _SIMPLE_SET_VARIABLE,
        "sets",
        "SetVariableTaskSpec 'set variable task': output [variables:[var:var_test_value]]",
        {"var": "var_test_value"},
        C,
        {"set_variable_1": [C]},
        output={"variables": {"var": "var_test_value"}},
        outputs={"set_variable_1": {}},
    ),
    Case(
        _SIMPLE_SET_VARIABLE,
        "variables-kept",
        "SetVariableTaskSpec 'set variable task': variables as String == '[var:var_test_value]'",
        {"var": "var_test_value"},
        C,
        {"set_variable_1": [C]},
        check=_variables({"var": "var_test_value"}),
    ),
    Case(
        _SIMPLE_SET_VARIABLE,
        "over-the-limit",
        "SetVariableTaskSpec 'passing variables payload size threshold' (limit 2 KB as in the harness): "
        "FAILED_WITH_TERMINAL_ERROR with Conductor's message (size 17 + 2048 + 1), variables unchanged, "
        "workflow FAILED",
        {"var": BIG_VARIABLE},
        F,
        {"set_variable_1": [FT]},
        output={"variables": {}},
        reason=task_failure("set_variable_1"),
        failed_refs=["set_variable_1"],
        check=lambda e: _equal(
            e.task("set_variable_1")["reasonForIncompletion"],
            f"The variables payload size: 2066 of workflow: {e.raw['workflowId']} is greater than the "
            "permissible limit: 2 kilobytes",
        ),
        env={"TRANSLATOR_MAX_VARIABLES_KB": "2"},
    ),
    Case(
        _WAIT_TIMEOUT,
        "harness-taskdef",
        "WorkflowAndTaskConfigurationSpec 'wait time out': with the harness's waitTimeout TaskDef "
        "(timeoutSeconds 2, RETRY, retryCount 1, retryDelaySeconds 10) the WAIT is TIMED_OUT after 2 s "
        "and retried (DeciderService.checkTaskTimeout); nobody completes the retry here, so it times out "
        "too and the workflow is TIMED_OUT (DeciderService.retry)",
        {},
        "TIMED_OUT",
        {"wait0": ["TIMED_OUT", "TIMED_OUT"]},
        run_timeout=30,
    ),
    Case(
        _WAIT_TIMEOUT,
        "timeout-without-retry",
        "the harness's waitTimeout TaskDef with retryCount 0: the WAIT is TIMED_OUT after its "
        "timeoutSeconds 2 (DeciderService.checkTaskTimeout applies to every task with a definition) and "
        "the workflow is TIMED_OUT, t1 never runs (DeciderService.retry)",
        {},
        "TIMED_OUT",
        {"wait0": ["TIMED_OUT"]},
        reason=lambda e: (
            f"Task {e.task('wait0')['taskId']} failed with status: TIMED_OUT and reason: "
            f"'{e.task('wait0')['reasonForIncompletion']}'"
        ),
        task_reasons={"wait0": "Timeout configured as 2 seconds. Timeout policy configured to RETRY"},
        taskdefs=tuple({**t, "retryCount": 0} if t["name"] == "waitTimeout" else t for t in JAVA_TASKDEFS),
        run_timeout=8,
    ),
]


def _equal(actual: Any, expected: Any) -> None:
    assert actual == expected


def _subset(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: actual.get(k) for k in expected} == expected, actual


def _assert_matches(actual: Any, expected: Any, own_id: str | None, where: str) -> None:
    """``actual == expected``, where OWN_ID stands for ``own_id`` and AN_ID for any non-empty string."""
    if expected is OWN_ID:
        assert actual == own_id, f"{where}: {actual!r} is not the task's own id {own_id!r}"
    elif expected is AN_ID:
        assert isinstance(actual, str) and actual, f"{where}: {actual!r} is not an id"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), (
            f"{where}: {actual!r} != {expected!r}"
        )
        for key, value in expected.items():
            _assert_matches(actual[key], value, own_id, f"{where}.{key}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


COVERED_FILES = sorted({case.file for case in CASES})
# Runnable files whose workflows wait for a person (HUMAN, WAIT without a time): checked on a worker pool,
# where tasks are ended from outside, by tests/test_corpus_system_runs.py.
POOL_CASE_FILES = [
    "oss__ai__25-a2a-server-multi-turn.json",
    "oss__th__do_while_with_decision_task.json",
    "oss__th__set_variable_workflow_integration_test.json",
]
# SIMPLE tasks that only a script names (dynamic fork lists built by INLINE tasks).
SCRIPTED_TASK_NAMES = {"fail_on_purpose", "simple_1", "simple_2", "simple_3"}


def _workflow_files() -> dict[str, list[str]]:
    """Each corpus workflow file -> the codes of its validation errors ([] means translator runs it)."""
    found = {}
    for path in sorted(CORPUS.glob("*.json")):
        data, _ = read_file(path)
        if detect_kind(data) is DocumentKind.WORKFLOW:
            found[path.name] = sorted({i.code for i in check_file(path) if i.level is Level.ERROR})
    return found


def _simple_names(node: Any) -> set[str]:
    """The names of SIMPLE tasks anywhere in a definition (inline sub-workflow definitions included)."""
    names: set[str] = set()
    if isinstance(node, dict):
        if "taskReferenceName" in node and node.get("type", "SIMPLE") == "SIMPLE":
            names.add(node["name"])
        for value in node.values():
            names |= _simple_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _simple_names(value)
    return names


def _worker_names() -> set[str]:
    """TASK_NAMES of tests/corpus_workers.py, read without importing it (importing registers workers)."""
    tree = ast.parse((ROOT / "tests" / "corpus_workers.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TASK_NAMES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("tests/corpus_workers.py has no TASK_NAMES")


def test_every_runnable_corpus_workflow_has_a_case():
    require_corpus()
    runnable = sorted(name for name, errors in _workflow_files().items() if not errors)
    assert not set(POOL_CASE_FILES) & set(COVERED_FILES)
    assert runnable == sorted(COVERED_FILES + POOL_CASE_FILES)


def test_the_workers_cover_the_runnable_workflows():
    require_corpus()
    needed: set[str] = set()
    for name in COVERED_FILES + POOL_CASE_FILES:
        data, _ = read_file(CORPUS / name)
        needed |= _simple_names(data)
    needed |= {t["name"] for t in DYNAMIC_TASKS["dynamicTasks"]} | SCRIPTED_TASK_NAMES
    assert _worker_names() == needed


@pytest.fixture(scope="module")
def taskdefs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("taskdefs") / "java_harness_taskdefs.json"
    path.write_text(json.dumps(JAVA_TASKDEFS))
    return path


def run_case(case: Case, taskdefs: Path) -> Execution:
    corpus = require_corpus()
    env = embedded_env(WORKERS)
    for name in ("CORPUS_WORKERS_EMIT", "CORPUS_WORKERS_FAIL", "CORPUS_WORKERS_FAIL_TERMINAL"):
        env.pop(name, None)
    env.update(
        CORPUS_WORKERS_EMIT=json.dumps(case.emit),
        CORPUS_WORKERS_FAIL=",".join(case.fail),
        CORPUS_WORKERS_FAIL_TERMINAL=",".join(case.fail_terminal),
        **case.env,
    )
    if case.taskdefs is not None:
        taskdefs = taskdefs.with_name(f"{case.id.replace(':', '-')}.taskdefs.json")
        taskdefs.write_text(json.dumps(list(case.taskdefs)))
    args = ["run", str(corpus / case.file), "--input", "-", "--full", "--taskdefs", str(taskdefs)]
    for extra in case.definitions:
        args += ["--definitions", str(corpus / extra)]
    result = translator_cli(
        *args,
        "--timeout",
        str(case.run_timeout),
        env=env,
        stdin=json.dumps(case.input),
        timeout=case.run_timeout + 60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip(), f"no execution printed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    execution = json.loads(result.stdout)
    assert result.returncode == (0 if execution["status"] == C else 1), result.stderr[-3000:]
    return Execution(execution)


def _params() -> list[Any]:
    """CASES as pytest params; none without the corpus."""
    if corpus_missing() is not None:
        return []
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.deviation)] if case.deviation else [],
        )
        for case in CASES
    ]


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("case", **corpus_params(_params()))
def test_corpus_run(case: Case, taskdefs: Path):
    require_corpus()
    online = [host for host in case.offline if _resolves(host)]
    if online:
        pytest.skip(f"the case checks a failed call, and {online[0]} resolves here")
    e = run_case(case, taskdefs)
    raw = e.raw
    assert raw["status"] == case.status, raw.get("reasonForIncompletion")
    if case.tasks is not None:
        assert e.statuses() == case.tasks
    if case.output is not None:
        _assert_matches(raw["output"], case.output, None, "output")
    for ref, expected in case.inputs.items():
        task = e.task(ref)
        _assert_matches(task["inputData"], expected, task["taskId"], f"{ref}.inputData")
    for ref, expected in case.outputs.items():
        task = e.task(ref)
        _assert_matches(task["outputData"], expected, task["taskId"], f"{ref}.outputData")
    if case.reason is not None:
        assert raw["reasonForIncompletion"] == case.reason(e)
    for ref, text in case.task_reasons.items():
        assert text in (e.task(ref).get("reasonForIncompletion") or ""), e.task(ref)
    assert sorted(raw["failedReferenceTaskNames"]) == case.failed_refs
    if case.check is not None:
        case.check(e)


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_the_checks_can_fail():
    """A wrong expectation fails: the matcher rejects a changed value, a missing key and a wrong id."""
    expected = {"a": 1, "id": OWN_ID, "any": AN_ID}
    _assert_matches({"a": 1, "id": "x", "any": "y"}, expected, "x", "w")
    for actual, own in (
        ({"a": 2, "id": "x", "any": "y"}, "x"),
        ({"a": 1, "id": "x"}, "x"),
        ({"a": 1, "id": "x", "any": "y"}, "z"),
        ({"a": 1, "id": "x", "any": ""}, "x"),
    ):
        with pytest.raises(AssertionError):
            _assert_matches(actual, expected, own, "w")
