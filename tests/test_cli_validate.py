"""``translator validate``: line format, JSON output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import ROOT
from tests.services import translator_cli

IMAGE_WORKFLOW = ROOT / "definitions" / "image_convert_resize.json"


def _run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess[str]:
    return translator_cli(*args, cwd=cwd)


def test_valid_workflow_exits_zero():
    result = _run("validate", "definitions/image_convert_resize.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 error(s), 0 warning(s)" in result.stderr


def test_invalid_file_prints_lines_and_exits_one(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"name": "wf", "tasks": [{"name": "a", "taskReferenceName": "a", "retryCount": "three"}]}'
    )
    result = _run("validate", str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f'{bad}:/tasks/0/retryCount: error type: retryCount: expected an integer, got "three"'
    )
    assert [line.split(": ")[1].split()[0] for line in lines] == ["error", "warning"]
    assert "Traceback" not in result.stderr


def test_warnings_only_exit_zero(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "a"}]}))
    result = _run("validate", str(wf))
    assert result.returncode == 0
    assert ": warning missing-taskdef: " in result.stdout


def test_json_output(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "t", "retryCount": -1}')
    result = _run("validate", "--json", str(bad), str(IMAGE_WORKFLOW))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["errors"] == 1
    assert document["issues"] == [
        {
            "file": str(bad),
            "pointer": "/retryCount",
            "code": "min",
            "message": "TaskDef retryCount: 0 must be >= 0 (got -1)",
            "level": "error",
        }
    ]


def test_taskdefs_option_adds_definitions(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "w", "tasks": [{"name": "x", "taskReferenceName": "x"}]}))
    defs = tmp_path / "elsewhere.json"
    defs.write_text(json.dumps([{"name": "x"}]))
    result = _run("validate", str(wf), "--taskdefs", str(defs))
    assert result.returncode == 0
    assert result.stdout == ""


def test_usage_errors_exit_two(tmp_path):
    assert _run("validate").returncode == 2
    missing = _run("validate", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert _run("validate", "--bogus", str(IMAGE_WORKFLOW)).returncode == 2


def test_directory_and_binary_input_are_reported_not_crashed(tmp_path):
    binary = tmp_path / "img.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    result = _run("validate", str(binary), str(tmp_path))
    assert result.returncode == 1
    assert "error encoding: not UTF-8 text" in result.stdout
    assert "is a directory" in result.stdout
    assert "Traceback" not in result.stderr
