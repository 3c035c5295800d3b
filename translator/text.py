"""Bounded renderings of values for messages, logs and recorded reasons.

A value supplied by a user (a URL, a path, any input) can be megabytes long; messages quote only its
start and say how long it was, so a reason never repeats the input.
"""

from __future__ import annotations

import traceback

VALUE_LIMIT = 200  # characters of a value quoted in a message
REASON_LIMIT = 2000  # characters of a recorded reasonForIncompletion
ELLIPSIS = "…"


def shorten(value: object, limit: int = VALUE_LIMIT, *, quote: bool = True) -> str:
    """``value`` for a message, at most about ``limit`` characters.

    With ``quote`` (the default) the result is a ``repr``: one line, control characters escaped, so
    a value cannot forge log lines. A cut value keeps its start and says how long it was:
    ``'http://aaaa…' (1048600 characters)``. ``quote=False`` cuts plain text (a whole message)
    the same way without quoting it.
    """
    text = value if isinstance(value, str) else _safe_repr(value)
    if len(text) <= limit:
        return repr(text) if quote and isinstance(value, str) else text
    head = text[: max(limit, 1)] + ELLIPSIS
    if quote and isinstance(value, str):
        head = repr(head)
    return f"{head} ({len(text)} characters)"


def short_traceback(exc: BaseException, limit: int = REASON_LIMIT) -> str:
    """``exc``'s traceback for a log, its message cut to ``limit`` characters: a worker's exception
    may quote a megabyte of input."""
    stack = "".join(traceback.TracebackException.from_exception(exc).stack.format())
    message = shorten(f"{type(exc).__name__}: {exc}", limit, quote=False)
    return f"Traceback (most recent call last):\n{stack}{message}"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the message around it
        return f"<{type(value).__name__} object>"
