"""Every file of the reference corpus loads; the valid ones validate apart from "unsupported".

Where the corpus comes from, and when its absence fails the run: tests/conftest.py."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import MANIFEST, ROOT, corpus_params, require_corpus
from translator.definitions.issues import Level
from translator.definitions.validate import check_file

# Errors that only say translator cannot run a task type yet (later work adds them).
ALLOWED_ERROR_CODES = {"unsupported-task-type"}


def _manifest() -> list[dict[str, str]]:
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = _manifest()


def test_manifest_lists_the_corpus(corpus_dir):
    assert len(ROWS) >= 50
    listed = {row["local_filename"] for row in ROWS}
    assert {p.name for p in corpus_dir.glob("*.json")} == listed  # nothing missing, nothing unlisted


@pytest.mark.parametrize("row", **corpus_params(ROWS, ids=[r["local_filename"] for r in ROWS]))
def test_corpus_file(row):
    path = require_corpus() / row["local_filename"]
    assert path.is_file(), f"{path} is listed in {MANIFEST.name} but missing"
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


def _corpus_tests(tmp_path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run this file's and test_model's corpus tests with the corpus at an empty directory and
    ``env``; returns the run and each test's outcome ("passed", or "failure"/"error"/"skipped": message)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "TRANSLATOR_REQUIRE_CORPUS")}
    clean.update(TRANSLATOR_CORPUS=str(tmp_path / "no-corpus"), **env)
    report = tmp_path / "report.xml"
    selection = ["tests/test_corpus.py", "tests/test_model.py", "-k", "corpus and not missing_corpus"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *selection],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        found = [f"{child.tag}: {child.get('message')}" for child in case if child.tag in OUTCOMES]
        outcomes[case.get("name")] = found[0] if found else "passed"
    return run, outcomes


OUTCOMES = ("failure", "error", "skipped")


def test_a_missing_corpus_fails_in_ci_and_is_skipped_visibly_elsewhere(tmp_path):
    missing = f"reference corpus not found: no {tmp_path / 'no-corpus' / 'conductor' / 'MANIFEST.tsv'}"
    expected_tests = 1 + 1 + len(SUPPORTED_TODAY) + 1 + 1  # manifest, files, supported, round trips, docs

    local, outcomes = _corpus_tests(tmp_path)
    assert local.returncode == 0, local.stdout[-3000:]
    assert len(outcomes) == expected_tests, outcomes
    assert all(o.startswith(f"skipped: {missing}") for o in outcomes.values()), outcomes
    assert f"{expected_tests} corpus tests skipped: {missing}" in local.stdout  # said in the summary

    for env in ({"CI": "true"}, {"TRANSLATOR_REQUIRE_CORPUS": "1"}):
        required, outcomes = _corpus_tests(tmp_path, **env)
        assert required.returncode == 1, required.stdout[-3000:]
        assert len(outcomes) == expected_tests, outcomes
        for outcome in outcomes.values():  # each fails (the test, or its corpus_dir fixture) saying why
            assert outcome.split(": ")[0] in ("failure", "error") and missing in outcome, outcome
            assert "it is required because" in outcome and "Traceback" not in outcome

    opted_out, outcomes = _corpus_tests(tmp_path, CI="true", TRANSLATOR_REQUIRE_CORPUS="0")
    assert opted_out.returncode == 0 and all(o.startswith("skipped") for o in outcomes.values())


def test_the_corpus_table_in_the_docs_is_up_to_date(corpus_dir):
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "corpus-table"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
