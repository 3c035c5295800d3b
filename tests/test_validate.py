"""Validation: exact pointers and messages for invalid definitions, the corpus, the blog's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from translator.definitions.issues import Level
from translator.definitions.jsonsource import MAX_DEPTH, MAX_DOCUMENT_BYTES
from translator.definitions.validate import check_file


def _wf(*tasks, **fields):
    return {"name": "wf", "schemaVersion": 2, "tasks": list(tasks), **fields}


def _simple(ref, **fields):
    return {"name": ref, "taskReferenceName": ref, "type": "SIMPLE", **fields}


def _issues(tmp_path: Path, document, level=Level.ERROR, name="def.json"):
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return [(i.pointer, i.code, i.message) for i in check_file(path) if i.level is level]


INVALID = [
    (
        "missing workflow name",
        {"schemaVersion": 2, "tasks": [_simple("a")]},
        ("/name", "required", "WorkflowDef name cannot be null or empty"),
    ),
    (
        "empty tasks",
        _wf(),
        ("/tasks", "required", "WorkflowTask list cannot be empty"),
    ),
    (
        "duplicate refs in nested branches",
        _wf(
            {
                "name": "sw",
                "taskReferenceName": "sw",
                "type": "SWITCH",
                "evaluatorType": "value-param",
                "expression": "k",
                "decisionCases": {"x": [_simple("a")], "y": [_simple("a")]},
            }
        ),
        (
            "/tasks/0/decisionCases/y/0/taskReferenceName",
            "duplicate-ref",
            "taskReferenceName: a should be unique across tasks for a given workflowDefinition: wf",
        ),
    ),
    (
        "unknown ${} reference",
        _wf(_simple("a", inputParameters={"x": "${nosuch.output.y}"})),
        (
            "/tasks/0/inputParameters/x",
            "unknown-ref",
            "taskReferenceName: nosuch for given task: a input value: x of input parameter: "
            "${nosuch.output.y} is not defined in workflow definition.",
        ),
    ),
    (
        "responseTimeoutSeconds above timeoutSeconds",
        {"name": "t", "timeoutSeconds": 10, "responseTimeoutSeconds": 20},
        (
            "/responseTimeoutSeconds",
            "timeout-order",
            "TaskDef: t responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10 (fix: lower "
            "responseTimeoutSeconds to at most timeoutSeconds, or raise timeoutSeconds)",
        ),
    ),
    (
        "timeoutSeconds above totalTimeoutSeconds",
        [{"name": "t", "timeoutSeconds": 10, "responseTimeoutSeconds": 5, "totalTimeoutSeconds": 8}],
        (
            "/0/timeoutSeconds",
            "timeout-order",
            "TaskDef: t timeoutSeconds: 10 must be less than or equal to totalTimeoutSeconds: 8 (fix: "
            "raise totalTimeoutSeconds or lower timeoutSeconds)",
        ),
    ),
    (
        "responseTimeoutSeconds zero",
        {"name": "t", "responseTimeoutSeconds": 0},
        (
            "/responseTimeoutSeconds",
            "min",
            "TaskDef responseTimeoutSeconds: 0 should be minimum 1 second",
        ),
    ),
    (
        "negative retryCount",
        {"name": "t", "retryCount": -1},
        ("/retryCount", "min", "TaskDef retryCount: 0 must be >= 0 (got -1)"),
    ),
    (
        "SWITCH without expression",
        _wf(
            {
                "name": "sw",
                "taskReferenceName": "sw",
                "type": "SWITCH",
                "evaluatorType": "value-param",
                "decisionCases": {"x": [_simple("a")]},
            }
        ),
        (
            "/tasks/0/expression",
            "required",
            "expression field is required for taskType: SWITCH taskName: sw",
        ),
    ),
    (
        "DO_WHILE without loopCondition",
        _wf({"name": "lp", "taskReferenceName": "lp", "type": "DO_WHILE", "loopOver": [_simple("a")]}),
        (
            "/tasks/0/loopCondition",
            "required",
            "loopCondition field is required for taskType: DO_WHILE taskName: lp",
        ),
    ),
    (
        "FORK_JOIN without JOIN",
        _wf(
            {
                "name": "fk",
                "taskReferenceName": "fk",
                "type": "FORK_JOIN",
                "forkTasks": [[_simple("a")], [_simple("b")]],
            },
            _simple("c"),
        ),
        ("/tasks/0", "fork-without-join", "Fork task definition is not followed by a join task"),
    ),
    (
        "retryCount of the wrong JSON type",
        {"name": "t", "retryCount": "three"},
        ("/retryCount", "type", 'retryCount: expected an integer, got "three"'),
    ),
    (
        "trailing garbage after the JSON",
        '{"name": "t", "retryCount": 1} }',
        (
            "",
            "json-trailing-data",
            "unexpected data after the JSON value at line 1 column 32: '}'",
        ),
    ),
    (
        "schemaVersion 1",
        _wf(_simple("a"), schemaVersion=1),
        ("/schemaVersion", "schema-version", "workflowDef schemaVersion: 2 is only supported"),
    ),
    (
        "TERMINATE with a bad status",
        _wf(
            {
                "name": "end",
                "taskReferenceName": "end",
                "type": "TERMINATE",
                "inputParameters": {"terminationStatus": "DONE"},
            }
        ),
        (
            "/tasks/0/inputParameters/terminationStatus",
            "terminate-status",
            "terminate task must have an terminationStatus parameter and must be set to COMPLETED "
            "or FAILED, taskName: end",
        ),
    ),
    (
        "WAIT with both duration and until",
        _wf(
            {
                "name": "w",
                "taskReferenceName": "w",
                "type": "WAIT",
                "inputParameters": {"duration": "1s", "until": "2030-01-01"},
            }
        ),
        (
            "/tasks/0/inputParameters",
            "wait-conflict",
            "Both 'duration' and 'until' specified. Please provide only one input",
        ),
    ),
    (
        "missing taskReferenceName",
        _wf({"name": "a", "type": "SIMPLE"}),
        (
            "/tasks/0/taskReferenceName",
            "required",
            "WorkflowTask taskReferenceName name cannot be empty or null",
        ),
    ),
    (
        "unsupported task type",
        _wf(
            {
                "name": "k",
                "taskReferenceName": "k",
                "type": "KAFKA_PUBLISH",
                "inputParameters": {"kafka_request": {}},
            }
        ),
        (
            "/tasks/0/type",
            "unsupported-task-type",
            "task type KAFKA_PUBLISH is not supported: translator has no Kafka client",
        ),
    ),
    (
        "misspelled task type",
        _wf({"name": "h", "taskReferenceName": "h", "type": "SIMPEL"}),
        (
            "/tasks/0/type",
            "unsupported-task-type",
            'unknown task type "SIMPEL": Conductor treats it as USER_DEFINED, which translator '
            'does not support; did you mean "SIMPLE"?',
        ),
    ),
    (
        "tasks is not a list",
        {"name": "wf", "tasks": {"a": 1}},
        ("/tasks", "type", 'tasks: expected a JSON array, got {"a": 1}'),
    ),
    (
        "retryLogic not in the enum",
        {"name": "t", "retryLogic": "fixed"},
        (
            "/retryLogic",
            "type",
            "retryLogic: expected one of 'FIXED', 'EXPONENTIAL_BACKOFF' or 'LINEAR_BACKOFF', got \"fixed\"",
        ),
    ),
    (
        "NaN is not JSON",
        '{"name": "t", "retryCount": NaN}',
        ("/retryCount", "json-syntax", "NaN is not valid JSON"),
    ),
    (
        "empty file",
        "  \n",
        ("", "json-syntax", "the file is empty; expected a JSON object or array"),
    ),
    (
        "JSON syntax error",
        '{"name": "t",\n "retryCount" 1}',
        (
            "",
            "json-syntax",
            "Expecting ':' delimiter at line 2 column 15: '1}'",
        ),
    ),
    (
        "invalid JSONPath",
        _wf(_simple("a", inputParameters={"x": "${workflow.input[}"})),
        (
            "/tasks/0/inputParameters/x",
            "invalid-expression",
            None,
        ),
    ),
]


@pytest.mark.parametrize(("label", "document", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_definition(tmp_path, label, document, expected):
    errors = _issues(tmp_path, document)
    pointer, code, message = expected
    matching = [e for e in errors if e[0] == pointer and e[1] == code]
    assert matching, f"{label}: no {code} at {pointer!r} in {errors}"
    if message is not None:
        assert matching[0][2] == message


def test_all_issues_are_collected_together(tmp_path):
    doc = _wf(
        _simple("a", retryCount="x", inputParameters={"v": "${ghost.output}"}),
        _simple("a", startDelay=-1),
        {"name": "b", "taskReferenceName": "b", "type": "SWITCH"},
        {
            "name": "k",
            "taskReferenceName": "k",
            "type": "KAFKA_PUBLISH",
            "inputParameters": {"kafka_request": {}},
        },
        schemaVersion=3,
    )
    codes = sorted(code for _, code, _ in _issues(tmp_path, doc))
    assert codes == sorted(
        [
            "type",
            "unknown-ref",
            "duplicate-ref",
            "min",
            "required",
            "required",
            "schema-version",
            "unsupported-task-type",
        ]
    )


def test_type_errors_do_not_cascade_into_rule_errors(tmp_path):
    errors = _issues(tmp_path, {"name": 5, "tasks": "nope"})
    assert errors == [("/tasks", "type", 'tasks: expected a JSON array, got "nope"')]


def test_unknown_keys_warn_with_did_you_mean(tmp_path):
    doc = _wf(
        {"name": "a", "taskReferenceName": "a", "taskType": "SIMPLE", "timeoutSecond": 5},
        timeoutSecond=4,
    )
    warnings = _issues(tmp_path, doc, Level.WARNING)
    assert (
        "/tasks/0/taskType",
        "unknown-key",
        'unknown key "taskType" in WorkflowTask is ignored by Conductor; did you mean "type"?',
    ) in warnings
    assert (
        "/timeoutSecond",
        "unknown-key",
        'unknown key "timeoutSecond" in WorkflowDef is ignored by Conductor; did you mean "timeoutSeconds"?',
    ) in warnings
    assert _issues(tmp_path, doc) == []


def test_taskdef_unknown_key_warns(tmp_path):
    warnings = _issues(tmp_path, {"name": "t", "retryCnt": 2}, Level.WARNING)
    assert warnings == [
        (
            "/retryCnt",
            "unknown-key",
            'unknown key "retryCnt" in TaskDef is ignored by Conductor; did you mean "retryCount"?',
        )
    ]


def test_simple_task_without_taskdef_is_a_warning(tmp_path):
    doc = _wf(_simple("lonely"))
    assert _issues(tmp_path, doc) == []
    warnings = _issues(tmp_path, doc, Level.WARNING)
    assert [(p, c) for p, c, _ in warnings] == [("/tasks/0/name", "missing-taskdef")]
    assert "Conductor's defaults apply: retryCount 3" in warnings[0][2]


def test_taskdefs_are_discovered_next_to_the_workflow(tmp_path):
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "taskdefs" / "defs.json").write_text(json.dumps([{"name": "found"}]))
    doc = _wf(_simple("found", name="found"))
    assert _issues(tmp_path, doc, Level.WARNING) == []


def test_errors_in_discovered_taskdefs_name_their_own_file(tmp_path):
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "taskdefs" / "bad.json").write_text('{"name": "found", "retryCount": -2}')
    (tmp_path / "wf.json").write_text(json.dumps(_wf(_simple("found"))))
    issues = check_file(tmp_path / "wf.json")
    assert [(Path(i.file).name, i.pointer, i.code) for i in issues] == [("bad.json", "/retryCount", "min")]


def test_nested_unknown_ref_and_output_parameters_are_warnings(tmp_path):
    doc = _wf(
        {
            "name": "sw",
            "taskReferenceName": "sw",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "k",
            "inputParameters": {"k": "${workflow.input.k}"},
            "decisionCases": {"x": [_simple("a", inputParameters={"v": "${ghost.output}"})]},
        },
        outputParameters={"o": "${phantom.output.x}"},
    )
    warnings = [(p, c) for p, c, _ in _issues(tmp_path, doc, Level.WARNING)]
    assert ("/tasks/0/decisionCases/x/0/inputParameters/v", "unknown-ref") in warnings
    assert ("/outputParameters/o", "unknown-ref") in warnings


def test_project_image_workflow_is_valid():
    issues = check_file(ROOT / "definitions" / "image_convert_resize.json")
    assert issues == []


BLOG = FIXTURES / "blog"
BLOG_CURL = FIXTURES / "blog_curl"


def test_blog_workflow_verbatim_gives_precise_issues():
    issues = check_file(BLOG / "workflow.json")
    rendered = [(Path(i.file).name, i.pointer, i.level.value, i.code) for i in issues]
    # The blog's own task definitions break Conductor's timeout rule (60 > 30).
    assert rendered == [
        ("image_convert_resize.json", "/responseTimeoutSeconds", "error", "timeout-order"),
    ]


def test_blog_curl_variant_names_the_missing_task_definition():
    issues = check_file(BLOG_CURL / "workflow_curl_body.json", [BLOG_CURL / "taskdefs_curl_body.json"])
    rendered = [(Path(i.file).name, i.pointer, i.level.value, i.code) for i in issues]
    assert ("workflow_curl_body.json", "/tasks/1/name", "warning", "missing-taskdef") in rendered
    assert ("taskdefs_curl_body.json", "/0/responseTimeoutSeconds", "error", "timeout-order") in (rendered)


def test_missing_failure_workflow_is_an_error_with_its_pointer(tmp_path):
    task = {"name": "t", "taskReferenceName": "t", "type": "SIMPLE"}
    (tmp_path / "wf.json").write_text(
        json.dumps({"name": "wf", "tasks": [task], "failureWorkflow": "cleanup"})
    )
    [issue] = [i for i in check_file(tmp_path / "wf.json") if i.code == "failure-workflow-not-found"]
    assert issue.level is Level.ERROR and issue.pointer == "/failureWorkflow"  # as translator run says
    assert issue.file == str(tmp_path / "wf.json") and "'cleanup'" in issue.message
    (tmp_path / "cleanup.json").write_text(json.dumps({"name": "cleanup", "tasks": [task]}))
    assert not [i for i in check_file(tmp_path / "wf.json") if i.code == "failure-workflow-not-found"]


# ---------------------------------------------------------------------------------------------
# Limits, non-finite numbers, "did you mean", a workflow input given as a definition


def _nested(depth: int, leaf="x", key="a"):
    """``{"a": {"a": ... leaf}}`` with ``depth`` objects, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {key: value}
    return value


