"""JSON_JQ_TRANSFORM: Conductor's ``JsonJqTransform`` on the jq C library (the ``jq`` bindings).

Contract (``JsonJqTransform.start``):

* the query runs over the task's whole resolved input map, ``queryExpression`` included, so
  ``.someKey`` reads an input parameter;
* success: output ``result`` = the first value the query outputs (None when it outputs nothing) and
  ``resultList`` = every value, in order;
* no ``queryExpression`` (absent or null): FAILED, reason ``Missing 'queryExpression' in input
  parameters``, nothing in the output;
* a query that does not compile or fails while running: FAILED; the reason is the engine's message, with
  no prefix, and the output holds the same text under ``error`` (:attr:`JqError.output`). C jq's texts
  of the errors jackson-jq 0.0.13 (Conductor's) reports alike are written as jackson-jq writes them
  (:func:`conductor_text`): ``Cannot index string with string "a"``, ``Cannot index object with
  number``, ``Cannot iterate over number``, ``Function foo/0 does not exist``, ``Undefined variable:
  $x``;
* numbers (jackson-jq ``asNumericNode`` and ``extractBody``): integral values within a Java long are
  ints, every other number a float.

Compiled queries are cached per text, at most :data:`CACHE_SIZE` (Conductor: 1000, for an hour).

Deliberate differences:

* other messages are C jq's: syntax errors (``jq: error: syntax error, unexpected end of file at
  <top-level>, line 1, column 2`` where jackson-jq's parser writes ``Encountered "<EOF>" at line 1,
  column 1. Was expecting one of: ...``), type errors (``string ("a") and number (1) cannot be
  added``: jackson-jq writes the values its own way), an index key C jq cut to its first bytes
  (``"aaaa..."``), and the message a query reads in ``try ... catch``;
* C jq checks names when the query compiles: an undefined function or variable fails the task even in
  a branch that does not run (jackson-jq fails only when it runs into it), and the functions only C jq
  has (``getpath``, ``setpath``, ``todate``, ``tostream``...) work;
* jq computes with doubles (numbers passed through keep their text: ``1.0`` stays a float, a long stays
  exact): a computed integer beyond 2**53 loses precision where jackson-jq's long arithmetic may not; a
  number beyond a double's range is the largest double (jq's ``infinite``);
* ``env`` and ``$ENV`` are ``{}``: a query cannot read the worker's environment (jackson-jq does not
  define them: the query does not compile);
* a blank ``queryExpression`` fails with its own message and ``error`` output (Conductor: jackson-jq's
  compile error); a non-string one fails like a missing one (Conductor: a ClassCastException thrown out
  of the decider);
* an output nested deeper than :data:`~translator.definitions.jsonsource.MAX_DEPTH` arrays/objects
  fails the task (translator's limit on every document).

Like Conductor, a query runs without a time or memory limit (``[range(1e9)]`` holds the caller).
"""

from __future__ import annotations

import json
import math
import re
import sys
from functools import lru_cache
from typing import Any

import jq as jqlib

from translator.definitions.jsonsource import depth_message, too_deep
from translator.engine.javascript import ScriptError
from translator.text import REASON_LIMIT, shorten

__all__ = ["CACHE_SIZE", "QUERY_PARAMETER", "JqError", "conductor_text", "transform"]

QUERY_PARAMETER = "queryExpression"
CACHE_SIZE = 1000  # compiled queries kept, Conductor's Caffeine maximumSize
_LONG_MIN, _LONG_LIMIT = -(2**63), 2**63
_LONG_DIGITS = len(str(_LONG_MIN))
_TOO_DEEP = f"a value the query outputs is {depth_message()}"
# C jq's messages (jq 1.8) of the errors jackson-jq reports alike. C jq quotes the value it could not
# use, cut to 29 bytes (ending with ...") when longer.
_KIND = r"(?P<kind>null|boolean|number|string|array|object)"
_CANNOT_INDEX = re.compile(
    rf"Cannot index {_KIND} with (?P<key>null|boolean|number|string|array|object) \((?P<value>.*)\)",
    re.DOTALL,
)
_CANNOT_ITERATE = re.compile(rf"Cannot iterate over {_KIND} \(.*\)", re.DOTALL)
_NOT_DEFINED = re.compile(
    r"jq: error: (?P<name>\$[\w:]+|[\w:]+/\d+) is not defined at [^\n]*\n.*\njq: 1 compile error", re.DOTALL
)
_CUT = 26  # a quoted value of this many UTF-8 bytes or more that ends with ..." may have been cut

