"""Lifecycle operations on a real worker pool (private redis-server, prefork ``celery -A tasks worker``):
pause / resume, terminate, retry, restart, rerun (from the start and from a task), skip a task, remove,
each with Conductor's preconditions and messages (reference §6.3), through the runtime functions and
the ``translator`` command line."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.services import celery_worker, redis_server_binary, service_env, translator_cli, wait_until
from tests.test_durability import _client
from tests.test_run_integration import DEFS
from translator.errors import ConflictError, UsageError, WorkflowNotFound
from translator.runner import prepare, submit, wait
from translator.runtime import lifecycle
from translator.runtime.complete import complete_task
from translator.store.search import search

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

FLOW = DEFS / "lc_flow.json"


@pytest.fixture(scope="module")
def pool(redis_url, tmp_path_factory):
    with celery_worker(redis_url, tmp_path_factory.mktemp("lifecycle") / "worker.log", concurrency=3):
        session, store = _client(redis_url)
        yield session, store, redis_url


def _tasks(execution: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref]


def _states(execution: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in execution["tasks"]]


def _start(session, sleep: float = 0.0, failures: int = 0) -> str:
    return submit(session, prepare(FLOW), {"sleep": sleep, "failures": failures})


def _task_status(store, wf_id: str, ref: str) -> str | None:
    found = _tasks(store.workflow(wf_id) or {"tasks": []}, ref)
    return found[-1]["status"] if found else None


def _cli(url: str, *args: str):
    return translator_cli(*args, env=service_env(url), timeout=120)


def test_pause_holds_the_next_task_until_resume(pool):
    session, store, url = pool
    wf_id = _start(session, sleep=1.5)
    wait_until(lambda: _task_status(store, wf_id, "t1") == "IN_PROGRESS", timeout=60, what="t1 running")
    result = _cli(url, "pause", wf_id)
    assert result.returncode == 0, result.stderr
    assert store.workflow(wf_id)["status"] == "PAUSED"
    lifecycle.pause(session.app, store, wf_id)  # already paused: nothing to do
    # t1 still ends; the write that stores its end decides nothing new while PAUSED
    wait_until(lambda: _task_status(store, wf_id, "t1") == "COMPLETED", timeout=60, what="t1 completed")
    paused = store.workflow(wf_id)
    assert paused["status"] == "PAUSED"
    assert _states(paused) == [("t1", "COMPLETED")]
    with pytest.raises(ConflictError, match=r"can be skipped|not running so the task referenced by t2"):
        lifecycle.skip_task(session.app, store, wf_id, "t2")
    result = _cli(url, "resume", wf_id)
    assert result.returncode == 0, result.stderr
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert [s for _, s in _states(execution)] == ["COMPLETED"] * 3
    assert execution["lastRetriedTime"] > 0
    with pytest.raises(ConflictError, match=rf"The workflow {wf_id} is not PAUSED so cannot resume. "):
        lifecycle.resume(session.app, store, wf_id)
    result = _cli(url, "pause", wf_id)
    assert result.returncode == 1
    assert "has ended, status cannot be updated." in result.stderr


def test_retry_schedules_the_failed_task_again_as_a_new_attempt(pool):
    session, store, url = pool
    wf_id = _start(session, failures=1)
    failed = wait(store, wf_id, timeout=120)
    assert failed["status"] == "FAILED"
    first = _tasks(failed, "t2")[0]
    running = _start(session, sleep=30)
    with pytest.raises(ConflictError, match="Workflow is still running"):
        lifecycle.retry(session.app, store, running)
    lifecycle.terminate(session.app, store, running, "not needed")  # nothing left running
    result = _cli(url, "retry", wf_id)
    assert result.returncode == 0, result.stderr
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    t2 = _tasks(execution, "t2")
    assert [(t["status"], t["retryCount"]) for t in t2] == [("FAILED", 0), ("COMPLETED", 1)]
    assert t2[0]["retried"] is True and t2[1]["retriedTaskId"] == first["taskId"]
    assert t2[1]["taskId"] != first["taskId"]
    assert execution["output"] == {"attempt": 1}
    assert execution.get("reasonForIncompletion") is None
    assert execution["lastRetriedTime"] >= failed["endTime"]
    with pytest.raises(ConflictError, match=r"There are no retryable tasks! Use restart"):
        lifecycle.retry(session.app, store, wf_id)


def test_restart_runs_it_again_from_the_start_with_the_same_id(pool):
    session, store, url = pool
    wf_id = _start(session)
    done = wait(store, wf_id, timeout=120)
    assert done["status"] == "COMPLETED"
    result = _cli(url, "restart", wf_id)
    assert result.returncode == 0, result.stderr
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED"
    assert execution["workflowId"] == wf_id
    assert [s for _, s in _states(execution)] == ["COMPLETED"] * 3  # the earlier run's records are gone
    assert execution["createTime"] > done["createTime"]
    assert [t["seq"] for t in execution["tasks"]] == [1, 2, 3]
    running = _start(session, sleep=30)
    with pytest.raises(ConflictError, match=r"is not in terminal state, unable to restart\."):
        lifecycle.restart(session.app, store, running)
    lifecycle.terminate(session.app, store, running, "done with it")


def test_terminate_then_rerun_from_the_start_with_new_input(pool):
    """The running task is stopped (revoked) when terminated; the rerun uses its task id again, so
    the workers forget that revocation and the task runs."""
    session, store, url = pool
    wf_id = submit(session, prepare(FLOW), {"sleep": 60, "failures": 0}, correlation_id="c-1")
    wait_until(lambda: _task_status(store, wf_id, "t1") == "IN_PROGRESS", timeout=60, what="t1 running")
    result = _cli(url, "terminate", wf_id, "--reason", "operator said so")
    assert result.returncode == 0, result.stderr
    ended = store.workflow(wf_id)
    assert ended["status"] == "TERMINATED"
    assert ended["reasonForIncompletion"] == "operator said so"
    assert _states(ended) == [("t1", "CANCELED")]
    lifecycle.terminate(session.app, store, wf_id, "again")  # already TERMINATED: nothing changes
    assert store.workflow(wf_id)["reasonForIncompletion"] == "operator said so"
    old_t1 = _tasks(ended, "t1")[0]["taskId"]
    result = _cli(url, "rerun", wf_id, "--input", '{"sleep": 0.1, "failures": 0}', "--correlation-id", "c-9")
    assert result.returncode == 0, result.stderr
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["input"] == {"sleep": 0.1, "failures": 0}
    assert execution["correlationId"] == "c-9"
    found = {c: search(store, query=f"correlationId = '{c}'")["results"] for c in ("c-1", "c-9")}
    assert [r["workflowId"] for r in found["c-9"]] == [wf_id] and found["c-1"] == []
    assert _tasks(execution, "t1")[0]["taskId"] == old_t1  # the same attempt id ran this time
    with pytest.raises(ConflictError, match=r"Cannot terminate a COMPLETED workflow\."):
        lifecycle.terminate(session.app, store, wf_id)


def test_rerun_from_a_task_keeps_what_came_before_it(pool):
    session, store, _url = pool
    wf_id = _start(session, failures=1)
    failed = wait(store, wf_id, timeout=120)
    assert failed["status"] == "FAILED"
    t1, t2 = _tasks(failed, "t1")[0], _tasks(failed, "t2")[0]
    with pytest.raises(UsageError, match="Task nope not found"):
        lifecycle.rerun(session.app, store, wf_id, {"reRunFromTaskId": "nope"})
    lifecycle.rerun(
        session.app, store, wf_id, {"reRunFromTaskId": t2["taskId"], "taskInput": {"failures": 0}}
    )
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert _tasks(execution, "t1") == [t1]  # untouched
    [again] = _tasks(execution, "t2")
    assert again["taskId"] == t2["taskId"] and again["inputData"] == {"failures": 0}
    assert again["status"] == "COMPLETED" and again["outputData"]["attempt"] == 0
    assert _tasks(execution, "t3")[0]["status"] == "COMPLETED"
    assert execution["failedReferenceTaskNames"] == []


def test_skip_a_task_before_it_is_reached(pool):
    session, store, url = pool
    wf_id = _start(session, sleep=1.5, failures=5)
    wait_until(lambda: _task_status(store, wf_id, "t1") is not None, timeout=60, what="t1")
    with pytest.raises(
        ConflictError, match="The task referenced by nope does not exist in the WorkflowDefinition"
    ):
        lifecycle.skip_task(session.app, store, wf_id, "nope")
    with pytest.raises(ConflictError, match="The task referenced t1 has already been processed"):
        lifecycle.skip_task(session.app, store, wf_id, "t1")
    result = _cli(url, "skip-task", wf_id, "t2", "--output", '{"attempt": 7}')
    assert result.returncode == 0, result.stderr
    execution = wait(store, wf_id, timeout=120)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert _states(execution) == [("t1", "COMPLETED"), ("t2", "SKIPPED"), ("t3", "COMPLETED")]
    assert _tasks(execution, "t2")[0]["outputData"] == {"attempt": 7}
    assert execution["output"] == {"attempt": 7}
    table = _cli(url, "status", wf_id, "--table")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"lc_flow v1  COMPLETED  {wf_id}"
    assert lines[1].split() == ["SEQ", "REFERENCE", "TYPE", "STATUS", "ATTEMPT", "TOOK", "REASON"]
    assert [line.split()[:4] for line in lines[2:]] == [
        ["1", "t1", "sleepy", "COMPLETED"],
        ["2", "t2", "flaky", "SKIPPED"],
        ["3", "t3", "echo", "COMPLETED"],
    ]


def test_remove_deletes_the_execution(pool):
    session, store, url = pool
    wf_id = _start(session, sleep=30)
    wait_until(lambda: _task_status(store, wf_id, "t1") == "IN_PROGRESS", timeout=60, what="t1 running")
    result = _cli(url, "remove", wf_id)
    assert result.returncode == 0, result.stderr
    assert store.workflow(wf_id) is None
    with pytest.raises(WorkflowNotFound, match=f"No such workflow found by id: {wf_id}"):
        lifecycle.pause(session.app, store, wf_id)
    result = _cli(url, "status", wf_id)
    assert result.returncode == 1


def test_retry_after_a_fork_failed_runs_the_canceled_branch_and_the_join_again(pool):
    """The failing branch fails the workflow: the other branch is CANCELED (and stopped), the JOIN
    CANCELED. Retry schedules both branch tasks again and sets the JOIN IN_PROGRESS in place."""
    session, store, _url = pool
    wf_id = submit(session, prepare(DEFS / "lc_fork.json"), {"sleep": 30})
    failed = wait(store, wf_id, timeout=120)
    assert failed["status"] == "FAILED"
    states = dict(_states(failed))
    assert states["shaky"] == "FAILED" and states["slow"] == "CANCELED" and states["join"] == "CANCELED"
    join_id = _tasks(failed, "join")[0]["taskId"]
    lifecycle.retry(session.app, store, wf_id)
    reopened = store.workflow(wf_id)
    assert reopened["status"] == "RUNNING"
    assert _tasks(reopened, "join")[0]["status"] == "IN_PROGRESS"
    wait_until(lambda: _task_status(store, wf_id, "slow") == "IN_PROGRESS", timeout=60, what="slow again")
    wait_until(lambda: _task_status(store, wf_id, "shaky") == "COMPLETED", timeout=60, what="shaky again")
    lifecycle.terminate(session.app, store, wf_id, "enough")  # the second attempt of slow is stopped too
    ended = store.workflow(wf_id)
    assert ended["status"] == "TERMINATED"
    assert [t["status"] for t in _tasks(ended, "shaky")] == ["FAILED", "COMPLETED"]
    assert [t["status"] for t in _tasks(ended, "slow")] == ["CANCELED", "CANCELED"]
    assert [t["taskId"] for t in _tasks(ended, "join")] == [join_id]


def test_retry_waits_again_for_a_human_task_and_starts_a_new_sub_workflow(pool):
    """A HUMAN ended FAILED_WITH_TERMINAL_ERROR from outside fails the workflow; retry makes a new
    HUMAN attempt that waits again. The sub-workflow after it fails; retry starts a new child
    workflow (a new SUB_WORKFLOW attempt, a new subWorkflowId)."""
    session, store, _url = pool
    wf_id = submit(session, prepare(DEFS / "lc_sub.json"), {})
    wait_until(lambda: _task_status(store, wf_id, "approve") == "IN_PROGRESS", timeout=60, what="HUMAN")
    complete_task(session.app, store, wf_id, "approve", "FAILED_WITH_TERMINAL_ERROR", reason="no")
    assert wait(store, wf_id, timeout=60)["status"] == "FAILED"
    lifecycle.retry(session.app, store, wf_id)
    waiting = store.workflow(wf_id)
    assert waiting["status"] == "RUNNING"
    assert [(t["status"], t["retryCount"]) for t in _tasks(waiting, "approve")] == [
        ("FAILED_WITH_TERMINAL_ERROR", 0),
        ("IN_PROGRESS", 1),
    ]
    complete_task(session.app, store, wf_id, "approve", "COMPLETED", {"ok": True})
    failed = wait(store, wf_id, timeout=120)
    assert failed["status"] == "FAILED"
    [first] = _tasks(failed, "sub")
    assert first["status"] == "FAILED" and "child broke" in first["reasonForIncompletion"]
    lifecycle.retry(session.app, store, wf_id)
    again = wait(store, wf_id, timeout=120)
    assert again["status"] == "FAILED"
    subs = _tasks(again, "sub")
    assert [(t["status"], t["retryCount"]) for t in subs] == [("FAILED", 0), ("FAILED", 1)]
    assert subs[1]["subWorkflowId"] != subs[0]["subWorkflowId"]
    assert subs[1]["retriedTaskId"] == subs[0]["taskId"]
    child = store.workflow(subs[1]["subWorkflowId"])
    assert child["status"] == "FAILED" and child["parentWorkflowId"] == wf_id
    assert store.workflow(subs[0]["subWorkflowId"])["status"] == "FAILED"  # the first child is kept


def test_retry_runs_a_failed_inline_task_again(pool):
    """An INLINE script that throws fails the workflow; retry runs it again as a new attempt (its
    input resolved again), here once its time has come, and the workflow goes on."""
    session, store, _url = pool
    t = int(time.time() * 1000) + 1500
    wf_id = submit(session, prepare(DEFS / "lc_inline.json"), {"t": t})
    failed = wait(store, wf_id, timeout=60)
    assert failed["status"] == "FAILED"
    [first] = _tasks(failed, "gate")
    assert first["status"] == "FAILED_WITH_TERMINAL_ERROR" and "too early" in first["reasonForIncompletion"]
    wait_until(lambda: time.time() * 1000 > t + 50, timeout=30, what="the gate's time")
    lifecycle.retry(session.app, store, wf_id)
    execution = wait(store, wf_id, timeout=60)
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    gates = _tasks(execution, "gate")
    assert [(g["status"], g["retryCount"]) for g in gates] == [
        ("FAILED_WITH_TERMINAL_ERROR", 0),
        ("COMPLETED", 1),
    ]
    assert gates[1]["retriedTaskId"] == first["taskId"] and gates[1]["outputData"] == {"result": "open"}
    assert execution["output"] == {"gate": "open"}
