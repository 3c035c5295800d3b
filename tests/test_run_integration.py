"""Running workflows for real: a private redis-server, a prefork ``celery -A tasks worker``
subprocess, and the embedded mode (``translator run`` with no broker) on the same definitions."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.services import (
    ROOT,
    celery_worker,
    embedded_env,
    free_port,
    redis_server_binary,
    service_env,
    translator_cli,
)
from translator.runner import Session, prepare, submit, wait
from translator.runtime.celery_app import install
from translator.store.state import RedisStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

DEFS = ROOT / "tests" / "fixtures" / "runtime"


@pytest.fixture(scope="module")
def worker(redis_url, tmp_path_factory):
    # the module's tests are done, and its redis-server goes with it: the tasks a test canceled while
    # they ran (a 20 s ``sleepy``) need not be waited for
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with celery_worker(redis_url, log, stop_grace=2) as running:
        yield running


class DistributedRunner:
    """Submits through a client Celery app; a separate worker process runs the steps."""

    mode = "distributed"

    def __init__(self, url: str) -> None:
        self.app = Celery("translator-tests-client", broker=url)
        self.app.conf.update(task_serializer="json", accept_content=["json"])
        install(self.app)
        self.store = RedisStore(url)
        self.session = Session(self.app, self.store, embedded=False)

    def start(self, name: str, workflow_input: dict[str, Any]) -> str:
        return submit(self.session, prepare(DEFS / f"{name}.json"), workflow_input)

    def run(self, name: str, workflow_input: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        return wait(self.store, self.start(name, workflow_input), timeout=timeout)


class EmbeddedRunner:
    """``translator run DEF --input - --full`` with no broker configured."""

    mode = "embedded"

    def run(self, name: str, workflow_input: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        env = embedded_env()
        definition = str(DEFS / f"{name}.json")
        stdin = json.dumps(workflow_input)
        result = translator_cli(
            "run", definition, "--input", "-", "--full", env=env, stdin=stdin, timeout=timeout
        )
        assert "Traceback" not in result.stderr, result.stderr
        execution = json.loads(result.stdout)
        assert result.returncode == (0 if execution["status"] == "COMPLETED" else 1), result.stderr
        return execution


@pytest.fixture(params=["distributed", "embedded"])
def runner(request):
    if request.param == "embedded":
        return EmbeddedRunner()
    request.getfixturevalue("worker")
    return DistributedRunner(request.getfixturevalue("redis_url"))


def attempts(execution: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    return [t for t in execution["tasks"] if t["referenceTaskName"] == ref]


def gaps(tries: list[dict[str, Any]]) -> list[float]:
    """Seconds between the end of each failed attempt and the start of the next."""
    return [(b["startTime"] - a["endTime"]) / 1000 for a, b in itertools.pairwise(tries)]


@pytest.mark.parametrize(
    ("name", "delays"),
    [("retry_fixed", [1, 1]), ("retry_linear", [1, 2]), ("retry_exponential", [1, 2])],
)
def test_retry_delays_follow_conductor_formula(runner, name, delays):
    execution = runner.run(name, {"failures": 2, "marker": "m"})
    assert execution["status"] == "COMPLETED"
    tries = attempts(execution, "f")
    assert [t["retryCount"] for t in tries] == [0, 1, 2]
    assert [t["status"] for t in tries] == ["FAILED", "FAILED", "COMPLETED"]
    assert [t["retried"] for t in tries] == [True, True, False]
    assert [t["retriedTaskId"] for t in tries] == [None, tries[0]["taskId"], tries[1]["taskId"]]
    assert len({t["taskId"] for t in tries}) == 3
    assert [t["seq"] for t in tries] == sorted(t["seq"] for t in tries)
    # Inputs are re-resolved on every attempt: ${CPEWF_TASK_ID} is each attempt's own id.
    assert [t["inputData"]["myTaskId"] for t in tries] == [t["taskId"] for t in tries]
    assert [t["callbackAfterSeconds"] for t in tries[1:]] == delays
    assert tries[0]["reasonForIncompletion"] == "RuntimeError: planned failure 1 of 2"
    for measured, expected in zip(gaps(tries), delays, strict=True):
        assert expected - 0.05 <= measured <= expected + 1.5, (measured, expected)
    assert execution["output"]["attempt"] == 2  # no outputParameters: the last task's output


def test_workflow_task_retry_count_overrides_taskdef(runner):
    execution = runner.run("retry_override", {"failures": 2})
    assert execution["status"] == "FAILED"
    assert [t["status"] for t in attempts(execution, "f")] == ["FAILED", "FAILED"]


def test_retries_exhausted_fail_the_workflow_with_conductors_reason(runner):
    execution = runner.run("exhausted", {"message": "disk on fire"})
    assert execution["status"] == "FAILED"
    tries = attempts(execution, "a")
    assert [t["status"] for t in tries] == ["FAILED", "FAILED"]
    assert execution["reasonForIncompletion"] == (
        f"Task {tries[-1]['taskId']} failed with status: FAILED and reason: 'ValueError: disk on fire'"
    )
    assert execution["failedReferenceTaskNames"] == ["a"]
    assert attempts(execution, "never") == []
    assert execution["endTime"] >= execution["startTime"] > 0


def test_non_retryable_error_is_not_retried(runner):
    execution = runner.run("terminal", {})
    assert execution["status"] == "FAILED"
    tries = attempts(execution, "t")
    assert [t["status"] for t in tries] == ["FAILED_WITH_TERMINAL_ERROR"]
    assert tries[0]["reasonForIncompletion"] == "input can never work"
    assert "input can never work" in execution["reasonForIncompletion"]


def test_optional_task_completes_with_errors_and_flow_continues(runner):
    execution = runner.run("optional", {})
    assert execution["status"] == "COMPLETED"
    assert [t["status"] for t in attempts(execution, "a")] == ["FAILED", "COMPLETED_WITH_ERRORS"]
    assert execution["output"] == {"prev": "COMPLETED_WITH_ERRORS"}


def test_start_delay_is_a_countdown(runner):
    execution = runner.run("start_delay", {})
    assert execution["status"] == "COMPLETED"
    first, second = attempts(execution, "first")[0], attempts(execution, "second")[0]
    assert second["startDelayInSeconds"] == 1
    assert 0.95 <= (second["startTime"] - first["endTime"]) / 1000 <= 2.5
    assert second["inputData"] == {"x": 1}


def test_input_template_variables_and_output_parameters(runner):
    execution = runner.run("data_wiring", {"a": 2})
    assert execution["status"] == "COMPLETED"
    assert execution["input"] == {"a": 2, "b": 100, "extra": "from-template"}
    assert execution["output"] == {
        "total": 102,
        "text": "sum=102 region=eu",
        "whole": {"sum": 102},
        "extra": "from-template",
    }
    assert execution["variables"] == {"region": "eu"}


def test_input_template_not_applied_to_empty_input(runner):
    execution = runner.run("data_wiring", {})
    assert execution["input"] == {}
    assert execution["status"] == "FAILED"  # add(None, None) fails: the template did not apply


def test_output_defaults_to_last_task_output(runner):
    execution = runner.run("last_output", {})
    assert execution["output"] == {"v": 1, "w": "two"}
    task = attempts(execution, "two")[0]
    assert task["taskType"] == "echo"
    assert task["workerId"]
    assert task["scheduledTime"] <= task["startTime"] <= task["endTime"]


def test_two_hundred_concurrent_workflows(redis_url, worker):
    runner = DistributedRunner(redis_url)
    ids = {runner.start("pair", {"i": i}): i for i in range(200)}
    deadline = time.monotonic() + 180
    for wf_id, i in ids.items():
        execution = wait(runner.store, wf_id, timeout=max(1.0, deadline - time.monotonic()))
        assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
        assert execution["output"] == {"i": i, "v": i + 1}


def test_cli_run_and_status_against_worker_pool(redis_url, worker):
    env = service_env(redis_url)
    definition = str(DEFS / "pair.json")
    done = translator_cli("run", definition, "--input", "-", env=env, stdin='{"i": 41}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"i": 41, "v": 42}

    started = translator_cli("run", definition, "--input", "-", "--no-wait", env=env, stdin='{"i": 1}')
    assert started.returncode == 0, started.stderr
    wf_id = started.stdout.strip()
    wait(RedisStore(redis_url), wf_id, timeout=30)
    status = translator_cli("status", wf_id, "--tasks", env=env)
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["workflowId"] == wf_id
    assert record["status"] == "COMPLETED"
    assert [t["referenceTaskName"] for t in record["tasks"]] == ["s", "e"]


def test_failed_workflow_exit_status_and_reason(redis_url, worker):
    done = translator_cli("run", str(DEFS / "terminal.json"), env=service_env(redis_url))
    assert done.returncode == 1
    assert "FAILED" in done.stderr and "input can never work" in done.stderr


def test_unreachable_broker_is_a_clear_error_within_seconds(tmp_path: Path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    done = translator_cli("run", str(DEFS / "pair.json"), "--input", "-", env=service_env(dead), stdin="{}")
    assert time.monotonic() - began < 15
    assert done.returncode == 1
    assert "cannot reach the Celery broker at" in done.stderr
    assert "Traceback" not in done.stderr


EMBEDDED_MANY = """
import json, sys
from translator.runner import open_session, prepare, submit, wait
from translator.settings import Settings
plan = prepare(sys.argv[1])
with open_session(Settings.from_env(), concurrency=4) as session:
    ids = {submit(session, plan, {"i": i}): i for i in range(200)}
    bad = [i for wf_id, i in ids.items()
           if wait(session.store, wf_id, timeout=180)["output"] != {"i": i, "v": i + 1}]
print(json.dumps({"embedded": session.embedded, "count": len(ids), "bad": bad}))
"""


def test_two_hundred_concurrent_workflows_embedded():
    result = subprocess.run(
        [sys.executable, "-c", EMBEDDED_MANY, str(DEFS / "pair.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=embedded_env(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"embedded": True, "count": 200, "bad": []}


def test_embedded_run_names_and_waits_for_the_failure_workflow():
    env = embedded_env()
    definition = str(DEFS / "failing_with_handler.json")
    result = translator_cli("run", definition, "--input", "-", env=env, stdin='{"original": "x"}')
    assert result.returncode == 1 and "Traceback" not in result.stderr
    failure_id = json.loads(result.stdout)["conductor.failure_workflow"]
    assert f"failure workflow on_failure started: {failure_id}" in result.stderr
    assert f"failure workflow on_failure {failure_id} COMPLETED" in result.stderr
