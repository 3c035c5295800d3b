"""WAIT: when a WAIT task completes, from its ``duration`` or ``until`` input (Conductor's
``WaitTaskMapper.setCallbackAfter``, ``DateTimeUtils``, ``Wait.execute``).

* ``duration`` (``DateTimeUtils.parseDuration``): whole numbers of days, hours, minutes and seconds, each
  optional but in that order, units ``d``/``day``/``days``, ``h``/``hr``/``hrs``/``hour``/``hours``,
  ``m``/``min``/``mins``/``minute``/``minutes``, ``s``/``sec``/``secs``/``second``/``seconds``, any
  case, spaces optional: ``"30s"``, ``"1 hours 30 minutes"``, ``"2d 3h 10m 5s"``; ``""`` is 0.
* ``until`` (``DateTimeUtils.parseDate``, commons-lang ``DateUtils.parseDate``, lenient): the first of
  ``yyyy-MM-dd HH:mm``, ``yyyy-MM-dd HH:mm z``, ``yyyy-MM-dd`` that takes the whole text. Fields are
  runs of digits (``2024-1-5 9:05`` too), each may follow whitespace, and out-of-range fields roll over
  (``2024-02-30`` is March 1st, ``24:00`` the next day's midnight). The zone ``z`` is ``+hhmm``/``-hhmm``,
  ``GMT+h:mm``, or a name from :data:`ZONE_OFFSETS`, any case, at the fixed offset the name denotes
  (``EDT`` is always -4 h).
* the task completes when the time has passed (``Wait.execute``: now > the instant); with neither input it
  waits for an outside completion; with both it fails (FAILED_WITH_TERMINAL_ERROR), as with an
  ``until`` that does not parse. A blank input counts as absent.

Deliberate differences:

* without a zone, ``until`` is UTC (Conductor: the server JVM's default zone, UTC in its images);
* zone names: Conductor accepts every name Java's English zone data knows (``Pacific Standard Time``,
  ``IST``...); translator only those of :data:`ZONE_OFFSETS`, common North American, European and
  Japanese names (``CST`` is US Central, as Java's English data resolves it in practice);
* dates use the proleptic Gregorian calendar from year 1 to 9999 (Java switches to the Julian calendar
  before 1582-10-15 and accepts year 0);
* a ``duration`` that does not parse fails the task with Conductor's message (Conductor's mapper throws,
  and the workflow's decisions keep failing); days beyond 2**31 / 86400 do not wrap around as Java's int
  arithmetic does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from translator.errors import TranslatorError
from translator.text import shorten

__all__ = [
    "BOTH_MESSAGE",
    "DURATION_FORMS",
    "DURATION_INPUT",
    "UNTIL_FORMATS",
    "UNTIL_INPUT",
    "ZONE_OFFSETS",
    "WaitError",
    "parse_duration",
    "parse_until",
    "wait_until",
]

DURATION_INPUT = "duration"
UNTIL_INPUT = "until"
UNTIL_FORMATS = ("yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm z", "yyyy-MM-dd")
BOTH_MESSAGE = "Both 'duration' and 'until' specified. Please provide only one input"
DURATION_FORMS = (
    "days, hours, minutes and seconds in that order, such as '30s', '1 hours 30 minutes' or '2d 3h 10m 5s'"
)
_INT_MAX = 2**31 - 1  # Java's Integer.parseInt refuses larger fields

_DURATION = re.compile(
    r"\s*(?:(\d+)\s*(?:days?|d))?"
    r"\s*(?:(\d+)\s*(?:hours?|hrs?|h))?"
    r"\s*(?:(\d+)\s*(?:minutes?|mins?|m))?"
    r"\s*(?:(\d+)\s*(?:seconds?|secs?|s))?"
    r"\s*",
    re.IGNORECASE | re.ASCII,  # Java's \d, \s and CASE_INSENSITIVE are ASCII-only
)

# FastDateParser: a number field skips Character.isWhitespace characters, then takes digits (any
# script's, like Character.isDigit); literals match exactly.
_SPACE = "[\t\n\x0b\f\r\x1c-\x1f \u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]*"
_NUMBER = _SPACE + r"(\d+)"
_DATE = re.compile(f"{_NUMBER}-{_NUMBER}-{_NUMBER}")
_DATE_TIME = re.compile(f"{_NUMBER}-{_NUMBER}-{_NUMBER} {_NUMBER}:{_NUMBER}")
_DATE_TIME_ZONE = re.compile(f"{_NUMBER}-{_NUMBER}-{_NUMBER} {_NUMBER}:{_NUMBER} (.+)", re.DOTALL)
_RFC822 = re.compile(r"([+-])([0-9]{2})([0-9]{2})")
_GMT_OFFSET = re.compile(r"GMT([+-])([0-9]{1,2}):([0-9]{2})", re.IGNORECASE)

# Zone names and their offsets in minutes, as Java (English) resolves them: a standard name at the
# zone's raw offset, a daylight name one hour later.
ZONE_OFFSETS: dict[str, int] = {
    "UTC": 0,
    "GMT": 0,
    "Coordinated Universal Time": 0,
    "Greenwich Mean Time": 0,
    "EST": -5 * 60,
    "EDT": -4 * 60,
    "Eastern Standard Time": -5 * 60,
    "Eastern Daylight Time": -4 * 60,
    "CST": -6 * 60,
    "CDT": -5 * 60,
    "Central Standard Time": -6 * 60,
    "Central Daylight Time": -5 * 60,
    "MST": -7 * 60,
    "MDT": -6 * 60,
    "Mountain Standard Time": -7 * 60,
    "Mountain Daylight Time": -6 * 60,
    "PST": -8 * 60,
    "PDT": -7 * 60,
    "Pacific Standard Time": -8 * 60,
    "Pacific Daylight Time": -7 * 60,
    "AKST": -9 * 60,
    "AKDT": -8 * 60,
    "HST": -10 * 60,
    "WET": 0,
    "WEST": 60,
    "CET": 60,
    "CEST": 2 * 60,
    "Central European Standard Time": 60,
    "Central European Summer Time": 2 * 60,
    "EET": 2 * 60,
    "EEST": 3 * 60,
    "JST": 9 * 60,
    "Japan Standard Time": 9 * 60,
}
_ZONES = {name.casefold(): minutes for name, minutes in ZONE_OFFSETS.items()}
_EPOCH = datetime(1970, 1, 1)


class WaitError(TranslatorError):
    """A WAIT task's ``duration`` or ``until`` cannot be used: the task fails with this message."""


