"""JSON_JQ_TRANSFORM on jq (translator.engine.jq): Conductor's JsonJqTransform contract (reference §4),
its JsonJqTransformTest cases, and the corpus's real queries."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from translator.definitions.jsonsource import MAX_DEPTH
from translator.definitions.model import WorkflowDef
from translator.engine import jq as jq_module
from translator.engine.javascript import ScriptError
from translator.engine.jq import CACHE_SIZE, JqError, conductor_text, transform
from translator.errors import TranslatorError
from translator.text import REASON_LIMIT

DOUBLE_MAX = sys.float_info.max
TOO_DEEP = f"a value the query outputs is nested deeper than {MAX_DEPTH} arrays/objects"


def run(query: str, **data: Any) -> dict[str, Any]:
    """The task's output, Conductor-style: the query runs over the whole input, query included."""
    return transform(query, {"queryExpression": query, **data})


def failure(query: Any, **data: Any) -> JqError:
    with pytest.raises(JqError) as caught:
        transform(query, {"queryExpression": query, **data})
    return caught.value


def deep(levels: int) -> str:
    """A jq expression of an array nested ``levels`` deep."""
    return f"reduce range({levels - 1}) as $i ([]; [.])"


# ---------------------------------------------------------------------------------------------
# Results


@pytest.mark.parametrize(
    ("query", "data", "result", "result_list"),
    [
        # JsonJqTransformTest.dataShouldBeCorrectlySelected
        (".inputJson.key[0]", {"inputJson": {"key": ["VALUE"]}}, "VALUE", ["VALUE"]),
        # JsonJqTransformTest.nullResultShouldBeCorrectlyExtracted
        ("null", {}, None, [None]),
        # several outputs: result is the first
        (".xs[]", {"xs": [3, 1, 2]}, 3, [3, 1, 2]),
        # no output at all: result is null, resultList empty
        ("empty", {}, None, []),
        (".xs[]", {"xs": []}, None, []),
        # the input is the whole input map, queryExpression included
        ("keys", {"b": 1, "a": 2}, ["a", "b", "queryExpression"], [["a", "b", "queryExpression"]]),
        (".queryExpression", {}, ".queryExpression", [".queryExpression"]),
        ("{total: (.xs | add), n: (.xs | length)}", {"xs": [1, 2]}, {"total": 3, "n": 2}, None),
        ("[.[] | strings]", {"s": "x"}, ["[.[] | strings]", "x"], None),
        # missing keys are null, as in any jq
        (".nowhere.deeper", {}, None, [None]),
        # C jq accepts postfix iteration inside an object (jackson-jq: 'Encountered " "[" "[ ""')
        ("{id: (.ids | unique)[]}", {"ids": ["b", "a", "b"]}, {"id": "a"}, [{"id": "a"}, {"id": "b"}]),
    ],
)
def test_result_is_the_first_output_and_result_list_all_of_them(query, data, result, result_list):
    output = run(query, **data)
    assert set(output) == {"result", "resultList"}
    assert output["result"] == result
    assert output["resultList"] == (result_list if result_list is not None else [result])


