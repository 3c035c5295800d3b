"""Reading JSON documents (definitions, workflow inputs) strictly, turning every problem into an Issue.

Stricter than Python's ``json`` and as strict as Jackson: NaN/Infinity are rejected, trailing data after
the value is an error. Duplicate keys (Jackson keeps the last one) are reported as warnings.

Limits (docs/definitions.md, "Limits"), each reported as an Issue at the JSON pointer where it is hit:

* nesting deeper than :data:`MAX_DEPTH` arrays/objects. Jackson allows 1000, but the recursive code
  that later walks a document (validation, ``${...}`` resolution, copies) must stay far below
  Python's recursion limit, whatever the stack depth of its caller;
* numbers longer than :data:`MAX_NUMBER_LENGTH` characters (Jackson's default), and numbers out of
  the range of a double such as ``1e999`` (Jackson would read Infinity: refused, like Infinity);
* documents larger than :data:`MAX_DOCUMENT_BYTES`, read no further.

Depth is measured without recursion, so no document can make these functions raise.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translator.definitions.issues import Issue, Level, clip, error, join, pointer, warning

MAX_DEPTH = 128
MAX_NUMBER_LENGTH = 1000
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_REPORTED_VALUES = 20  # rejected numbers reported per document; the rest are counted

LIMIT_CODE = "limit"


@dataclass(frozen=True, slots=True)
class _Rejected:
    """Placeholder the parser leaves where a number JSON (as Jackson reads it) cannot hold."""

    message: str
    code: str = "json-syntax"


def _reject_constant(name: str) -> _Rejected:
    return _Rejected(f"{name} is not valid JSON")


def _parse_float(text: str) -> float | _Rejected:
    if len(text) > MAX_NUMBER_LENGTH:
        return _Rejected(f"a number of {len(text)} characters (at most {MAX_NUMBER_LENGTH})", LIMIT_CODE)
    value = float(text)
    if math.isinf(value):
        return _Rejected(f"{clip(text, 40)} is out of the range of a double (it would be Infinity)")
    return value


def _parse_int(text: str) -> int | _Rejected:
    if len(text) > MAX_NUMBER_LENGTH:
        return _Rejected(f"a number of {len(text)} characters (at most {MAX_NUMBER_LENGTH})", LIMIT_CODE)
    return int(text)


class _Duplicates:
    """Keys seen more than once, per JSON object, with the values the last one replaced."""

    def __init__(self) -> None:
        # id -> (the dict, its repeated keys, the replaced values). Keeping the dict keeps its id unique.
        self.by_object: dict[int, tuple[dict[str, Any], list[str], list[tuple[str, Any]]]] = {}

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            last = {key: index for index, (key, _) in enumerate(pairs)}
            replaced = [(key, value) for index, (key, value) in enumerate(pairs) if last[key] != index]
            repeated = list(dict.fromkeys(key for key, _ in replaced))
            self.by_object[id(result)] = (result, repeated, replaced)
        return result

    def of(self, value: dict[str, Any]) -> tuple[list[str], list[tuple[str, Any]]]:
        """The repeated keys of ``value`` and the values they replaced (checked too, like Jackson)."""
        found = self.by_object.get(id(value))
        return (found[1], found[2]) if found is not None and found[0] is value else ([], [])


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return iter(value.items())
    if isinstance(value, list):
        return iter(enumerate(value))
    return iter(())


def _tokens(node: tuple | None) -> list[str | int]:
    """The pointer tokens of a path kept as a linked list ``(parent, token)``."""
    tokens: list[str | int] = []
    while node is not None:
        node, token = node
        tokens.append(token)
    return tokens[::-1]


def too_deep(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """The JSON pointer of the first array/object nested deeper than ``limit``, or None.

    The top-level array/object is at depth 1. Iterative: safe for any depth.
    """
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        current, depth, path = stack.pop()
        if not isinstance(current, dict | list):
            continue
        if depth > limit:
            return pointer(*_tokens(path))
        for token, child in _children(current):
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, (path, token)))
    return None


def depth_message(limit: int = MAX_DEPTH) -> str:
    return f"nested deeper than {limit} arrays/objects, the most translator accepts"


def _check(value: Any, duplicates: _Duplicates) -> list[Issue]:
    """Depth, rejected numbers and duplicate keys of a parsed document, in document order.

    Values replaced by a later duplicate key are checked for depth and numbers too (Jackson reads them).
    Only containers and rejected numbers go on the stack: other scalars, by far the most values, are
    passed over in place (this runs on every document, up to MAX_DOCUMENT_BYTES).
    """
    issues: list[Issue] = []
    rejected = 0
    # (value, depth (0 for a rejected number), path as a linked list (parent, token), kept in the result)
    stack: list[tuple[Any, int, tuple | None, bool]] = [(value, 1, None, True)]
    while stack:
        current, depth, path, kept = stack.pop()
        cls = current.__class__
        if cls is _Rejected:
            rejected += 1
            if rejected <= MAX_REPORTED_VALUES:
                issues.append(error(pointer(*_tokens(path)), current.code, current.message))
            continue
        if cls is not dict and cls is not list:
            continue
        if depth > MAX_DEPTH:
            return [error(pointer(*_tokens(path)), LIMIT_CODE, depth_message())]
        first = len(stack)
        if cls is dict:
            repeated, replaced = duplicates.of(current) if duplicates.by_object else ((), ())
            if repeated and kept:
                base = pointer(*_tokens(path))
                issues += [
                    warning(
                        join(base, key),
                        "duplicate-key",
                        f"key {clip(key)!r} appears more than once; the last value is used",
                    )
                    for key in repeated
                ]
            for token, child in replaced:
                stack.append((child, depth + 1, (path, token), False))
            pairs: Iterable[tuple[str | int, Any]] = current.items()
        else:
            pairs = enumerate(current)
        for token, child in pairs:
            kind = child.__class__
            if kind is dict or kind is list or kind is _Rejected:
                stack.append((child, depth + 1, (path, token), kept))
        stack[first:] = stack[first:][::-1]  # popped in document order
    if rejected > MAX_REPORTED_VALUES:
        more = rejected - MAX_REPORTED_VALUES
        issues.append(error("", "json-syntax", f"{more} more numbers refused (only the first are listed)"))
    return issues


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def _deep_pointer(text: str, limit: int = MAX_DEPTH) -> str | None:
    """Scan JSON text (without building it) for the pointer of the first container deeper than ``limit``."""
    stack: list[list[Any]] = []  # [is_object, token, expecting_key]
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            if len(stack) >= limit:
                return pointer(*(entry[1] for entry in stack))
            stack.append([token == "{", "" if token == "{" else 0, token == "{"])
        elif token in "}]":
            if stack:
                stack.pop()
        elif token == ",":
            if stack and stack[-1][0]:
                stack[-1][2] = True
            elif stack:
                stack[-1][1] += 1
        elif token == ":":
            if stack:
                stack[-1][2] = False
        elif stack and stack[-1][0] and stack[-1][2]:
            try:
                stack[-1][1] = json.loads(token)
            except ValueError:
                return None
    return None


def parse_text(text: str) -> tuple[Any, list[Issue]]:
    """Parse JSON text; returns (value or None, issues). Never raises for bad input."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return None, [error("", "json-syntax", "the file is empty; expected a JSON object or array")]
    duplicates = _Duplicates()
    try:
        raw = json.loads(
            text,
            object_pairs_hook=duplicates.hook,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            message = (
                f"unexpected data after the JSON value at line {exc.lineno} column {exc.colno}: "
                f"{_excerpt(text, exc.pos)}"
            )
            return None, [error("", "json-trailing-data", message)]
        message = f"{exc.msg} at line {exc.lineno} column {exc.colno}: {_excerpt(text, exc.pos)}"
        return None, [error("", "json-syntax", message)]
    except RecursionError:
        found = _deep_pointer(text)
        return None, [error(found or "", LIMIT_CODE, depth_message())]
    except ValueError as exc:  # e.g. an integer Python itself refuses to convert
        return None, [error("", "json-syntax", clip(str(exc)))]
    issues = _check(raw, duplicates)
    if any(issue.level is Level.ERROR for issue in issues):
        return None, issues
    return raw, issues


def _excerpt(text: str, pos: int) -> str:
    snippet = text[pos : pos + 30].split("\n", 1)[0]
    return repr(snippet) if snippet else "end of file"


def too_large_message() -> str:
    return f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB, the most translator reads"


def decode(data: bytes) -> tuple[Any, list[Issue]]:
    """Parse the bytes of one JSON document (UTF-8, optional BOM)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        return None, [error("", LIMIT_CODE, too_large_message())]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [error("", "encoding", f"not UTF-8 text (byte offset {exc.start})")]
    return parse_text(text)


def read_file(path: Path | str) -> tuple[Any, list[Issue]]:
    """Read and parse one JSON file; problems become issues (file not set here)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except IsADirectoryError:
        return None, [error("", "io", "is a directory, expected a JSON file")]
    except OSError as exc:
        return None, [error("", "io", f"cannot read the file: {exc.strerror or exc}")]
    return decode(data)
