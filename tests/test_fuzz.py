"""Property-based: arbitrary JSON never makes the loader or validator raise."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from translator.expressions import resolve
from translator.issues import Issue
from translator.jsonsource import parse_text
from translator.validate import check_file

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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON)
def test_loader_and_validator_never_raise(tmp_path, document):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    issues = check_file(path)
    assert all(isinstance(i, Issue) and i.file == str(path) for i in issues)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_parse_text_never_raises(tmp_path, text):
    value, issues = parse_text(text)
    if value is None and not issues:  # only the JSON literal null parses to None
        assert json.loads(text.lstrip("\ufeff")) is None


@settings(max_examples=300, deadline=None)
@given(template=JSON, document=JSON)
def test_resolve_never_raises_on_ordinary_templates(template, document):
    resolve(template, document)
