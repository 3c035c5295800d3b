"""Conductor's ${...} resolution: reference §5.4 conformance cases plus rendering and JSONPath forms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.services import embedded_env, translator_cli
from translator.definitions.expressions import (
    allowed_environment,
    apply_workflow_input_template,
    copy_json,
    java_double,
    java_string,
    resolve,
    resolve_task_input,
)
from translator.definitions.jsonsource import MAX_DEPTH, too_deep
from translator.errors import ExpressionError, UnsupportedExpression

A = {
    "name": "conductor",
    "version": 2,
    "externalId": '{"taskRefName":"t001","workflowId":"w002"}',
}
B = {
    "name": "conductor",
    "index": 1,
    "mapValue": "a",
    "recordIds": [1, 2, 3],
    "map": {"a": [1, 2, 3], "b": [2, 4, 5], "c": [3, 7, 8]},
}
D = {"someString": "conductor", "someNumber": 2}
W = {
    "workflow": {
        "input": {"requestId": "request id 001", "hasAwards": True, "channelMapping": 5},
        "output": {
            "name": {"name": "The Who", "year": 1970},
            "names": [{"name": "The Who", "year": 1970}, {"name": "The Doors", "year": 1975}],
            "awards": 200,
        },
    },
    "task2": {"status": "COMPLETED", "output": {"location": "http://location"}},
    "task3": {"status": "SCHEDULED", "output": {"refId": "abcddef_1234_7890_aaffcc"}},
}
W_ENV = {"EC2_INSTANCE": "i-123abcdef990"}

CASES = [
    (1, A, "${$.externalId}", '{"taskRefName":"t001","workflowId":"w002"}'),
    (2, A, "${name}", "conductor"),
    (3, A, "${version}", 2),
    (4, A, "${}", ""),
    (5, A, "${    }", ""),
    (6, A, {"name": "${name}", "version": "${version}"}, {"name": "conductor", "version": 2}),
    (7, A, ["${name}", "${version}"], ["conductor", 2]),
    (8, B, "${recordIds[${index}]}", 2),
    (9, B, "${map.${mapValue}[${index}]}", 2),
    (10, B, "${map.b[${map.${mapValue}[${index}]}]}", 5),
    (11, A, "Name: ${name};\r\nVersion: ${version};", "Name: conductor;\r\nVersion: 2;"),
    (
        12,
        D,
        "${$.someString} $${$.someNumber}${$.someNumber} ${$.someNumber}$${$.someString}",
        "conductor ${$.someNumber}2 2${$.someString}",
    ),
    (13, D, "$${$.someString}afterText", "${$.someString}afterText"),
    (14, D, "$${someString} ${someNumber}", "${someString} 2"),
    (15, W, "${workflow.input.requestId}", "request id 001"),
    (16, W, "${task2.output.location}", "http://location"),
    (17, W, "${task2.output.locationBad}", None),
    (18, W, "${task3.output.location}", None),
    (19, W, "${task2.status}", "COMPLETED"),
    (20, W, "${workflow.input.channelMapping}", 5),
    (21, W, "${workflow.output.names[*].year}", [1970, 1975]),
    (22, W, "${workflow.output.names[1].name}", "The Doors"),
    (
        23,
        W,
        "The Band is: ${workflow.output.names[1].name}-\t${EC2_INSTANCE}",
        "The Band is: The Doors-\ti-123abcdef990",
    ),
    (
        24,
        W,
        "${task2.output.location}/something?host=${EC2_INSTANCE}",
        "http://location/something?host=i-123abcdef990",
    ),
    (25, W, None, None),
]


@pytest.mark.parametrize(("number", "document", "template", "expected"), CASES)
def test_reference_cases(number, document, template, expected):
    assert resolve(template, document, env=W_ENV) == expected


def test_case_17_key_is_kept_with_null():
    assert resolve({"x": "${task2.output.locationBad}", "y": None}, W) == {"x": None, "y": None}


def test_case_26_task_id_in_place_and_nested():
    template = {"id": "${CPEWF_TASK_ID}", "nested": {"env_task_id": "${CPEWF_TASK_ID}"}}
    assert resolve(template, W, task_id="t1") == {"id": "t1", "nested": {"env_task_id": "t1"}}
    # A retry is a new task instance: resolving again with the new id gives the new id.
    assert resolve(template, W, task_id="t2") == {"id": "t2", "nested": {"env_task_id": "t2"}}


T_TEMPLATE = {
    "url": "https://some_url:7004",
    "default_url": "https://default_url:7004",
    "someKey": "someValue",
}
T_DOC = {
    "workflow": {
        "input": {
            "some_new_url": "https://some_new_url:7004",
            "workflow_input_url": "https://workflow_input_url:7004",
            "some_other_key": "some_other_value",
        }
    }
}


def test_cases_27_to_30_task_input_template():
    params = {
        "url": "${workflow.input.some_new_url}",
        "workflow_input_url": "${workflow.input.workflow_input_url}",
        "someKey": "${workflow.input.someKey}",
        "someOtherKey": "${workflow.input.some_other_key}",
        "someNowhereToBeFoundKey": "${workflow.input.some_ne_key}",
    }
    result = resolve_task_input(params, T_DOC, input_template=T_TEMPLATE)
    assert result["url"] == "https://some_new_url:7004"  # 27: parameter beats template
    assert result["default_url"] == "https://default_url:7004"  # 28: from the template
    assert result["someKey"] == "someValue"  # 29: null result replaced by template value
    assert result["someNowhereToBeFoundKey"] is None  # 30
    assert result["someOtherKey"] == "some_other_value"
    assert "someNowhereToBeFoundKey" in result


@pytest.mark.parametrize(
    "template",
    ["${workflow.env.REGION}", "${workflow.env.CONFIG.host}", "${workflow.secrets.DB_PASSWORD}"],
)
def test_cases_31_to_33_env_and_secrets_are_unsupported(template):
    with pytest.raises(UnsupportedExpression, match="not supported"):
        resolve(template, W)


def test_template_is_not_mutated():
    template = {"a": ["${name}", {"b": "${version}"}]}
    snapshot = repr(template)
    resolve(template, A)
    assert repr(template) == snapshot


# --- Java-style rendering in mixed strings ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (2, "2"),
        (2.0, "2.0"),
        (1.5, "1.5"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (12345678.0, "1.2345678E7"),
        (1e7, "1.0E7"),
        (-2.5e-5, "-2.5E-5"),
        (9999999.0, "9999999.0"),
        (0.0, "0.0"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        ({"a": 1}, "{a=1}"),
        ({"a": 1, "b": "x"}, "{a=1, b=x}"),
        ([1, 2], "[1, 2]"),
        ([], "[]"),
        ({}, "{}"),
        ({"a": [1, {"b": None}]}, "{a=[1, {b=null}]}"),
        ("text", "text"),
    ],
)
def test_java_rendering(value, rendered):
    assert java_string(value) == rendered


def test_java_double_direct():
    assert java_double(100.0) == "100.0"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("x=${workflow.input.missing}", "x=null"),
        ("v=${workflow.input.m}", "v={a=1}"),
        ("l=${workflow.input.l}", "l=[1, 2]"),
        ("f=${workflow.input.f}", "f=2.0"),
        ("b=${workflow.input.b}", "b=true"),
        ("${workflow.input.f}", 2.0),
        ("${workflow.input.m}", {"a": 1}),
        ("${workflow.input.b}", True),
        ("${workflow.input.missing}", None),
        ("${workflow.input.l}${workflow.input.l}", "[1, 2][1, 2]"),
        ("no expressions at all", "no expressions at all"),
        ("unterminated ${workflow.input.b", "unterminated ${workflow.input.b"),
        ("${NETFLIX_ENV}", "${NETFLIX_ENV}"),
        ("env=${NETFLIX_STACK}", "env=${NETFLIX_STACK}"),
        ("${CPEWF_TASK_ID}", "${CPEWF_TASK_ID}"),
        ("${HOME}", None),
    ],
)
def test_mixed_and_whole_strings(template, expected):
    doc = {"workflow": {"input": {"m": {"a": 1}, "l": [1, 2], "f": 2.0, "b": True}}}
    assert resolve(template, doc) == expected


# --- JSONPath forms ------------------------------------------------------------------------------

P = {
    "wf": {
        "items": [{"id": 1, "tag": "a"}, {"id": 2, "tag": "b"}, {"id": 3, "tag": "a"}],
        "nested": {"deep": {"id": 9}},
        "loop": {"output": {"1": {"ref": {"v": 10}}, "2": {"ref": {"v": 20}}}},
        "my-ref": {"output": {"x": 1}},
    }
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("${wf.items[0].id}", 1),
        ("${wf.items[-1].id}", 3),
        ("${wf.items[5].id}", None),
        ("${wf.items[*].id}", [1, 2, 3]),
        ("${wf.items[0:2].id}", [1, 2]),
        ("${wf.items[?(@.tag == 'a')].id}", [1, 3]),
        ("${wf.items[?(@.id > 1)].tag}", ["b", "a"]),
        ("${wf..id}", [1, 2, 3, 9]),
        ("${wf.nope[*].id}", []),
        ("${wf.items[?(@.tag == 'z')].id}", []),
        ("${$.wf.nested.deep.id}", 9),
        ("${$['wf']['nested']['deep']['id']}", 9),
        ("${wf.loop.output.2.ref.v}", 20),
        ("${wf.my-ref.output.x}", 1),
        ("${wf.items.length()}", 3),
        ("${wf.items[}", None),
        ("${wf.nested}", {"deep": {"id": 9}}),
    ],
)
def test_jsonpath_forms(path, expected):
    assert resolve(path, P) == expected


def test_env_allowlist_reads_only_listed_names():
    environ = {"TRANSLATOR_EXPRESSION_ENV": "REGION, STAGE", "REGION": "eu-west-1", "SECRET": "x"}
    env = allowed_environment(environ=environ)
    assert env == {"REGION": "eu-west-1"}
    assert resolve("${REGION}/${SECRET}", {}, env=env) == "eu-west-1/null"


def test_workflow_input_template_only_for_non_empty_input():
    template = {"a": 1, "b": 2}
    assert apply_workflow_input_template({}, template) == {}
    assert apply_workflow_input_template({"b": 3}, template) == {"a": 1, "b": 3}


# --- Limits: nothing raises anything but ExpressionError, at any depth or length -------------------


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deep_workflow_input_is_copied_without_recursion():
    workflow_input = {"deep": _nested(5000)}
    copied = apply_workflow_input_template(workflow_input, {"extra": _nested(5000)})
    assert copied["deep"] is not workflow_input["deep"]
    assert too_deep(copied["deep"], 5000) is None and too_deep(copied["deep"], 4999) is not None
    assert too_deep(copied["extra"], 4999) is not None


def test_copy_json_keeps_shared_and_cyclic_references_like_deepcopy():
    shared = [1, 2]
    cyclic: dict[str, Any] = {"s": shared, "t": shared}
    cyclic["self"] = cyclic
    copied = copy_json(cyclic)
    assert copied is not cyclic and copied["self"] is copied
    assert copied["s"] is copied["t"] and copied["s"] == [1, 2] and copied["s"] is not shared


@pytest.mark.parametrize(
    ("template", "document", "reason"),
    [
        (_nested(MAX_DEPTH + 1, "x"), {}, "the template is nested deeper than 128 arrays/objects"),
        (
            "v=${workflow.input.v}",
            {"workflow": {"input": {"v": _nested(600)}}},
            "${workflow.input.v}: the value to render in a string is nested deeper than 128",
        ),
        (
            "${" * 17 + "x" + "}" * 17,
            {},
            "expressions nested more than 16 deep",
        ),
        (
            "${${workflow.input.p}}",
            {"workflow": {"input": {"p": "$" + ".a" * 600}}},
            "is longer than 1024 characters, the most translator reads",
        ),
        (
            "${${workflow.input.p}}",
            {"workflow": {"input": {"p": "$" + ".a" * 100}}},
            "is nested deeper than 64 segments, the most translator evaluates",
        ),
    ],
    ids=[
        "deep-template",
        "deep-value-in-string",
        "nested-expressions",
        "long-path",
        "deep-path",
    ],
)
def test_limits_raise_expression_errors_with_one_line_reasons(template, document, reason):
    with pytest.raises(ExpressionError) as caught:
        resolve(template, document)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and len(message) < 400


def test_many_unclosed_expressions_are_scanned_in_linear_time():
    # Quadratic scanning would take minutes here; the string is returned unchanged.
    text = "${" * 200_000
    assert resolve({"x": text}, {}) == {"x": text}


@pytest.mark.integration
def test_a_path_beyond_the_limits_fails_the_task_with_its_reason(tmp_path):
    """At run time (the path is only known then) the task fails for good, with a one-line reason."""
    task = {
        "name": "echo",
        "taskReferenceName": "echo",
        "inputParameters": {"v": "${${workflow.input.p}}"},
    }
    definition = tmp_path / "wf.json"
    definition.write_text(json.dumps({"name": "long_path", "tasks": [task]}))
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "taskdefs" / "echo.json").write_text(json.dumps({"name": "echo", "retryCount": 0}))
    stdin = json.dumps({"p": "workflow.input" + ".a" * 600})
    result = translator_cli(
        "run", str(definition), "--input", "-", "--full", env=embedded_env(), stdin=stdin, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    execution = json.loads(result.stdout)
    [record] = execution["tasks"]
    assert execution["status"] == "FAILED"
    assert record["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "is longer than 1024 characters" in record["reasonForIncompletion"]
    assert len(record["reasonForIncompletion"]) < 400
