"""Conductor's JavaScript evaluation (SWITCH/DECISION cases, DO_WHILE conditions, INLINE, LAMBDA) on V8.

Conductor runs scripts on GraalJS (``ScriptEvaluator``); translator runs them on V8 through
``mini-racer``, with the same contract:

* ``$`` (any key of ``bindings``) is a global holding a fresh copy of the input, passed as JSON text
  and parsed by ``JSON.parse`` inside V8 (never spliced into code); as Conductor binds Java Maps and
  Lists, its objects and arrays also answer ``get``, ``size``, ``isEmpty``, ``contains`` (arrays) and
  ``get``, ``getOrDefault``, ``containsKey``, ``containsValue``, ``keySet``, ``values``, ``size``,
  ``isEmpty`` (objects), non-enumerable;
* the script runs as a script: its value is the value of its last statement;
* nothing a script defines or mutates is seen by another call: one isolate per process serves every
  call (``_Isolates``), with frozen built-ins, its global object restored after each script, and a fresh
  isolate after a throw, a timeout or a global left behind;
* at most :func:`script_timeout` seconds (``TRANSLATOR_SCRIPT_TIMEOUT``, default 4 like Conductor) and
  :func:`memory_limit` bytes of heap (``TRANSLATOR_SCRIPT_MEMORY_MB``, default 256; typed-array
  buffers live outside the heap and are bounded only by the timeout);
* no host access: plain ECMAScript only (no ``require``, ``process``, ``fetch``, I/O, ``WebAssembly``).

Result conversion (``ScriptEvaluator.getObject``): undefined/null -> None, booleans, strings; numbers ->
int when integral and within a Java long, else float (``-0`` stays ``-0.0``); arrays and typed arrays ->
list; ``Map`` -> dict; other objects -> dict of their own enumerable keys (a Date or a Promise -> ``{}``).
Deliberate differences: functions and symbols -> None (GraalJS: ``{}``); NaN and ±Infinity, which JSON
cannot hold, become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` that Conductor's Jackson
writes when it stores them (so :func:`case_string` matches Conductor; :func:`eval_bool` of Infinity is
False where Conductor's is true); ``console`` exists and does nothing (Conductor: undefined).

V8 is started lazily by the first evaluation in a process and runs single-threaded (mini-racer's
default), so a process forked after its parent evaluated scripts (Celery prefork) evaluates normally;
the event-loop thread that drives mini-racer is per process and recreated after a fork.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    mini_racer,
)
from py_mini_racer._exc import MiniRacerBaseException

from translator.definitions.expressions import java_string
from translator.definitions.jsonsource import MAX_DEPTH
from translator.errors import ExpressionError, TranslatorError, UsageError
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
_SCRIPT_NAME = "script"  # the script's name in V8 locations; errors in it report their line
_LOCATION = re.compile(r"(?P<where>[^\n]*?):(?P<line>\d+): (?P<message>[^\n]*)")
_SCRIPT_FRAME = re.compile(rf"^\s+at (?:.*\()?{_SCRIPT_NAME}:(?P<line>\d+):\d+\)?$", re.MULTILINE)
_GAP = re.compile(r"(?:\s|//[^\n]*|/\*.*?\*/)*", re.DOTALL)  # whitespace and comments
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"', re.DOTALL)
_CONTINUES = tuple(".[(+-*/%<>=!&|?,`")  # a string literal followed by one of these is not a directive
_CANCEL_WAIT = 1.0  # seconds to wait for a timed-out script's end once V8 was told to stop it


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
    raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {raw!r}") from None
    if not value > 0 or math.isinf(value):
        raise UsageError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {raw!r}")
    return value


def memory_limit() -> int:
    """Bytes of V8 heap a script may use: ``TRANSLATOR_SCRIPT_MEMORY_MB`` (default 256) megabytes."""
    raw = os.environ.get(MEMORY_VARIABLE, "").strip()
    try:
        megabytes = int(raw) if raw else DEFAULT_MEMORY_MB
    except ValueError:
        megabytes = 0
    if megabytes <= 0:
        raise UsageError(f"{MEMORY_VARIABLE} must be a positive number of megabytes, got {raw!r}")
    return megabytes * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Public API


def evaluate(script: str, bindings: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """The converted value of ``script`` run as a script with each key of ``bindings`` as a global.

    ``timeout`` defaults to :func:`script_timeout`. Raises ScriptError with the engine's message
    (``"TypeError: ... at line 3"``, ``"script timed out after 4 s"``...).
    """
    seconds = script_timeout() if timeout is None else timeout
    if not seconds > 0:
        raise UsageError(f"a script timeout must be positive, got {seconds!r}")
    _check_text(script)
    try:  # ASCII: lone surrogates survive
        call = json.dumps([MAX_DEPTH, _SCRIPT_NAME, script, dict(bindings)], allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ScriptError(_one_line(f"the script's input is not JSON: {exc}")) from None
    with _Isolates.take(seconds) as isolate:
        try:
            result = isolate.call(call, seconds)
        except MiniRacerBaseException as exc:
            isolate.reusable = False  # a script that threw may have left anything behind
            raise _script_error(exc, seconds, isolate.racer, script) from None
        if not isinstance(result, str) or result[:1] not in ("+", "-"):  # the runner returns JSON text
            isolate.reusable = False
            raise ScriptError(f"unexpected result from the script engine: {type(result).__name__}")
        isolate.reusable = result[0] == "+" and not isolate.racer.was_hard_memory_limit_reached()
    return json.loads(result[1:], parse_float=_number)


def function_script(body: str) -> str:
    """The script Conductor's LAMBDA runs for ``scriptExpression`` ``body`` (which must ``return``)."""
    return "function scriptFun(){" + body + "} scriptFun();"


