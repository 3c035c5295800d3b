"""The decider on plain dicts: no Redis, no Celery. A small simulator plays the workers: each worker task
the decider sends ends with the output (or failure) the test gives for its reference."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from translator.engine.decide import decide
from translator.engine.plan import Plan
from translator.runner import prepare
from translator.store.state import now_ms

Worker = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def plan_of(tmp_path: Path, tasks: list[dict[str, Any]], **fields: Any) -> Plan:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"name": "wf", "version": 1, "schemaVersion": 2, "tasks": tasks, **fields}))
    return prepare(path)


def simple(ref: str, **params: Any) -> dict[str, Any]:
    return {"name": "t", "taskReferenceName": ref, "type": "SIMPLE", "inputParameters": params}


def echo(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "COMPLETED", {"ref": record["referenceTaskName"]}


class Run:
    """An execution driven by the decider alone."""

    def __init__(self, plan: Plan, workflow_input: dict[str, Any] | None = None) -> None:
        self.plan = plan
        now = now_ms()
        self.workflow: dict[str, Any] = {
            "workflowId": "wf1",
            "workflowName": plan.name,
            "workflowVersion": plan.version,
            "status": "RUNNING",
            "input": workflow_input or {},
            "output": {},
            "variables": {},
            "createTime": now,
        }
        self.tasks: dict[str, dict[str, Any]] = {}
        self.sent: list[str] = []
        self.children: list[str] = []
        self.apply(decide(plan, self.workflow, []))

    def apply(self, transition: Any) -> None:
        for task_id, record in transition.change.records.items():
            self.tasks[task_id] = record
        for task_id in transition.change.remove:
            self.tasks.pop(task_id, None)
        self.workflow.update(transition.change.update)
        if transition.change.finish is not None:
            self.workflow.update(transition.change.finish)
        self.pending = [d.ref for d in transition.send]
        self.sent += self.pending
        self.children += [c.plan.name for c in transition.children]

    def by_ref(self, ref: str) -> dict[str, Any]:
        return [t for t in self.tasks.values() if t["referenceTaskName"] == ref][-1]

    def finish(self, ref: str, status: str = "COMPLETED", output: dict[str, Any] | None = None) -> None:
        record = {**self.by_ref(ref), "status": status, "outputData": output or {}}
        if status != "COMPLETED":
            record["reasonForIncompletion"] = f"{ref} broke"
        self.apply(decide(self.plan, self.workflow, list(self.tasks.values()), [record]))

    def drive(self, worker: Worker = echo, limit: int = 1000) -> Run:
        """Run every sent worker task, in order, until nothing is pending."""
        queue = list(self.pending)
        while queue and self.workflow["status"] == "RUNNING" and limit:
            limit -= 1
            ref = queue.pop(0)
            status, output = worker(self.by_ref(ref))
            self.finish(ref, status, output)
            queue += self.pending
        return self

    def statuses(self) -> dict[str, str]:
        return {
            t["referenceTaskName"]: t["status"] for t in sorted(self.tasks.values(), key=lambda t: t["seq"])
        }


def test_a_sequence_runs_in_order_and_completes_with_the_last_output(tmp_path):
    run = Run(plan_of(tmp_path, [simple("a"), simple("b")])).drive()
    assert run.sent == ["a", "b"]
    assert run.workflow["status"] == "COMPLETED" and run.workflow["output"] == {"ref": "b"}


def test_a_fork_sends_its_branches_together_and_the_join_collects_their_outputs(tmp_path):
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a1"), simple("a2")], [simple("b1")]],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a2", "b1"]},
        simple("after"),
    ]
    run = Run(plan_of(tmp_path, tasks))
    assert run.pending == ["a1", "b1"]
    assert run.by_ref("fork")["taskType"] == "FORK" and run.by_ref("join")["status"] == "IN_PROGRESS"
    run.drive()
    assert run.sent == ["a1", "b1", "a2", "after"]
    assert run.by_ref("join")["outputData"] == {"a2": {"ref": "a2"}, "b1": {"ref": "b1"}}
    assert run.workflow["status"] == "COMPLETED"


def test_a_failed_branch_fails_the_workflow_and_cancels_the_others(tmp_path):
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"]},
    ]
    run = Run(plan_of(tmp_path, tasks))
    run.finish("a", "FAILED")
    assert run.workflow["status"] == "FAILED"
    assert run.statuses() == {"fork": "COMPLETED", "a": "FAILED", "b": "CANCELED", "join": "CANCELED"}
    assert "a broke" in run.workflow["reasonForIncompletion"]
    assert run.workflow["failedReferenceTaskNames"] == ["a"]


def test_a_permissive_branch_failure_fails_the_join_once_every_joined_task_ended(tmp_path):
    permissive = {**simple("a"), "permissive": True}
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[permissive], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"]},
    ]
    run = Run(plan_of(tmp_path, tasks))
    run.finish("a", "FAILED")
    assert run.workflow["status"] == "RUNNING" and run.by_ref("b")["status"] == "SCHEDULED"
    run.finish("b")
    assert run.by_ref("join")["status"] == "FAILED" and run.workflow["status"] == "FAILED"


def test_an_optional_joined_failure_completes_the_join_with_errors(tmp_path):
    optional = {**simple("a"), "optional": True}
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[optional], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"]},
    ]
    run = Run(plan_of(tmp_path, tasks))
    run.finish("a", "COMPLETED_WITH_ERRORS")  # the step marks an optional task's final failure so
    run.finish("b")
    assert run.by_ref("join")["status"] == "COMPLETED_WITH_ERRORS" and run.workflow["status"] == "COMPLETED"


def test_nested_forks_join_inside_out(tmp_path):
    inner = [
        {
            "name": "f",
            "taskReferenceName": "inner",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("x")], [simple("y")]],
        },
        {"name": "j", "taskReferenceName": "inner_join", "type": "JOIN", "joinOn": ["x", "y"]},
    ]
    tasks = [
        {"name": "f", "taskReferenceName": "outer", "type": "FORK_JOIN", "forkTasks": [inner, [simple("z")]]},
        {"name": "j", "taskReferenceName": "outer_join", "type": "JOIN", "joinOn": ["inner_join", "z"]},
    ]
    run = Run(plan_of(tmp_path, tasks)).drive()
    assert sorted(run.sent) == ["x", "y", "z"]
    assert run.workflow["status"] == "COMPLETED"
    assert set(run.by_ref("outer_join")["outputData"]) == {"inner_join", "z"}


@pytest.mark.parametrize(
    ("kind", "value", "cases", "ran"),
    [
        ("SWITCH", "b", {"a": ["in_a"], "b": ["in_b"]}, ["in_b", "after"]),
        ("SWITCH", "zzz", {"a": ["in_a"]}, ["in_default", "after"]),
        ("SWITCH", "a", {"a": []}, ["after"]),  # a matched empty case runs nothing (no default)
        ("DECISION", "a", {"a": []}, ["in_default", "after"]),  # DECISION falls back to the default
        ("SWITCH", None, {"null": ["in_null"]}, ["in_null", "after"]),  # Java's string of null
        ("SWITCH", 1, {"1": ["in_1"]}, ["in_1", "after"]),
        ("SWITCH", True, {"true": ["in_true"]}, ["in_true", "after"]),
    ],
)
def test_switch_and_decision_pick_a_case_by_its_string_form(tmp_path, kind, value, cases, ran):
    task: dict[str, Any] = {
        "name": "s",
        "taskReferenceName": "sw",
        "type": kind,
        "inputParameters": {"v": "${workflow.input.v}"},
        "decisionCases": {name: [simple(ref) for ref in refs] for name, refs in cases.items()},
        "defaultCase": [simple("in_default")],
    }
    if kind == "SWITCH":
        task.update(evaluatorType="value-param", expression="v")
    else:
        task["caseValueParam"] = "v"
    run = Run(plan_of(tmp_path, [task, simple("after")]), {"v": value}).drive()
    assert run.sent == ran
    output = run.by_ref("sw")["outputData"]
    expected_case = "null" if value is None else "true" if value is True else str(value)
    assert (output.get("evaluationResult") or output.get("caseOutput")) == [expected_case]
    assert run.workflow["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("status", "workflow_status"),
    [("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"), ("TERMINATED", "TERMINATED")],
)
def test_terminate_ends_the_workflow_with_its_status_and_output(tmp_path, status, workflow_status):
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [
                [simple("slow")],
                [
                    simple("a"),
                    {
                        "name": "t",
                        "taskReferenceName": "stop",
                        "type": "TERMINATE",
                        "inputParameters": {
                            "terminationStatus": status,
                            "workflowOutput": {"why": "${a.output.ref}"},
                        },
                    },
                ],
            ],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["slow", "stop"]},
    ]
    run = Run(plan_of(tmp_path, tasks))
    run.finish("a", output={"ref": "a"})
    assert run.workflow["status"] == workflow_status
    assert run.workflow["output"] == {"why": "a"}
    assert run.by_ref("stop")["status"] == "COMPLETED" and run.by_ref("slow")["status"] == "CANCELED"
    assert run.workflow["reasonForIncompletion"].startswith(f"Workflow is {status} by TERMINATE task")


def test_dynamic_fork_runs_one_branch_per_input_and_joins_them(tmp_path):
    tasks = [
        {
            "name": "df",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"tasks": "${workflow.input.tasks}", "inputs": "${workflow.input.inputs}"},
            "dynamicForkTasksParam": "tasks",
            "dynamicForkTasksInputParamName": "inputs",
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN"},
    ]
    branches = [{"name": "t", "taskReferenceName": f"b{i}", "type": "SIMPLE"} for i in range(3)]
    inputs = {f"b{i}": {"n": i} for i in range(3)}
    run = Run(plan_of(tmp_path, tasks), {"tasks": branches, "inputs": inputs})
    assert run.pending == ["b0", "b1", "b2"]
    assert run.by_ref("b1")["workflowTask"]["inputParameters"] == {"n": 1}

    def double(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "COMPLETED", {"n": record["workflowTask"]["inputParameters"]["n"] * 2}

    run.drive(double)
    assert run.by_ref("join")["outputData"] == {"b0": {"n": 0}, "b1": {"n": 2}, "b2": {"n": 4}}
    assert run.workflow["status"] == "COMPLETED"


def test_dynamic_fork_of_fork_task_inputs(tmp_path):
    tasks = [
        {
            "name": "df",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskName": "t", "forkTaskInputs": [{"a": 1}, 7]},
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN"},
    ]
    run = Run(plan_of(tmp_path, tasks))
    assert run.pending == ["_t_0", "_t_1"]
    assert run.by_ref("_t_1")["workflowTask"]["inputParameters"] == {"input": 7, "__index": 1}
    run.drive()
    assert run.workflow["status"] == "COMPLETED"


def test_an_empty_dynamic_fork_joins_at_once(tmp_path):
    tasks = [
        {
            "name": "df",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskName": "t", "forkTaskInputs": []},
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN"},
    ]
    run = Run(plan_of(tmp_path, tasks))
    assert run.workflow["status"] == "COMPLETED" and run.by_ref("join")["outputData"] == {}


def test_a_dynamic_fork_with_bad_input_fails_with_a_reason(tmp_path):
    tasks = [
        {
            "name": "df",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"tasks": "oops", "inputs": {}},
            "dynamicForkTasksParam": "tasks",
            "dynamicForkTasksInputParamName": "inputs",
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN"},
    ]
    run = Run(plan_of(tmp_path, tasks))
    assert run.workflow["status"] == "FAILED"
    assert "must be a list of tasks" in run.by_ref("dyn")["reasonForIncompletion"]


def test_dynamic_runs_the_named_task(tmp_path):
    task = {
        "name": "d",
        "taskReferenceName": "dyn",
        "type": "DYNAMIC",
        "dynamicTaskNameParam": "which",
        "inputParameters": {"which": "${workflow.input.name}", "x": 1},
    }
    run = Run(plan_of(tmp_path, [task]), {"name": "resize"})
    record = run.by_ref("dyn")
    assert (record["taskType"], record["taskDefName"], run.pending) == ("resize", "resize", ["dyn"])
    run.drive()
    assert run.workflow["status"] == "COMPLETED"


def test_exclusive_join_takes_the_output_of_the_branch_that_ran(tmp_path):
    tasks = [
        {
            "name": "d",
            "taskReferenceName": "dec",
            "type": "DECISION",
            "caseValueParam": "v",
            "inputParameters": {"v": "${workflow.input.v}"},
            "decisionCases": {"a": [simple("ta")], "b": [simple("tb")]},
        },
        {"name": "x", "taskReferenceName": "xjoin", "type": "EXCLUSIVE_JOIN", "joinOn": ["ta", "tb"]},
    ]
    run = Run(plan_of(tmp_path, tasks), {"v": "b"}).drive()
    assert run.by_ref("xjoin")["outputData"] == {"ref": "tb"} and run.workflow["status"] == "COMPLETED"


def test_a_sub_workflow_is_started_and_its_end_ends_the_task(tmp_path):
    (tmp_path / "child.json").write_text(json.dumps({"name": "child", "version": 1, "tasks": [simple("c")]}))
    task = {
        "name": "s",
        "taskReferenceName": "sub",
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": "child"},
        "inputParameters": {"k": 1},
    }
    run = Run(plan_of(tmp_path, [task, simple("after")]))
    record = run.by_ref("sub")
    assert run.children == ["child"] and record["status"] == "IN_PROGRESS" and record["subWorkflowId"]
    run.finish("sub", "COMPLETED", {"r": 2})
    assert run.pending == ["after"]


def test_the_workflow_output_parameters_read_nested_tasks(tmp_path):
    tasks = [
        {
            "name": "f",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["a", "b"]},
    ]
    run = Run(plan_of(tmp_path, tasks, outputParameters={"both": "${join.output}"})).drive()
    assert run.workflow["output"] == {"both": {"a": {"ref": "a"}, "b": {"ref": "b"}}}


def loop(ref: str, condition: str, body: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "name": "l",
        "taskReferenceName": ref,
        "type": "DO_WHILE",
        "loopCondition": condition,
        "loopOver": body,
        **fields,
    }


def test_do_while_runs_the_body_then_asks_the_condition(tmp_path):
    tasks = [
        loop("lp", "if ($.lp['iteration'] < 3) { true; } else { false; }", [simple("x")]),
        simple("after"),
    ]
    run = Run(plan_of(tmp_path, tasks)).drive()
    assert run.sent == ["x__1", "x__2", "x__3", "after"]
    record = run.by_ref("lp")
    assert record["status"] == "COMPLETED" and record["outputData"]["iteration"] == 3
    assert record["outputData"]["2"] == {"x": {"ref": "x__2"}}
    assert [run.by_ref(f"x__{i}")["iteration"] for i in (1, 2, 3)] == [1, 2, 3]
    assert run.workflow["status"] == "COMPLETED"


def test_do_while_condition_reads_the_body_output_and_its_input(tmp_path):
    body = [{**simple("count"), "inputParameters": {"n": "${lp.output.iteration}"}}]
    tasks = [loop("lp", "$.count.n < $.limit", body, inputParameters={"limit": "${workflow.input.limit}"})]

    def count(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "COMPLETED", {"n": int(record["referenceTaskName"].rsplit("__", 1)[1])}

    run = Run(plan_of(tmp_path, tasks), {"limit": 4}).drive(count)
    assert run.sent == ["count__1", "count__2", "count__3", "count__4"]


def test_do_while_over_items(tmp_path):
    tasks = [loop("lp", "true", [simple("x")], items="${workflow.input.things}")]
    run = Run(plan_of(tmp_path, tasks), {"things": ["a", "b"]}).drive()
    assert run.sent == ["x__1", "x__2"]
    assert run.by_ref("lp")["outputData"]["iteration"] == 2


def test_do_while_over_no_items_completes_at_once(tmp_path):
    tasks = [loop("lp", "true", [simple("x")], items="${workflow.input.things}"), simple("after")]
    run = Run(plan_of(tmp_path, tasks), {"things": []})
    assert run.pending == ["after"] and run.by_ref("lp")["outputData"] == {"iteration": 0}


def test_a_failing_body_task_fails_the_loop_and_the_workflow(tmp_path):
    run = Run(plan_of(tmp_path, [loop("lp", "true", [simple("x")])]))
    run.finish("x__1", "FAILED")
    assert run.by_ref("lp")["status"] == "FAILED" and run.workflow["status"] == "FAILED"


def test_a_broken_condition_fails_the_loop_with_the_engine_message(tmp_path):
    run = Run(plan_of(tmp_path, [loop("lp", "$.nope.deeper > 1", [simple("x")])])).drive()
    record = run.by_ref("lp")
    assert record["status"] == "FAILED_WITH_TERMINAL_ERROR" and run.workflow["status"] == "FAILED"
    assert "loopCondition of lp" in record["reasonForIncompletion"]


def test_keep_last_n_forgets_older_iterations(tmp_path):
    tasks = [loop("lp", "$.lp['iteration'] < 5", [simple("x")], inputParameters={"keepLastN": 2})]
    run = Run(plan_of(tmp_path, tasks)).drive()
    output = run.by_ref("lp")["outputData"]
    assert sorted(k for k in output if k != "iteration") == ["4", "5"]
    assert sorted(t["referenceTaskName"] for t in run.tasks.values() if t["taskType"] == "t") == [
        "x__4",
        "x__5",
    ]


def test_a_fork_nested_in_a_fork_inside_a_loop(tmp_path):
    inner = [
        {
            "name": "f",
            "taskReferenceName": "inner",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "inner_join", "type": "JOIN", "joinOn": ["a", "b"]},
    ]
    body = [
        {"name": "f", "taskReferenceName": "outer", "type": "FORK_JOIN", "forkTasks": [inner, [simple("c")]]},
        {"name": "j", "taskReferenceName": "outer_join", "type": "JOIN", "joinOn": ["inner_join", "c"]},
    ]
    run = Run(plan_of(tmp_path, [loop("lp", "$.lp['iteration'] < 2", body)])).drive()
    assert sorted(run.sent) == ["a__1", "a__2", "b__1", "b__2", "c__1", "c__2"]
    assert run.by_ref("outer_join__2")["outputData"]["c__2"] == {"ref": "c__2"}
    assert run.workflow["status"] == "COMPLETED"


def test_switch_with_a_javascript_expression(tmp_path):
    task = {
        "name": "s",
        "taskReferenceName": "sw",
        "type": "SWITCH",
        "evaluatorType": "javascript",
        "expression": "$.size > 100 ? 'big' : 'small'",
        "inputParameters": {"size": "${workflow.input.size}"},
        "decisionCases": {"big": [simple("shrink")], "small": [simple("keep")]},
    }
    assert Run(plan_of(tmp_path, [task]), {"size": 500}).pending == ["shrink"]
    assert Run(plan_of(tmp_path, [task]), {"size": 5}).pending == ["keep"]


def test_decision_with_a_case_expression(tmp_path):
    task = {
        "name": "d",
        "taskReferenceName": "dec",
        "type": "DECISION",
        "caseExpression": "$.n % 2 == 0 ? 'even' : 'odd'",
        "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"even": [simple("e")], "odd": [simple("o")]},
    }
    assert Run(plan_of(tmp_path, [task]), {"n": 3}).pending == ["o"]


def test_failed_reference_task_names_count_retried_instances_when_the_workflow_completes(tmp_path):
    run = Run(plan_of(tmp_path, [simple("a"), simple("b")]))
    first = {**run.by_ref("a"), "status": "FAILED", "retried": True, "reasonForIncompletion": "once"}
    retry = {**first, "taskId": "a-retry", "status": "COMPLETED", "retryCount": 1, "seq": first["seq"] + 1}
    run.tasks[first["taskId"]] = first
    run.apply(decide(run.plan, run.workflow, list(run.tasks.values()), [retry]))
    run.finish("b")
    assert run.workflow["status"] == "COMPLETED"
    assert run.workflow["failedReferenceTaskNames"] == ["a"] and run.workflow["failedTaskNames"] == ["t"]


def test_a_failure_workflow_named_by_the_input(tmp_path):
    (tmp_path / "handler.json").write_text(
        json.dumps({"name": "handler", "version": 1, "tasks": [simple("h")]})
    )
    plan = plan_of(tmp_path, [simple("a")], failureWorkflow="$workflow.input.onFailure")
    assert plan.failure is None and plan.failure_from_input == "onFailure"
    run = Run(plan, {"onFailure": "handler"})
    run.finish("a", "FAILED_WITH_TERMINAL_ERROR")
    assert run.workflow["status"] == "FAILED"
    assert "conductor.failure_workflow" in run.workflow["output"]
    unknown = Run(plan, {"onFailure": "nobody"})
    unknown.finish("a", "FAILED_WITH_TERMINAL_ERROR")
    assert "conductor.failure_workflow" not in unknown.workflow["output"]  # logged, as Conductor does


@pytest.mark.parametrize("ref", ["first", "loop_task__3", "ünïcode", ""])
@pytest.mark.parametrize("attempt", [0, 1, 17])
def test_attempt_ids_are_uuid5_of_the_workflow_reference_and_attempt(ref, attempt):
    # stored executions hold these ids: the formula must not change
    import uuid

    from translator.engine.decide import attempt_id

    wf_id = "5e0f4c9a-1111-4a2b-9c3d-0123456789ab"
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"translator:{wf_id}:{ref}:{attempt}")
    assert attempt_id(wf_id, ref, attempt) == str(expected)