# The user's query runs inside this frame: env/$ENV are empty, and every value leaves jq as JSON text
# (jq's dumper keeps number literals, 1.0 stays a float, and it is safe at any depth, where the bindings'
# recursive conversion would overflow the C stack). The query compiles on its own first, so its
# brackets are balanced and it cannot close the frame's parentheses. The frame adds no line before the
# query ($__loc__ and positions stay right); the empty line ends a comment continued with "\".
_FRAME_HEAD = "def env: {}; {} as $ENV | (try ("
_FRAME_TAIL = '\n\n) catch error(if type == "string" then . else tojson end)) | tojson'


class JqError(ScriptError):
    """The JSON_JQ_TRANSFORM task fails: ``message`` is its reasonForIncompletion and ``output`` its
    output (``{"error": message}`` for a query that did not compile or run, ``{}`` without a query)."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = dict(output) if output is not None else {}

    def __reduce__(self):
        return (self.__class__, (self.message, self.output))


def transform(query: str | None, data: Any) -> dict[str, Any]:
    """The output of a successful JSON_JQ_TRANSFORM: ``query`` run over ``data`` (the task's whole
    input). Raises :class:`JqError`."""
    if query is None:
        raise JqError(f"Missing '{QUERY_PARAMETER}' in input parameters")
    if not isinstance(query, str):
        raise JqError(f"'{QUERY_PARAMETER}' must be a string (a jq query), got {shorten(query)}")
    if not query.strip():
        raise _failure(f"Empty '{QUERY_PARAMETER}' in input parameters: a jq query is required")
    try:
        text = json.dumps(data, allow_nan=False)  # ASCII: lone surrogates survive as escapes
    except (TypeError, ValueError, RecursionError) as exc:
        raise _failure(f"the task's input is not JSON: {exc}") from None
    program = _compile(query)
    try:
        texts = program.input_text(text).all()
    except ValueError as exc:
        raise _failure(conductor_text(str(exc))) from None
    results = [_output(item) for item in texts]
    return {"result": results[0] if results else None, "resultList": results}


@lru_cache(maxsize=CACHE_SIZE)
def _program(query: str) -> Any:
    jqlib.compile(query)  # jq's own message for a query that does not compile
    return jqlib.compile(_FRAME_HEAD + query + _FRAME_TAIL)


def _compile(query: str) -> Any:
    try:
        return _program(query)
    except ValueError as exc:  # jq's compile errors; UnicodeEncodeError for a lone surrogate
        raise _failure(conductor_text(str(exc))) from None


def conductor_text(message: str) -> str:
    """C jq's ``message`` as jackson-jq 0.0.13 writes the same error, when they correspond exactly
    (``ResolvedStringFieldAccess``, ``ResolvedIndexFieldAccess``, ``BracketFieldAccess``,
    ``ResolvedAllFieldAccess``, ``FunctionCall``, ``VariableAccess``); any other message as it is."""
    if found := _CANNOT_INDEX.fullmatch(message):
        if found["key"] != "string":
            return f"Cannot index {found['kind']} with {found['key']}"
        value = found["value"]
        if value.endswith('..."') and len(value.encode()) >= _CUT:
            return message  # the key may have been cut
        try:
            key = json.loads(value)
        except ValueError:
            return message
        return f'Cannot index {found["kind"]} with string "{key}"' if isinstance(key, str) else message
    if found := _CANNOT_ITERATE.fullmatch(message):
        return f"Cannot iterate over {found['kind']}"
    if found := _NOT_DEFINED.fullmatch(message):
        name = found["name"]
        return f"Undefined variable: {name}" if name.startswith("$") else f"Function {name} does not exist"
    return message


def _failure(message: str) -> JqError:
    text = shorten(message, REASON_LIMIT, quote=False)
    return JqError(text, {"error": text})


def _output(text: str) -> Any:
    """One output of the query, from jq's JSON text, with numbers as Conductor's Jackson holds them:
    integers within a Java long are ints, every other number a float."""
    try:
        value = _OUTPUTS.decode(text)
    except (RecursionError, ValueError):  # jq writes "<skipped: too deep>" below 10000 levels
        raise _failure(_TOO_DEEP) from None
    if too_deep(value) is not None:
        raise _failure(_TOO_DEEP)
    return value


def _integer(text: str) -> int | float:
    if len(text) <= _LONG_DIGITS:  # also keeps int() clear of its limit on digits
        number = int(text)
        if _LONG_MIN <= number < _LONG_LIMIT:
            return number
    return _double(text)


def _double(text: str) -> float:
    """jq keeps literals such as 1E+1000 as written; out of a double's range they become the largest
    double, as jq's own arithmetic makes infinite."""
    number = float(text)
    return math.copysign(sys.float_info.max, number) if math.isinf(number) else number


_OUTPUTS = json.JSONDecoder(parse_int=_integer, parse_float=_double)  # made once, not per output