def test_string_and_list_results_keep_their_types():
    # JsonJqTransformTest.stringResultShouldBeCorrectlyExtracted / listResultShouldBeCorrectlyExtracted
    assert run('if(.data | length >0) then "EXISTS" else "CREATE" end', data=[])["result"] == "CREATE"
    transitions = {"request": {"transitions": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}
    output = run(".inputData.request.transitions | map(.name)", inputData=transitions)
    assert output["result"] == ["a", "b", "c"]


def test_conductor_map_result_case_with_alternatives():
    # JsonJqTransformTest.mapResultShouldBeCorrectlyExtracted
    query = (
        '{ requestTransform: .input.requestTransform // ".body"  , responseTransform: '
        '.input.responseTransform // ".response.body", method: .input.method // "GET", document: '
        '.input.document // "rgt_results", successExpression: .input.successExpression // "true"   }'
    )
    given = {
        "method": "POST",
        "successExpression": None,
        "requestTransform": '{name: (.body.name + " you are a " + .body.title) }',
        "responseTransform": '{result: "reply: " + .response.body.message}',
    }
    assert run(query, input=given)["result"] == {
        "requestTransform": given["requestTransform"],
        "responseTransform": given["responseTransform"],
        "method": "POST",
        "document": "rgt_results",
        "successExpression": "true",
    }


@pytest.mark.parametrize(
    ("query", "data", "expected"),
    [
        (".a", {"a": 1.0}, 1.0),  # an input float passes through as a float (Jackson: Double)
        (".a + 0", {"a": 1.0}, 1),  # a computed integral value is an int (asNumericNode)
        ("4 / 2", {}, 2),
        ("1.5", {}, 1.5),
        ("0.1 + 0.2", {}, 0.30000000000000004),
        (".n", {"n": 9007199254740993}, 9007199254740993),  # a long passed through stays exact
        ("9223372036854775807", {}, 9223372036854775807),  # Long.MAX_VALUE
        ("-9223372036854775808", {}, -9223372036854775808),
        ("9223372036854775808", {}, 9.223372036854776e18),  # beyond a long: a double
        ("1e19", {}, 1e19),
        ("1e300", {}, 1e300),
        ("1e1000", {}, DOUBLE_MAX),  # beyond a double: the largest one, as jq's infinite
        ("-1e1000", {}, -DOUBLE_MAX),
        ("infinite", {}, DOUBLE_MAX),
        ('"1" * 5000 | tonumber', {}, DOUBLE_MAX),
        ("nan", {}, None),
        ("true", {}, True),
    ],
)
def test_numbers_are_ints_within_a_long_and_floats_otherwise(query, data, expected):
    result = run(query, **data)["result"]
    assert result == expected
    assert type(result) is type(expected)


def test_numbers_inside_containers_follow_the_same_rule():
    result = run("{a: [.x, .x + 0, 1e19], b: {c: 2.5}}", x=2.0)["result"]
    assert result == {"a": [2.0, 2, 1e19], "b": {"c": 2.5}}
    assert [type(v) for v in result["a"]] == [float, int, float]


def test_strings_round_trip_unicode_and_escapes():
    text = 'é ü 中 "quoted" \\ \n 😀'
    assert run(".s", s=text)["result"] == text
    assert run('"\\u00e9" + .s', s="x")["result"] == "éx"


# ---------------------------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize(
    ("query", "data", "message"),
    [
        # JsonJqTransformTest.simpleErrorShouldBeDisplayed (jackson-jq: 'Encountered "<EOF>" at line 1...')
        ("{", {}, "jq: error: syntax error, unexpected end of file at <top-level>, line 1, column 1:"),
        ("$y", {}, "Undefined variable: $y"),  # jackson-jq's VariableAccess
        (".a |\n  $y", {}, "Undefined variable: $y"),
        ("$x + $y", {}, "jq: error: $x is not defined at <top-level>, line 1, column 1:"),
        ("def f: 1;", {}, 'jq: error: Top-level program not given (try ".")'),
        ("nosuchfunction(1)", {}, "Function nosuchfunction/1 does not exist"),  # jackson-jq's FunctionCall
        (".a.b", {"a": 1}, 'Cannot index number with string "b"'),
        ('.a + "x"', {"a": 1}, 'number (1) and string ("x") cannot be added'),
        ('error("boom")', {}, "boom"),
        ('1, error("after one output")', {}, "after one output"),
        ('error({"a": [1, 2]})', {}, '{"a":[1,2]}'),
        ("error(null)", {}, "null"),
        ("input", {}, "break"),
        ("[1, 2] | sort_by(.x)", {}, 'Cannot index number with string "x"'),
        ("[" + deep(MAX_DEPTH) + "]", {}, TOO_DEEP),
        (deep(100_000), {}, TOO_DEEP),  # far beyond what the bindings could convert without crashing
    ],
)
def test_a_failing_query_raises_jq_message_as_reason_and_error_output(query, data, message):
    error = failure(query, **data)
    assert str(error).startswith(message)
    assert error.output == {"error": str(error)}
    assert isinstance(error, ScriptError) and isinstance(error, TranslatorError)


def test_compile_errors_quote_the_offending_line_with_jq_caret():
    error = failure("[1,\n .b | ]")
    assert str(error) == (
        "jq: error: syntax error, unexpected ']' at <top-level>, line 2, column 7:\n"
        "     .b | ]\n"
        "          ^\n"
        "jq: 1 compile error"
    )


