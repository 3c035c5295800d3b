"""Reading JSON definition files strictly, turning every problem into an Issue.

Stricter than Python's ``json`` and as strict as Jackson: NaN/Infinity are rejected, trailing data after
the value is an error. Duplicate keys (Jackson keeps the last one) are reported as warnings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from translator.issues import Issue, error, join, warning


class _PairsDict(dict):
    """A dict that remembers keys that appeared more than once in its JSON object."""

    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _PairsDict()
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, value in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
        result[key] = value
    result.duplicates = duplicates
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _plain(value: Any, ptr: str, issues: list[Issue]) -> Any:
    """Convert _PairsDict to dict recursively, reporting duplicate keys."""
    if isinstance(value, dict):
        for key in getattr(value, "duplicates", ()):
            issues.append(
                warning(
                    join(ptr, key),
                    "duplicate-key",
                    f"key {key!r} appears more than once; the last value is used",
                )
            )
        return {k: _plain(v, join(ptr, k), issues) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, join(ptr, i), issues) for i, v in enumerate(value)]
    return value


def parse_text(text: str) -> tuple[Any, list[Issue]]:
    """Parse JSON text; returns (value or None, issues). Never raises for bad input."""
    issues: list[Issue] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return None, [error("", "json-syntax", "the file is empty; expected a JSON object or array")]
    try:
        raw = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            message = (
                f"unexpected data after the JSON value at line {exc.lineno} column {exc.colno}: "
                f"{_excerpt(text, exc.pos)}"
            )
            return None, [error("", "json-trailing-data", message)]
        message = f"{exc.msg} at line {exc.lineno} column {exc.colno}: {_excerpt(text, exc.pos)}"
        return None, [error("", "json-syntax", message)]
    except ValueError as exc:  # NaN / Infinity
        return None, [error("", "json-syntax", str(exc))]
    except RecursionError:
        return None, [error("", "json-syntax", "JSON nesting is too deep")]
    return _plain(raw, "", issues), issues


def _excerpt(text: str, pos: int) -> str:
    snippet = text[pos : pos + 30].split("\n", 1)[0]
    return repr(snippet) if snippet else "end of file"


def read_file(path: Path | str) -> tuple[Any, list[Issue]]:
    """Read and parse one JSON file; problems become issues (file not set here)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        return None, [error("", "io", "is a directory, expected a JSON file")]
    except OSError as exc:
        return None, [error("", "io", f"cannot read the file: {exc.strerror or exc}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [error("", "encoding", f"not UTF-8 text (byte offset {exc.start})")]
    return parse_text(text)
