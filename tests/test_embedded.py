"""The embedded run (``translator run`` with nothing configured), through the command line in a
subprocess: it returns on time whatever its steps do, enforces timeoutSeconds as Conductor does
(the step is abandoned, the late result refused), and never probes a cloud metadata endpoint."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tasks.local_s3 import s3_configured
from tasks.magick import installed_suffixes, name_installed_library
from tests.services import ROOT, embedded_env, translator_cli, wait_until
from translator.runtime.embedded import _DaemonThreads

pytestmark = pytest.mark.integration

WORKERS = "tests.embedded_workers"
STUCK = 300  # seconds a stuck step sleeps: far beyond any bound below


def _definition(tmp_path: Path, name: str, tasks: list[dict[str, Any]]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "version": 1, "schemaVersion": 2, "tasks": tasks}))
    return str(path)


def _timeouts(name: str, policy: str, seconds: int, retries: int) -> dict[str, Any]:
    """A task definition with timeoutSeconds (and responseTimeoutSeconds, which may not exceed it)."""
    return {
        "name": name,
        "retryCount": retries,
        "retryDelaySeconds": 0,
        "timeoutSeconds": seconds,
        "responseTimeoutSeconds": seconds,
        "timeoutPolicy": policy,
    }


def _run(*args: str, home: Path, bound: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """``translator run ARGS`` embedded; fails if it is still alive after ``bound`` seconds."""
    began = time.monotonic()
    try:
        result = translator_cli("run", *args, env=embedded_env(WORKERS, HOME=str(home)), timeout=bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"translator run {' '.join(args)} still alive after {bound:g} s")
    assert "Traceback" not in result.stderr, result.stderr
    return result, time.monotonic() - began


def _local_s3_port(stderr: str) -> int:
    found = re.search(r"using a local S3 server at http://127\.0\.0\.1:(\d+)", stderr)
    assert found, stderr
    return int(found.group(1))


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Bounded shutdown


def test_run_timeout_returns_on_time_although_a_step_hangs(tmp_path):
    definition = _definition(
        tmp_path, "hangs", [{"name": "nap", "taskReferenceName": "t", "inputParameters": {"seconds": STUCK}}]
    )
    result, took = _run(definition, "--timeout", "3", home=tmp_path, bound=60)
    assert result.returncode == 1
    assert re.search(r"error: workflow \S+ still RUNNING after 3 s$", result.stderr.strip()), result.stderr
    assert took < 3 + 30, took  # generous: the machine may be busy
    port = _local_s3_port(result.stderr)  # its local S3 server process is gone too
    wait_until(lambda: _refused(port), timeout=10, what="the local S3 server stopped")


def test_ctrl_c_stops_the_run_at_once_with_a_message(tmp_path):
    definition = _definition(
        tmp_path, "hangs", [{"name": "nap", "taskReferenceName": "t", "inputParameters": {"seconds": STUCK}}]
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "translator", "run", definition],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=embedded_env(WORKERS, HOME=str(tmp_path)),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not any("t IN_PROGRESS" in line for line in seen):
            seen.append(lines.get(timeout=60))
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    reader.join(10)  # it ends at the end of stderr
    while not lines.empty():
        seen.append(lines.get())
    stderr = "".join(seen)
    assert code == 130, stderr
    assert re.search(r"error: interrupted: workflow \S+ ends with this process", stderr), stderr
    assert "Traceback" not in stderr, stderr


# ---------------------------------------------------------------------------------------------
# timeoutSeconds, Conductor-style


def test_timeout_retry_abandons_the_attempt_and_refuses_its_late_result(tmp_path):
    definition = _definition(
        tmp_path,
        "timeout_retry",
        [
            {
                "name": "slow_first",
                "taskReferenceName": "t",
                "inputParameters": {"seconds": 6},
                "taskDefinition": _timeouts("slow_first", "RETRY", seconds=2, retries=1),
            },
            {  # runs once the late first attempt is over: its result write has been tried by then
                "name": "after_steps",
                "taskReferenceName": "after",
                "inputParameters": {"ref": "t", "count": 2},
            },
        ],
    )
    result, _ = _run(definition, "--full", home=tmp_path, bound=120)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # timeoutSeconds is enforced: nothing to warn about
    execution = json.loads(result.stdout)
    assert execution["status"] == "COMPLETED"
    first, second, after = execution["tasks"]
    assert [first["status"], second["status"]] == ["TIMED_OUT", "COMPLETED"]
    assert re.fullmatch(
        r"Task timed out after [23] seconds\. Timeout configured as 2 seconds\. "
        r"Timeout policy configured to RETRY",
        first["reasonForIncompletion"],
    ), first["reasonForIncompletion"]
    assert 2 <= (first["endTime"] - first["startTime"]) / 1000 < 5  # not the 6 s it slept
    assert first["outputData"] == {}  # the late {"attempt": 0} was refused
    assert second["retriedTaskId"] == first["taskId"] and second["outputData"] == {"attempt": 1}
    assert after["outputData"] == {"finished": 2, "waited": True}


def test_timeout_time_out_wf_times_the_workflow_out_and_exits_promptly(tmp_path):
    definition = _definition(
        tmp_path,
        "timeout_workflow",
        [
            {
                "name": "nap",
                "taskReferenceName": "t",
                "inputParameters": {"seconds": STUCK},
                "taskDefinition": _timeouts("nap", "TIME_OUT_WF", seconds=1, retries=2),
            },
            {"name": "nap", "taskReferenceName": "never", "inputParameters": {"seconds": 0}},
        ],
    )
    result, took = _run(definition, "--full", home=tmp_path, bound=60)
    assert result.returncode == 1
    assert took < 30, took  # the stuck step's thread is abandoned, not waited for
    execution = json.loads(result.stdout)
    [task] = execution["tasks"]  # no retry under TIME_OUT_WF, no next task
    assert task["status"] == "TIMED_OUT"
    assert re.fullmatch(
        r"Task timed out after [12] seconds\. Timeout configured as 1 seconds\. "
        r"Timeout policy configured to TIME_OUT_WF",
        task["reasonForIncompletion"],
    ), task["reasonForIncompletion"]
    assert execution["status"] == "TIMED_OUT"
    why = task["reasonForIncompletion"]
    reason = f"Task {task['taskId']} failed with status: TIMED_OUT and reason: '{why}'"
    assert execution["reasonForIncompletion"] == reason
    assert f"TIMED_OUT: {reason}" in result.stderr


# ---------------------------------------------------------------------------------------------
# No cloud metadata probe

AUDITED = """
import sys

