"""Global rate and concurrency limits of task definitions, shared by every worker process.

Conductor enforces ``rateLimitPerFrequency`` per ``rateLimitFrequencyInSeconds`` and
``concurrentExecLimit`` when a worker polls. Celery's own ``rate_limit`` is per worker process, so
translator keeps the counters in Redis (in-process for embedded runs) and checks them when a step is
about to run:

* rate: a sliding window of start times per task name; at most ``per`` starts in any window of
  ``seconds`` (stricter than fixed buckets: no burst at a bucket boundary);
* concurrency: a set of leases (task id -> expiry) per task name; a running step renews its lease,
  so a worker that is killed frees its slot when the lease lapses, never leaking it.

A step over a limit is deferred (run again later), never failed and never charged a retry.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import redis

LEASE_SECONDS = 30.0
MAX_WAIT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Admission:
    wait: float  # 0: admitted; else seconds to wait before asking again
    at_ms: int  # when the decision was taken (the limiter's clock): the step's start time

    @property
    def admitted(self) -> bool:
        return self.wait <= 0


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per: int = 0  # 0: no rate limit
    rate_seconds: int = 1
    concurrency: int = 0  # 0: no concurrency limit

    @property
    def active(self) -> bool:
        return self.rate_per > 0 or self.concurrency > 0


class Limiter(ABC):
    """Admission control for steps of limited task definitions."""

    @abstractmethod
    def acquire(self, name: str, task_id: str, limits: Limits) -> Admission:
        """Whether ``task_id`` may start now (its start counted, its slot taken), else how long to wait."""

    @abstractmethod
    def renew(self, name: str, task_id: str) -> None:
        """Extend the concurrency lease of a running step."""

    @abstractmethod
    def release(self, name: str, task_id: str) -> None:
        """Give the concurrency slot back."""

    def hold(self, name: str, task_id: str, limits: Limits) -> Lease:
        """A context manager that renews the lease while the step runs and releases it after."""
        return Lease(self, name, task_id, limits.concurrency > 0)


class Lease:
    def __init__(self, limiter: Limiter, name: str, task_id: str, active: bool) -> None:
        self.limiter, self.name, self.task_id, self.active = limiter, name, task_id, active
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            with contextlib.suppress(Exception):  # a missed renewal only shortens the lease
                self.limiter.renew(self.name, self.task_id)

    def __enter__(self) -> Lease:
        if self.active:
            self._thread = threading.Thread(target=self._renew, name="translator-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self._stop.set()
            self.limiter.release(self.name, self.task_id)


# Redis's own clock (TIME) is the one clock of every worker. Needs Redis >= 5 (effects replication).
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local task = ARGV[1]
local per = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local concurrency = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], task) then
    if redis.call('ZCARD', KEYS[2]) >= concurrency then
      local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
      return {math.max(1, math.min(tonumber(first[2]) - now, 1000)), now}
    end
  end
end
if per > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= per then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {math.max(1, tonumber(oldest[2]) + window - now), now}
  end
  redis.call('ZADD', KEYS[1], now, task .. ':' .. now)
  redis.call('PEXPIRE', KEYS[1], window + 1000)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[2], now + lease, task)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {0, now}
"""

_RENEW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""


class RedisLimiter(Limiter):
    """Limits kept in Redis, shared by every worker on every machine."""

    def __init__(self, client: redis.Redis, prefix: str = "translator:") -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def _keys(self, name: str) -> tuple[str, str]:
        return f"{self.prefix}limit:rate:{name}", f"{self.prefix}limit:running:{name}"

    def acquire(self, name: str, task_id: str, limits: Limits) -> Admission:
        lease_ms = int(LEASE_SECONDS * 1000)
        wait_ms, now_ms = self._acquire(
            keys=list(self._keys(name)),
            args=[
                task_id,
                limits.rate_per,
                max(1, limits.rate_seconds) * 1000,
                limits.concurrency,
                lease_ms,
                lease_ms * 4,
            ],
        )
        return Admission(min(int(wait_ms) / 1000.0, MAX_WAIT_SECONDS), int(now_ms))

    def renew(self, name: str, task_id: str) -> None:
        self._renew(keys=[self._keys(name)[1]], args=[task_id, int(LEASE_SECONDS * 1000)])

    def release(self, name: str, task_id: str) -> None:
        self.client.zrem(self._keys(name)[1], task_id)


class MemoryLimiter(Limiter):
    """The same limits inside one process (embedded mode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starts: dict[str, list[float]] = {}
        self._running: dict[str, dict[str, float]] = {}

    def acquire(self, name: str, task_id: str, limits: Limits) -> Admission:
        now = time.time()
        at_ms = int(now * 1000)
        with self._lock:
            running = self._running.setdefault(name, {})
            for held, expiry in list(running.items()):
                if expiry <= now:
                    del running[held]
            if limits.concurrency > 0 and task_id not in running and len(running) >= limits.concurrency:
                return Admission(min(max(0.001, min(running.values()) - now), 1.0), at_ms)
            if limits.rate_per > 0:
                window = max(1, limits.rate_seconds)
                starts = [t for t in self._starts.get(name, []) if t > now - window]
                if len(starts) >= limits.rate_per:
                    self._starts[name] = starts
                    return Admission(min(max(0.001, starts[0] + window - now), MAX_WAIT_SECONDS), at_ms)
                starts.append(now)
                self._starts[name] = starts
            if limits.concurrency > 0:
                running[task_id] = now + LEASE_SECONDS
            return Admission(0.0, at_ms)

    def renew(self, name: str, task_id: str) -> None:
        with self._lock:
            running = self._running.get(name, {})
            if task_id in running:
                running[task_id] = time.time() + LEASE_SECONDS

    def release(self, name: str, task_id: str) -> None:
        with self._lock:
            self._running.get(name, {}).pop(task_id, None)
