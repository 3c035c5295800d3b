"""Task timeouts (timeoutSeconds + timeoutPolicy) on real prefork workers: the soft time limit
interrupts the worker function, the hard one kills a step that ignores it."""

from __future__ import annotations

import pytest
from celery import Celery

from tests.services import ROOT, celery_worker, redis_server, redis_server_binary
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

DEFS = ROOT / "tests" / "fixtures" / "runtime"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("timeouts")
    with (
        redis_server(base / "redis") as url,
        celery_worker(
            url, base / "worker.log", concurrency=2, extra_env={"TRANSLATOR_HARD_TIMEOUT_GRACE": "1"}
        ) as worker,
    ):
        client = Celery("timeouts-client", broker=url)
        client.conf.update(task_serializer="json", accept_content=["json"], translator_hard_timeout_grace=1)
        install(client)
        store = RedisStore(url)
        session = Session(client, store, embedded=False)

        def go(name: str) -> dict:
            return wait(store, submit(session, prepare(DEFS / f"{name}.json"), {}), timeout=60)

        go.worker = worker  # type: ignore[attr-defined]
        yield go


def _attempts(execution, ref="t"):
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref]


def test_retry_policy_retries_then_times_the_workflow_out(run):
    execution = run("timeout_retry")
    tries = _attempts(execution)
    assert [t["status"] for t in tries] == ["TIMED_OUT", "TIMED_OUT"]
    # The soft limit interrupted each 3 s attempt at 1 s (however late the signal came on a loaded
    # machine: without it the attempt would have COMPLETED, or been killed at the hard limit).
    assert all(t["reasonForIncompletion"].endswith("(soft time limit)") for t in tries)
    assert all((t["endTime"] - t["startTime"]) / 1000 >= 0.9 for t in tries)
    assert tries[0]["reasonForIncompletion"].startswith("Task timed out after 1 seconds.")
    assert execution["status"] == "TIMED_OUT"
    assert execution["reasonForIncompletion"].startswith(
        f"Task {tries[-1]['taskId']} failed with status: TIMED_OUT"
    )
    assert _attempts(execution, "after") == []


def test_time_out_wf_policy_ends_the_workflow_at_once(run):
    execution = run("timeout_workflow")
    assert [t["status"] for t in _attempts(execution)] == ["TIMED_OUT"]  # retryCount 2, no retry
    assert execution["status"] == "TIMED_OUT"


def test_alert_only_policy_lets_the_task_finish(run):
    execution = run("timeout_alert")
    assert execution["status"] == "COMPLETED"
    task = _attempts(execution)[0]
    assert task["status"] == "COMPLETED" and (task["endTime"] - task["startTime"]) / 1000 >= 1.5
    assert execution["output"] == {"prev": "COMPLETED"}
    assert "over timeoutSeconds 1 (timeoutPolicy ALERT_ONLY)" in run.worker.text()


def test_hard_time_limit_kills_the_step_and_the_policy_still_applies(run):
    execution = run("timeout_hard")
    tries = _attempts(execution)
    assert [t["status"] for t in tries] == ["TIMED_OUT", "TIMED_OUT"]
    assert all(t["reasonForIncompletion"].endswith("(hard time limit)") for t in tries)
    assert execution["status"] == "TIMED_OUT"
    assert run.worker.process.poll() is None  # the pool replaced the killed process