def evaluate_function_body(body: str, bindings: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """LAMBDA: :func:`evaluate` of ``body`` wrapped as Conductor does (:func:`function_script`)."""
    return evaluate(function_script(body), bindings, timeout=timeout)


def syntax_error(script: str) -> str | None:
    """The parse error of ``script`` (``"SyntaxError: ... at line 2"``), or None; nothing is run."""
    # V8 compiles (and may reject) the whole script, then runs only its first statement: the throw.
    # A leading "use strict" directive would stop being one after it, so it is repeated first.
    _check_text(script)
    prefix = '"use strict";throw 0;' if _starts_strict(script) else "throw 0;"
    with _context() as racer:
        try:
            racer.eval(prefix + script, timeout_sec=script_timeout())
        except JSParseException as exc:
            return _message(str(exc), script)
        except MiniRacerBaseException:
            return None
    return None  # pragma: no cover - the script always throws


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


# The runner, compiled in each fresh context before the script runs: it keeps its own references
# to the builtins it uses (the script may replace the globals), binds the inputs, runs the script
# with an indirect eval (a global script: its completion value is returned) and writes the result
# as JSON itself, following ScriptEvaluator.getObject rather than JSON.stringify.
_RUNNER = r"""
(function () {
  "use strict";
  const global = globalThis, indirectEval = global.eval, parse = JSON.parse, quote = JSON.stringify;
  const keys = Object.keys, isArray = Array.isArray, isView = ArrayBuffer.isView, apply = Reflect.apply;
  const objectIs = Object.is, isSafeInteger = Number.isSafeInteger, toString = String, toNumber = Number;
  const mapSize = Object.getOwnPropertyDescriptor(Map.prototype, "size").get;
  const mapForEach = Map.prototype.forEach;
  const dataViewBuffer = Object.getOwnPropertyDescriptor(DataView.prototype, "buffer").get;
  const LONG_MIN = -(2n ** 63n), LONG_MAX = 2n ** 63n - 1n;
  global.setTimeout = global.clearTimeout = global.__timer_manager = undefined;  // mini-racer's
  delete global.WebAssembly;
  const ownKeys = Reflect.ownKeys, describe = Object.getOwnPropertyDescriptor;
  const define = Object.defineProperty, freeze = Object.freeze, protoOf = Object.getPrototypeOf;

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
  function adopt(root) {  // the input's containers get the Java methods
    const stack = [root];
    while (stack.length) {
      const value = stack.pop();
      if (value === null || typeof value !== "object") continue;
      if (isArray(value)) {
        setProto(value, listProto);
        for (let i = 0; i < value.length; i++) stack.push(value[i]);
      } else {
        setProto(value, mapProto);
        const names = keys(value);
        for (let i = 0; i < names.length; i++) stack.push(value[names[i]]);
      }
    }
    return root;
  }

  // The isolate serves many scripts: the intrinsics are frozen (a script cannot change what the next
  // one sees), and after each script the global object is put back as it is now.
  const initial = new Map();
  for (const name of ownKeys(global)) initial.set(name, describe(global, name));
  const seen = new Set(), todo = [];
  for (const d of initial.values()) todo.push(d.value, d.get, d.set);
  todo.push(listProto, mapProto);
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

  function reset() {  // true when the global object is as it was
    for (const name of ownKeys(global)) {
      if (!initial.has(name)) {
        try { delete global[name]; } catch (e) { return false; }  // not configurable: a fresh isolate
      }
    }
    for (const [name, d] of initial) {
      const now = describe(global, name);
      const same = now && now.value === d.value && now.get === d.get && now.set === d.set &&
        now.writable === d.writable && now.enumerable === d.enumerable && now.configurable === d.configurable;
      if (!same) {
        try { define(global, name, d); } catch (e) { return false; }
      }
    }
    return ownKeys(global).length === initial.size;
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
    if (depth > maxDepth) throw new RangeError(tooDeep);
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

  let maxDepth = 0, tooDeep = "";
  // Called with the JSON text of [depthLimit, name, script, bindings] as `this` (one value crosses
  // into V8 per call). Returns the result's JSON text, after "+" (the isolate may serve the next
  // script) or "-" (it may not).
  return function run() {
    const [depthLimit, name, script, bindings] = parse(this);
    maxDepth = depthLimit;
    tooDeep = "the script's result is nested deeper than " + depthLimit +
      " arrays/objects (or refers to itself)";
    const names = keys(bindings);
    for (let i = 0; i < names.length; i++) global[names[i]] = adopt(bindings[names[i]]);
    const text = convert(indirectEval(script + "\n//# sourceURL=" + name), 1);
    return (reset() ? "+" : "-") + text;
  };
})()
//# sourceURL=translator-runner
"""


class _Loop:
    """The asyncio loop (on a daemon thread) that drives mini-racer contexts, one per process."""

    lock = threading.Lock()
    loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls.lock:
            if cls.loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="translator-js", daemon=True).start()
                cls.loop = loop
            return cls.loop

    @classmethod
    def after_fork(cls) -> None:
        # The thread did not survive the fork (and the lock may have been held by another thread).
        cls.lock = threading.Lock()
        cls.loop = None


