"""Control flow for real: forks, joins, switches, dynamic forks, sub-workflows and TERMINATE on a private
redis-server with a prefork worker subprocess, and embedded (``translator run`` with no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.services import embedded_env, redis_server_binary, translator_cli
from tests.test_run_integration import DEFS, DistributedRunner, EmbeddedRunner, attempts, worker  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]


@pytest.fixture(params=["distributed", "embedded"])
def runner(request):
    if request.param == "embedded":
        return EmbeddedRunner()
    request.getfixturevalue("worker")
    return DistributedRunner(request.getfixturevalue("redis_url"))


def statuses(execution: dict[str, Any]) -> dict[str, str]:
    return {t["referenceTaskName"]: t["status"] for t in execution["tasks"]}


def test_a_fork_nested_in_a_fork_joins_inside_out(runner):
    execution = runner.run("cf_nested_fork", {"c": "see"})
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"] == {
        "a": "a",
        "b": "b",
        "c": "see",
        "joined": {"inner_join": {"a": {"v": "a"}, "b": {"v": "b"}}, "c": {"v": "see"}},
    }
    types = {t["referenceTaskName"]: t["taskType"] for t in execution["tasks"]}
    assert (types["outer"], types["inner"], types["outer_join"]) == ("FORK", "FORK", "JOIN")
    assert set(statuses(execution).values()) == {"COMPLETED"}


def test_a_dynamic_fork_of_fifty_branches(runner):
    pairs = [{"a": i, "b": 1} for i in range(50)]
    execution = runner.run("cf_dynamic_fork", {"pairs": pairs}, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    sums = execution["output"]["sums"]
    assert sums == {f"_add_{i}": {"sum": i + 1} for i in range(50)}
    joins = [t for t in execution["tasks"] if t["taskType"] == "JOIN"]
    assert len(joins) == 1 and joins[0]["status"] == "COMPLETED"


def test_a_three_level_sub_workflow_chain(runner):
    execution = runner.run("cf_sub_level1", {"v": "x"})
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"]["deep"] == "level3 got x"
    [task] = attempts(execution, "down")
    assert task["taskType"] == "SUB_WORKFLOW" and task["subWorkflowId"] == execution["output"]["child"]
    if isinstance(runner, DistributedRunner):
        child = runner.store.workflow(task["subWorkflowId"])
        assert child is not None and child["parentWorkflowId"] == execution["workflowId"]
        assert child["status"] == "COMPLETED" and child["workflowName"] == "cf_sub_level2"


def test_a_failed_branch_cancels_the_others_and_fails_the_workflow(runner):
    execution = runner.run("cf_branch_failure", {})
    assert execution["status"] == "FAILED"
    bad = attempts(execution, "bad")
    assert [t["status"] for t in bad] == ["FAILED", "FAILED"]  # retryCount 1
    assert execution["reasonForIncompletion"] == (
        f"Task {bad[-1]['taskId']} failed with status: FAILED and reason: 'ValueError: branch broke'"
    )
    assert statuses(execution)["slow"] == "CANCELED" and statuses(execution)["join"] == "CANCELED"
    assert execution["failedReferenceTaskNames"] == ["bad"]


def test_terminate_inside_a_fork_ends_the_workflow_with_its_status_and_output(runner):
    execution = runner.run("cf_terminate_in_fork", {})
    assert execution["status"] == "COMPLETED"
    assert execution["output"] == {"got": 7}
    assert execution["reasonForIncompletion"] == "enough"
    assert statuses(execution)["stop"] == "COMPLETED" and statuses(execution)["slow"] == "CANCELED"


@pytest.mark.parametrize(
    ("kind", "route", "v"), [("png", "png", "pngnullnull"), ("bmp", "bmp", "nullnullother")]
)
def test_switch_runs_the_matching_case_then_continues(runner, kind, route, v):
    execution = runner.run("cf_switch", {"kind": kind})
    assert execution["status"] == "COMPLETED"
    assert execution["output"] == {"route": route, "v": v}  # missing values render as Java's "null"


def test_a_hundred_iteration_do_while(runner):
    execution = runner.run("cf_loop_100", {"times": 100}, timeout=180)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"] == {"iterations": 100, "last": 101}  # iteration 100 adds 1
    steps = [t for t in execution["tasks"] if t["referenceTaskName"].startswith("step__")]
    assert [t["iteration"] for t in steps] == list(range(1, 101))
    assert {t["status"] for t in steps} == {"COMPLETED"}


def test_a_fork_nested_in_a_fork_inside_a_do_while(runner):
    execution = runner.run("cf_loop_forks", {})
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    loop = execution["output"]["loop"]
    assert loop["iteration"] == 3
    for i in (1, 2, 3):
        joined = loop[str(i)]["outer_join"]
        assert joined[f"inner_join__{i}"] == {f"a__{i}": {"v": i}, f"b__{i}": {"v": "b"}}
        assert joined[f"c__{i}"] == {"v": "c"}


def test_the_failure_workflow_named_by_the_input_starts():
    env = embedded_env()
    definition = str(DEFS / "cf_failing_by_input.json")
    stdin = '{"onFailure": "on_failure"}'
    result = translator_cli("run", definition, "--input", "-", env=env, stdin=stdin)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    failure_id = json.loads(result.stdout)["conductor.failure_workflow"]
    assert f"failure workflow on_failure {failure_id} COMPLETED" in result.stderr
