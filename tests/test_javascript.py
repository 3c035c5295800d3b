"""The embedded JavaScript engine: Conductor's ScriptEvaluator contract on QuickJS (reference §5.5)."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import select
import threading
import time
from typing import Any

import pytest

from translator.engine.javascript import (
    DEFAULT_TIMEOUT,
    ScriptError,
    case_string,
    eval_bool,
    evaluate,
    evaluate_function_body,
    function_script,
    memory_limit,
    script_timeout,
    syntax_error,
)
from translator.errors import TranslatorError, UsageError
from translator.text import REASON_LIMIT


def js(script: str, *, timeout: float | None = None, **bindings: Any) -> Any:
    return evaluate(script, {"$": bindings}, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Conversions


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("null", None),
        ("undefined", None),
        ("true", True),
        ("false", False),
        ("'text'", "text"),
        ("'é\\u2028\"'", 'é\u2028"'),
        ("1.0", 1),
        ("7 / 2", 3.5),
        ("2 ** 31", 2**31),
        ("2 ** 53 + 2", 2**53 + 2),
        ("2 ** 60", 2**60),  # integral, fits in a long: an exact int
        ("-(2 ** 63)", -(2**63)),
        ("2 ** 63", 2.0**63),  # beyond a long: a double
        ("1e21", 1e21),
        ("1e-7", 1e-7),
        ("NaN", "NaN"),
        ("1 / 0", "Infinity"),
        ("-1 / 0", "-Infinity"),
        ("10n", 10),
        ("2n ** 64n", 2.0**64),
        ("[1, 'a', null, undefined, [2.5]]", [1, "a", None, None, [2.5]]),
        ("[, 1]", [None, 1]),
        ("({a: {b: [1, {c: true}]}, d: undefined})", {"a": {"b": [1, {"c": True}]}, "d": None}),
        ("new Map([[1, 'a'], ['k', {z: 1}]])", {"1": "a", "k": {"z": 1}}),
        ("new Uint8Array([1, 2, 255])", [1, 2, 255]),
        ("new Date(0)", {}),
        ("Promise.resolve(1)", {}),
        ("(function () {})", None),
        ("Symbol('s')", None),
        ("({f() {}, s: Symbol('s'), n: 1})", {"f": None, "s": None, "n": 1}),
    ],
)
def test_result_conversion(script: str, expected: Any) -> None:
    result = js(script)
    assert result == expected
    assert type(result) is type(expected)


def test_negative_zero_stays_a_double() -> None:
    result = js("-0")
    assert result == 0 and isinstance(result, float) and math.copysign(1.0, result) < 0
    assert case_string(result) == "-0.0"


def test_value_of_the_last_statement_is_returned() -> None:
    assert js("var x = 5; if (x > 2) { 'big' } else { 'small' }") == "big"
    assert js("let a = 1; const b = 2; a + b") == 3
    assert js("function f() { return 9 } f()") == 9
    assert js("var unused = 1;") is None


def test_result_is_converted_even_if_the_script_replaces_builtins() -> None:
    script = "JSON.stringify = Object.keys = Array.isArray = Map.prototype.forEach = null; ({a: [1, {b: 2}]})"
    assert js(script) == {"a": [1, {"b": 2}]}


def test_self_referencing_result_is_an_error() -> None:
    with pytest.raises(ScriptError, match=r"nested deeper than 128 arrays/objects \(or refers to itself\)$"):
        js("var a = []; a.push(a); a")


# ---------------------------------------------------------------------------------------------
# Bindings


NESTED = {"a": {"b": 1, "list": [{"id": 7}, {"id": 8}]}, "k": "v", "key with space": [None, True, 2.5]}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("$.a.b", 1),
        ("$['k']", "v"),
        ("$['key with space'][2]", 2.5),
        ("$.a.list.map(x => x.id)", [7, 8]),
        ("$.a.list[1].id + $.a.b", 9),
        ("$.missing === undefined && $['key with space'][0] === null", True),
        ("typeof $.a.b", "number"),
        ("$", NESTED),
    ],
)
def test_dollar_bindings(script: str, expected: Any) -> None:
    assert evaluate(script, {"$": NESTED}) == expected


def test_every_binding_is_a_global() -> None:
    assert (
        evaluate("$ + other + globalThis['not an identifier']", {"$": 1, "other": 2, "not an identifier": 3})
        == 6
    )


def test_bindings_are_data_not_code() -> None:
    hostile = "'); throw new Error('injected'); ('\u2028</script>\\ \ud800 é"
    assert evaluate("$.s", {"$": {"s": hostile}}) == hostile
    # a "__proto__" key is data: the object keeps the prototype every input object gets
    assert evaluate(
        "Object.keys($).concat($.get('__proto__'), typeof $.keySet)", {"$": {"__proto__": 1}}
    ) == [
        "__proto__",
        1,
        "function",
    ]


def test_script_mutations_do_not_reach_the_caller() -> None:
    data = {"a": {"b": [1]}}
    assert evaluate("$.a.b.push(2); $.a.c = 3; $.a", {"$": data}) == {"b": [1, 2], "c": 3}
    assert data == {"a": {"b": [1]}}


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": {1, 2}}])
def test_bindings_that_are_not_json_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ScriptError, match="the script's input is not JSON"):
        evaluate("1", {"$": bad})


# Conductor binds the input as Java Maps and Lists (GraalJS host objects, HostAccess.ALL): scripts call
# their methods, e.g. DoWhileSpec's `$.list.get($.iterator - 1)`.
JAVA = {"list": [1, "a", {"k": [2]}, None], "empty": [], "map": {"k": 1, "none": None}, "i": 2}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("$.list.get($.i - 1)", "a"),
        ("$.list.get(2).get('k').get(0)", 2),
        ("[$.list.size(), $.list.length, $.empty.size()]", [4, 4, 0]),
        ("[$.list.isEmpty(), $.empty.isEmpty()]", [False, True]),
        (
            "[$.list.contains('a'), $.list.contains(null), $.list.contains({k: [2]}), $.list.contains(2)]",
            [True, True, True, False],
        ),
        ("[$.map.get('k'), $.map.get('none'), $.map.get('missing'), $.map.get(1)]", [1, None, None, None]),
        ("[$.map.getOrDefault('missing', 7), $.map.getOrDefault('none', 7)]", [7, None]),
        (
            "[$.map.containsKey('none'), $.map.containsKey('missing'), $.containsKey('list')]",
            [True, False, True],
        ),
        ("[$.map.containsValue(1), $.map.containsValue(2)]", [True, False]),
        (
            "[$.map.keySet(), $.map.values(), $.map.size(), $.map.isEmpty(), $.size()]",
            [["k", "none"], [1, None], 2, False, 4],
        ),
        ("$.map.keySet().contains('k') && $.map.keySet().size() === 2", True),
        ("$.list.get(2).size()", 1),
    ],
)
def test_input_answers_java_list_and_map_methods(script: str, expected: Any) -> None:
    assert evaluate(script, {"$": JAVA}) == expected


def test_java_methods_are_invisible_and_only_on_the_input() -> None:
    assert evaluate("JSON.stringify($)", {"$": JAVA}) == json.dumps(JAVA, separators=(",", ":"))
    assert evaluate(
        "var seen = []; for (var k in $.list) seen.push(k); for (k in $.map) seen.push(k); seen", {"$": JAVA}
    ) == ["0", "1", "2", "3", "k", "none"]
    assert evaluate(
        "[Object.keys($.map), Array.isArray($.list), $.list.map(x => 1).get, [].get, ({}).get]", {"$": JAVA}
    ) == [["k", "none"], True, None, None, None]
    assert evaluate("$", {"$": JAVA}) == JAVA
    assert evaluate("({size: $.map.size(), keys: $.map.keySet()})", {"$": JAVA}) == {
        "size": 2,
        "keys": ["k", "none"],
    }
    # the methods are frozen with the intrinsics: a script cannot change them for the next one
    js("Object.getPrototypeOf($.list).get = null; Object.getPrototypeOf($).containsKey = null; 1", list=[1])
    assert js("[$.list.get(0), $.containsKey('list')]", list=[5]) == [5, True]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("\n$.list.get(4)", "RangeError: Index 4 out of bounds for length 4 at line 2"),
        ("$.list.get(-1)", "RangeError: Index -1 out of bounds for length 4 at line 1"),
        ("$.list.get('1')", "TypeError: Cannot convert '1' to Java type 'int' at line 1"),
        ("$.list.get(1.5)", "TypeError: Cannot convert '1.5' to Java type 'int' at line 1"),
        ("[].get(0)", "TypeError: not a function at line 1"),
    ],
)
def test_java_method_errors(script: str, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        evaluate(script, {"$": JAVA})
    assert str(caught.value) == message


# ---------------------------------------------------------------------------------------------
# Isolation and host access


def test_evaluations_are_isolated() -> None:
    js("var leaked = 1; globalThis.other = 2; let x = 1")
    js("Object.prototype.polluted = 3; Array.prototype.map = null")
    assert js("[typeof leaked, typeof other, ({}).polluted === undefined, [1, 2].map(v => v * 2)]") == [
        "undefined",
        "undefined",
        True,
        [2, 4],
    ]
    assert js("let x = 2; x") == 2  # a reused global scope would reject the second `let x`


@pytest.mark.parametrize(
    "script",
    [
        "require('fs')",
        "process.env",
        "fetch('http://example.com')",
        "new XMLHttpRequest()",
        "load('x')",
        "read('x')",
    ],
)
def test_no_host_access(script: str) -> None:
    with pytest.raises(ScriptError, match=r"^ReferenceError: \w+ is not defined at line 1$"):
        js(script)


def test_only_plain_ecmascript_globals() -> None:
    assert js("[typeof WebAssembly, typeof setTimeout, typeof clearTimeout, typeof eval]") == [
        "undefined",
        "undefined",
        "undefined",
        "function",
    ]
    assert js("console.log('ignored'); 1") == 1


# ---------------------------------------------------------------------------------------------
# Errors, timeout, memory


def test_syntax_error_message() -> None:
    with pytest.raises(ScriptError) as caught:
        js("var a = 1;\n1 +")
    assert str(caught.value) == "SyntaxError: unexpected token in expression: '' at line 2"
    assert isinstance(caught.value, TranslatorError)
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)  # crosses processes


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("\n\nthrow new Error('boom')", "Error: boom at line 3"),
        ("throw 'plain'", "plain"),  # a thrown value that is not an Error has no line
        ("null.x", "TypeError: cannot read property 'x' of null at line 1"),
        ("$.a.b", "TypeError: cannot read property 'b' of undefined at line 1"),
        (
            "JSON.parse('{')",
            "SyntaxError: Expected property name or '}' in JSON at position 1 (line 1 column 2) at line 1",
        ),
        ("function f() { f() }\nf()", "RangeError: Maximum call stack size exceeded at line 1"),
    ],
)
def test_thrown_error_message(script: str, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        js(script)
    assert str(caught.value) == message


def test_error_message_is_one_bounded_line() -> None:
    with pytest.raises(ScriptError) as caught:
        js("throw new Error('x'.repeat(100000) + '\\nsecond line')")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("Error: xxx")
    assert len(message) < REASON_LIMIT + 100


def test_infinite_loop_is_stopped_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ScriptError, match=r"^script timed out after 0.3 s$"):
        js("while (true) {}", timeout=0.3)
    assert time.monotonic() - started < 3


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert script_timeout() == DEFAULT_TIMEOUT == 4.0
    monkeypatch.setenv("TRANSLATOR_SCRIPT_TIMEOUT", "0.2")
    with pytest.raises(ScriptError, match=r"^script timed out after 0.2 s$"):
        evaluate_function_body("for (;;) {}", {"$": {}})
    for bad in ("soon", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("TRANSLATOR_SCRIPT_TIMEOUT", bad)
        with pytest.raises(UsageError, match="TRANSLATOR_SCRIPT_TIMEOUT"):
            js("1")


def test_memory_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_limit() == 256 * 1024 * 1024
    monkeypatch.setenv("TRANSLATOR_SCRIPT_MEMORY_MB", "32")
    with pytest.raises(ScriptError, match=r"^script exceeded the memory limit of 32 MB$"):
        js("var a = []; while (true) a.push(new Array(100000).fill(1.5))")
    assert js("[1, 2].length") == 2  # the next evaluation is unaffected


# ---------------------------------------------------------------------------------------------
# syntax_error


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ("$.a > 1", None),
        ("while (true) {}", None),  # parsed, never run
        ("null.x", None),
        ("with (o) {}", None),
        ("1 +", "SyntaxError: unexpected token in expression: '' at line 1"),
        ("var a;\n\nif (a {", "SyntaxError: Unexpected token '{' at line 3"),
        ("return 1", "SyntaxError: return not in a function at line 1"),
        (
            "'use strict'; with (o) {}",
            "SyntaxError: invalid keyword: with at line 1",
        ),
        (
            '// note\n"use strict"\nwith (o) {}',
            "SyntaxError: invalid keyword: with at line 3",
        ),
        ("'use strict' + 1; with (o) {}", None),  # an expression, not a directive
        ("}{", "SyntaxError: unexpected token in expression: '}' at line 1"),
        (function_script("return $.x"), None),
    ],
)
def test_syntax_error(script: str, error: str | None) -> None:
    assert syntax_error(script) == error


# ---------------------------------------------------------------------------------------------
# LAMBDA, eval_bool, case_string


def test_function_body() -> None:
    assert evaluate_function_body("return {doubled: $.x * 2}", {"$": {"x": 21}}) == {"doubled": 42}
    assert evaluate_function_body("var y = $.x;", {"$": {"x": 1}}) is None
    assert function_script("return 1") == "function scriptFun(){return 1} scriptFun();"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (-1, False),
        (0.5, True),
        (-0.0, False),
        (2**63, True),
        ("true", False),
        ("1", False),
        ("NaN", False),
        (None, False),
        ([1], False),
        ({"a": 1}, False),
    ],
)
def test_eval_bool(value: Any, expected: bool) -> None:
    assert eval_bool(value) is expected


def test_eval_bool_of_scripts() -> None:
    assert eval_bool(js("$.n < 3", n=2)) is True
    assert eval_bool(js("$.n", n=0)) is False
    assert eval_bool(js("'yes'")) is False
    assert eval_bool(js("undefined")) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (1.0, "1"),
        (-3.0, "-3"),
        (1.5, "1.5"),
        (1e20, "1.0E20"),
        (2.0**63, "9.223372036854776E18"),
        ("abc", "abc"),
        ("NaN", "NaN"),
        ([1, "a", None, 2.5], "[1, a, null, 2.5]"),
        ({"k": "v", "n": {"m": [True]}}, "{k=v, n={m=[true]}}"),
    ],
)
def test_case_string(value: Any, expected: str) -> None:
    assert case_string(value) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("1.0", "1"),
        ("2 / 4", "0.5"),
        ("null", "null"),
        ("undefined", "null"),
        ("$.n > 1", "true"),
        ("0 / 0", "NaN"),
    ],
)
def test_case_string_of_scripts(script: str, expected: str) -> None:
    assert case_string(js(script, n=2)) == expected


# ---------------------------------------------------------------------------------------------
# Threads and fork


def test_threads() -> None:
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [
                evaluate("var mine = $.n * 100 + $.i; mine", {"$": {"n": n, "i": i}}) for i in range(15)
            ]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == {n: [n * 100 + i for i in range(15)] for n in range(8)}


def test_a_runaway_script_does_not_block_other_threads() -> None:
    finished = threading.Event()
    outcome: list[BaseException] = []

    def spin() -> None:
        try:
            js("while (true) {}", timeout=5)
        except ScriptError as exc:
            outcome.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=spin)
    thread.start()
    assert [js("$.i + 1", i=i) for i in range(10)] == list(range(1, 11))
    assert not finished.is_set()  # these ran while the loop was still spinning
    thread.join(30)
    assert [str(e) for e in outcome] == ["script timed out after 5 s"]


def _child_evaluates(write_fd: int) -> None:
    try:
        answer = repr((js("$.n * 2", n=21), syntax_error("1 +")))
    except BaseException as exc:  # reported to the parent
        answer = f"error {exc!r}"
    os.write(write_fd, answer.encode())


def test_fork_after_the_parent_evaluated() -> None:
    assert js("6 * 7") == 42  # an engine now exists in this process
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            _child_evaluates(write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        answer = os.read(read_fd, 1000).decode() if ready else "child hung"
    finally:
        os.close(read_fd)
        if not ready:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert answer == "(42, \"SyntaxError: unexpected token in expression: '' at line 1\")"
    assert js("1 + 1") == 2  # the parent still works


def _pool_work(n: int) -> Any:
    return evaluate("[$.n, typeof seen]; var seen = 1; $.n * $.n", {"$": {"n": n}})


def test_fork_pool_after_the_parent_evaluated() -> None:
    assert js("1") == 1
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert pool.map_async(_pool_work, range(12)).get(timeout=60) == [n * n for n in range(12)]


def test_a_reused_engine_gives_each_script_the_same_world() -> None:
    """The engine serves script after script: intrinsics are frozen, globals put back, and a script
    that leaves something it cannot take back makes the next one get a fresh engine."""
    js("Object.defineProperty(globalThis, 'stuck', {value: 1, configurable: false}); 1")
    js("JSON = null; Math.max = null; globalThis.eval = null; 1")
    js("Array.prototype.push = null; Object.prototype.x = 1; 1")
    with pytest.raises(ScriptError):
        js("globalThis.half = 1; throw new Error('midway')")
    seen = "[typeof stuck, typeof half, typeof JSON.parse, Math.max(1, 2), typeof eval, [].push(1), ({}).x]"
    assert js(seen) == ["undefined", "undefined", "function", 2, "function", 1, None]


def test_built_in_globals_can_be_replaced_by_a_script_and_come_back_for_the_next() -> None:
    assert js("Math = 5; var JSON = 'j'; function escape() { return 'mine' } [Math, JSON, escape()]") == [
        5,
        "j",
        "mine",
    ]
    assert js("[typeof Math.max, typeof JSON.parse, escape('a b')]") == ["function", "function", "a%20b"]
    js("var kept = []; Object.defineProperty(globalThis, 'Array', {get() { kept.push($); return 1 }}); 1")
    js("Object.setPrototypeOf(globalThis, null); 1")
    with pytest.raises(ScriptError, match="TypeError"):  # the built-ins' holder is frozen
        js("Object.defineProperty(Object.getPrototypeOf(globalThis), 'Array', {value: 1})")
    js("Object.preventExtensions(globalThis); 1")
    assert js("[typeof Array.isArray, typeof kept, Object.getPrototypeOf(globalThis) !== null]") == [
        "function",
        "undefined",
        True,
    ]
    assert js("var fresh = 1; fresh") == 1  # the global object takes new names again


def test_a_changed_memory_limit_applies_to_the_engine_already_made(monkeypatch: pytest.MonkeyPatch) -> None:
    grow = "var a = []; for (var i = 0; i < 60; i++) a.push(new Float64Array(100000)); a.length"
    assert js(grow) == 60  # about 48 MB: under the default 256
    monkeypatch.setenv("TRANSLATOR_SCRIPT_MEMORY_MB", "32")
    with pytest.raises(ScriptError, match=r"^script exceeded the memory limit of 32 MB$"):
        js(grow)
    monkeypatch.delenv("TRANSLATOR_SCRIPT_MEMORY_MB")
    assert js(grow) == 60


def test_long_strings_built_by_the_script_come_back_whole() -> None:
    # QuickJS keeps a long concatenation as a rope, which its Python binding cannot hand over
    assert js("'a'.repeat(100000) + 'b' + 'c'.repeat(10000)") == "a" * 100000 + "b" + "c" * 10000
    assert js("({text: 'x'.repeat(50000) + 'y'})") == {"text": "x" * 50000 + "y"}


def test_an_engine_failure_is_a_script_error_and_the_next_script_gets_a_fresh_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from translator.engine import javascript

    assert js("1") == 1
    engine = javascript._ENGINES.kept

    def broken(text: str) -> Any:
        raise TypeError("Unknown quickjs tag: -6")

    monkeypatch.setattr(engine, "run", broken)
    with pytest.raises(ScriptError, match=r"^script engine error: Unknown quickjs tag: -6$"):
        js("1")
    assert js("2") == 2 and javascript._ENGINES.kept is not engine
