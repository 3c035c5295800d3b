"""Every file of the reference corpus loads; the valid ones validate apart from "unsupported"."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import CORPUS
from translator.issues import Level
from translator.validate import check_file

# Errors that only say translator cannot run a task type yet (later work adds them).
ALLOWED_ERROR_CODES = {"unsupported-task-type"}


def _manifest():
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [row for row in rows if (CORPUS / row["local_filename"]).is_file()]


ROWS = _manifest()


def test_manifest_is_present(corpus_dir):
    assert len(ROWS) >= 50


@pytest.mark.parametrize("row", ROWS, ids=[r["local_filename"] for r in ROWS])
def test_corpus_file(row):
    path = CORPUS / row["local_filename"]
    issues = check_file(path)
    errors = [i for i in issues if i.level is Level.ERROR]
    if row["json"] == "valid":
        unexpected = [i.render() for i in errors if i.code not in ALLOWED_ERROR_CODES]
        assert unexpected == []
    else:
        assert [i.code for i in errors][:1] in (["json-syntax"], ["json-trailing-data"])


SUPPORTED_TODAY = [
    "oss__th__simple_workflow_1_integration_test.json",
    "oss__th__simple_workflow_3_integration_test.json",
    "oss__th__simple_workflow_1_input_template_integration_test.json",
    "oss__th__simple_workflow_with_optional_task_integration_test.json",
    "oss__th__rate_limited_simple_task_workflow_integration_test.json",
    "oss__kitchensink__sub_flow_1.json",
]


@pytest.mark.parametrize("name", SUPPORTED_TODAY)
def test_simple_only_corpus_workflows_have_no_errors(corpus_dir, name):
    errors = [i for i in check_file(corpus_dir / name) if i.level is Level.ERROR]
    assert errors == []
