"""Conductor's JavaScript evaluation (SWITCH/DECISION cases, DO_WHILE conditions, INLINE, LAMBDA) on QuickJS.

Conductor runs scripts on GraalJS (``ScriptEvaluator``); translator runs them on QuickJS-ng (the
``quickjs-ng`` package), embedded in the calling thread, with the same contract:

* ``$`` (any key of ``bindings``) is a global holding a fresh copy of the input, passed as JSON text
  and parsed by ``JSON.parse`` inside the engine (never spliced into code); as Conductor binds Java
  Maps and Lists, its objects and arrays also answer ``get``, ``size``, ``isEmpty``, ``contains``
  (arrays) and ``get``, ``getOrDefault``, ``containsKey``, ``containsValue``, ``keySet``, ``values``,
  ``size``, ``isEmpty`` (objects), non-enumerable;
* the script runs as a script: its value is the value of its last statement;
* nothing a script defines or mutates is seen by another call: one engine per thread serves every call
  (``_Engines``), with frozen built-ins, its global object restored after each script, and a fresh
  engine after a timeout, an exhausted memory limit or a global left behind;
* at most :func:`script_timeout` seconds of CPU time (``TRANSLATOR_SCRIPT_TIMEOUT``, default 4 like
  Conductor; the process's CPU time, as C's ``clock()`` counts it) and :func:`memory_limit` bytes
  (``TRANSLATOR_SCRIPT_MEMORY_MB``, default 256: everything the engine allocates, typed arrays
  included);
* no host access: plain ECMAScript only (no ``require``, ``process``, ``fetch``, I/O, ``WebAssembly``,
  ``Intl``; QuickJS's own ``InternalError``, ``performance``, ``queueMicrotask``, ``atob``/``btoa`` and
  ``DOMException`` are removed).

Like GraalJS as Conductor runs it (without a JIT compiler), QuickJS interprets scripts; V8-style
engines run long computations faster. Errors carry QuickJS's message and the script's line
(``"TypeError: cannot read property 'b' of undefined at line 2"``); a thrown value that is not an
Error has no line.

Result conversion (``ScriptEvaluator.getObject``): undefined/null -> None, booleans, strings; numbers ->
int when integral and within a Java long, else float (``-0`` stays ``-0.0``); arrays and typed arrays ->
list; ``Map`` -> dict; other objects -> dict of their own enumerable keys (a Date or a Promise -> ``{}``).
Deliberate differences: functions and symbols -> None (GraalJS: ``{}``); NaN and ±Infinity, which JSON
cannot hold, become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` that Conductor's Jackson
writes when it stores them (so :func:`case_string` matches Conductor; :func:`eval_bool` of Infinity is
False where Conductor's is true); ``console`` exists and does nothing (Conductor: undefined).

The engine runs in the calling thread (no engine thread, nothing to hand over): a process forked
after its parent evaluated scripts (Celery prefork) makes its own engines.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

# quickjs-ng's extension module, used directly: its ``quickjs`` package starts a thread pool at import
import _quickjs

from translator.definitions.expressions import java_string
from translator.definitions.jsonsource import MAX_DEPTH
from translator.errors import ExpressionError, TranslatorError, UsageError
from translator.settings import env_float, env_int
from translator.text import REASON_LIMIT, shorten

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT",
    "ScriptError",
    "case_string",
    "eval_bool",
    "evaluate",
    "evaluate_function_body",
    "function_script",
    "memory_limit",
    "script_timeout",
    "syntax_error",
]

DEFAULT_TIMEOUT = 4.0  # seconds, Conductor's CONDUCTOR_SCRIPT_MAX_EXECUTION_SECONDS default
DEFAULT_MEMORY_MB = 256
TIMEOUT_VARIABLE = "TRANSLATOR_SCRIPT_TIMEOUT"
MEMORY_VARIABLE = "TRANSLATOR_SCRIPT_MEMORY_MB"
_LONG_MIN = -(2**63)
_GAP = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)*", re.DOTALL)  # whitespace and comments
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"', re.DOTALL)
_CONTINUES = tuple(".[(+-*/%<>=!&|?,`")  # a string literal followed by one of these is not a directive


class ScriptError(TranslatorError):
    """A script did not parse, threw, ran out of time or memory, or its input/result is not JSON.
    ``transient``: it ran out of time or memory (another run may succeed)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# ---------------------------------------------------------------------------------------------
