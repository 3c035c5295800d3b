"""``translator validate``: line format, JSON output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess

import pytest

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


# --- Workflow inputs read as strictly as definitions; limits; an input given as the definition ----


def _stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"width": Infinity}', ":/width: Infinity is not valid JSON"),
        ('{"size": {"h": -Infinity}}', ":/size/h: -Infinity is not valid JSON"),
        ('{"w": [1, NaN]}', ":/w/1: NaN is not valid JSON"),
        ('{"width": 1e999}', ":/width: 1e999 is out of the range of a double (it would be Infinity)"),
    ],
)
def test_run_refuses_an_input_with_numbers_json_cannot_hold(tmp_path, text, expected):
    source = tmp_path / "in.json"
    source.write_text(text)
    result = _run("run", str(IMAGE_WORKFLOW), "--input", str(source), "--timeout", "30")
    assert result.returncode == 1
    assert _stderr_lines(result) == [f"error: {source}{expected}"]


def test_run_refuses_a_deep_input_from_stdin_at_its_pointer():
    stdin = '{"a": ' * 600 + "1" + "}" * 600
    result = translator_cli("run", str(IMAGE_WORKFLOW), "--input", "-", stdin=stdin)
    assert result.returncode == 1
    pointer = "/a" * 128
    assert _stderr_lines(result) == [
        f"error: <stdin>:{pointer}: nested deeper than 128 arrays/objects, the most translator accepts"
    ]


def test_run_refuses_an_input_that_is_not_an_object_naming_the_file(tmp_path):
    source = tmp_path / "in.json"
    source.write_text('[{"fileLocation": "x.png"}]')
    result = _run("run", str(IMAGE_WORKFLOW), "--input", str(source))
    assert result.returncode == 1
    assert _stderr_lines(result) == [
        f"error: {source}: the workflow input must be a JSON object, got an array"
    ]


def test_duplicate_keys_in_an_input_are_a_warning(tmp_path):
    source = tmp_path / "in.json"
    source.write_text('{"outputFormat": "gif", "outputFormat": "png", "width": NaN}')
    result = _run("run", str(IMAGE_WORKFLOW), "--input", str(source))
    assert result.returncode == 1
    assert _stderr_lines(result) == [
        f"warning: {source}:/outputFormat: key 'outputFormat' appears more than once; the last value is used",
        f"error: {source}:/width: NaN is not valid JSON",
    ]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_definition_nested_900_deep_is_one_limit_error(tmp_path, command):
    inner = '{"a": ' * 900 + '"x"' + "}" * 900
    definition = tmp_path / "deep.json"
    definition.write_text(
        '{"name": "w", "tasks": [{"name": "a", "taskReferenceName": "a", "inputParameters": ' + inner + "}]}"
    )
    result = _run(command, str(definition))
    assert result.returncode == 1
    output = result.stdout if command == "validate" else result.stderr
    pointer = "/tasks/0/inputParameters" + "/a" * 125
    expected = f"{definition}:{pointer}: error limit: nested deeper than 128 arrays/objects, the most"
    assert output.splitlines()[0].startswith(expected)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_workflow_input_given_as_the_definition_says_so(command):
    result = _run(command, "examples/in.json")
    assert result.returncode == 1
    output = result.stdout if command == "validate" else result.stderr
    assert output.splitlines()[0] == (
        "examples/in.json:: error not-a-definition: this looks like a workflow input (an object without "
        '"name" and "tasks"), not a definition; pass it to translator run with --input'
    )
    assert "task definitions" not in output and "Traceback" not in result.stderr


def test_validate_suggests_the_closest_task_definition_name(tmp_path):
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps({"name": "w", "tasks": [{"name": "upload_toS4", "taskReferenceName": "u"}]})
    )
    result = _run("validate", str(workflow), "--taskdefs", "definitions/taskdefs")
    assert result.returncode == 0
    assert result.stdout.startswith(
        f'{workflow}:/tasks/0/name: warning missing-taskdef: no task definition named "upload_toS4" '
        '(searched: definitions/taskdefs; did you mean "upload_toS3"?); '
    )
