"""Deadlines the sweeper enforces, on real prefork workers and a private Redis: responseTimeoutSeconds
(a hung worker, a killed worker), pollTimeoutSeconds (no worker consumes the queue), totalTimeoutSeconds,
the workflow's timeoutSeconds, failureWorkflow, and long delays parked in the store."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import redis
from celery import Celery

from tests.services import ROOT, celery_worker, redis_server_binary, wait_started, wait_until
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.records import FAILURE_WORKFLOW_KEY, failure_workflow_id
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

DEFS = ROOT / "tests" / "fixtures" / "runtime"


class Client:
    def __init__(self, url: str) -> None:
        app = Celery("deadlines-client", broker=url)
        app.conf.update(task_serializer="json", accept_content=["json"], translator_park_after=1)
        install(app)
        self.url = url
        self.store = RedisStore(url)
        self.session = Session(app, self.store, embedded=False)
        self.redis = redis.Redis.from_url(url, decode_responses=True)

    def submit(self, name: str, workflow_input: dict | None = None) -> str:
        return submit(self.session, prepare(DEFS / f"{name}.json"), workflow_input or {})

    def run(self, name: str, workflow_input: dict | None = None, timeout: float = 60) -> dict:
        return wait(self.store, self.submit(name, workflow_input), timeout=timeout)

    def wait_task(self, wf_id: str, status: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.store.tasks(wf_id)
            if tasks and tasks[-1]["status"] == status:
                return tasks[-1]
            time.sleep(0.05)
        raise AssertionError(f"no task of {wf_id} became {status}: {self.store.tasks(wf_id)}")


@pytest.fixture(scope="module")
def pool(redis_url, tmp_path_factory):
    """A client and one prefork worker (its sweeper checks deadlines every 0.2 s)."""
    log = tmp_path_factory.mktemp("deadlines") / "worker.log"
    env = {"TRANSLATOR_SWEEP_INTERVAL": "0.2", "TRANSLATOR_PARK_AFTER": "1"}
    with celery_worker(redis_url, log, concurrency=2, extra_env=env) as worker:
        client = Client(redis_url)
        client.worker = worker  # type: ignore[attr-defined]
        yield client


def _kill_worker(worker) -> None:
    """SIGKILL a worker's pool processes and its main process (nothing is acknowledged)."""
    subprocess.run(["pkill", "-KILL", "-P", str(worker.process.pid)], check=False)
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(10)


def test_response_timeout_retries_the_task_of_a_killed_worker(redis_url, tmp_path):
    client = Client(redis_url)
    env = {"TRANSLATOR_SWEEP_INTERVAL": "0.2"}  # default visibility timeout: no redelivery for hours
    with celery_worker(
        redis_url, tmp_path / "victim.log", concurrency=1, name="victim", extra_env=env
    ) as victim:
        wf_id = client.submit("response_killed")
        client.wait_task(wf_id, "IN_PROGRESS")
        _kill_worker(victim)
    with celery_worker(redis_url, tmp_path / "rescuer.log", concurrency=1, name="rescuer", extra_env=env):
        execution = wait(client.store, wf_id, timeout=60)
    assert execution["status"] == "COMPLETED"
    first, second = execution["tasks"]
    assert first["status"] == "TIMED_OUT" and second["status"] == "COMPLETED"
    assert first["reasonForIncompletion"] == (
        f"responseTimeout: 2 exceeded for the taskId: {first['taskId']} with Task Definition: hang_first"
    )
    assert second["retriedTaskId"] == first["taskId"] and second["outputData"] == {"attempt": 1}
    # The rescuer's sweeper timed the attempt out (the broker would give the message back only after
    # the default visibility timeout, hours), and the retry ran on the rescuer.
    assert first["workerId"].startswith("victim-") and second["workerId"].startswith("rescuer-")


def test_response_timeout_of_a_hung_worker_refuses_its_late_result(pool):
    execution = pool.run("response_hung")
    assert execution["status"] == "COMPLETED"
    attempts = [t for t in execution["tasks"] if t["referenceTaskName"] == "t"]
    assert [t["status"] for t in attempts] == ["TIMED_OUT", "COMPLETED"]
    assert execution["output"] == {"prev": 1}
    # The hung attempt's function returns after 6 s, then its step tries to record the late result
    # (refused: its message ends FAILURE, as the TIMED_OUT record it mirrors).
    returned = f"[{attempts[0]['celeryTaskId']}] raised expected: StepFailed('TIMED_OUT"
    wait_until(lambda: returned in pool.worker.text(), timeout=60, what=returned, interval=0.1)
    assert attempts[0]["taskId"] in pool.redis.smembers("test:late")
    after = pool.store.workflow(execution["workflowId"])
    assert [t["status"] for t in after["tasks"]] == ["TIMED_OUT", "COMPLETED", "COMPLETED"]
    assert after["output"] == execution["output"]


