"""The typed model: Conductor's defaults, sparse and fully populated forms, lossless round trips."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CORPUS, corpus_params, require_corpus
from translator.definitions.loader import DocumentKind, build_model, detect_kind
from translator.definitions.model import (
    RetryLogic,
    TaskDef,
    TimeoutPolicy,
    WorkflowDef,
    WorkflowTask,
    WorkflowTimeoutPolicy,
)


def test_taskdef_defaults_follow_conductor_code():
    td = TaskDef(name="t")
    assert td.retryCount == 3
    assert td.retryLogic is RetryLogic.FIXED
    assert td.retryDelaySeconds == 60
    assert td.backoffScaleFactor == 1
    assert td.maxRetryDelaySeconds == 0
    assert td.backoffJitterMs == 0
    assert td.timeoutSeconds == 0
    assert td.timeoutPolicy is TimeoutPolicy.TIME_OUT_WF
    assert td.responseTimeoutSeconds == 3600
    assert td.pollTimeoutSeconds is None
    assert td.totalTimeoutSeconds == 0
    assert td.effective_rate_limit_frequency_seconds == 1
    assert td.effective_rate_limit_per_frequency == 0
    assert td.effective_concurrent_exec_limit == 0
    assert td.inputTemplate == {}


def test_workflow_defaults_follow_conductor_code():
    wf = WorkflowDef(name="w")
    assert wf.version == 1
    assert wf.schemaVersion == 2
    assert wf.restartable is True
    assert wf.timeoutSeconds == 0
    assert wf.timeoutPolicy is WorkflowTimeoutPolicy.ALERT_ONLY
    assert wf.workflowStatusListenerEnabled is False


def test_workflow_task_defaults():
    task = WorkflowTask(name="a", taskReferenceName="a")
    assert task.type == "SIMPLE"
    assert task.optional is False
    assert task.permissive is False
    assert task.startDelay == 0
    assert task.retryCount is None
    assert task.asyncComplete is False


def test_sparse_and_fully_populated_forms_are_equivalent():
    sparse = {"name": "a", "taskReferenceName": "a"}
    full = {
        **sparse,
        "type": "SIMPLE",
        "inputParameters": {},
        "decisionCases": {},
        "defaultCase": [],
        "forkTasks": [],
        "startDelay": 0,
        "joinOn": [],
        "optional": False,
        "defaultExclusiveJoinTask": [],
        "asyncComplete": False,
        "loopOver": [],
    }
    a = WorkflowTask.model_validate(sparse)
    b = WorkflowTask.model_validate(full)
    assert a.model_dump() == b.model_dump()
    assert a.to_json() == sparse
    assert b.to_json() == full


def test_newer_fields_are_modelled():
    td = TaskDef.model_validate(
        {"name": "t", "maxRetryDelaySeconds": 200, "backoffJitterMs": 5000, "totalTimeoutSeconds": 9}
    )
    assert (td.maxRetryDelaySeconds, td.backoffJitterMs, td.totalTimeoutSeconds) == (200, 5000, 9)
    task = WorkflowTask.model_validate(
        {"name": "l", "taskReferenceName": "l", "type": "DO_WHILE", "items": "${x}", "permissive": True}
    )
    assert task.items == "${x}" and task.permissive is True
    assert task.unknown_keys == []


def test_unknown_keys_are_kept_for_round_trip():
    data = {"name": "t", "customThing": {"x": 1}}
    td = TaskDef.model_validate(data)
    assert td.unknown_keys == ["customThing"]
    assert td.to_json() == data


def _corpus_files():
    return sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", **corpus_params(_corpus_files(), ids=lambda p: p.name))
def test_corpus_round_trips_without_loss(path):
    require_corpus()
    data = json.loads(path.read_text())
    kind = detect_kind(data)
    if kind is DocumentKind.WORKFLOW:
        model, issues = build_model(WorkflowDef, data)
        assert issues == [] and model is not None
        assert model.to_json() == data
    elif kind is DocumentKind.WORKFLOW_TASK:
        model, issues = build_model(WorkflowTask, data)
        assert issues == [] and model is not None
        assert model.to_json() == data
    else:
        items = data if isinstance(data, list) else [data]
        for item in items:
            model, issues = build_model(TaskDef, item)
            assert issues == [] and model is not None
            assert model.to_json() == item