def _deep_text(depth: int) -> str:
    """JSON text of a workflow whose inputParameters nest ``depth`` objects (json.dumps cannot)."""
    inner = '{"a": ' * depth + '"x"' + "}" * depth
    return (
        '{"name": "wf", "tasks": [{"name": "a", "taskReferenceName": "a", "inputParameters": ' + inner + "}]}"
    )


@pytest.mark.parametrize("depth", [200, 900, 100_000])
def test_deep_nesting_is_one_limit_error_at_its_pointer(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text(_deep_text(depth))
    [issue] = check_file(path)
    # Depths: the document 1, tasks 2, the task 3, inputParameters 4, then one per "a".
    expected = "/tasks/0/inputParameters" + "/a" * (MAX_DEPTH + 1 - 4)
    assert (issue.pointer, issue.code, issue.level) == (expected, "limit", Level.ERROR)
    assert issue.message == "nested deeper than 128 arrays/objects, the most translator accepts"


def test_nesting_at_the_limit_is_accepted(tmp_path):
    doc = _wf(_simple("a", inputParameters=_nested(MAX_DEPTH - 3, "${workflow.input.x}")))
    assert _issues(tmp_path, doc) == []


@pytest.mark.parametrize(
    ("text", "pointer", "message"),
    [
        ('{"name": "t", "retryCount": Infinity}', "/retryCount", "Infinity is not valid JSON"),
        ('[{"name": "t", "timeoutSeconds": -Infinity}]', "/0/timeoutSeconds", "-Infinity is not valid JSON"),
        (
            '{"name": "t", "retryDelaySeconds": 1e999}',
            "/retryDelaySeconds",
            "1e999 is out of the range of a double (it would be Infinity)",
        ),
        ('{"name": "t", "x": [1, NaN], "x": 2}', "/x/1", "NaN is not valid JSON"),
        ('{"name": "t", "retryCount": ' + "9" * 1001 + "}", "/retryCount", None),
    ],
)
def test_numbers_json_cannot_hold_are_refused_at_their_pointer(tmp_path, text, pointer, message):
    errors = _issues(tmp_path, text)
    assert [p for p, _, _ in errors] == [pointer]
    if message is not None:
        assert errors[0][1:] == ("json-syntax", message)
    else:
        assert errors[0][1:] == ("limit", "a number of 1001 characters (at most 1000)")


def test_jsonpath_beyond_the_limits_is_reported_at_the_parameter(tmp_path):
    too_many_segments = "${workflow.input" + ".a" * 400 + "}"
    too_long = "${workflow.input['" + "k" * 1100 + "']}"
    doc = _wf(_simple("a", inputParameters={"x": too_many_segments, "y": too_long}))
    errors = _issues(tmp_path, doc)
    assert [(p, c) for p, c, _ in errors] == [
        ("/tasks/0/inputParameters/x", "limit"),
        ("/tasks/0/inputParameters/y", "limit"),
    ]
    assert "is nested deeper than 64 segments" in errors[0][2]
    assert "is longer than 1024 characters" in errors[1][2]
    assert all(len(message) < 300 for _, _, message in errors)


def test_expressions_nested_beyond_the_limit_are_reported(tmp_path):
    nested = "${" * 20 + "workflow.input.x" + "}" * 20
    doc = _wf(_simple("a", inputParameters={"x": nested, "ok": "${workflow.input.${workflow.input.k}}"}))
    assert _issues(tmp_path, doc) == [
        (
            "/tasks/0/inputParameters/x",
            "limit",
            "${...} expressions nested more than 16 deep, the most translator resolves",
        )
    ]


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "big.json"
    with path.open("w") as handle:
        handle.write('{"name": "t", "description": "')
        handle.write("x" * (MAX_DOCUMENT_BYTES + 1))
        handle.write('"}')
    assert [(i.pointer, i.code) for i in check_file(path)] == [("", "limit")]


def test_missing_taskdef_suggests_the_closest_defined_name(tmp_path):
    (tmp_path / "taskdefs").mkdir()
    (tmp_path / "taskdefs" / "defs.json").write_text(
        json.dumps([{"name": "image_convert_resize"}, {"name": "upload_toS3"}])
    )
    doc = _wf(_simple("a", name="image_convert_resiz"), _simple("b", name="something_else"))
    warnings = _issues(tmp_path, doc, Level.WARNING)
    assert [(p, c) for p, c, _ in warnings] == [
        ("/tasks/0/name", "missing-taskdef"),
        ("/tasks/1/name", "missing-taskdef"),
    ]
    assert '; did you mean "image_convert_resize"?)' in warnings[0][2]
    assert "did you mean" not in warnings[1][2]


@pytest.mark.parametrize(
    "document",
    [
        {"fileLocation": "examples/sample.png", "recipeParameters": {"outputFormat": "gif"}},
        {},
    ],
)
def test_a_workflow_input_is_not_taken_for_task_definitions(tmp_path, document):
    assert _issues(tmp_path, document) == [
        (
            "",
            "not-a-definition",
            'this looks like a workflow input (an object without "name" and "tasks"), not a '
            "definition; pass it to translator run with --input",
        )
    ]
    assert _issues(tmp_path, document, Level.WARNING) == []


def test_a_taskdef_without_name_is_still_a_taskdef(tmp_path):
    errors = _issues(tmp_path, {"retryCount": 2, "retryLogic": "FIXED"})
    assert errors == [("/name", "required", "TaskDef name cannot be null or empty")]


def test_issues_render_on_one_line_whatever_the_keys(tmp_path):
    doc = _wf(_simple("a", **{"bad\nkey\u2028": 1, "x" * 5000: 2}))
    path = tmp_path / "def.json"
    path.write_text(json.dumps(doc))
    rendered = [issue.render() for issue in check_file(path) if issue.code == "unknown-key"]
    assert len(rendered) == 2
    assert all("\n" not in line and "\u2028" not in line and len(line) < 2000 for line in rendered)
    assert '"bad\\nkey\\u2028"' in rendered[0]


@pytest.mark.parametrize(
    ("task", "pointer"),
    [
        (
            {"type": "SWITCH", "evaluatorType": "javascript", "expression": "$.a >"},
            "/tasks/0/expression",
        ),
        ({"type": "DECISION", "caseExpression": "if ($.a"}, "/tasks/0/caseExpression"),
    ],
)
def test_a_javascript_expression_that_does_not_parse_is_refused(tmp_path, task, pointer):
    case = {"x": [{"name": "t", "taskReferenceName": "t"}]}
    doc = _wf({"name": "s", "taskReferenceName": "s", "decisionCases": case, **task})
    [found] = [i for i in _issues(tmp_path, doc) if i[1] == "script-syntax"]
    assert found[0] == pointer and found[2].startswith("SyntaxError: ")


def test_a_graaljs_expression_is_checked_when_it_runs(tmp_path):
    case = {"x": [{"name": "t", "taskReferenceName": "t"}]}
    task = {"name": "s", "taskReferenceName": "s", "type": "SWITCH", "evaluatorType": "graaljs"}
    doc = _wf({**task, "expression": "$.a >", "decisionCases": case})
    assert not [i for i in _issues(tmp_path, doc) if i[1] == "script-syntax"]