# jackson-jq 0.0.13's texts (ResolvedStringFieldAccess, ResolvedIndexFieldAccess, BracketFieldAccess,
# ResolvedRangeFieldAccess, ResolvedAllFieldAccess, FunctionCall, VariableAccess) for C jq's errors.
@pytest.mark.parametrize(
    ("query", "data", "message"),
    [
        (".in1.array", {"in1": "a"}, 'Cannot index string with string "array"'),  # JsonJQTransformSpec
        ('.x | .["a\\"b é"]', {"x": [1]}, 'Cannot index array with string "a"b é"'),
        (".x.a", {"x": True}, 'Cannot index boolean with string "a"'),
        (".x[0]", {"x": {}}, "Cannot index object with number"),
        (".x[1.5]", {"x": "s"}, "Cannot index string with number"),
        (".x[null]", {"x": {}}, "Cannot index object with null"),
        (".x[[1]]", {"x": {}}, "Cannot index object with array"),
        (".x[1:2]", {"x": {}}, "Cannot index object with object"),
        (".x[]", {"x": 1}, "Cannot iterate over number"),
        (".x[]", {}, "Cannot iterate over null"),
        (".x | keys[] | .[]", {"x": {"k": 1}}, "Cannot iterate over string"),
        ("nosuch", {}, "Function nosuch/0 does not exist"),
        ("if false then $nope else 1 end", {}, "Undefined variable: $nope"),  # jackson-jq: 1
    ],
)
def test_errors_read_as_jackson_jq_writes_them(query, data, message):
    error = failure(query, **data)
    assert (str(error), error.output) == (message, {"error": message})


@pytest.mark.parametrize(
    "message",
    [
        'Cannot index number with string ("abcdefghijklmnopqrstuvwx...")',  # C jq cut the key
        'Cannot index number with string ("aaaaaaaaaa\\n\\n\\n\\n\\...")',
        'string ("a") and number (1) cannot be added',
        "jq: error: $x is not defined at <top-level>, line 1, column 1:\n    $x\n    ^^\njq: error: $y is "
        "not defined at <top-level>, line 1, column 6:\n    $x + $y\n         ^^\njq: 2 compile errors",
    ],
)
def test_other_messages_stay_c_jqs(message):
    assert conductor_text(message) == message


def test_a_key_that_ends_with_dots_but_was_not_cut():
    assert (
        conductor_text('Cannot index number with string ("abc...")')
        == 'Cannot index number with string "abc..."'
    )
    error = failure(".x[.k]", x=1, k="aaaaaaaaaaaaaaaaaaaaaaaaaa")  # 26 bytes + quotes: not cut
    assert str(error) == 'Cannot index number with string "aaaaaaaaaaaaaaaaaaaaaaaaaa"'


def test_a_query_catching_an_error_reads_c_jqs_text():
    assert run("try (.x | .a) catch .", x=1)["result"] == 'Cannot index number with string ("a")'


def test_a_deep_value_raised_as_an_error_fails_with_its_json_text_shortened():
    error = failure(f"error({deep(100_000)})")
    assert str(error).startswith("[[[[[[")
    assert len(str(error)) <= REASON_LIMIT + 40


def test_a_value_as_deep_as_the_limit_is_accepted():
    result = run(deep(MAX_DEPTH))["result"]
    depth = 0
    while isinstance(result, list):
        depth += 1
        result = result[0] if result else None
    assert depth == MAX_DEPTH


def test_a_missing_query_fails_with_conductor_message_and_no_output():
    for data in ({}, {"queryExpression": None, "x": 1}):
        with pytest.raises(JqError) as caught:
            transform(data.get("queryExpression"), data)
        assert str(caught.value) == "Missing 'queryExpression' in input parameters"
        assert caught.value.output == {}


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_a_clear_error(query):
    error = failure(query)
    assert str(error) == "Empty 'queryExpression' in input parameters: a jq query is required"
    assert error.output == {"error": str(error)}


@pytest.mark.parametrize("query", [42, {"q": "."}, [".a"], True])
def test_a_query_that_is_not_a_string_is_refused(query):
    error = failure(query)
    assert str(error).startswith("'queryExpression' must be a string (a jq query), got ")
    assert error.output == {}


def test_long_messages_are_cut_to_the_reason_limit():
    error = failure('error("x" * 100000)')
    assert len(str(error)) < REASON_LIMIT + 40
    assert str(error).endswith("(100000 characters)")
    assert error.output == {"error": str(error)}


def test_input_that_is_not_json_is_refused():
    error = failure(".x", x=float("nan"))
    assert str(error).startswith("the task's input is not JSON: ")
    error = failure(".x", x=object())
    assert str(error).startswith("the task's input is not JSON: ")


def test_jq_error_survives_pickling_with_its_output():
    error = failure(".a.b", a=1)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is JqError
    assert (str(copy), copy.output) == (str(error), error.output)


# ---------------------------------------------------------------------------------------------
# The frame around the query


def test_the_worker_environment_is_not_readable(monkeypatch):
    monkeypatch.setenv("TRANSLATOR_TEST_SECRET", "s3cr3t")
    assert run("$ENV.TRANSLATOR_TEST_SECRET")["result"] is None
    assert run("env | length")["result"] == 0
    assert run("[$ENV, env]")["result"] == [{}, {}]
    assert "s3cr3t" not in json.dumps(run("[$ENV, env, (env | tostring)]"))