os.register_at_fork(after_in_child=_Loop.after_fork)


class _Isolate:
    """A V8 isolate with the runner compiled in it, kept for the next script while ``reusable``.

    It is set up through mini-racer's API (on the engine's asyncio loop); a script is run by
    :meth:`call` straight from the calling thread, which crosses to V8's thread once and back. (A
    call through the API hops to the loop's thread, then to V8's once per argument, per handle and
    for the call: about 0.3 ms where this takes 0.1.) :meth:`call` uses mini-racer 0.14's native
    calls and its queue of results of uncancelable tasks, which nothing else uses for this isolate:
    only the thread holding the isolate calls it (``_Isolates``).
    """

    def __init__(self, seconds: float) -> None:
        self.pid = os.getpid()
        self._scope = mini_racer(_Loop.get())
        self.racer = self._scope.__enter__()
        self.reusable = True
        try:
            self.racer.set_hard_memory_limit(memory_limit())
            self.run = self.racer.eval(_RUNNER, timeout_sec=seconds)
            self._no_arguments = self.racer.eval("[]")
        except BaseException:
            self.close()
            raise
        self._context = self.racer._ctx
        self._results: queue.Queue[Any] = self._context._non_cancelable_mr_task_results_queue

    def call(self, call_json: str, seconds: float) -> Any:
        """The runner's value for ``call_json`` (its ``this``); raises mini-racer's exceptions, and
        JSTimeoutException after ``seconds`` (the call is then terminated)."""
        context = self._context
        native, handle = context._dll, context._ctx
        this = context._python_to_value_handle(call_json)
        function = context._python_to_value_handle(self.run)
        arguments = context._python_to_value_handle(self._no_arguments)
        task = native.mr_call_function(handle, function.raw, this.raw, arguments.raw, 0)
        try:
            result = self._results.get(timeout=seconds)
        except queue.Empty:
            self.reusable = False
            native.mr_cancel_task(handle, task)
            with suppress(queue.Empty):
                self._results.get(timeout=_CANCEL_WAIT)  # the terminated call's result
            raise JSTimeoutException from None
        return context._value_handle_to_python(result)

    def close(self) -> None:
        self.reusable = False
        self._scope.__exit__(None, None, None)


