"""Property-based: no document, however nested, long or malformed, makes a reader, the loader, the
validator or the resolver fail with anything but an Issue or a TranslatorError of one line."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from translator.cli import _read_input
from translator.definitions.expressions import resolve
from translator.definitions.issues import Issue, Level
from translator.definitions.jsonsource import MAX_DEPTH, parse_text, read_file
from translator.definitions.loader import load_workflow
from translator.definitions.validate import check_file, load_valid_workflow
from translator.errors import DefinitionError, TranslatorError

KEYS = st.sampled_from(
    [
        "name",
        "taskReferenceName",
        "type",
        "tasks",
        "inputParameters",
        "decisionCases",
        "defaultCase",
        "forkTasks",
        "loopOver",
        "retryCount",
        "timeoutSeconds",
        "schemaVersion",
        "subWorkflowParam",
        "workflowDefinition",
        "taskDefinition",
        "joinOn",
        "expression",
        "evaluatorType",
        "responseTimeoutSeconds",
        "outputParameters",
        "x",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(alphabet="${}.[]*?@ab0-_", max_size=12)
    | st.sampled_from(["SIMPLE", "SWITCH", "FORK_JOIN", "JOIN", "DO_WHILE", "SUB_WORKFLOW"])
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line_issues(issues: list[Issue]) -> None:
    assert all(isinstance(issue, Issue) for issue in issues)
    assert all("\n" not in issue.render() and "\r" not in issue.render() for issue in issues)


def _one_line_error(exc: TranslatorError) -> None:
    if isinstance(exc, DefinitionError):
        assert "\n" not in exc.message
        _one_line_issues(exc.issues)
    else:
        assert "\n" not in str(exc)


# --- Ordinary documents -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON)
def test_loader_and_validator_never_raise(tmp_path, document):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    issues = check_file(path)
    assert all(isinstance(i, Issue) and i.file == str(path) for i in issues)
    _one_line_issues(issues)


JSON_TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"a"',
        '"b"',
        "1",
        "-0.5",
        "1e999",
        "NaN",
        "-Infinity",
        "null",
        "true",
        " ",
    ]
)
JSON_LIKE_TEXT = st.text(max_size=60) | st.lists(JSON_TOKENS, max_size=30).map("".join) | JSON.map(json.dumps)


def _finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        stack.extend(item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
    return True


@settings(max_examples=300, deadline=None)
@given(text=JSON_LIKE_TEXT)
def test_parse_text_agrees_with_json_except_where_it_is_stricter(text):
    value, issues = parse_text(text)
    _one_line_issues(issues)
    errors = [i for i in issues if i.level is Level.ERROR]
    try:
        expected = json.loads(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError):
        assert errors and value is None  # what json refuses, parse_text refuses too
        return
    if errors:
        assert value is None
        # Stricter only for numbers Jackson's doubles cannot hold (and limits, not reached here).
        assert not _finite(expected) or {i.code for i in errors} <= {"json-syntax", "limit"}
        assert not _finite(expected)
    else:
        assert value == expected and _finite(value)


def _same_shape(template: Any, resolved: Any) -> None:
    """Resolution keeps the template's structure; text without ``${`` is kept as it is."""
    stack = [(template, resolved)]
    while stack:
        left, right = stack.pop()
        if isinstance(left, dict):
            assert isinstance(right, dict) and list(right) == list(left)
            stack.extend((left[key], right[key]) for key in left)
        elif isinstance(left, list):
            assert isinstance(right, list) and len(right) == len(left)
            stack.extend(zip(left, right, strict=True))
        elif isinstance(left, str):
            if "${" not in left:
                assert right == left
        else:
            assert right == left and type(right) is type(left)


