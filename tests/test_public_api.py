"""The public surface of the package is what __all__ says, and errors are picklable."""

from __future__ import annotations

import pickle

import translator
from translator.errors import DefinitionError
from translator.issues import Issue


def test_public_names():
    assert sorted(translator.__all__) == [
        "BrokerUnavailable",
        "DefinitionError",
        "ExpressionError",
        "NonRetryableError",
        "TaskContext",
        "TranslatorError",
        "UnsupportedExpression",
        "UsageError",
        "WorkflowNotFound",
        "resolve",
        "worker_task",
    ]
    for name in translator.__all__:
        assert getattr(translator, name) is not None


def test_errors_are_picklable_and_share_one_base():
    for name in translator.__all__:
        cls = getattr(translator, name)
        if isinstance(cls, type) and issubclass(cls, Exception):
            assert issubclass(cls, translator.TranslatorError)
            error = pickle.loads(pickle.dumps(cls("message")))
            assert type(error) is cls and str(error) == "message"
    issue = Issue("/tasks/0", "required", "x")
    error = pickle.loads(pickle.dumps(DefinitionError("bad", [issue])))
    assert error.issues == [issue]
