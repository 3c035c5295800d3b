"""The public surface of the package: exactly what ``__all__`` says, each name the object it documents,
with the documented signature and a small behaviour check; errors are picklable."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import uuid

import pytest

import translator
from translator import errors, operations
from translator.definitions import expressions
from translator.definitions.issues import Issue
from translator.errors import DefinitionError
from translator.runtime import workers

OPERATIONS = {  # the pool API (translator.operations) and each function's parameters
    "load_workflow": ["definition", "taskdefs", "definitions"],
    "start_workflow": ["workflow", "workflow_input", "correlation_id", "priority", "settings"],
    "get_workflow": ["workflow_id", "include_tasks", "settings"],
    "wait_for_workflow": ["workflow_id", "timeout", "settings"],
    "pause_workflow": ["workflow_id", "settings"],
    "resume_workflow": ["workflow_id", "settings"],
    "terminate_workflow": ["workflow_id", "reason", "settings"],
    "retry_workflow": ["workflow_id", "settings"],
    "restart_workflow": ["workflow_id", "latest", "settings"],
    "rerun_workflow": [
        "workflow_id",
        "from_task_id",
        "task_input",
        "workflow_input",
        "correlation_id",
        "settings",
    ],
    "skip_task": ["workflow_id", "task_ref", "task_input", "task_output", "settings"],
    "remove_workflow": ["workflow_id", "settings"],
}

ERRORS = {
    "TranslatorError": Exception,
    "DefinitionError": "TranslatorError",
    "ExpressionError": "TranslatorError",
    "UnsupportedExpression": "ExpressionError",
    "UsageError": "TranslatorError",
    "BrokerUnavailable": "TranslatorError",
    "WorkflowNotFound": "TranslatorError",
    "DefinitionNotFound": "TranslatorError",
    "ConflictError": "TranslatorError",
    "TaskNotPending": "TranslatorError",
    "NonRetryableError": "TranslatorError",
}


def test_public_names_are_exactly_all():
    assert sorted(translator.__all__) == sorted(
        [*ERRORS, *OPERATIONS, "TaskContext", "complete_task", "resolve", "worker_task"]
    )
    assert len(set(translator.__all__)) == len(translator.__all__)
    namespace: dict[str, object] = {}
    exec("from translator import *", namespace)  # what a star import gives: __all__, nothing else
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(translator.__all__)


def test_each_name_is_the_object_of_its_home_module():
    for name, parent in ERRORS.items():
        cls = getattr(translator, name)
        assert cls is getattr(errors, name)
        base = Exception if parent is Exception else getattr(errors, parent)
        assert cls.__bases__ == (base,), name
    assert translator.TaskContext is workers.TaskContext
    assert translator.worker_task is workers.worker_task
    assert translator.resolve is expressions.resolve
    for name in OPERATIONS:
        assert getattr(translator, name) is getattr(operations, name)


def test_documented_signatures():
    assert str(inspect.signature(translator.resolve)) == (
        "(template: 'Any', document: 'Any', *, task_id: 'str | None' = None, "
        "env: 'Mapping[str, str] | None' = None) -> 'Any'"
    )
    assert list(inspect.signature(translator.worker_task).parameters) == ["task_name"]
    assert list(inspect.signature(translator.complete_task).parameters) == [
        "workflow_id",
        "task_ref",
        "status",
        "output",
        "reason",
    ]
    for name, parameters in OPERATIONS.items():
        assert list(inspect.signature(getattr(translator, name)).parameters) == parameters, name
    fields = [f.name for f in dataclasses.fields(translator.TaskContext)]
    assert fields == [
        "workflow_id",
        "task_id",
        "reference_task_name",
        "task_name",
        "retry_count",
        "worker_id",
        "beat",
    ]
    assert list(inspect.signature(translator.TaskContext.heartbeat).parameters) == ["self"]
    assert list(inspect.signature(translator.DefinitionError).parameters) == ["message", "issues"]


def test_resolve_keeps_types_and_renders_mixed_strings_like_conductor():
    document = {"workflow": {"input": {"n": 2, "m": {"a": 1}}}, "t1": {"output": {"ids": [1, 2]}}}
    template = {"n": "${workflow.input.n}", "s": "n=${workflow.input.n} m=${workflow.input.m}"}
    assert translator.resolve(template, document) == {"n": 2, "s": "n=2 m={a=1}"}
    assert translator.resolve("${t1.output.ids[-1]}", document) == 2
    assert translator.resolve("${CPEWF_TASK_ID}", document, task_id="tid") == "tid"
    assert translator.resolve("${workflow.input.missing}", document) is None
    assert template["n"] == "${workflow.input.n}"  # never mutated
    assert translator.resolve("${HOME_DIR}/x", document, env={"HOME_DIR": "/h"}) == "/h/x"
    with pytest.raises(translator.UnsupportedExpression, match=r"workflow\.secrets"):
        translator.resolve("${workflow.secrets.key}", document)


def test_worker_task_registers_the_function_unchanged_and_binds_its_input():
    name = f"public-api-{uuid.uuid4().hex}"

    def work(x: int, task_context: translator.TaskContext) -> dict:
        return {"x": x, "ref": task_context.reference_task_name}

    assert translator.worker_task(name)(work) is work  # the decorator returns the function itself
    context = translator.TaskContext("wf", "tid", "ref", name, 0, "w")
    assert workers.get_worker(name).call({"x": 3, "extra": 1}, context) == {"x": 3, "ref": "ref"}
    with pytest.raises(translator.NonRetryableError, match="input key"):
        workers.get_worker(name).call({}, context)
    with pytest.raises(translator.UsageError, match="already has a worker"):
        translator.worker_task(name)(lambda: None)
    with pytest.raises(translator.UsageError):
        translator.worker_task("")


def test_task_context_is_frozen_and_heartbeat_calls_the_runtime():
    beats: list[int] = []
    context = translator.TaskContext("wf", "tid", "ref", "task", 1, "w", beat=lambda: beats.append(1))
    context.heartbeat()
    context.heartbeat()
    assert beats == [1, 1]
    translator.TaskContext("wf", "tid", "ref", "task", 1, "w").heartbeat()  # no runtime: a no-op
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.retry_count = 2  # type: ignore[misc]


def test_errors_are_picklable_and_share_one_base():
    for name in ERRORS:
        cls = getattr(translator, name)
        assert issubclass(cls, translator.TranslatorError)
        error = pickle.loads(pickle.dumps(cls("message")))
        assert type(error) is cls and str(error) == "message" and error.message == "message"
    issue = Issue("/tasks/0", "required", "x")
    error = pickle.loads(pickle.dumps(DefinitionError("bad", [issue])))
    assert error.issues == [issue]
    assert str(error) == f"bad\n{issue.render()}"