@settings(max_examples=300, deadline=None)
@given(template=JSON, document=JSON)
def test_resolve_keeps_the_template_shape_and_never_mutates_it(template, document):
    snapshot = copy.deepcopy(template)
    try:
        resolved = resolve(template, document)
    except TranslatorError as exc:
        _one_line_error(exc)
        return
    assert template == snapshot
    _same_shape(template, resolved)
    json.dumps(resolved)  # still a JSON value


# --- Nested and oversized documents ---------------------------------------------------------------

LEAVES = (
    SCALARS
    | st.text(min_size=1000, max_size=20_000).map(lambda s: "${workflow.input." + s + "}")
    | st.integers(0, 700).map(lambda n: "${workflow.input" + ".a" * n + "}")
    | st.integers(0, 30).map(lambda n: "${" * n + "workflow.input.x" + "}" * n)
    | st.integers(0, 3000).map(lambda n: {f"k{i}": i for i in range(n)})
)
KINDS = st.lists(st.sampled_from(["list", "dict", "switch", "fork", "loop"]), min_size=1, max_size=4)
DEPTHS = st.integers(0, 12) | st.integers(MAX_DEPTH - 8, MAX_DEPTH + 80)  # both sides of the limit
WRAPPERS = st.tuples(KINDS, DEPTHS).map(lambda drawn: (drawn[0] * drawn[1])[: drawn[1]])


def _wrap(leaf: Any, wrappers: list[str]) -> Any:
    """Nest ``leaf`` in containers, or in tasks nested in tasks (3 levels each), without recursion."""
    value = leaf
    for index, kind in enumerate(wrappers):
        task = {"name": f"t{index}", "taskReferenceName": f"t{index}"}
        if kind == "list":
            value = [value]
        elif kind == "dict":
            value = {"a": value}
        elif kind == "switch":
            value = {**task, "type": "SWITCH", "evaluatorType": "value-param", "expression": "x",
                     "decisionCases": {"c": [_as_task(value)]}}  # fmt: skip
        elif kind == "fork":
            value = {**task, "type": "FORK_JOIN", "forkTasks": [[_as_task(value)]]}
        else:
            value = {**task, "type": "DO_WHILE", "loopCondition": "false", "loopOver": [_as_task(value)]}
    return value


def _as_task(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and "taskReferenceName" in value:
        return value
    return {"name": "leaf", "taskReferenceName": f"leaf{id(value)}", "inputParameters": {"v": value}}


@st.composite
def oversized(draw) -> Any:
    nested = _wrap(draw(LEAVES), draw(WRAPPERS))
    placement = draw(st.sampled_from(["bare", "parameters", "task", "input"]))
    if placement == "bare":
        return nested
    if placement == "input":
        return {"fileLocation": "x.png", "recipeParameters": nested}
    task = _as_task(nested) if placement == "task" else {"name": "a", "taskReferenceName": "a",
                                                        "inputParameters": {"x": nested}}  # fmt: skip
    return {"name": "wf", "tasks": [task], "outputParameters": {"o": nested}}


@FUZZ
@given(document=oversized())
def test_nested_and_oversized_documents_give_values_or_one_line_issues(tmp_path, document):
    text = json.dumps(document)
    path = tmp_path / "doc.json"
    path.write_text(text)

    parsed, issues = parse_text(text)
    _one_line_issues(issues)
    assert (parsed, issues) == read_file(path)
    if any(i.level is Level.ERROR for i in issues):
        assert parsed is None
    else:
        assert parsed == json.loads(text)

    _one_line_issues(check_file(path))
    bundle = load_workflow(path)
    _one_line_issues(bundle.issues)
    try:
        load_valid_workflow(path)
    except DefinitionError as exc:
        _one_line_error(exc)

    try:
        workflow_input = _read_input(str(path))
        assert isinstance(workflow_input, dict) and parsed == workflow_input
    except TranslatorError as exc:
        _one_line_error(exc)

    try:
        resolve(document, {"workflow": {"input": document}, "t0": {"output": document}})
    except TranslatorError as exc:
        _one_line_error(exc)
