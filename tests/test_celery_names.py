"""Celery users see Conductor names, and translator runs on any project's Celery app.

A worker registers one Celery task per worker function, named by its Conductor task name (its
``[tasks]`` banner, ``celery inspect registered``); step messages carry that name and the attempt's
taskId as their task id; a worker that has no task for a message's name records the attempt as
failed. ``TRANSLATOR_CELERY_APP`` names the app (default ``tasks``). Real redis-server and real
worker subprocesses where a worker is involved."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery

from tests.services import (
    ROOT,
    VENV_BIN,
    celery_worker,
    embedded_env,
    redis_server,
    redis_server_binary,
    service_env,
    stop_process,
    translator_cli,
    wait_until,
)
from translator.engine.compiler import STEP_TASK, step_signature
from translator.engine.decide import attempt_id
from translator.errors import UsageError
from translator.runner import Session, celery_app, prepare, submit, wait
from translator.runtime.celery_app import install, register_workers
from translator.settings import Settings
from translator.store.state import RedisStore

FIXTURES = ROOT / "tests" / "fixtures" / "runtime"
needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed")
# Runs Python with the demo app unimportable: any ``import tasks`` raises ImportError.
WITHOUT_TASKS = "import sys; sys.modules['tasks'] = None; "


def _client(url: str) -> Session:
    client = Celery("names-test", broker=url)
    client.conf.update(task_serializer="json", accept_content=["json"])
    install(client)
    return Session(client, RedisStore(url), embedded=False)


def _banner_tasks(log: str) -> list[str]:
    """The task names of a worker's ``[tasks]`` banner."""
    lines = log.split("[tasks]\n", 1)[1].splitlines()
    names = []
    for line in lines:
        if not line.startswith("  . "):
            break
        names.append(line[4:].strip())
    return names


# ---------------------------------------------------------------------------------------------
# The names messages carry (no services)


def test_step_messages_carry_the_conductor_name_and_the_attempt_id():
    import tests.runtime_workers  # noqa: F401  (registers add, echo, ...)

    app = Celery("names-unit", set_as_current=False)
    install(app)
    step = prepare(FIXTURES / "pair.json").step("e")
    first = step_signature(app, step, "WF")
    assert first["task"] == "echo" and app.tasks["echo"].name == "echo"
    assert first.options["task_id"] == attempt_id("WF", "e", 0)
    assert first.options["kwargsrepr"] == "wf=WF ref=e"
    again = step_signature(app, step, "WF", attempt=2)
    assert again.options["task_id"] == attempt_id("WF", "e", 2) != first.options["task_id"]
    assert again["kwargs"] == {"wf": "WF", "ref": "e", "attempt": 2}


def test_a_name_another_celery_task_has_is_sent_as_translator_step(caplog):
    import tests.runtime_workers  # noqa: F401

    app = Celery("names-clash", set_as_current=False)

    @app.task(name="echo", shared=False)
    def project_echo() -> None:
        """A project's own Celery task that happens to have a Conductor task's name."""

    with caplog.at_level(logging.WARNING, logger="translator.celery"):
        install(app)
    assert app.tasks["echo"].run is project_echo.run  # left alone
    assert "Conductor task 'echo' is also the Celery task" in caplog.text
    signature = step_signature(app, prepare(FIXTURES / "pair.json").step("e"), "WF")
    assert signature["task"] == STEP_TASK and signature.options["shadow"] == "echo"
    assert register_workers(app) == []  # idempotent


def test_celery_app_setting(monkeypatch):
    monkeypatch.delenv("TRANSLATOR_CELERY_APP", raising=False)
    assert Settings.from_env().celery_app == "tasks"
    monkeypatch.setenv("TRANSLATOR_CELERY_APP", "tests.custom_celery_app:app")
    assert Settings.from_env().celery_app == "tests.custom_celery_app:app"
    from tests import custom_celery_app

    assert celery_app() is custom_celery_app.app
    assert celery_app("tests.custom_celery_app") is custom_celery_app.app  # found as celery -A finds it
    assert {"add", "echo", STEP_TASK} <= set(custom_celery_app.app.tasks)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("tests.no_such_module", "ModuleNotFoundError: No module named 'tests.no_such_module'"),
        ("tests.custom_celery_app:nothing", "has no attribute 'nothing'"),
        ("tests.runtime_workers", "AttributeError"),  # a module with no Celery app in it
        ("tests.runtime_workers:echo", "is a function, not a Celery app"),
    ],
)
def test_a_celery_app_that_cannot_be_loaded_is_a_usage_error(name, says):
    with pytest.raises(UsageError, match=r"TRANSLATOR_CELERY_APP") as raised:
        celery_app(name)
    assert says in str(raised.value) and repr(name) in str(raised.value)


