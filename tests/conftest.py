"""Shared test helpers: paths to the project's definitions and to the reference corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = Path(os.environ.get("TRANSLATOR_REFERENCE_DIR", ROOT.parent / "shared"))
CORPUS = REFERENCE / "corpus" / "conductor"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"reference corpus not found at {CORPUS} (set TRANSLATOR_REFERENCE_DIR)")
    return CORPUS
