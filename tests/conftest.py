"""Shared test helpers: paths to the project's definitions and to the reference corpus, a private Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = Path(os.environ.get("TRANSLATOR_REFERENCE_DIR", ROOT.parent / "shared"))
CORPUS = REFERENCE / "corpus" / "conductor"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A private redis-server for the test module (on a free port, in a temp dir)."""
    from tests.services import redis_server, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server not installed")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"reference corpus not found at {CORPUS} (set TRANSLATOR_REFERENCE_DIR)")
    return CORPUS