def test_response_timeout_frees_the_concurrency_slot_of_the_hung_attempt(pool):
    execution = pool.run("response_limited")  # concurrentExecLimit 1; the first attempt hangs 6 s
    assert execution["status"] == "COMPLETED" and execution["output"] == {"prev": 1}
    hung, retry = (t for t in execution["tasks"] if t["referenceTaskName"] == "t")
    # The hung attempt holds the slot until its function returns, 6 s after it started: the retry
    # started before that only if the response timeout (2 s) freed the slot.
    assert hung["status"] == "TIMED_OUT" and retry["status"] == "COMPLETED"
    assert retry["startTime"] < hung["startTime"] + 6000


def test_poll_timeout_retry_policy_retries_then_times_out(pool):
    began = time.monotonic()
    execution = pool.run("poll_retry")
    assert time.monotonic() - began >= 3.5  # two attempts, 2 s each, never picked up
    assert [t["status"] for t in execution["tasks"]] == ["TIMED_OUT", "TIMED_OUT"]
    assert execution["tasks"][0]["reasonForIncompletion"].startswith("Task poll timed out after 2 seconds.")
    assert execution["tasks"][0]["reasonForIncompletion"].endswith(
        "Poll timeout configured as 2 seconds. Timeout policy configured to RETRY"
    )
    assert execution["status"] == "TIMED_OUT"


def test_poll_timeout_time_out_wf_policy_ends_the_workflow(pool):
    execution = pool.run("poll_workflow")
    assert [t["status"] for t in execution["tasks"]] == ["TIMED_OUT"]  # retryCount 2, no retry
    assert execution["status"] == "TIMED_OUT"


def test_poll_timeout_alert_only_keeps_the_task_waiting(pool, redis_url, tmp_path):
    wf_id = pool.submit("poll_alert")
    alerted = f"workflow {wf_id} task t: Task poll timed out after"
    wait_until(lambda: alerted in pool.worker.text(), timeout=30, what=alerted, interval=0.1)
    assert pool.store.status(wf_id).value == "RUNNING"
    assert pool.store.tasks(wf_id)[0]["status"] == "SCHEDULED"
    # Expired messages of the other poll tests are dropped by this worker; this one runs.
    with celery_worker(
        redis_url, tmp_path / "late.log", concurrency=1, name="late", queues="noop-unserved"
    ) as late:
        execution = wait(pool.store, wf_id, timeout=30)
    assert execution["status"] == "COMPLETED"
    assert late.text().count("Discarding revoked task") == 3  # the expired attempts of the other tests


def test_total_timeout_stops_a_task_waiting_for_its_retry(pool):
    execution = pool.run("total_timeout")  # always fails; retryCount 5 every 2 s; total 3 s
    assert execution["status"] == "TIMED_OUT"
    statuses = [t["status"] for t in execution["tasks"]]
    assert statuses[-1] == "TIMED_OUT" and set(statuses[:-1]) == {"FAILED"}
    assert len(statuses) < 6  # the retries were cut short, not spent (they would end FAILED)
    first, last = execution["tasks"][0], execution["tasks"][-1]
    assert last["endTime"] - first["scheduledTime"] >= 3000  # not before the budget was spent
    assert "exceeded total timeout of 3 seconds" in execution["tasks"][-1]["reasonForIncompletion"]


def test_workflow_timeout_cancels_and_stops_the_running_task_and_starts_the_failure_workflow(pool):
    execution = pool.run("workflow_timeout")  # timeoutSeconds 2; its task runs 30 s
    assert execution["status"] == "TIMED_OUT"
    assert 2000 <= execution["endTime"] - execution["startTime"] < 30_000  # the deadline ended it
    assert execution["reasonForIncompletion"].startswith("Workflow timed out after 2 seconds.")
    assert execution["reasonForIncompletion"].endswith("Timeout policy configured to TIME_OUT_WF")
    [task] = execution["tasks"]
    assert task["status"] == "CANCELED"
    failure_id = execution["output"][FAILURE_WORKFLOW_KEY]
    assert failure_id == failure_workflow_id(execution["workflowId"])
    handler = wait_started(pool.store, failure_id)  # created right after the failed workflow ends
    assert handler["status"] == "COMPLETED"
    assert handler["output"]["status"] == "TIMED_OUT" and handler["output"]["failedStatus"] == "TIMED_OUT"
    assert "taskId" not in handler["input"]  # no task failed: failureTaskId is absent
    terminated = f"Terminating {task['celeryTaskId']}"  # revoked: its process gets SIGTERM
    wait_until(lambda: terminated in pool.worker.text(), timeout=30, what=terminated, interval=0.1)
    assert task["taskId"] not in pool.redis.smembers("test:late")


