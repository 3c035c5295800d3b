"""WAIT's ``duration`` and ``until`` (translator.engine.waits): Conductor's DateTimeUtils grammar (its
DateTimeUtilsTest cases), commons-lang's lenient date parsing, WaitTaskMapper's choices, and the
corpus's WAIT tasks."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from translator.definitions.model import WorkflowDef
from translator.engine.waits import (
    BOTH_MESSAGE,
    ZONE_OFFSETS,
    WaitError,
    parse_duration,
    parse_until,
    wait_until,
)
from translator.errors import TranslatorError

NOW = 1_714_573_800_000  # 2024-05-01 14:30 UTC


def utc_ms(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # DateTimeUtilsTest.validDurations
        ("", 0),
        ("5s", 5),
        ("5secs", 5),
        ("5seconds", 5),
        ("5m", 300),
        ("5mins", 300),
        ("5minutes", 300),
        ("5h", 18000),
        ("5hrs", 18000),
        ("5hours", 18000),
        ("5d", 432000),
        ("5days", 432000),
        ("5m 5s", 305),
        ("5h 5m 5s", 18305),
        ("5d 5h 5m 5s", 450305),
        ("5S", 5),
        ("5SECS", 5),
        ("5SECONDS", 5),
        ("5M", 300),
        ("5MINS", 300),
        ("5MINUTES", 300),
        ("5H", 18000),
        ("5HRS", 18000),
        ("5HOURS", 18000),
        ("5D", 432000),
        ("5DAYS", 432000),
        ("5M 5S", 305),
        ("5H 5M 5S", 18305),
        ("5D 5H 5M 5S", 450305),
        # singular units, spaces around and between, no spaces at all
        ("1 hours 30 minutes", 5400),
        ("1 hour", 3600),
        ("1 day 1 hr 1 min 1 sec", 90061),
        ("2 days", 172800),
        ("10s", 10),
        ("1d 2h 30m 10s", 95410),
        ("1d2h30m10s", 95410),
        ("  90 s  ", 90),
        ("\t1h\n", 3600),
        ("0s", 0),
        ("007m", 420),
        ("90m", 5400),  # no carrying limits: 90 minutes
        ("2147483647s", 2147483647),  # the largest int field
        ("30000d", 30000 * 86400),  # Java's int arithmetic would wrap here; translator does not
    ],
)
def test_durations_in_conductor_grammar(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        # DateTimeUtilsTest.shouldValidateDuration
        "5",
        "s",
        "secs",
        "seconds",
        "m",
        "mins",
        "minutes",
        "h",
        "hours",
        "d",
        "days",
        "5.0s",
        "5.0secs",
        "5.0seconds",
        "5.0m",
        "5.0mins",
        "5.0minutes",
        "5.0h",
        "5.0hrs",
        "5.0hours",
        "5.0d",
        "5.0days",
        "5.0m 5s",
        "5.0h 5m 5s",
        "5.0d 5h 5m 5s",
        # out of order, unknown units, signs, repeats, beyond an int, non-ASCII digits
        "1h 1d",
        "5s 5m",
        "3 weeks",
        "5ms",
        "-5s",
        "+5s",
        "5s 5s",
        "1 h, 2 m",
        "2147483648s",
        "1" * 5000 + "s",
        "\u0665s",  # ARABIC-INDIC DIGIT FIVE: Java's \\d is ASCII
        "5\u00a0s",  # a no-break space is not \\s
    ],
)
def test_invalid_durations_fail_with_conductor_message_and_the_forms(text):
    with pytest.raises(WaitError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert message.startswith("Not valid duration: ")
    assert "'2d 3h 10m 5s'" in message and "days, hours, minutes and seconds in that order" in message
    assert len(message) < 400  # the value is quoted shortened


def test_a_duration_that_is_not_a_string_is_invalid():
    for value in (30, 1.5, None, ["5s"]):
        with pytest.raises(WaitError, match=r"^Not valid duration: "):
            parse_duration(value)


# ---------------------------------------------------------------------------------------------
# until


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01 14:30", utc_ms(2024, 5, 1, 14, 30)),  # no zone: UTC
        ("2024-05-01", utc_ms(2024, 5, 1)),
        ("2024-05-01 14:30 UTC", utc_ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30 utc", utc_ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30 GMT", utc_ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30 Coordinated Universal Time", utc_ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30 +0530", utc_ms(2024, 5, 1, 9, 0)),
        ("2024-05-01 14:30 -0800", utc_ms(2024, 5, 1, 22, 30)),
        ("2024-05-01 14:30 +0000", utc_ms(2024, 5, 1, 14, 30)),
        ("2024-05-01 14:30 GMT+2:00", utc_ms(2024, 5, 1, 12, 30)),
        ("2024-05-01 14:30 gmt-05:30", utc_ms(2024, 5, 1, 20, 0)),
        ("2024-05-01 14:30 CEST", utc_ms(2024, 5, 1, 12, 30)),
        ("2024-05-01 14:30 CET", utc_ms(2024, 5, 1, 13, 30)),  # a standard name keeps its offset in May
        ("2024-01-15 14:30 EDT", utc_ms(2024, 1, 15, 18, 30)),  # a daylight name keeps its offset in January
        ("2024-01-15 14:30 pst", utc_ms(2024, 1, 15, 22, 30)),
        ("2024-01-15 14:30 Pacific Daylight Time", utc_ms(2024, 1, 15, 21, 30)),
        ("2024-01-15 14:30 JST", utc_ms(2024, 1, 15, 5, 30)),
        # digits of any width, whitespace before a number field
        ("2024-1-5 9:5", utc_ms(2024, 1, 5, 9, 5)),
        ("  2024-05-01", utc_ms(2024, 5, 1)),
        ("2024- 05- 01  14: 30", utc_ms(2024, 5, 1, 14, 30)),
        ("02024-005-001", utc_ms(2024, 5, 1)),
        ("\u0662\u0660\u0662\u0664-\u0660\u0665-\u0660\u0661", utc_ms(2024, 5, 1)),  # Character.isDigit
        # lenient: fields out of range roll over
        ("2024-02-30", utc_ms(2024, 3, 1)),
        ("2023-02-29", utc_ms(2023, 3, 1)),
        ("2024-13-01", utc_ms(2025, 1, 1)),
        ("2024-00-00", utc_ms(2023, 11, 30)),
        ("2024-05-01 24:00", utc_ms(2024, 5, 2)),
        ("2024-05-01 10:90", utc_ms(2024, 5, 1, 11, 30)),
        ("2024-05-01 00:30 +0100", utc_ms(2024, 4, 30, 23, 30)),
        ("1970-01-01 00:00", 0),
        ("1969-12-31 23:59", -60_000),
        ("9999-12-31 23:59", utc_ms(9999, 12, 31, 23, 59)),
    ],
)
def test_until_dates_in_conductor_formats(text, expected):
    assert parse_until(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "2024-05-01T14:30",
        "2024-05-01T14:30:00Z",
        "2024-05-01 14:30:00",  # no seconds in any of the formats
        "2024-05-01 14:30 Z",  # not a zone name Java knows
        "2024-05-01 14:30 +05:30",
        "2024-05-01 14:30 +2400",  # GmtTimeZone: hours out of range
        "2024-05-01 14:30 +0160",
        "2024-05-01 14:30 GMT+1",
        "2024-05-01 14:30 UTC+1",
        "2024-05-01 14:30 Mars/Olympus",
        "2024-05-01 14:30 America/New_York",  # Java's 'z' takes names, not zone ids
        "2024-05-01 14:30  UTC",
        "2024-05-01 14:30 ",
        "2024-05-01 14",
        "2024-05",
        "01/05/2024",
        "May 1, 2024",
        "2024-05-01x",
        "0000-01-01",  # year 0 (Java: 1 BC)
        "10000-01-01",
        "2024-05-01 2147483648:00",  # beyond an int
        "1" * 5000 + "-01-01",
        "now",
    ],
)
def test_invalid_until_fails_with_conductor_message_and_the_formats(text):
    with pytest.raises(WaitError) as caught:
        parse_until(text)
    message = str(caught.value)
    assert message.startswith("Invalid/Unsupported Wait Until format.  Provided: ")
    assert "'yyyy-MM-dd HH:mm' or 'yyyy-MM-dd HH:mm z' or 'yyyy-MM-dd'" in message
    assert len(message) < 500


def test_every_listed_zone_name_parses_at_its_offset():
    for name, minutes in ZONE_OFFSETS.items():
        assert parse_until(f"2024-05-01 12:00 {name}") == utc_ms(2024, 5, 1, 12) - minutes * 60_000, name


def test_an_until_that_is_not_a_string_is_invalid():
    for value in (20240501, None, {"date": "2024-05-01"}):
        with pytest.raises(WaitError, match=r"^Invalid/Unsupported Wait Until format\.  Provided: "):
            parse_until(value)


# ---------------------------------------------------------------------------------------------
# wait_until: WaitTaskMapper.setCallbackAfter


@pytest.mark.parametrize(
    ("input_data", "expected"),
    [
        ({}, None),  # waits for an outside completion
        ({"other": "x"}, None),
        ({"duration": None, "until": None}, None),
        ({"duration": "", "until": "  "}, None),  # blank is absent
        ({"duration": "2 seconds"}, NOW + 2000),
        ({"duration": "1h 30m", "until": ""}, NOW + 5_400_000),
        ({"duration": "0s"}, NOW),
        ({"until": "2024-05-02 14:30"}, utc_ms(2024, 5, 2, 14, 30)),
        ({"until": "2020-01-01", "duration": None}, utc_ms(2020, 1, 1)),  # past: completes at once
    ],
)
def test_wait_until_picks_the_given_input(input_data, expected):
    assert wait_until(input_data, NOW) == expected


@pytest.mark.parametrize(
    ("input_data", "message"),
    [
        ({"duration": "1s", "until": "2022-12-12"}, BOTH_MESSAGE),  # WaitTaskMapperTest.testInvalidWaitConfig
        ({"duration": "nonsense", "until": "also nonsense"}, BOTH_MESSAGE),
        ({"duration": 30, "until": "2022-12-12"}, BOTH_MESSAGE),  # a non-string is not blank
        ({"duration": "5 parsecs"}, "Not valid duration: '5 parsecs'; "),
        ({"duration": 30}, "Not valid duration: 30; "),
        ({"until": "tomorrow"}, "Invalid/Unsupported Wait Until format.  Provided: 'tomorrow'; "),
        ({"until": 20240501}, "Invalid/Unsupported Wait Until format.  Provided: 20240501; "),
    ],
)
def test_wait_until_refuses_both_inputs_and_unparsable_ones(input_data, message):
    with pytest.raises(WaitError) as caught:
        wait_until(input_data, NOW)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, TranslatorError)


def test_both_message_is_conductors():
    assert BOTH_MESSAGE == "Both 'duration' and 'until' specified. Please provide only one input"


def test_long_values_are_quoted_shortened():
    with pytest.raises(WaitError) as caught:
        wait_until({"until": "x" * 100_000}, NOW)
    assert "(100000 characters)" in str(caught.value)
    assert len(str(caught.value)) < 500


def test_wait_error_survives_pickling():
    with pytest.raises(WaitError) as caught:
        parse_duration("soon")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is WaitError and str(copy) == str(caught.value)


# ---------------------------------------------------------------------------------------------
# The corpus's WAIT tasks


CORPUS_WAITS = {
    "oss__e2e__switch_rerun_issue.json": {"wait_ref": NOW + 2000},
    "oss__th__do_while_with_decision_task.json": {"WaitTask": None},
    "oss__th__set_variable_workflow_integration_test.json": {"wait0": None},
    "oss__th__simple_wait_task_workflow_integration_test.json": {"wait0": None},
}


def test_corpus_wait_tasks(corpus_dir):
    found: dict[str, dict[str, int | None]] = {}
    for path in sorted(corpus_dir.glob("*.json")):
        data: Any = json.loads(path.read_text())
        if not isinstance(data, dict) or "tasks" not in data:
            continue
        definition = WorkflowDef.model_validate(data)
        waits = {
            task.taskReferenceName: wait_until(task.inputParameters, NOW)
            for _, task in definition.walk()
            if task.type == "WAIT"
        }
        if waits:
            found[path.name] = waits
    assert found == CORPUS_WAITS
