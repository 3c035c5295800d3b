"""The compiled canvas: plan -> chain of immutable step signatures with shadow, kwargsrepr, queue."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from translator.compiler import canvas_json
from translator.runner import celery_app, prepare

DEFS = ROOT / "tests" / "fixtures" / "runtime"


def test_canvas_of_the_image_workflow():
    plan = prepare(ROOT / "definitions" / "image_convert_resize.json")
    document = canvas_json(plan, celery_app(), "WF")
    canvas = document["canvas"]
    assert canvas["task"] == "celery.chain"
    links = canvas["kwargs"]["tasks"]
    assert [link["task"] for link in links] == ["translator.step", "translator.step"]
    assert [link["kwargs"] for link in links] == [
        {"wf": "WF", "ref": "image_convert_resize_ref"},
        {"wf": "WF", "ref": "upload_toS3_ref"},
    ]
    assert [link["options"]["shadow"] for link in links] == ["image_convert_resize", "upload_toS3"]
    assert [link["options"]["kwargsrepr"] for link in links] == [
        "wf=WF ref=image_convert_resize_ref",
        "wf=WF ref=upload_toS3_ref",
    ]
    assert all(link["options"]["queue"] == "celery" and link["immutable"] for link in links)
    first = document["steps"][0]["policy"]
    assert (first["retry_count"], first["retry_delay_seconds"], first["timeout_seconds"]) == (3, 60, 30)


def test_start_delay_becomes_a_countdown():
    plan = prepare(DEFS / "start_delay.json")
    links = canvas_json(plan, celery_app())["canvas"]["kwargs"]["tasks"]
    assert "countdown" not in links[0]["options"]
    assert links[1]["options"]["countdown"] == 1


def test_compile_dry_run_cli_prints_json():
    result = subprocess.run(
        [sys.executable, "-m", "translator", "compile", "--dry-run", "definitions/image_convert_resize.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["workflow"] == {"name": "image_convert_resize", "version": 1}
    assert document["canvas"]["kwargs"]["tasks"][0]["kwargs"]["wf"] == "<workflowId>"


def test_invalid_definition_is_refused_with_every_issue(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "w", "tasks": [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "translator", "compile", "--dry-run", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bad}:/tasks/0/type: error unsupported-task-type" in result.stderr
    assert "Traceback" not in result.stderr


def test_longest_countdown_covers_start_delay_and_retry_backoff():
    from translator.plan import longest_countdown

    image = prepare(ROOT / "definitions" / "image_convert_resize.json").steps()
    assert [longest_countdown(s) for s in image] == [60, 30]
    exponential = prepare(DEFS / "retry_exponential.json").steps()[0]
    assert longest_countdown(exponential) == 4  # 1, 2, 4 for attempts 0..2


def test_queue_names_follow_conductor():
    from translator.compiler import conductor_queue

    assert conductor_queue("t", None, None, None) == "t"
    assert conductor_queue("t", "d", "iso", "ns") == "d:t@ns-iso"
    assert conductor_queue("t", None, "iso", None) == "t-iso"
    assert conductor_queue("t", None, None, "ns") == "t@ns"


def test_isolated_task_definitions_get_their_own_queue():
    links = canvas_json(prepare(DEFS / "isolated.json"), celery_app())["canvas"]["kwargs"]["tasks"]
    assert [link["options"]["queue"] for link in links] == ["celery", "add@ns1-gpu"]


def test_queue_per_task_setting(monkeypatch):
    app = celery_app()
    monkeypatch.setitem(app.conf, "translator_queue_per_task", True)
    links = canvas_json(prepare(DEFS / "isolated.json"), app)["canvas"]["kwargs"]["tasks"]
    assert [link["options"]["queue"] for link in links] == ["echo", "add@ns1-gpu"]
