"""The corpus workflows that wait for a person (HUMAN, WAIT without a time), run on a real worker pool.

An embedded run cannot end such a task from outside, so these start the workflow on a private Redis and a
``celery -A tasks worker`` with tests/corpus_workers.py, check the parked state the Java spec checks (the
task IN_PROGRESS, nothing after it scheduled), end the task with ``translator complete-task`` (Conductor's
``updateTask`` with COMPLETED) and check the end. Each expectation cites the conductor-oss Spec it mirrors
or the reference section (§); tests/test_corpus_runs.py lists these files in POOL_CASE_FILES.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_corpus
from tests.services import celery_worker, redis_server_binary, service_env, translator_cli, wait_until
from tests.test_corpus_runs import JAVA_TASKDEFS, POOL_CASE_FILES, WORKERS, stamp
from tests.test_durability import _client
from translator.runner import prepare, submit, wait

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

C, IP = "COMPLETED", "IN_PROGRESS"


class Pool:
    """A worker pool on a private Redis that runs corpus files with the Java harness's task definitions."""

    def __init__(self, url: str, taskdefs: Path) -> None:
        self.url = url
        self.taskdefs = taskdefs
        self.session, self.store = _client(url)

    def start(self, file: str, workflow_input: dict[str, Any]) -> str:
        assert file in POOL_CASE_FILES
        plan = prepare(require_corpus() / file, taskdefs=[self.taskdefs])
        return submit(self.session, plan, workflow_input)

    def parked(self, wf_id: str, ref: str) -> dict[str, Any]:
        """The execution once ``ref`` is IN_PROGRESS."""

        def ready() -> dict[str, Any] | None:
            execution = self.store.workflow(wf_id) or {}
            assert execution.get("status") in (None, "RUNNING"), (
                f"the workflow ended {execution['status']} before {ref} waited: "
                f"{execution.get('reasonForIncompletion')}"
            )
            tasks = [t for t in execution.get("tasks", []) if t["referenceTaskName"] == ref]
            return execution if tasks and tasks[-1]["status"] == IP else None

        return wait_until(ready, timeout=60, what=f"{ref} IN_PROGRESS")

    def complete(self, wf_id: str, ref: str, output: dict[str, Any] | None = None) -> None:
        args = ["complete-task", wf_id, ref, "--output", json.dumps(output or {})]
        done = translator_cli(*args, env=service_env(self.url), timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == C

    def finish(self, wf_id: str) -> dict[str, Any]:
        return wait(self.store, wf_id, timeout=60)


@pytest.fixture(scope="module")
def pool(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    require_corpus()
    directory = tmp_path_factory.mktemp("corpus-pool")
    taskdefs = directory / "java_harness_taskdefs.json"
    taskdefs.write_text(json.dumps(JAVA_TASKDEFS))
    with celery_worker(redis_url, directory / "worker.log", modules=WORKERS, concurrency=2):
        yield Pool(redis_url, taskdefs)


def _states(execution: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in execution["tasks"]]


def _task(execution: dict[str, Any], ref: str) -> dict[str, Any]:
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref][-1]


def test_a2a_multi_turn_human_answer_feeds_the_inline(pool: Pool):
    """HUMAN waits IN_PROGRESS until ended from outside (Human.start); the answer in its output feeds
    ${ask.output._a2a_text}; the graaljs INLINE's value is its result (§4 INLINE); the workflow's
    output is the last task's (§2.3)."""
    wf_id = pool.start("oss__ai__25-a2a-server-multi-turn.json", {})
    assert _states(pool.parked(wf_id, "ask")) == [("ask", IP)]
    pool.complete(wf_id, "ask", {"_a2a_text": "Tuesday at 3pm"})
    execution = pool.finish(wf_id)
    assert execution["status"] == C, execution.get("reasonForIncompletion")
    assert _states(execution) == [("ask", C), ("confirm", C)]
    confirmed = {"result": {"status": "confirmed", "when": "Tuesday at 3pm"}}
    assert _task(execution, "ask")["outputData"] == {"_a2a_text": "Tuesday at 3pm"}
    assert _task(execution, "confirm")["inputData"]["when"] == "Tuesday at 3pm"
    assert _task(execution, "confirm")["outputData"] == confirmed
    assert execution["output"] == confirmed


def test_set_variable_then_wait_keeps_the_variables(pool: Pool):
    """WaitTaskSpec 'Test workflow with set variable task': simple, SET_VARIABLE, then the WAIT is
    IN_PROGRESS with variables [var:var_test_value]; once the WAIT is completed the workflow COMPLETES
    with the same variables and output [variables:[var:var_test_value]]."""
    wf_id = pool.start("oss__th__set_variable_workflow_integration_test.json", {"var": "var_test_value"})
    waiting = pool.parked(wf_id, "wait0")
    assert _states(waiting) == [("simple", C), ("set_variable_1", C), ("wait0", IP)]
    assert waiting["variables"] == {"var": "var_test_value"}
    assert _task(waiting, "simple")["outputData"] == stamp("simple", "simple")
    pool.complete(wf_id, "wait0")
    execution = pool.finish(wf_id)
    assert execution["status"] == C, execution.get("reasonForIncompletion")
    assert _states(execution) == [("simple", C), ("set_variable_1", C), ("wait0", C)]
    assert execution["variables"] == {"var": "var_test_value"}
    assert execution["output"] == {"variables": {"var": "var_test_value"}}


def test_do_while_with_a_decision_waits_in_each_iteration(pool: Pool):
    """DoWhileSpec 'Do While task contains decision task': list [1, 2]; each iteration's INLINE picks
    the element, the SWITCH (javascript $.param > 0) takes 'true' and its WAIT is IN_PROGRESS until
    completed; after the second, ComputeNumber runs and the loop ends ($.LoopTask['iteration'] <
    $.list.length): 9 tasks, DO_WHILE iteration 2."""
    wf_id = pool.start("oss__th__do_while_with_decision_task.json", {"list": [1, 2]})
    first = pool.parked(wf_id, "WaitTask__1")
    assert _states(first) == [
        ("LoopTask", IP),
        ("GetNumberAtIndex__1", C),
        ("SwitchTask__1", C),
        ("WaitTask__1", IP),
    ]
    assert _task(first, "GetNumberAtIndex__1")["outputData"] == {"result": 1}
    assert _task(first, "SwitchTask__1")["outputData"] == {
        "evaluationResult": ["true"],
        "selectedCase": "true",
    }
    pool.complete(wf_id, "WaitTask")  # the plain reference names the newest iteration's task
    second = pool.parked(wf_id, "WaitTask__2")
    assert _states(second) == [
        ("LoopTask", IP),
        ("GetNumberAtIndex__1", C),
        ("SwitchTask__1", C),
        ("WaitTask__1", C),
        ("ComputeNumber__1", C),
        ("GetNumberAtIndex__2", C),
        ("SwitchTask__2", C),
        ("WaitTask__2", IP),
    ]
    assert _task(second, "GetNumberAtIndex__2")["outputData"] == {"result": 2}
    pool.complete(wf_id, "WaitTask__2")
    execution = pool.finish(wf_id)
    assert execution["status"] == C, execution.get("reasonForIncompletion")
    assert [status for _, status in _states(execution)] == [C] * 9
    assert _states(execution)[-1] == ("ComputeNumber__2", C)
    assert _task(execution, "LoopTask")["outputData"]["iteration"] == 2


def test_the_pool_files_are_the_ones_listed():
    """Every file of POOL_CASE_FILES has a test here (a file's name appears in one start call)."""
    source = Path(__file__).read_text()
    assert all(f'"{name}"' in source for name in POOL_CASE_FILES)