class _Isolates:
    """One isolate per process, reused from script to script (creating one costs about 2 ms, running a
    small script in it 0.5 ms); a thread that finds it busy gets a fresh one for its script."""

    lock = threading.Lock()
    kept: _Isolate | None = None

    @classmethod
    @contextmanager
    def take(cls, seconds: float) -> Iterator[_Isolate]:
        if not cls.lock.acquire(blocking=False):
            isolate = _Isolate(seconds)
            try:
                yield isolate
            finally:
                isolate.close()
            return
        try:
            isolate = cls.kept
            if isolate is None or isolate.pid != os.getpid():
                isolate = cls.kept = _Isolate(seconds)
            try:
                yield isolate
            finally:
                if not isolate.reusable:
                    cls.kept = None
                    isolate.close()
        finally:
            cls.lock.release()

    @classmethod
    def before_fork(cls) -> None:
        # A live isolate at fork time can leave V8's threads' locks held in the child: close it.
        if cls.lock.acquire(blocking=False):
            try:
                if cls.kept is not None:
                    cls.kept.close()
                    cls.kept = None
            finally:
                cls.lock.release()

    @classmethod
    def after_fork(cls) -> None:
        cls.lock = threading.Lock()
        cls.kept = None  # the parent's isolate lives on the parent's engine thread


os.register_at_fork(before=_Isolates.before_fork, after_in_child=_Isolates.after_fork)


@contextmanager
def _context() -> Iterator[Any]:
    """A fresh V8 isolate with the heap limit set, closed on exit."""
    with mini_racer(_Loop.get()) as racer:
        racer.set_hard_memory_limit(memory_limit())
        yield racer


def _script_error(exc: MiniRacerBaseException, seconds: float, racer: Any, script: str) -> ScriptError:
    if isinstance(exc, JSTimeoutException):
        return ScriptError(f"script timed out after {seconds:g} s", transient=True)
    if isinstance(exc, JSOOMException) or racer.was_hard_memory_limit_reached():
        limit = memory_limit() // (1024 * 1024)
        return ScriptError(f"script exceeded the memory limit of {limit} MB", transient=True)
    if isinstance(exc, JSEvalException):
        return ScriptError(_message(str(exc), script))
    return ScriptError(_one_line(f"script engine error: {exc}"))


def _check_text(script: str) -> None:
    if not isinstance(script, str):
        raise ScriptError(f"a script must be a string, got {type(script).__name__}")
    try:
        script.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ScriptError(
            f"the script is not valid Unicode text: {exc.reason} at offset {exc.start}"
        ) from None


def _message(text: str, script: str) -> str:
    """One line from mini-racer's ``<where>:<line>: <message>`` report: the message and its line."""
    found = _LOCATION.match(text)
    if found is None:
        return _one_line(text.strip().split("\n", 1)[0] or "script failed")
    message = found["message"] or "script failed"
    reported = found["line"]
    if found["where"] == "translator-runner":
        caller = _SCRIPT_FRAME.search(text)  # a Java method of the input, called by the script
        if caller is None:  # raised while converting the result
            return _one_line(message.removeprefix("RangeError: "))
        reported = caller["line"]
    # An error at the end of input is reported on the line evaluate() appends (the sourceURL comment).
    line = min(int(reported), script.count("\n") + 1)
    return _one_line(f"{message} at line {line}")


def _one_line(text: str) -> str:
    return shorten(" ".join(text.split()), REASON_LIMIT, quote=False)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if _is_long(value) else value


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