def test_workflow_timeout_alert_only_is_logged(pool):
    execution = pool.run("workflow_timeout_alert")
    assert execution["status"] == "COMPLETED"
    assert "Workflow timed out after 1 seconds" in pool.worker.text()


def test_failure_workflow_gets_conductors_input(pool):
    execution = pool.run("failing_with_handler", {"original": "kept"})
    assert execution["status"] == "FAILED"
    [task] = execution["tasks"]
    failure_id = execution["output"][FAILURE_WORKFLOW_KEY]
    handler = wait_started(pool.store, failure_id)
    assert handler["status"] == "COMPLETED"
    assert handler["workflowName"] == "on_failure"
    assert handler["output"] == {
        "failedId": execution["workflowId"],
        "status": "FAILED",
        "reason": execution["reasonForIncompletion"],
        "taskId": task["taskId"],
        "original": "kept",
        "failedStatus": "FAILED",
    }
    failed = handler["input"]["failedWorkflow"]
    assert failed["workflowId"] == execution["workflowId"] and failed["tasks"][0]["status"] == "FAILED"


def test_long_delays_wait_in_the_store_not_the_broker(pool):
    wf_id = pool.submit("parked")  # startDelay 3 and retryDelaySeconds 3, parked after 1 s

    def parked() -> bool:
        waiting = pool.redis.zrange(pool.store.deadlines_key, 0, -1)
        return any('"kind": "wake"' in member and wf_id in member for member in waiting)

    wait_until(parked, timeout=30, what="the first attempt parked in the store")
    assert pool.redis.llen("celery") == 0  # no message waits in the queue meanwhile
    execution = wait(pool.store, wf_id, timeout=30)
    assert execution["status"] == "COMPLETED"
    first, second = execution["tasks"]
    assert first["startTime"] - first["scheduledTime"] >= 2900
    assert second["startTime"] - first["endTime"] >= 2900
    assert first["pollCount"] == 1 and second["pollCount"] == 1


def test_finished_workflows_leave_no_deadlines(pool):
    ids = [pool.submit("pair", {"i": i}) for i in range(20)]
    for wf_id in ids:
        assert wait(pool.store, wf_id, timeout=60)["status"] == "COMPLETED"

    def left() -> list[str]:
        members = pool.redis.zrange(pool.store.deadlines_key, 0, -1)
        return [m for m in members if any(wf_id in m for wf_id in ids)]

    # cleared as each workflow ends (the last writes may land just after the status)
    wait_until(lambda: not left(), timeout=30, what="deadlines of finished workflows cleared")


def _refs(execution: dict, ref: str) -> list[dict]:
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref]


def test_wait_timeout_retry_policy_waits_again_then_times_the_workflow_out(pool):
    # DeciderService.checkTaskTimeout applies to a WAIT with a task definition; the retry is a new
    # record that waits again after retryDelaySeconds (kept as its startDelayInSeconds)
    execution = pool.run("wait_timeout_retry", {"note": "n"})
    first, second = _refs(execution, "w")
    assert [first["status"], second["status"]] == ["TIMED_OUT", "TIMED_OUT"]
    reason = "Timeout configured as 1 seconds. Timeout policy configured to RETRY"
    assert (
        first["reasonForIncompletion"].startswith("Task timed out after ")
        and reason in first["reasonForIncompletion"]
    )
    assert first["retried"] is True and second["retriedTaskId"] == first["taskId"]
    assert second["retryCount"] == 1 and second["taskId"] != first["taskId"]
    assert second["startDelayInSeconds"] == 1 and second["inputData"] == {"note": "n"}
    assert second["startTime"] - first["endTime"] >= 900  # its retry delay
    assert second["endTime"] - second["startTime"] >= 1900  # startTime + startDelay + timeoutSeconds
    assert execution["status"] == "TIMED_OUT" and _refs(execution, "after") == []
    assert execution["reasonForIncompletion"].startswith(
        f"Task {second['taskId']} failed with status: TIMED_OUT and reason: 'Task timed out after "
    )