def refuse_remote(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            print(f"audit: connect to {host} refused", file=sys.stderr, flush=True)
            raise ConnectionRefusedError(f"connect to {host} refused by the test")

sys.addaudithook(refuse_remote)
from translator.cli import run_cli
sys.argv = ["translator", *sys.argv[1:]]
run_cli()
"""


def test_main_job_with_nothing_configured_never_connects_beyond_loopback(tmp_path):
    """HOME without ~/.aws and no AWS variables: no connect to 169.254.169.254 (the instance
    metadata endpoint boto3's credential chain asks), no warning, the local S3 server used."""
    env = embedded_env(None, HOME=str(tmp_path), TRANSLATOR_SHARED_DIR=str(tmp_path / "shared"))
    command = [sys.executable, "-c", AUDITED, "run", "definitions/image_convert_resize.json"]
    result = subprocess.run(
        [*command, "--input", "examples/in.json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert "audit: connect" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert "using a local S3 server" in result.stderr
    assert json.loads(result.stdout)["s3Url"].startswith("s3://translator-images/")


def _aws_files(tmp_path: Path, credentials: str = "", config: str = "") -> dict[str, str]:
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }


@pytest.mark.parametrize(
    ("credentials", "config", "configured"),
    [
        ("", "", False),
        ("[default]\naws_access_key_id = AKIA\naws_secret_access_key = s\n", "", True),
        ("", "[default]\nregion = eu-west-1\n", False),  # a region alone gives no credentials
        ("", "[profile other]\naws_access_key_id = AKIA\n", False),  # not the profile in use
        ("", "[default]\ncredential_process = /bin/creds\n", True),
        ("", "[profile default]\nsso_session = corp\n", True),
        ("", "[default]\nendpoint_url = http://127.0.0.1:9000\n", True),
        ("[default\nbroken", "", True),  # unreadable: boto3 must say so, not a local server hide it
    ],
)
def test_s3_configured_reads_the_default_profile_of_the_files(tmp_path, credentials, config, configured):
    assert s3_configured(_aws_files(tmp_path, credentials, config)) is configured


@pytest.mark.parametrize(
    "variable",
    ["AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"],
)
def test_s3_configured_by_the_environment(tmp_path, variable):
    assert s3_configured({**_aws_files(tmp_path), variable: "x"})


def test_s3_configured_looks_in_home_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not s3_configured({})
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIA\n")
    assert s3_configured({})


# ---------------------------------------------------------------------------------------------
# Pieces of a quick start and stop


def test_magick_library_suffixes_found_by_file_name(tmp_path):
    for name in ("libMagickWand-6.Q16.so.6", "libMagickWand-7.Q16HDRI.so.10.0.0", "libMagickCore-6.Q16.so.6"):
        (tmp_path / name).touch()
    (tmp_path / "libMagickWand.so").touch()  # no suffix: Wand's own first guess
    assert installed_suffixes([str(tmp_path)]) == ["-7.Q16HDRI", "-6.Q16"]


def test_magick_library_choice_of_the_user_is_kept():
    environ = {"WAND_MAGICK_LIBRARY_SUFFIX": "-mine"}
    name_installed_library(environ)
    assert environ == {"WAND_MAGICK_LIBRARY_SUFFIX": "-mine"}
    environ = {"MAGICK_HOME": "/opt/im"}
    name_installed_library(environ)
    assert environ == {"MAGICK_HOME": "/opt/im"}


def test_daemon_threads_stop_without_waiting_for_a_stuck_call():
    pool = _DaemonThreads(2)
    release = threading.Event()
    stuck = pool.submit(release.wait)
    done = pool.submit(lambda: 42)
    assert done.result(timeout=10) == 42
    waiting = [pool.submit(lambda: None) for _ in range(3)]
    assert pool.shutdown(grace=2) == 1  # one thread still in its call, left running
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("translator-step-"))
    release.set()
    assert stuck.result(timeout=10) is True
    assert all(f.cancelled() or f.done() for f in waiting)
