"""The compiled canvas: plan -> chain of immutable step signatures with shadow, kwargsrepr, queue."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.services import translator_cli
from translator.engine.compiler import canvas_json
from translator.runner import celery_app, prepare

DEFS = ROOT / "tests" / "fixtures" / "runtime"


def test_canvas_of_the_image_workflow():
    plan = prepare(ROOT / "definitions" / "image_convert_resize.json")
    document = canvas_json(plan, celery_app(), "WF")
    canvas = document["canvas"]
    assert canvas["task"] == "celery.chain"
    links = canvas["kwargs"]["tasks"]
    assert [link["task"] for link in links] == ["image_convert_resize", "upload_toS3"]  # Conductor names
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
    result = translator_cli("compile", "--dry-run", "definitions/image_convert_resize.json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["workflow"] == {"name": "image_convert_resize", "version": 1}
    assert document["canvas"]["kwargs"]["tasks"][0]["kwargs"]["wf"] == "<workflowId>"


def test_invalid_definition_is_refused_with_every_issue(tmp_path):
    bad = tmp_path / "bad.json"
    kafka = {
        "name": "k",
        "taskReferenceName": "k",
        "type": "KAFKA_PUBLISH",
        "inputParameters": {"kafka_request": {}},
    }
    bad.write_text(json.dumps({"name": "w", "tasks": [kafka]}))
    result = translator_cli("compile", "--dry-run", str(bad))
    assert result.returncode == 1
    assert f"{bad}:/tasks/0/type: error unsupported-task-type" in result.stderr
    assert "Traceback" not in result.stderr


def test_queue_names_follow_conductor():
    from translator.engine.compiler import conductor_queue

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


def _workflow_file(directory, name, **fields):
    import json

    data = {"name": name, "tasks": [{"name": "echo", "taskReferenceName": "e", "type": "SIMPLE"}], **fields}
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_failure_workflow_is_planned_with_its_workflow(tmp_path):
    handler = _workflow_file(tmp_path, "handler", timeoutSeconds=5, timeoutPolicy="TIME_OUT_WF")
    plan = prepare(_workflow_file(tmp_path, "main", failureWorkflow="handler"))
    assert plan.failure is not None and plan.failure.name == "handler"
    assert plan.failure.timeout_seconds == 5 and plan.failure.timeout_policy == "TIME_OUT_WF"
    from translator.engine.plan import Plan

    assert Plan.from_json(plan.to_json()) == plan
    assert handler.exists()


@pytest.mark.parametrize(
    ("failure", "others", "message"),
    [
        ("missing", {}, "failure workflow 'missing' not found"),
        ("$handler", {}, "only a name read from the workflow input"),
        (
            "loop",
            {"loop": {"failureWorkflow": "main"}},
            "failure workflows form a cycle: main -> loop -> main",
        ),
    ],
)
def test_failure_workflow_problems_name_the_file_and_pointer(tmp_path, failure, others, message):
    from translator.errors import DefinitionError

    for name, fields in others.items():
        _workflow_file(tmp_path, name, **fields)
    main = _workflow_file(tmp_path, "main", failureWorkflow=failure)
    with pytest.raises(DefinitionError) as caught:
        prepare(main)
    [issue] = [i for i in caught.value.issues if i.pointer == "/failureWorkflow"]
    assert message in issue.message
    assert issue.file in (str(main), str(tmp_path / "loop.json"))


def test_long_start_delays_are_not_countdowns():
    from translator.engine.compiler import step_options

    step = prepare(DEFS / "parked.json").steps()[0]  # startDelay 3
    assert step_options(step, "wf", "q", park_after=300)["countdown"] == 3
    assert "countdown" not in step_options(step, "wf", "q", park_after=1)
    poll = prepare(DEFS / "poll_retry.json").steps()[0]
    assert step_options(poll, "wf", "q")["expires"] == 2  # pollTimeoutSeconds
    assert "expires" not in step_options(prepare(DEFS / "poll_alert.json").steps()[0], "wf", "q")