def parse_duration(text: str) -> int:
    """Seconds of a WAIT ``duration`` (``"1 hours 30 minutes"`` -> 5400). Raises :class:`WaitError`."""
    found = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise _bad_duration(text)
    fields = [0 if group is None else _java_int(group) for group in found.groups()]
    if None in fields:
        raise _bad_duration(text)
    days, hours, minutes, seconds = fields
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_until(text: str) -> int:
    """Epoch milliseconds of a WAIT ``until`` (``"2024-05-01 14:30 CEST"``); UTC without a zone.
    Raises :class:`WaitError`."""
    if isinstance(text, str):
        for pattern in (_DATE_TIME, _DATE_TIME_ZONE, _DATE):
            found = pattern.fullmatch(text)
            if found is None:
                continue
            instant = _instant(found.groups())
            if instant is not None:
                return instant
    raise WaitError(
        f"Invalid/Unsupported Wait Until format.  Provided: {shorten(text)}; "
        f"expected {' or '.join(repr(form) for form in UNTIL_FORMATS)} (z: a zone such as UTC, "
        "+0200 or GMT-5:00)"
    )


def wait_until(input_data: Mapping[str, Any], now_ms: int) -> int | None:
    """When a WAIT task with resolved input ``input_data``, started at ``now_ms``, completes (epoch
    ms; it completes once the clock is past it), or None when it waits for an outside completion.
    Raises :class:`WaitError` when both inputs are given or the given one does not parse."""
    duration = input_data.get(DURATION_INPUT)
    until = input_data.get(UNTIL_INPUT)
    if _given(duration) and _given(until):
        raise WaitError(BOTH_MESSAGE)
    if _given(duration):
        return now_ms + parse_duration(duration) * 1000
    if _given(until):
        return parse_until(until)
    return None


def _given(value: Any) -> bool:
    """``StringUtils.isNotBlank`` of the value's Java ``toString``: None and blank strings are absent."""
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


def _bad_duration(text: Any) -> WaitError:
    return WaitError(f"Not valid duration: {shorten(text)}; expected {DURATION_FORMS}")


def _instant(groups: tuple[str, ...]) -> int | None:
    """Epoch ms of the matched fields (year, month, day[, hour, minute[, zone]]), or None when
    Conductor would not take them (a field beyond an int, an unknown zone, a date out of range)."""
    numbers = [_java_int(group) for group in groups[:5]]
    if None in numbers:
        return None
    offset = 0 if len(groups) < 6 else _zone_offset(groups[5])
    if offset is None:
        return None
    year, month, day, hour, minute = (*numbers, 0, 0)[:5]
    try:  # a lenient calendar: months roll into years, the rest into the days after the month's first
        first = datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
        utc = first + timedelta(days=day - 1, hours=hour, minutes=minute - offset)
    except (ValueError, OverflowError):
        return None
    return (utc - _EPOCH) // timedelta(milliseconds=1)


def _java_int(digits: str) -> int | None:
    """``Integer.parseInt`` of a run of digits: None beyond an int (also keeps int() within its limit
    on digits)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(_INT_MAX)):
        return None
    number = int(significant)
    return number if number <= _INT_MAX else None


def _zone_offset(zone: str) -> int | None:
    """Minutes east of UTC of a ``z`` field (FastDateParser's TimeZoneStrategy), or None."""
    found = _RFC822.fullmatch(zone) or _GMT_OFFSET.fullmatch(zone)
    if found is not None:
        sign, hours, minutes = found.groups()
        if int(hours) >= 24 or int(minutes) >= 60:  # GmtTimeZone refuses them
            return None
        total = int(hours) * 60 + int(minutes)
        return -total if sign == "-" else total
    return _ZONES.get(zone.casefold())
