"""JSONPath reads with the semantics of Jayway JsonPath as Conductor configures it.

Conductor reads every ``${path}`` with Jayway and ``SUPPRESS_EXCEPTIONS``:

* a path without a leading ``$`` or ``@`` is read as ``$.<path>``;
* a *definite* path (no deep scan, wildcard, filter, slice or union) yields one value, or ``None``
  when anything is missing or the path is invalid;
* an *indefinite* path yields a list of every match (``[]`` when nothing matches).

Parsing is done by jsonpath-ng's extended grammar (filters, slices, negative indexes); Jayway's
``.length()`` / ``.size()`` suffix functions are handled here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import jsonpath as ast
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as _parse
from jsonpath_ng.ext.filter import Filter

_LENGTH_SUFFIXES = (".length()", ".size()")
_INDEFINITE_NODES = (ast.Descendants, ast.Wildcard, ast.Slice, Filter, ast.Where, ast.WhereNot)


class PathSyntaxError(ValueError):
    """The text is not a JSONPath expression."""


@dataclass(frozen=True, slots=True)
class CompiledPath:
    text: str
    expression: ast.JSONPath
    definite: bool
    length: bool

    def read(self, document: Any) -> Any:
        values = [match.value for match in self.expression.find(document)]
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
    """Parse a path once; raises PathSyntaxError for text that is not a JSONPath."""
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
        raise PathSyntaxError(f"invalid JSONPath {path!r}: {exc}") from None
    return CompiledPath(text, expression, _is_definite(expression), length)


def _is_definite(node: ast.JSONPath) -> bool:
    if isinstance(node, _INDEFINITE_NODES):
        return False
    if isinstance(node, ast.Fields) and (len(node.fields) != 1 or node.fields[0] == "*"):
        return False
    if isinstance(node, ast.Index) and len(getattr(node, "indices", [0])) != 1:
        return False
    if type(node).__name__ == "Union":  # ast.Union is deprecated, so compare by name
        return False
    children = [getattr(node, name) for name in ("left", "right") if hasattr(node, name)]
    return all(_is_definite(child) for child in children if isinstance(child, ast.JSONPath))


def read(path: str, document: Any) -> Any:
    """Read ``path`` from ``document`` the way Conductor does; never raises for a bad path."""
    try:
        compiled = compile_path(path)
    except PathSyntaxError:
        return None
    try:
        return compiled.read(document)
    except Exception:  # SUPPRESS_EXCEPTIONS: evaluation problems read as "missing"
        return None if compiled.definite else []


def check(path: str) -> str | None:
    """Return why ``path`` is not a valid JSONPath, or None when it is."""
    try:
        compile_path(path)
    except PathSyntaxError as exc:
        return str(exc)
    return None
