"""The worker API: binding task input to keyword parameters, outputs, errors."""

from __future__ import annotations

import pytest

from translator import NonRetryableError, TaskContext, UsageError, worker_task
from translator.runtime.workers import get_worker

CTX = TaskContext("wf", "task", "ref", "name", 0, "host")


@worker_task("t_bind")
def _bind(a: int, b: int = 2) -> dict:
    return {"sum": a + b}


@worker_task("t_any")
def _any(**task_input):
    return {"keys": sorted(task_input)}


@worker_task("t_ctx")
def _ctx(task_context: TaskContext) -> dict:
    return {"id": task_context.task_id}


@worker_task("t_bad_output")
def _bad() -> list:
    return [1]


@worker_task("t_none")
def _none() -> None:
    return None


def test_input_keys_bind_to_parameters_and_extra_keys_are_dropped():
    assert get_worker("t_bind").call({"a": 1, "extra": 5}, CTX) == {"sum": 3}
    assert get_worker("t_bind").call({"a": 1, "b": 10}, CTX) == {"sum": 11}


def test_missing_required_input_is_terminal():
    with pytest.raises(NonRetryableError, match="input key\\(s\\) a missing"):
        get_worker("t_bind").call({}, CTX)


def test_var_keyword_receives_everything():
    assert get_worker("t_any").call({"x": 1, "y": 2}, CTX) == {"keys": ["x", "y"]}


def test_context_parameter():
    assert get_worker("t_ctx").call({}, CTX) == {"id": "task"}


def test_output_must_be_a_dict():
    with pytest.raises(NonRetryableError, match="must return a dict"):
        get_worker("t_bad_output").call({}, CTX)
    assert get_worker("t_none").call({}, CTX) == {}


def test_two_workers_for_one_name_is_an_error():
    with pytest.raises(UsageError, match="already has a worker"):

        @worker_task("t_bind")
        def other(a):
            return {}
