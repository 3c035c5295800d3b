"""Schemathesis against the OpenAPI document ``translator serve`` publishes: generated requests for every
operation (valid and invalid ones), bounded in examples and time; no answer may be a 5xx. A second pass
fixes the path parameters to a registered workflow and a live execution of it, so that the lifecycle
operations meet real state (running, paused, ended) rather than only unknown ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.services import VENV_BIN, redis_server, redis_server_binary
from tests.test_api import serve

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed"),
]

MAX_EXAMPLES = 25  # per operation and pass
TIME_BOUND = 300  # seconds for each pass


def schemathesis(api: str, directory: Path, parameters: dict[str, str] | None = None) -> str:
    """One bounded run; returns its report (AssertionError when it found a failure or did not end)."""
    config = directory / "schemathesis.toml"
    lines = ["[parameters]", *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (parameters or {}).items())]
    config.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [
            str(VENV_BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{api}/api-docs",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "20",
            "--workers",
            "1",
            "--seed",
            "20260101",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        cwd=directory,  # its cache (.schemathesis/) goes there, not into the checkout
        timeout=TIME_BOUND,
        check=False,
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert " passed" in result.stdout and "Tested: 0" not in result.stdout, report
    return report


def test_no_server_error_for_generated_requests(tmp_path):
    log = tmp_path / "serve.log"
    with redis_server(tmp_path / "redis") as url, serve(url, log) as api:
        try:
            schemathesis(api, tmp_path)
            with httpx.Client(base_url=api, timeout=30) as client:
                human = {"name": "wait_here", "taskReferenceName": "wait_here", "type": "HUMAN"}
                definition = {"name": "api_fuzz", "version": 1, "tasks": [human]}
                assert client.post("/api/metadata/workflow", json=definition).status_code == 200
                started = client.post("/api/workflow/api_fuzz", json={})
                assert started.status_code == 200, started.text
            fixed = {
                "path.name": "api_fuzz",
                "path.workflowId": started.text,
                "path.taskReferenceName": "wait_here",
                "path.taskRefName": "wait_here",
            }
            schemathesis(api, tmp_path, fixed)
        finally:
            server_log = log.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-4000:]
