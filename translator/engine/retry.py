"""Conductor's retry delay (DeciderService.retry), exactly: reference §1.2."""

from __future__ import annotations

import random
from dataclasses import dataclass

from translator.definitions.model import RetryLogic

JAVA_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RetryDelay:
    seconds: int  # callbackAfterSeconds: the capped delay, whole seconds
    milliseconds: int  # callbackAfterMs: seconds * 1000 plus jitter

    @property
    def countdown(self) -> float:
        return self.milliseconds / 1000.0


def retry_delay(
    logic: RetryLogic | str,
    retry_delay_seconds: int,
    attempt: int,
    *,
    backoff_scale_factor: int = 1,
    max_retry_delay_seconds: int = 0,
    backoff_jitter_ms: int = 0,
    rng: random.Random | None = None,
) -> RetryDelay:
    """Delay before the retry that follows failed attempt number ``attempt`` (0 for the first).

    FIXED: d; LINEAR_BACKOFF: d * backoffScaleFactor * (n + 1); EXPONENTIAL_BACKOFF: d * 2^n,
    clamped to Java's Integer.MAX_VALUE on overflow, then capped by maxRetryDelaySeconds (> 0),
    then up to backoffJitterMs of uniform jitter added in milliseconds.
    """
    logic = RetryLogic(logic)
    if logic is RetryLogic.LINEAR_BACKOFF:
        delay = retry_delay_seconds * backoff_scale_factor * (attempt + 1)
    elif logic is RetryLogic.EXPONENTIAL_BACKOFF:
        delay = retry_delay_seconds * 2**attempt
    else:
        delay = retry_delay_seconds
    delay = min(max(delay, 0), JAVA_INT_MAX)
    if max_retry_delay_seconds > 0:
        delay = min(delay, max_retry_delay_seconds)
    jitter = (rng or random).randint(0, backoff_jitter_ms) if backoff_jitter_ms > 0 else 0
    return RetryDelay(delay, delay * 1000 + jitter)