# Settings


def script_timeout() -> float:
    """Seconds a script may run: ``TRANSLATOR_SCRIPT_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    return env_float(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT)


def memory_limit() -> int:
    """Bytes a script may allocate: ``TRANSLATOR_SCRIPT_MEMORY_MB`` (default 256) megabytes."""
    megabytes = env_int(MEMORY_VARIABLE, DEFAULT_MEMORY_MB)
    if megabytes <= 0:
        raise UsageError(f"{MEMORY_VARIABLE} must be a positive number of megabytes, got {megabytes}")
    return megabytes * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Public API


def evaluate(script: str, bindings: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """The converted value of ``script`` run as a script with each key of ``bindings`` as a global.

    ``timeout`` defaults to :func:`script_timeout`. Raises ScriptError with the engine's message
    (``"TypeError: ... at line 3"``, ``"script timed out after 4 s"``...).
    """
    seconds = _seconds(timeout)
    _check_text(script)
    return _run([MAX_DEPTH, "", script, dict(bindings)], seconds, script)


def function_script(body: str) -> str:
    """The script Conductor's LAMBDA runs for ``scriptExpression`` ``body`` (which must ``return``)."""
    return "function scriptFun(){" + body + "} scriptFun();"


def evaluate_function_body(body: str, bindings: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """LAMBDA: :func:`evaluate` of ``body`` wrapped as Conductor does (:func:`function_script`)."""
    return evaluate(function_script(body), bindings, timeout=timeout)


def syntax_error(script: str) -> str | None:
    """The parse error of ``script`` (``"SyntaxError: ... at line 2"``), or None; nothing is run."""
    # The engine compiles (and may reject) the whole script, then runs only its first statement: the
    # throw. A leading "use strict" directive would stop being one after it, so it is repeated first.
    _check_text(script)
    prefix = '"use strict";throw 0;' if _starts_strict(script) else "throw 0;"
    try:
        _run([MAX_DEPTH, prefix, script, {}], script_timeout(), script)
    except ScriptError as exc:
        message = str(exc)
        return message if message.startswith("SyntaxError") else None
    return None  # pragma: no cover - the script always throws


def _seconds(timeout: float | None) -> float:
    seconds = script_timeout() if timeout is None else timeout
    if not seconds > 0 or math.isinf(seconds):
        raise UsageError(f"a script timeout must be positive, got {seconds!r}")
    return seconds


def eval_bool(value: Any) -> bool:
    """Conductor's ``ScriptEvaluator.toBoolean``: a boolean as is, a number ``> 0``, anything else False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return False


def case_string(value: Any) -> str:
    """Java ``String.valueOf`` of a converted script value, for SWITCH/DECISION case matching.

    None -> ``"null"``, True -> ``"true"``, 1 and 1.0 -> ``"1"`` (an integral number within a Java
    long is an integer, as the conversion makes it), 1.5 -> ``"1.5"``, 1e20 -> ``"1.0E20"``, strings as
    they are, lists and dicts as Java's ``toString`` prints them (``[1, a]``, ``{k=v}``).
    """
    if isinstance(value, float) and _is_long(value):
        value = int(value)
    try:
        return java_string(value)
    except ExpressionError as exc:
        raise ScriptError(f"the script's result cannot be a case: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Engine


# The runner, compiled once per engine before any script runs: it keeps its own references to the
# builtins it uses (the script may replace the globals), binds the inputs, runs the script with an
# indirect eval (a global script: its completion value is returned) and writes the result as JSON
# itself, following ScriptEvaluator.getObject rather than JSON.stringify. The script is evaluated
# after PADDING newlines, so its lines are told from the runner's in a stack trace.
_RUNNER = r"""
(function (PADDING) {
  "use strict";
  const global = globalThis, indirectEval = global.eval, parse = JSON.parse, quote = JSON.stringify;
  const keys = Object.keys, isArray = Array.isArray, isView = ArrayBuffer.isView, apply = Reflect.apply;
  const objectIs = Object.is, isSafeInteger = Number.isSafeInteger, toString = String, toNumber = Number;
  const mapSize = Object.getOwnPropertyDescriptor(Map.prototype, "size").get;
  const mapForEach = Map.prototype.forEach;
  const dataViewBuffer = Object.getOwnPropertyDescriptor(DataView.prototype, "buffer").get;
  const LONG_MIN = -(2n ** 63n), LONG_MAX = 2n ** 63n - 1n;
  const InternalError = global.InternalError, exec = RegExp.prototype.exec;
  const ownKeys = Reflect.ownKeys, describe = Object.getOwnPropertyDescriptor;
  const define = Object.defineProperty, freeze = Object.freeze, protoOf = Object.getPrototypeOf;
  for (const name of ["InternalError", "performance", "queueMicrotask", "atob", "btoa", "DOMException"]) {
    delete global[name];  // not ECMAScript: QuickJS's own
  }
  const ignore = function () {};
  const console = {};
  for (const name of ["log", "info", "warn", "error", "debug", "trace", "dir", "table", "assert", "count",
                      "time", "timeEnd", "timeLog", "group", "groupEnd"]) {
    console[name] = ignore;
  }
  define(global, "console", {value: console, writable: true, enumerable: false, configurable: true});

  // Conductor binds its input as Java Maps and Lists (GraalJS host objects): the input's objects and
  // arrays also answer the java.util.Map / List methods below (non-enumerable, on their prototypes;
  // what a script creates stays plain). Frozen with the intrinsics.
  const setProto = Object.setPrototypeOf, hasOwn = Object.hasOwn, createFrom = Object.create;
  const listProto = createFrom(Array.prototype), mapProto = createFrom(Object.prototype);
  function javaEquals(a, b) {  // Java's equals on JSON values: lists and maps by content
    if (a === undefined) a = null;
    if (b === undefined) b = null;
    if (a === b) return true;
    if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
    if (isArray(a) !== isArray(b)) return false;
    const ka = isArray(a) ? null : keys(a), kb = isArray(b) ? null : keys(b);
    if (ka === null) {
      if (a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (!javaEquals(a[i], b[i])) return false;
      return true;
    }
    if (ka.length !== kb.length) return false;
    for (let i = 0; i < ka.length; i++) {
      if (!hasOwn(b, ka[i]) || !javaEquals(a[ka[i]], b[ka[i]])) return false;
    }
    return true;
  }
  function listOf(items) { return setProto(items, listProto); }
  function methods(proto, table) {
    for (const name of keys(table)) define(proto, name, {value: table[name], enumerable: false});
  }
  methods(listProto, {
    get(index) {
      if (typeof index !== "number" || index !== (index | 0)) {
        throw new TypeError("Cannot convert '" + toString(index) + "' to Java type 'int'");
      }
      if (index < 0 || index >= this.length) {
        throw new RangeError("Index " + index + " out of bounds for length " + this.length);
      }
      return this[index];
    },
    size() { return this.length; },
    isEmpty() { return this.length === 0; },
    contains(item) {
      for (let i = 0; i < this.length; i++) if (javaEquals(this[i], item)) return true;
      return false;
    },
  });
  methods(mapProto, {
    get(key) { return typeof key === "string" && hasOwn(this, key) ? this[key] : null; },
    getOrDefault(key, fallback) {
      if (typeof key === "string" && hasOwn(this, key)) return this[key];
      return fallback === undefined ? null : fallback;
    },
    containsKey(key) { return typeof key === "string" && hasOwn(this, key); },
    containsValue(value) {
      const names = keys(this);
      for (let i = 0; i < names.length; i++) if (javaEquals(this[names[i]], value)) return true;
      return false;
    },
    keySet() { return listOf(keys(this)); },
    values() {
      const names = keys(this), out = [];
      for (let i = 0; i < names.length; i++) out[i] = this[names[i]];
      return listOf(out);
    },
    size() { return keys(this).length; },
    isEmpty() { return keys(this).length === 0; },
  });
  function adopt(key, value) {  // JSON.parse's reviver: the input's containers get the Java methods
    if (value !== null && typeof value === "object") setProto(value, isArray(value) ? listProto : mapProto);
    return value;
  }

  // The engine serves many scripts. The intrinsics are frozen (a script cannot change what the next one
  // sees), and the global object keeps none of the built-in globals as its own properties: they live,
  // as accessors, on a frozen object put between the global object and Object.prototype. A script
  // still reads and assigns them as globals (an assignment or a declaration makes an own property of
  // the global object, which then hides the built-in), and afterwards every own property the global
  // object did not have is deleted: that is all there is to put back.
  const shared = createFrom(protoOf(global)), isExtensible = Object.isExtensible;
  const seen = new Set(), todo = [listProto, mapProto];
  for (const name of ownKeys(global)) {
    const d = describe(global, name);
    todo.push(d.value, d.get, d.set);
    if (!d.configurable) continue;  // undefined, NaN, Infinity: they cannot change
    const {value, writable, enumerable} = d;
    const get = d.get || function () { return value; };
    const set = d.set || function (item) {
      define(this, name, {value: item, writable: writable, enumerable: enumerable, configurable: true});
    };
    define(shared, name, {get: get, set: set, enumerable: enumerable, configurable: false});
    delete global[name];
  }
  setProto(global, shared);
  todo.push(shared);
  while (todo.length) {
    const v = todo.pop();
    const kind = typeof v;
    if (v === null || (kind !== "object" && kind !== "function") || v === global || seen.has(v)) continue;
    seen.add(v);
    freeze(v);
    for (const key of ownKeys(v)) {
      const d = describe(v, key);
      todo.push(d.value, d.get, d.set);
    }
    todo.push(protoOf(v));
  }
  const own = ownKeys(global), initial = new Set(own);

  function reset() {  // true when the global object is as it was
    if (!isExtensible(global)) return false;  // frozen or sealed: a fresh engine
    if (protoOf(global) !== shared) {
      try { setProto(global, shared); } catch (e) { return false; }
    }
    const now = ownKeys(global);
    if (now.length === own.length) return true;  // the rest are immutable
    for (let i = 0; i < now.length; i++) {
      if (!initial.has(now[i])) {
        try { delete global[now[i]]; } catch (e) { return false; }  // not configurable: a fresh engine
      }
    }
    return ownKeys(global).length === own.length;
  }

  function isBrand(getter, value) {
    try { apply(getter, value, []); return true; } catch (e) { return false; }
  }

  function number(n) {
    if (n !== n) return '"NaN"';
    if (n === Infinity) return '"Infinity"';
    if (n === -Infinity) return '"-Infinity"';
    if (objectIs(n, -0)) return "-0.0";
    const text = "" + n;
    // Python reads a float; integral values within a long become ints there.
    return isSafeInteger(n) || text.indexOf(".") >= 0 || text.indexOf("e") >= 0 ? text : text + ".0";
  }

  const tooDeep = {};  // thrown by convert: the result is nested too deep
  function convert(value, depth) {
    switch (typeof value) {
      case "undefined": return "null";
      case "boolean": return value ? "true" : "false";
      case "string": return quote(value);
      case "number": return number(value);
      case "bigint":
        return value >= LONG_MIN && value <= LONG_MAX ? "" + value : number(toNumber(value)) ;
      case "symbol": case "function": return "null";
    }
    if (value === null) return "null";
    if (depth > maxDepth) throw tooDeep;
    let out;
    if (isArray(value) || (isView(value) && !isBrand(dataViewBuffer, value))) {
      out = "[";
      const length = value.length;
      for (let i = 0; i < length; i++) out += (i ? "," : "") + convert(value[i], depth + 1);
      return out + "]";
    }
    out = "{";
    let first = true;
    if (isBrand(mapSize, value)) {
      apply(mapForEach, value, [(item, key) => {
        out += (first ? "" : ",") + quote(typeof key === "string" ? key : toString(key)) + ":" +
          convert(item, depth + 1);
        first = false;
      }]);
      return out + "}";
    }
    const names = keys(value);
    for (let i = 0; i < names.length; i++) {
      out += (first ? "" : ",") + quote(names[i]) + ":" + convert(value[names[i]], depth + 1);
      first = false;
    }
    return out + "}";
  }

  const frame = /<input>:(\d+):\d+/g;
  function failure(error) {  // "!" and the JSON of [message, line of the script or null]
    if (error instanceof InternalError && error.message === "out of memory") throw error;
    if (error === tooDeep) {
      return "!" + quote(["the script's result is nested deeper than " + maxDepth +
                          " arrays/objects (or refers to itself)", null]);
    }
    let message = "script failed", line = null, stack;
    try { message = toString(error); } catch (e) { /* keep the generic message */ }
    try { stack = error !== null && typeof error === "object" ? error.stack : undefined; } catch (e) { }
    if (typeof stack === "string") {
      frame.lastIndex = 0;
      for (let found = apply(exec, frame, [stack]); found; found = apply(exec, frame, [stack])) {
        if (+found[1] > PADDING) { line = found[1] - PADDING; break; }
      }
    }
    return "!" + quote([message, line]);
  }

  let maxDepth = 0;
  const padding = "\n".repeat(PADDING);
  // Called with the JSON text of [depthLimit, prefix, script, bindings]. Returns "+" (the engine may
  // serve the next script) or "-" (it may not), then the result's JSON text or "!" and the failure's.
  // The text is flattened (slice): the engine's binding cannot hand a rope string to Python.
  return function run(call) {
    const [depthLimit, prefix, script, bindings] = parse(call, adopt);  // (the outer two adopted too)
    maxDepth = depthLimit;
    let text;
    try {
      const names = keys(bindings);
      for (let i = 0; i < names.length; i++) global[names[i]] = bindings[names[i]];
      text = convert(indirectEval(prefix + padding + script), 1);
    } catch (error) {
      text = failure(error);
    }
    return ((reset() ? "+" : "-") + text).slice(0);
  };
})
"""
_PADDING = 1000  # newlines before the script; more than the runner has


class _Engine:
    """A QuickJS runtime with the runner compiled in it, kept for the next script while ``reusable``.

    It belongs to the thread that made it (a runtime must not be shared between threads)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.reusable = True
        self.context = _quickjs.Context()
        self.seconds, self.memory = 0.0, 0
        self.context.set_max_stack_size(_STACK_BYTES)
        self.limit(DEFAULT_TIMEOUT, memory_limit())
        self.run = self.context.eval(_RUNNER)(_PADDING)

    def limit(self, seconds: float, memory: int) -> None:
        """The limits of the next call (kept by the runtime until changed)."""
        if seconds != self.seconds:
            self.context.set_time_limit(seconds)
            self.seconds = seconds
        if memory != self.memory:
            self.context.set_memory_limit(memory)
            self.memory = memory


class _Engines(threading.local):
    """One engine per thread, reused from script to script (making one costs about 2 ms, running a small
    script in it about 10 µs)."""

    kept: _Engine | None = None

    def take(self) -> _Engine:
        engine = self.kept
        if engine is None or not engine.reusable or engine.pid != os.getpid():
            engine = self.kept = _Engine()
        return engine


_ENGINES = _Engines()
_STACK_BYTES = 1024 * 1024  # QuickJS's default: deep recursion is a RangeError, not a crash


def _run(call: list[Any], seconds: float, script: str) -> Any:
    """The runner's result for ``call`` ([depth limit, prefix, script, bindings]): the converted value,
    or ScriptError."""
    try:  # ASCII: lone surrogates survive
        text = json.dumps(call, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ScriptError(_one_line(f"the script's input is not JSON: {exc}")) from None
    engine = _ENGINES.take()
    engine.limit(seconds, memory_limit())
    try:
        result = engine.run(text)
    except _quickjs.JSException as exc:  # ran out of time or memory: uncaught by the runner
        engine.reusable = False
        raise _engine_error(str(exc), seconds) from None
    except Exception as exc:  # the binding could not hand the result over: never a traceback
        engine.reusable = False
        raise ScriptError(_one_line(f"script engine error: {exc}")) from None
    if not isinstance(result, str) or result[:1] not in ("+", "-"):
        engine.reusable = False
        raise ScriptError(f"unexpected result from the script engine: {type(result).__name__}")
    engine.reusable = result[0] == "+"
    if result[1:2] == "!":
        message, line = json.loads(result[2:])
        raise ScriptError(_located(message, line, script))
    return _RESULTS.decode(result[1:])


def _engine_error(text: str, seconds: float) -> ScriptError:
    if text.startswith("InternalError: interrupted"):
        return ScriptError(f"script timed out after {seconds:g} s", transient=True)
    if text.startswith("InternalError: out of memory"):
        limit = memory_limit() // (1024 * 1024)
        return ScriptError(f"script exceeded the memory limit of {limit} MB", transient=True)
    return ScriptError(_one_line(f"script engine error: {text}"))


def _located(message: str, line: int | None, script: str) -> str:
    """One line: the engine's message and, when the error has one, the script's line."""
    if line is None:
        return _one_line(message or "script failed")
    return _one_line(f"{message or 'script failed'} at line {min(line, script.count(chr(10)) + 1)}")


def _check_text(script: str) -> None:
    if not isinstance(script, str):
        raise ScriptError(f"a script must be a string, got {type(script).__name__}")
    try:
        script.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ScriptError(
            f"the script is not valid Unicode text: {exc.reason} at offset {exc.start}"
        ) from None


def _one_line(text: str) -> str:
    return shorten(" ".join(text.split()), REASON_LIMIT, quote=False)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if _is_long(value) else value


_RESULTS = json.JSONDecoder(parse_float=_number)  # made once: json.loads with options makes one per call


def _is_long(value: float) -> bool:
    """Whether GraalJS would hand Java this number as an int or long (integral, no -0, fits)."""
    return (
        value.is_integer()
        and _LONG_MIN <= value < 2**63
        and not (value == 0 and math.copysign(1.0, value) < 0)
    )


def _starts_strict(script: str) -> bool:
    """Whether the directive prologue of ``script`` holds ``"use strict"``."""
    position = _GAP.match(script).end()  # type: ignore[union-attr]
    while literal := _STRING.match(script, position):
        after = _GAP.match(script, literal.end()).end()  # type: ignore[union-attr]
        ends = (
            after == len(script)
            or script[after] == ";"
            or ("\n" in script[literal.end() : after] and not script.startswith(_CONTINUES, after))
        )
        if not ends:
            return False  # an expression that starts with a string: the prologue is over
        if literal.group()[1:-1] == "use strict":
            return True
        position = _GAP.match(script, after + (script[after : after + 1] == ";")).end()  # type: ignore[union-attr]
    return False
