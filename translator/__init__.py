"""translator: run Netflix/Orkes Conductor workflow definitions on Celery."""

from translator.errors import (
    DefinitionError,
    ExpressionError,
    TranslatorError,
    UnsupportedExpression,
    UsageError,
)
from translator.expressions import resolve

__all__ = [
    "DefinitionError",
    "ExpressionError",
    "TranslatorError",
    "UnsupportedExpression",
    "UsageError",
    "resolve",
]
