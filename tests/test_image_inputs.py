"""Task inputs of the image workers: pixel sizes (non-finite and out-of-range values are terminal
errors with one-line reasons), and bounded renderings of user-supplied values in reasons."""

from __future__ import annotations

import json
import math

import pytest

from tasks.formats import output_format
from tasks.image import dimension, flag
from tests.services import ROOT, embedded_env, translator_cli
from translator.errors import NonRetryableError
from translator.text import REASON_LIMIT, short_traceback, shorten

LIMIT = 8000
ACCEPTED = "outputWidth must be a whole number of pixels between 1 and 8000, got "


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (300, 300),
        ("300", 300),
        (" 450 ", 450),
        (300.0, 300),
        ("300.0", 300),
        (1, 1),
        (8000, 8000),
        ("8e3", 8000),
    ],
)
def test_accepted_sizes(value, expected):
    assert dimension("outputWidth", value, LIMIT) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("inf", "'inf'"),
        ("-inf", "'-inf'"),
        ("Infinity", "'Infinity'"),
        ("1e999", "'1e999'"),
        ("nan", "'nan'"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (math.nan, "nan"),
        ("-0", "'-0'"),
        (-0.0, "-0.0"),
        (0, "0"),
        (1e30, "1e+30"),
        (10**5000, "<int object>"),  # too many digits even to print
        (8001, "8001"),
        (299.5, "299.5"),
        (True, "True"),
        (False, "False"),
        ([300], "[300]"),
        ({"px": 300}, "{'px': 300}"),
    ],
    ids=lambda value: shorten(value, 12),
)
def test_refused_sizes_are_terminal_with_the_range(value, shown):
    with pytest.raises(NonRetryableError) as refused:
        dimension("outputWidth", value, LIMIT)
    assert str(refused.value) == ACCEPTED + shown


def test_unparsable_and_missing_sizes():
    with pytest.raises(
        NonRetryableError, match=r"^outputHeight must be a number of pixels between 1 and 8000"
    ):
        dimension("outputHeight", "wide", LIMIT)
    with pytest.raises(NonRetryableError, match=r"^outputHeight is required: a whole number of pixels"):
        dimension("outputHeight", None, LIMIT)


def test_megabyte_values_are_quoted_briefly():
    huge = "9" * (1024 * 1024)
    for call in (
        lambda: dimension("outputWidth", huge, LIMIT),
        lambda: dimension("outputWidth", huge + "x", LIMIT),
        lambda: flag("maintainAspectRatio", huge, True),
        lambda: output_format(huge),
    ):
        with pytest.raises(NonRetryableError) as refused:
            call()
        assert len(str(refused.value)) < 500 and "…' (104857" in str(refused.value)


# ---------------------------------------------------------------------------------------------
# shorten


@pytest.mark.parametrize(
    ("value", "limit", "quote", "expected"),
    [
        ("http://x/", 200, True, "'http://x/'"),
        ("abcdef", 3, True, "'abc…' (6 characters)"),
        ("abcdef", 3, False, "abc… (6 characters)"),
        ("line\r\nInjected: yes", 200, True, "'line\\r\\nInjected: yes'"),
        (12345, 3, True, "123… (5 characters)"),
        (None, 200, True, "None"),
        ("", 200, True, "''"),
    ],
)
def test_shorten(value, limit, quote, expected):
    assert shorten(value, limit, quote=quote) == expected


def test_shorten_a_megabyte_url():
    url = "http://" + "a" * (1024 * 1024)
    assert shorten(url) == repr(url[:200] + "…") + f" ({len(url)} characters)"


def test_shorten_survives_a_broken_repr():
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert shorten(Broken()) == "<Broken object>"


def test_a_logged_traceback_keeps_its_frames_and_cuts_the_message():
    def fetch(url: str) -> None:
        raise OSError(f"cannot fetch {url}")

    try:
        fetch("http://" + "a" * (1024 * 1024))
    except OSError as exc:
        text = short_traceback(exc)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in fetch" in text
    assert text.endswith(" characters)")
    assert len(text) < REASON_LIMIT + 1000


# ---------------------------------------------------------------------------------------------
# The recorded reason is bounded, whatever the worker raised


@pytest.mark.integration
def test_recorded_reason_of_a_megabyte_error_is_bounded():
    """A worker error that repeats a 1 MB input is cut in the stored record and the workflow's reason."""
    message = "m" * (1024 * 1024)
    result = translator_cli(
        "run",
        str(ROOT / "tests" / "fixtures" / "runtime" / "exhausted.json"),
        "--input",
        "-",
        "--full",
        env=embedded_env(),
        stdin=json.dumps({"message": message}),
        timeout=120,
    )
    execution = json.loads(result.stdout)
    assert execution["status"] == "FAILED"
    reasons = [t["reasonForIncompletion"] for t in execution["tasks"] if t["referenceTaskName"] == "a"]
    assert len(reasons) == 2  # retryCount 1
    for reason in reasons:
        assert reason.startswith("ValueError: mmm")
        assert reason.endswith(f"… ({len('ValueError: ') + len(message)} characters)")
        assert len(reason) < REASON_LIMIT + 100
    assert len(execution["reasonForIncompletion"]) < REASON_LIMIT + 500
