"""The one exception hierarchy of translator.

    TranslatorError                 base of every error this package raises on purpose
    ├── DefinitionError             definitions failed to load or validate (carries every Issue)
    ├── ExpressionError             a ${...} expression cannot be evaluated
    │   └── UnsupportedExpression   valid Conductor syntax that translator deliberately does not run
    ├── UsageError                  the caller asked for something impossible (bad option, missing file)
    ├── InputError                  a workflow input file is not acceptable (not JSON, NaN, too deep...)
    ├── BrokerUnavailable           the configured broker or state store cannot be reached
    ├── WorkflowNotFound            no execution with that id in the state store
    ├── DefinitionNotFound          no registered workflow or task definition by that name (and version)
    ├── ConflictError               refused in the current state (Conductor: 409)
    ├── TaskNotPending              no task of that reference waits to be ended
    ├── NonRetryableError           raised by a worker: fail the task for good (no retry)
    ├── ScriptError                 a JavaScript expression failed (translator.engine.javascript)
    └── DecisionError               a system task cannot be decided from its input (translator.engine.decide)

All errors are picklable so that they can cross worker process boundaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from translator.definitions.issues import Issue


class TranslatorError(Exception):
    """Base class of every error raised on purpose by translator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep picklable when subclasses add constructor arguments
        return (self.__class__, (self.message,))

    def __str__(self) -> str:
        return self.message


class DefinitionError(TranslatorError):
    """Definitions failed to load or validate; ``issues`` holds every problem found."""

    def __init__(self, message: str, issues: list[Issue] | tuple[Issue, ...] = ()) -> None:
        super().__init__(message)
        self.issues = list(issues)

    def __reduce__(self):
        return (self.__class__, (self.message, self.issues))

    def __str__(self) -> str:
        if not self.issues:
            return self.message
        lines = [self.message, *(issue.render() for issue in self.issues)]
        return "\n".join(lines)


class ExpressionError(TranslatorError):
    """A ${...} expression cannot be evaluated."""


class UnsupportedExpression(ExpressionError):
    """Valid Conductor expression syntax that translator deliberately does not evaluate."""


class UsageError(TranslatorError):
    """The caller asked for something impossible (unknown option value, missing file...)."""


class InputError(TranslatorError):
    """A workflow input file is not acceptable: not a JSON object, NaN/Infinity, beyond the limits."""


class BrokerUnavailable(TranslatorError):
    """The configured broker or state store cannot be reached."""


class WorkflowNotFound(TranslatorError):
    """No execution with that id in the state store."""


class DefinitionNotFound(TranslatorError):
    """No registered workflow or task definition by that name (and version)."""


class ConflictError(TranslatorError):
    """The operation is refused in the current state: a lifecycle operation whose precondition fails
    (pause an ended workflow, retry a running one...) or a definition that already exists. Conductor
    answers these with HTTP 409."""


class TaskNotPending(TranslatorError):
    """No task of that reference waits to be ended (none is scheduled or running, or the workflow
    has ended)."""


class NonRetryableError(TranslatorError):
    """Raised by a worker function: the task ends FAILED_WITH_TERMINAL_ERROR and is not retried."""
