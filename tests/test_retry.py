"""Conductor's retry delay formula, with the figures of Conductor's own tests (reference §1.2)."""

from __future__ import annotations

import random

import pytest

from translator.engine.retry import JAVA_INT_MAX, retry_delay


def delays(logic, base, attempts, **kw):
    return [retry_delay(logic, base, n, **kw).seconds for n in range(attempts)]


def test_fixed():
    assert delays("FIXED", 60, 3) == [60, 60, 60]


def test_linear_backoff_matches_conductor():
    assert delays("LINEAR_BACKOFF", 60, 3, backoff_scale_factor=2) == [120, 240, 360]


def test_exponential_backoff_matches_conductor():
    assert delays("EXPONENTIAL_BACKOFF", 60, 3) == [60, 120, 240]


def test_cap_applies_to_exponential_and_linear_and_fixed():
    assert delays("EXPONENTIAL_BACKOFF", 60, 4, max_retry_delay_seconds=200) == [60, 120, 200, 200]
    assert delays("LINEAR_BACKOFF", 60, 4, backoff_scale_factor=2, max_retry_delay_seconds=250) == [
        120,
        240,
        250,
        250,
    ]
    assert delays("FIXED", 60, 2, max_retry_delay_seconds=10) == [10, 10]


def test_overflow_clamps_to_java_int_max():
    assert retry_delay("EXPONENTIAL_BACKOFF", 60, 40).seconds == JAVA_INT_MAX


def test_jitter_is_in_milliseconds_within_bound():
    rng = random.Random(7)
    values = [retry_delay("FIXED", 60, 0, backoff_jitter_ms=5000, rng=rng) for _ in range(200)]
    assert all(v.seconds == 60 for v in values)
    assert all(60000 <= v.milliseconds <= 65000 for v in values)
    assert len({v.milliseconds for v in values}) > 50


def test_no_jitter_means_exact_countdown():
    assert retry_delay("FIXED", 2, 0).countdown == 2.0


@pytest.mark.parametrize("logic", ["FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF"])
def test_zero_delay(logic):
    assert retry_delay(logic, 0, 3).milliseconds == 0