def test_wait_timeout_shorter_than_its_duration_time_out_wf_ends_the_workflow(pool):
    wf_id = pool.submit("wait_timeout_workflow")
    execution = wait(pool.store, wf_id, timeout=60)
    (waiting,) = _refs(execution, "w")  # retryCount 2, but TIME_OUT_WF retries nothing
    assert waiting["status"] == "TIMED_OUT" and waiting["waitTimeout"] - waiting["startTime"] == 3600 * 1000
    assert waiting["reasonForIncompletion"].endswith(
        "Timeout configured as 1 seconds. Timeout policy configured to TIME_OUT_WF"
    )
    assert execution["status"] == "TIMED_OUT"
    # its hour-long ``wait`` deadline went with it
    members = lambda: [m for m in pool.redis.zrange(pool.store.deadlines_key, 0, -1) if wf_id in m]  # noqa: E731
    wait_until(lambda: not members(), timeout=30, what=f"deadlines of {wf_id} cleared")


def test_wait_timeout_alert_only_lets_the_wait_finish(pool):
    execution = pool.run("wait_timeout_alert")
    (waiting,) = _refs(execution, "w")
    assert waiting["status"] == "COMPLETED" and waiting["endTime"] - waiting["startTime"] >= 1900
    assert execution["status"] == "COMPLETED" and execution["output"] == {"prev": "COMPLETED"}


def test_human_response_timeout_is_retried_then_times_the_workflow_out(pool):
    # DeciderService.isResponseTimedOut: nothing updates a HUMAN task; the retry rules apply
    # (not the TIME_OUT_WF timeoutPolicy), and a HUMAN retry starts at once
    execution = pool.run("human_response")
    first, second = _refs(execution, "approve")
    for record in (first, second):
        assert record["status"] == "TIMED_OUT"
        assert record["reasonForIncompletion"] == (
            f"responseTimeout: 1 exceeded for the taskId: {record['taskId']} with Task Definition: "
            "human_response_def"
        )
    assert second["retriedTaskId"] == first["taskId"] and second["retryCount"] == 1
    assert execution["status"] == "TIMED_OUT"


def test_a_wait_failed_from_outside_with_retries_left_waits_again(pool):
    from translator.runtime.complete import complete_task

    wf_id = pool.submit("wait_failed_retry")
    first = pool.wait_task(wf_id, "IN_PROGRESS")
    time.sleep(1.5)  # longer than its responseTimeoutSeconds, which a WAIT does not time out on
    assert pool.store.tasks(wf_id)[-1]["status"] == "IN_PROGRESS"
    complete_task(pool.session.app, pool.store, wf_id, "w", "FAILED", reason="not yet")
    retry = pool.wait_task(wf_id, "IN_PROGRESS")
    assert retry["retriedTaskId"] == first["taskId"] and retry["retryCount"] == 1
    complete_task(pool.session.app, pool.store, wf_id, "w", "COMPLETED")
    execution = wait(pool.store, wf_id, timeout=60)
    assert [t["status"] for t in _refs(execution, "w")] == ["FAILED", "COMPLETED"]
    assert execution["status"] == "COMPLETED" and execution["output"] == {"prev": "COMPLETED"}


def test_task_timeouts_wait_while_the_workflow_is_paused_and_apply_at_resume(pool):
    # DeciderService.decide checks no task timeout of a PAUSED workflow; resume decides, and then the
    # poll timeout (2 s, TIME_OUT_WF; the task's queue is unserved) ends the workflow
    from translator.runtime import lifecycle

    wf_id = pool.submit("poll_workflow")
    lifecycle.pause(pool.session.app, pool.store, wf_id)
    deadlines = pool.store.deadlines_key
    seen: set[float] = set()

    def put_off_three_times() -> bool:
        for member, due in pool.redis.zrange(deadlines, 0, -1, withscores=True):
            if json.loads(member)["wf"] == wf_id and json.loads(member)["kind"] == "poll":
                seen.add(due)
        return len(seen) >= 4  # registered, then looked at and put off again and again

    wait_until(put_off_three_times, timeout=30, what="the poll deadline put off while paused", interval=0.05)
    assert pool.store.status(wf_id).value == "PAUSED"
    assert [t["status"] for t in pool.store.tasks(wf_id)] == ["SCHEDULED"]
    lifecycle.resume(pool.session.app, pool.store, wf_id)
    execution = wait(pool.store, wf_id, timeout=30)
    assert execution["status"] == "TIMED_OUT"
    assert execution["tasks"][0]["reasonForIncompletion"].startswith("Task poll timed out after")
