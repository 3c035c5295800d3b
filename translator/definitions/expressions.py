"""Conductor's ``${...}`` parameter resolution (ParametersUtils), reimplemented exactly.

* A string that is exactly one ``${...}`` resolves to the raw JSON value (types kept).
* In a mixed string every ``${...}`` is replaced by the Java ``toString`` of its value:
  null -> ``null``, 2.0 -> ``2.0``, maps -> ``{a=1, b=x}``, lists -> ``[1, 2]``.
* Nested expressions resolve inside-out: ``${map.${key}[${idx}]}``.
* ``$${`` is an escape: not evaluated, and turned into ``${`` once the string is substituted.
* ``${}`` and ``${   }`` resolve to ``""``.
* ``${CPEWF_TASK_ID}`` is the id of the task being scheduled.
* Deliberate difference: Conductor lets ``${NAME}`` read *any* server environment variable.
  translator only reads names the caller passes in ``env`` (see :func:`allowed_environment`).
* ``${workflow.env.*}`` and ``${workflow.secrets.*}`` (Orkes/newest OSS) are unsupported.

Limits (docs/definitions.md): templates nested deeper than ``MAX_DEPTH``, ``${`` nested more than
:data:`MAX_EXPRESSION_NESTING` deep, paths beyond the JSONPath limits and values too deep to render
raise ExpressionError, so a task fails with that reason. Copies are iterative (any depth).
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jsonpath_ng import jsonpath as jsonpath_ast

from translator.definitions import jsonpath
from translator.definitions.issues import clip
from translator.definitions.jsonsource import depth_message, too_deep
from translator.errors import ExpressionError, UnsupportedExpression

__all__ = [
    "SYSTEM_PARAMETERS",
    "allowed_environment",
    "apply_workflow_input_template",
    "copy_json",
    "expression_nesting",
    "expressions_in",
    "java_string",
    "resolve",
    "resolve_task_input",
]

TASK_ID_PARAMETER = "CPEWF_TASK_ID"
SYSTEM_PARAMETERS = frozenset({TASK_ID_PARAMETER, "NETFLIX_ENV", "NETFLIX_STACK"})
ENV_ALLOWLIST_VARIABLE = "TRANSLATOR_EXPRESSION_ENV"
_UNSUPPORTED_PREFIXES = ("workflow.env.", "workflow.secrets.", "$.workflow.env.", "$.workflow.secrets.")
MAX_EXPRESSION_NESTING = 16
_BRACES = re.compile(r"[{}]")
_MISSING = object()


# ---------------------------------------------------------------------------------------------
# Java rendering (Objects.toString of the values Jackson builds)


def java_string(value: Any) -> str:
    """Render a JSON value the way Java's ``Objects.toString`` renders Jackson's Java objects.

    Raises ExpressionError for a value nested deeper than ``MAX_DEPTH`` (rendering is recursive).
    """
    if isinstance(value, Mapping | list | tuple) and too_deep(value) is not None:
        raise ExpressionError(f"the value to render in a string is {depth_message()}")
    return _java_string(value)


def _java_string(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_java_string(k)}={_java_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_java_string(v) for v in value) + "]"
    return str(value)


def java_double(value: float) -> str:
    """``Double.toString``: ``2.0``, ``0.001``, ``1.0E7``, ``1.0E-4``, ``NaN``, ``Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    scientific_exponent = len(digits) + exponent - 1
    mantissa = "".join(map(str, digits)).rstrip("0") or "0"
    mantissa = mantissa[0] + "." + (mantissa[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{scientific_exponent}"


# ---------------------------------------------------------------------------------------------
# Scanning a string for ${...}


@dataclass(frozen=True, slots=True)
class Expression:
    start: int  # index of "$"
    end: int  # index just past the closing "}"
    body: str  # text between "${" and its matching "}"


def expressions_in(text: str) -> Iterator[Expression]:
    """Yield the top-level ``${...}`` expressions of ``text``, skipping ``$${`` escapes."""
    if "${" not in text:
        return
    closing = _closing_braces(text)
    scanned = 0
    while (i := text.find("${", scanned)) >= 0:
        if i > scanned and text[i - 1] == "$":  # "$${" (after any run of "$") is an escape
            scanned = i + 2
            continue
        close = closing.get(i + 1)
        if close is None:
            scanned = i + 1
            continue
        yield Expression(i, close + 1, text[i + 2 : close])
        scanned = close + 1


@lru_cache(maxsize=8192)
def _expressions(text: str) -> tuple[Expression, ...]:
    """:func:`expressions_in` of a text, scanned once per process (templates repeat)."""
    return tuple(expressions_in(text))


def _closing_braces(text: str) -> dict[int, int]:
    """Index of every ``{`` -> index of its matching ``}`` (nesting counted), in one pass."""
    closing: dict[int, int] = {}
    opened: list[int] = []
    for match in _BRACES.finditer(text):
        if match.group() == "{":
            opened.append(match.start())
        elif opened:
            closing[opened.pop()] = match.start()
    return closing


def expression_nesting(text: str, limit: int = MAX_EXPRESSION_NESTING) -> int:
    """How deeply ``${...}`` nest in ``text`` as resolution reads them (counted up to ``limit + 1``)."""
    deepest = 0
    stack = [(text, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if level > limit:
            break
        stack.extend((expr.body, level + 1) for expr in expressions_in(current))
    return deepest


# ---------------------------------------------------------------------------------------------
# Resolution


class _Resolver:
    def __init__(self, document: Any, task_id: str | None, env: Mapping[str, str]) -> None:
        self.document = document
        self.task_id = task_id
        self.env = env

    def value(self, template: Any) -> Any:
        if isinstance(template, str):
            return self.string(template)
        if isinstance(template, Mapping):
            return {key: self.value(item) for key, item in template.items()}
        if isinstance(template, list | tuple):
            return [self.value(item) for item in template]
        return copy_json(template)

    def string(self, text: str, level: int = 0) -> Any:
        found = _expressions(text)
        if len(found) == 1 and found[0].start == 0 and found[0].end == len(text):
            return self.evaluate(found[0], level + 1)
        if not found:
            return text.replace("$${", "${")
        pieces: list[str] = []
        cursor = 0
        for expr in found:
            pieces.append(text[cursor : expr.start])
            pieces.append(self.render(expr, self.evaluate(expr, level + 1)))
            cursor = expr.end
        pieces.append(text[cursor:])
        return "".join(pieces).replace("$${", "${")

    def render(self, expr: Expression, value: Any) -> str:
        try:
            return java_string(value)
        except ExpressionError as exc:
            raise ExpressionError(f"${{{clip(expr.body, 60)}}}: {exc}") from None

    def evaluate(self, expr: Expression, level: int) -> Any:
        if level > MAX_EXPRESSION_NESTING:
            raise ExpressionError(
                f"${{{clip(expr.body, 60)}}}: expressions nested more than {MAX_EXPRESSION_NESTING} deep"
            )
        path = self.render(expr, self.string(expr.body, level))
        if not path.strip():
            return ""
        name = path.strip()
        if name in SYSTEM_PARAMETERS or name in self.env:
            value = self.task_id if name == TASK_ID_PARAMETER else self.env.get(name)
            return value if value is not None else "${" + expr.body + "}"
        if name.startswith(_UNSUPPORTED_PREFIXES):
            raise UnsupportedExpression(
                f"${{{name}}}: workflow.env and workflow.secrets expressions are not supported; "
                f"pass the value in the workflow input instead"
            )
        fields = _field_chain(path)
        if fields is None:
            return jsonpath.read(path, self.document)
        value = self.document
        for name in fields:  # as jsonpath-ng's Fields.find reads each name
            try:
                value = value.get(name, _MISSING)
            except (TypeError, AttributeError):
                return None
            if value is _MISSING:
                return None
        return value


@lru_cache(maxsize=8192)
def _field_chain(path: str) -> tuple[str, ...] | None:
    """The names of a path that only reads one object field after another (``a.output.b``,
    ``$['a'].b``), read without jsonpath-ng's matching; None for any other path (or a bad one)."""
    if jsonpath_ast.auto_id_field is not None:
        return None
    try:
        compiled = jsonpath.compile_path(path)
    except jsonpath.PathSyntaxError:
        return None
    if compiled.length:
        return None
    names: list[str] = []
    node = compiled.expression
    while type(node) is jsonpath_ast.Child:
        field = node.right
        if type(field) is not jsonpath_ast.Fields or len(field.fields) != 1:
            return None
        if getattr(field, "_deprecated_wildcard_use", False):
            return None
        names.append(field.fields[0])
        node = node.left
    if type(node) is not jsonpath_ast.Root or not names:
        return None
    return tuple(reversed(names))


def resolve(
    template: Any,
    document: Any,
    *,
    task_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Resolve every ``${...}`` in ``template`` (any JSON value) against ``document``.

    ``document`` is the evaluation document of reference §5.1 (``{"workflow": {...}, "<ref>": {...}}``).
    ``task_id`` answers ``${CPEWF_TASK_ID}``; ``env`` maps the environment names that may be read.
    The template is never mutated. Raises ExpressionError when a limit is exceeded (module docstring).
    """
    if isinstance(template, Mapping | list | tuple) and too_deep(template) is not None:
        raise ExpressionError(f"the template is {depth_message()}")
    return _Resolver(document, task_id, env or {}).value(template)


def resolve_task_input(
    input_parameters: Mapping[str, Any],
    document: Any,
    *,
    input_template: Mapping[str, Any] | None = None,
    task_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A task's input: ``inputParameters`` merged with the TaskDef ``inputTemplate`` (§5.6).

    Template keys missing from the parameters are added and resolved with them; a parameter
    that resolves to null is then replaced by the raw template value of the same key.
    """
    template = dict(input_template or {})
    merged: dict[str, Any] = dict(input_parameters)
    for key, value in template.items():
        merged.setdefault(key, value)
    resolved: dict[str, Any] = resolve(merged, document, task_id=task_id, env=env)
    for key, value in resolved.items():
        if value is None and key in template:
            resolved[key] = copy_json(template[key])
    return resolved


def apply_workflow_input_template(
    workflow_input: Mapping[str, Any], input_template: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Workflow ``inputTemplate`` defaults, added only when the start input is non-empty (§5.6)."""
    result = copy_json(dict(workflow_input))
    if result and input_template:
        for key, value in input_template.items():
            result.setdefault(key, copy_json(value))
    return result


def copy_json(value: Any) -> Any:
    """``copy.deepcopy`` for JSON values (dicts and lists copied as such), without recursion."""
    if not isinstance(value, dict | list):
        return value if isinstance(value, str | int | float | bool | None) else copy.deepcopy(value)
    copies: dict[int, Any] = {}  # id -> copy: shared and cyclic references stay so, as with deepcopy

    def fresh(item: Any) -> Any:
        if not isinstance(item, dict | list):
            return copy_json(item)
        if id(item) not in copies:
            copies[id(item)] = {} if isinstance(item, dict) else []
            pending.append(item)
        return copies[id(item)]

    pending: list[Any] = []
    root = fresh(value)
    while pending:
        source = pending.pop()
        target = copies[id(source)]
        if isinstance(source, dict):
            for key, item in source.items():
                target[key] = fresh(item)
        else:
            target.extend(fresh(item) for item in source)
    return root


def allowed_environment(
    names: Iterable[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment variables that ``${NAME}`` may read.

    ``names`` defaults to the comma-separated list in ``TRANSLATOR_EXPRESSION_ENV``; names that are
    not set in the environment are left out (so ``${NAME}`` then reads the document, like Conductor).
    """
    environ = os.environ if environ is None else environ
    if names is None:
        names = environ.get(ENV_ALLOWLIST_VARIABLE, "").split(",")
    return {name: environ[name] for name in (n.strip() for n in names) if name and name in environ}


def first_segment(path: str) -> str:
    """The first name a JSONPath reads (``a`` of ``a.output.b``, ``$.a.b``, ``$['a']``)."""
    text = path.strip()
    if text.startswith("$."):
        text = text[2:]
    elif text.startswith("$["):
        match = re.match(r"\$\[\s*['\"]([^'\"]*)['\"]\s*\]", text)
        return match.group(1) if match else ""
    return re.split(r"[.\[]", text, maxsplit=1)[0].strip()


@lru_cache(maxsize=8192)
def _names_in(text: str) -> frozenset[str] | None:
    """:func:`referenced_names` of one string."""
    names: set[str] = set()
    for expr in expressions_in(text):
        body = expr.body.strip()
        if "${" in body:
            return None
        names.add(first_segment(body))
    return frozenset(names)


def referenced_names(value: Any) -> set[str] | None:
    """The first names the ``${...}`` expressions in ``value`` read (task references, ``workflow``),
    or None when an expression builds its path at run time (a nested ``${``): then anything may be
    read."""
    names: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${" not in item:
                continue
            found = _names_in(item)
            if found is None:
                return None
            names.update(found)
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(k for k in item if isinstance(k, str) and "${" in k)
        elif isinstance(item, list):
            stack.extend(item)
    return names
