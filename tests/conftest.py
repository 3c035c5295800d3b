"""Shared test helpers: paths to the project's definitions and to the reference corpus, a private Redis.

The reference corpus of real Conductor definitions is ``$TRANSLATOR_CORPUS`` (else
``$TRANSLATOR_REFERENCE_DIR/corpus``, else ``<repo>/../shared/corpus``). When it is missing, its
tests fail where it is expected — ``CI`` set (CI runs a fresh clone with ``shared/`` beside it) or
``TRANSLATOR_REQUIRE_CORPUS=1`` — and are skipped elsewhere, with the reason in the summary.
``TRANSLATOR_REQUIRE_CORPUS=0`` lets a CI job run without it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FALSE_WORDS = {"", "0", "false", "no", "off"}


def _corpus_root() -> Path:
    if os.environ.get("TRANSLATOR_CORPUS"):
        return Path(os.environ["TRANSLATOR_CORPUS"])
    if os.environ.get("TRANSLATOR_REFERENCE_DIR"):
        return Path(os.environ["TRANSLATOR_REFERENCE_DIR"]) / "corpus"
    return ROOT.parent / "shared" / "corpus"


CORPUS_ROOT = _corpus_root()
CORPUS = CORPUS_ROOT / "conductor"
MANIFEST = CORPUS / "MANIFEST.tsv"


def corpus_required() -> str | None:
    """Why the corpus must be present here, or None when its tests may be skipped."""
    explicit = os.environ.get("TRANSLATOR_REQUIRE_CORPUS")
    if explicit is not None:
        return "TRANSLATOR_REQUIRE_CORPUS is set" if explicit.strip().lower() not in FALSE_WORDS else None
    if os.environ.get("CI", "").strip().lower() not in FALSE_WORDS:
        return "CI is set (CI provides ../shared/corpus)"
    return None


def corpus_missing() -> str | None:
    """Why the corpus cannot be read, or None when it is there."""
    if not MANIFEST.is_file():
        return f"reference corpus not found: no {MANIFEST} (set TRANSLATOR_CORPUS to the corpus directory)"
    return None


def require_corpus() -> Path:
    """The corpus directory; fails the calling test when the corpus is missing and required, skips
    it otherwise."""
    missing = corpus_missing()
    if missing is None:
        return CORPUS
    required = corpus_required()
    if required:
        pytest.fail(f"{missing}; it is required because {required}", pytrace=False)
    pytest.skip(missing)


def corpus_params(values: Iterable[Any], ids: Any = None) -> dict[str, Any]:
    """``pytest.mark.parametrize`` arguments over corpus items: when the corpus is missing, one
    ``corpus-missing`` case (whose test calls :func:`require_corpus`) instead of an empty list,
    which pytest would skip without saying why."""
    values = list(values)
    if values or corpus_missing() is None:
        return {"argvalues": values, "ids": ids}
    return {"argvalues": [None], "ids": ["corpus-missing"]}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say, even without ``-rs``, that corpus tests were skipped and why."""
    missing = corpus_missing()
    if missing is None:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if missing in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} corpus tests skipped: {missing} "
            "(CI=true or TRANSLATOR_REQUIRE_CORPUS=1 makes this a failure)",
            yellow=True,
        )


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
    return require_corpus()