def test_cli_reports_an_unloadable_app_in_one_line():
    env = embedded_env(TRANSLATOR_CELERY_APP="tests.no_such_module")
    result = translator_cli("run", str(FIXTURES / "pair.json"), "--input", "-", stdin='{"i": 1}', env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot load the Celery app 'tests.no_such_module'")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# A worker pool


@needs_redis
@pytest.mark.integration
def test_a_worker_lists_the_conductor_names_it_serves(tmp_path):
    with (
        redis_server(tmp_path / "redis") as url,
        celery_worker(url, tmp_path / "w.log", modules="tests.runtime_workers") as worker,
    ):
        banner = _banner_tasks(worker.text())
        assert {"image_convert_resize", "upload_toS3", STEP_TASK} <= set(banner)  # the tasks app's
        assert "flaky" in banner  # imported at worker start (-I), registered then
        inspected = subprocess.run(
            [str(VENV_BIN / "celery"), "-A", "tasks", "inspect", "registered", "--json", "-t", "10"],
            cwd=ROOT,
            env=service_env(url),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (registered,) = json.loads(inspected.stdout.strip().splitlines()[-1]).values()
        assert {"image_convert_resize", "upload_toS3", "flaky"} <= set(registered)


@needs_redis
@pytest.mark.integration
def test_a_worker_without_the_function_records_the_failure(tmp_path):
    with redis_server(tmp_path / "redis") as url, celery_worker(url, tmp_path / "w.log", modules=None):
        session = _client(url)
        wf_id = submit(session, prepare(FIXTURES / "pair.json"), {"i": 1})
        execution = wait(session.store, wf_id, timeout=30)
    assert execution["status"] == "FAILED"
    (task,) = execution["tasks"]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "no worker function is registered for task 'add'" in task["reasonForIncompletion"]


@needs_redis
@pytest.mark.integration
def test_an_unknown_task_not_due_yet_fails_when_due(tmp_path):
    definition = tmp_path / "delayed.json"
    task = {"name": "add", "taskReferenceName": "s", "type": "SIMPLE", "startDelay": 3}
    definition.write_text(json.dumps({"name": "delayed", "schemaVersion": 2, "tasks": [task]}))
    with redis_server(tmp_path / "redis") as url, celery_worker(url, tmp_path / "w.log", modules=None):
        session = _client(url)
        wf_id = submit(session, prepare(definition, [FIXTURES / "taskdefs"]), {})
        execution = wait(session.store, wf_id, timeout=30)
    (record,) = execution["tasks"]
    assert record["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert record["endTime"] - record["scheduledTime"] >= 2000  # recorded once due, not at receipt


# ---------------------------------------------------------------------------------------------
# A project's own app (TRANSLATOR_CELERY_APP), with the demo app unimportable


def _without_tasks(code: str, *args: str, env: dict[str, str], stdin: str | None = None):
    """``python -c code args`` with the demo app unimportable."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TASKS + code, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


RUN_CLI = "from translator.cli import run_cli; sys.argv[0] = 'translator'; run_cli()"


def test_a_custom_app_runs_a_workflow_embedded_without_the_demo_app():
    env = embedded_env(None, TRANSLATOR_CELERY_APP="tests.custom_celery_app")
    result = _without_tasks(
        RUN_CLI, "run", str(FIXTURES / "pair.json"), "--input", "-", env=env, stdin='{"i": 4}'
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"i": 4, "v": 5}
    blocked = _without_tasks("import tasks", env=env)
    assert blocked.returncode == 1 and "import of tasks halted" in blocked.stderr  # the guard guards


@contextmanager
def _custom_worker(url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tests.custom_celery_app worker`` (prefork), with the demo app unimportable."""
    code = (
        "from celery.__main__ import main; sys.argv = ['celery', '-A', 'tests.custom_celery_app', 'worker', "
        f"'-P', 'prefork', '-c', '2', '-l', 'INFO', '-n', 'custom-{os.getpid()}@%h', '--without-mingle', "
        "'--without-gossip']; main()"
    )
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_TASKS + code],
        cwd=ROOT,
        env=service_env(url),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: " ready." in log.read_text(errors="replace") or process.poll() is not None,
            timeout=60,
            what="custom worker ready",
            interval=0.1,
        )
        assert process.poll() is None, log.read_text(errors="replace")
        yield process
    finally:
        stop_process(process, grace=20)
        handle.close()


@needs_redis
@pytest.mark.integration
def test_a_custom_app_runs_a_workflow_on_its_worker_pool(tmp_path):
    with redis_server(tmp_path / "redis") as url, _custom_worker(url, tmp_path / "w.log"):
        banner = _banner_tasks((tmp_path / "w.log").read_text())
        assert {"add", "echo", STEP_TASK} <= set(banner) and "image_convert_resize" not in banner
        env = service_env(url, TRANSLATOR_CELERY_APP="tests.custom_celery_app")
        result = _without_tasks(
            RUN_CLI, "run", str(FIXTURES / "pair.json"), "--input", "-", env=env, stdin='{"i": 1}'
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"i": 1, "v": 2}
        assert "Task add[" in (tmp_path / "w.log").read_text()  # run under its Conductor name
