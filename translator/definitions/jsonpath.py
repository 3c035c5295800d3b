"""JSONPath reads with the semantics of Jayway JsonPath as Conductor configures it.

Conductor reads every ``${path}`` with Jayway and ``SUPPRESS_EXCEPTIONS``:

* a path without a leading ``$`` or ``@`` is read as ``$.<path>``;
* a *definite* path (no deep scan, wildcard, filter, slice or union) yields one value, or ``None``
  when anything is missing or the path is invalid;
* an *indefinite* path yields a list of every match (``[]`` when nothing matches).

Parsing is done by jsonpath-ng's extended grammar (filters, slices, negative indexes); Jayway's
``.length()`` / ``.size()`` suffix functions are handled here.

Limits (docs/definitions.md): a path longer than :data:`MAX_PATH_LENGTH` characters or nested deeper
than :data:`MAX_PATH_DEPTH` (segments, filters and their own paths) is refused before it is evaluated:
jsonpath-ng evaluates paths recursively. Checks are iterative.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import jsonpath as ast
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.filter import Filter

try:
    from jsonpath_ng.ext.parser import ExtendedJsonPathParser
except ImportError:  # jsonpath-ng before 1.7 spells it so
    from jsonpath_ng.ext.parser import ExtentedJsonPathParser as ExtendedJsonPathParser

from translator.definitions.issues import clip, one_line
from translator.errors import ExpressionError

_LENGTH_SUFFIXES = (".length()", ".size()")
_INDEFINITE_NODES = (ast.Descendants, ast.Wildcard, ast.Slice, Filter, ast.Where, ast.WhereNot)
MAX_PATH_LENGTH = 1024
MAX_PATH_DEPTH = 64

_parsers = threading.local()  # building a parser costs more than parsing: one per thread, reused


def _parse(text: str) -> ast.JSONPath:
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = ExtendedJsonPathParser()
    return parser.parse(text)


class PathSyntaxError(ValueError):
    """The text is not a JSONPath expression."""


class PathLimitError(PathSyntaxError):
    """The path is longer or more deeply nested than translator evaluates."""


@dataclass(frozen=True, slots=True)
class CompiledPath:
    text: str
    expression: ast.JSONPath
    definite: bool
    length: bool

    def read(self, document: Any) -> Any:
        try:
            values = [match.value for match in self.expression.find(document)]
        except RecursionError:
            raise ExpressionError(
                f"${{{clip(self.text)}}}: the document is nested too deeply to be searched"
            ) from None
        if self.length:
            values = [len(v) for v in values if isinstance(v, list | dict | str)]
        if self.definite:
            return values[0] if values else None
        return values


def normalize(path: str) -> str:
    """Jayway's implicit root: ``workflow.input`` -> ``$.workflow.input``."""
    text = path.strip()
    if text.startswith("$") or text.startswith("@"):
        return text
    return "$." + text


@lru_cache(maxsize=8192)
def compile_path(path: str) -> CompiledPath:
    """Parse a path once; raises PathSyntaxError for text that is not a JSONPath (PathLimitError for
    one beyond the limits)."""
    if len(path) > MAX_PATH_LENGTH:
        raise PathLimitError(
            f"JSONPath {clip(path, 60)!r} is longer than {MAX_PATH_LENGTH} characters, "
            "the most translator reads"
        )
    text = normalize(path)
    length = False
    for suffix in _LENGTH_SUFFIXES:
        if text.endswith(suffix):
            text, length = text[: -len(suffix)], True
            break
    if text.startswith("@"):
        text = "$" + text[1:]
    try:
        expression = _parse(text)
    except (
        JsonPathParserError,
        JsonPathLexerError,
        Exception,
    ) as exc:  # jsonpath-ng raises bare Exception too
        raise PathSyntaxError(f"invalid JSONPath {clip(path)!r}: {clip(one_line(str(exc)))}") from None
    if _depth(expression) > MAX_PATH_DEPTH:
        raise PathLimitError(
            f"JSONPath {clip(path, 60)!r} is nested deeper than {MAX_PATH_DEPTH} segments, "
            "the most translator evaluates"
        )
    return CompiledPath(text, expression, _is_definite(expression), length)


def _sub_nodes(node: object) -> list[object]:
    """The jsonpath-ng objects directly under ``node`` (paths, filter expressions and their targets)."""
    found: list[object] = []
    for value in vars(node).values() if hasattr(node, "__dict__") else ():
        for item in value if isinstance(value, list | tuple) else (value,):
            if type(item).__module__.startswith("jsonpath_ng"):
                found.append(item)
    return found


def _depth(root: ast.JSONPath) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _sub_nodes(node))
    return deepest


def _is_indefinite_node(node: ast.JSONPath) -> bool:
    if isinstance(node, _INDEFINITE_NODES):
        return True
    if isinstance(node, ast.Fields) and (len(node.fields) != 1 or node.fields[0] == "*"):
        return True
    if isinstance(node, ast.Index) and len(getattr(node, "indices", [0])) != 1:
        return True
    return type(node).__name__ == "Union"  # ast.Union is deprecated, so compare by name


def _is_definite(root: ast.JSONPath) -> bool:
    """No node of the left/right tree selects more than one value."""
    stack = [root]
    while stack:
        node = stack.pop()
        if _is_indefinite_node(node):
            return False
        for name in ("left", "right"):
            child = getattr(node, name, None)
            if isinstance(child, ast.JSONPath):
                stack.append(child)
    return True


def read(path: str, document: Any) -> Any:
    """Read ``path`` from ``document`` the way Conductor does; a bad path reads as missing.

    Raises ExpressionError (deliberately, unlike Conductor) for a path beyond the limits or a document
    too deep to search, so that the task fails with that reason instead of reading a silent null.
    """
    try:
        compiled = compile_path(path)
    except PathLimitError as exc:
        raise ExpressionError(str(exc)) from None
    except PathSyntaxError:
        return None
    try:
        return compiled.read(document)
    except ExpressionError:
        raise
    except Exception:  # SUPPRESS_EXCEPTIONS: evaluation problems read as "missing"
        return None if compiled.definite else []