@pytest.mark.parametrize(
    "query",
    [
        # inside the frame this would run, its error escaping the frame's try/catch
        '1) catch 2) , error({"escaped": true}) , (try (3',
        ".) | $ENV | (.",
        ".\n\n) catch . | $ENV | (try (.",
    ],
)
def test_a_query_cannot_close_the_frame(query):
    error = failure(query)
    assert str(error).startswith("jq: error: syntax error, unexpected ")
    assert str(error).endswith(("compile error", "compile errors"))


def test_user_definitions_and_locations_work_as_written():
    assert run("def twice(f): f | f; .n | twice(. * 3)", n=2)["result"] == 18
    assert run("$__loc__")["result"] == {"file": "<top-level>", "line": 1}
    assert run("1 |\n\n$__loc__.line")["result"] == 3
    assert run('try error("x") catch ("caught " + .)')["result"] == "caught x"
    assert run("label $out | 1, break $out, 2")["resultList"] == [1]


def test_a_comment_on_the_last_line_does_not_swallow_the_frame():
    assert run(".n # a comment\\", n=5)["result"] == 5  # jq continues a comment after a backslash
    assert run(".n # a comment", n=5)["result"] == 5


def test_compiled_queries_are_cached_by_text():
    query = ".cached_once + 1"
    before = jq_module._program.cache_info()
    assert run(query, cached_once=1)["result"] == 2
    assert run(query, cached_once=2)["result"] == 3
    after = jq_module._program.cache_info()
    assert after.hits - before.hits >= 1
    assert after.maxsize == CACHE_SIZE == 1000


# ---------------------------------------------------------------------------------------------
# The corpus's real queries (read from the definitions, inputs chosen here)


def jq_tasks(corpus_dir: Path, file: str) -> dict[str, dict[str, Any]]:
    definition = WorkflowDef.model_validate(json.loads((corpus_dir / file).read_text()))
    return {
        task.taskReferenceName: dict(task.inputParameters)
        for _, task in definition.walk()
        if task.type == "JSON_JQ_TRANSFORM"
    }


def test_corpus_result_queries(corpus_dir):
    tasks = jq_tasks(corpus_dir, "oss__th__json_jq_transform_result_integration_test.json")
    assert transform(tasks["json_jq_1"]["queryExpression"], tasks["json_jq_1"])["result"] == "CREATE"
    with_data = {**tasks["json_jq_1"], "data": [1]}
    assert transform(with_data["queryExpression"], with_data)["result"] == "EXISTS"
    output = transform(tasks["json_jq_2"]["queryExpression"], tasks["json_jq_2"])
    assert output["result"] == ["redeliver", "redeliver_from_validation_error", "redelivery"]


def test_corpus_simple_query_concatenates_two_arrays(corpus_dir):
    task = jq_tasks(corpus_dir, "oss__th__simple_json_jq_transform_integration_test.json")["jq_1"]
    data = {**task, "input": {"in1": {"array": ["a", "b"]}, "in2": {"array": ["c", "d"]}}}
    assert transform(task["queryExpression"], data) == {
        "result": {"out": ["a", "b", "c", "d"]},
        "resultList": [{"out": ["a", "b", "c", "d"]}],
    }


def test_corpus_sequential_queries_where_the_second_query_comes_from_the_first(corpus_dir):
    tasks = jq_tasks(corpus_dir, "oss__th__sequential_json_jq_transform_integration_test.json")
    first = tasks["default_variables"]
    workflow_input = {
        "method": "POST",
        "requestTransform": '{name: (.body.name + " you are a " + .body.title) }',
        "body": {"name": "Ada", "title": "engineer"},
    }
    defaults = transform(first["queryExpression"], {**first, "input": workflow_input})["result"]
    assert defaults["method"] == "POST"
    assert defaults["responseTransform"] == ".response.body"
    second = tasks["request_transform"]
    assert second["queryExpression"] == "${default_variables.output.result.requestTransform}"
    resolved = {"body": workflow_input["body"], "queryExpression": defaults["requestTransform"]}
    assert transform(resolved["queryExpression"], resolved)["result"] == {"name": "Ada you are a engineer"}


def test_corpus_loop_queries_wrap_the_location(corpus_dir):
    tasks = jq_tasks(corpus_dir, "oss__th__do_while_five_loop_over_integration_test.json")
    assert set(tasks) == {"jq_add_location", "jq_create_hydrus_input"}
    for task in tasks.values():
        data = {**task, "locationIdValue": 7}
        assert transform(task["queryExpression"], data)["result"] == {"out": {"locationId": 7}}
