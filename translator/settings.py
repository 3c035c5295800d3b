"""translator's own settings, read from the environment (documented in docs/configuration.md)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from translator.errors import UsageError
from translator.store.state import DEFAULT_TTL, safe_url

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CELERY_APP = "tasks"  # the demo app: ``celery -A tasks worker``
# Where the worker pool keeps executions, in this order (the first Redis URL set wins).
STATE_URL_VARIABLES = ("TRANSLATOR_STATE_URL", "CELERY_RESULT_BACKEND", "CELERY_BROKER_URL")


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; a clear error when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """A number of seconds from the environment; a clear error when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value < math.inf:  # also NaN and infinity
        raise UsageError(f"{name} must be a positive number, got {raw!r}")
    return value


def fetch_allow() -> frozenset[str]:
    """``TRANSLATOR_FETCH_ALLOW``: comma-separated ``host:port`` entries (lowercased) that image fetches
    and HTTP tasks may reach although they resolve to addresses that are not public (loopback, private,
    link-local...): the one allow list of translator's SSRF guard (``translator.net``)."""
    entries = os.environ.get("TRANSLATOR_FETCH_ALLOW", "").split(",")
    return frozenset(item.strip().lower() for item in entries if item.strip())


def _redis_url(url: str | None) -> str | None:
    return url if url and url.split("://", 1)[0] in ("redis", "rediss", "unix") else None


def _state_url() -> tuple[str | None, str | None]:
    """The state store's URL and the variable it comes from (None, None: nothing configured).

    The order of STATE_URL_VARIABLES: TRANSLATOR_STATE_URL, else the result backend, else the broker,
    when they are Redis URLs (the pool's store, see ``celeryconfig.py``)."""
    explicit = os.environ.get("TRANSLATOR_STATE_URL")
    if explicit:
        return explicit, "TRANSLATOR_STATE_URL"
    for name in STATE_URL_VARIABLES[1:]:
        url = _redis_url(os.environ.get(name))
        if url:
            return url, name
    return None, None


def celery_app_name() -> str:
    """``TRANSLATOR_CELERY_APP``: the Celery app translator runs on, named as ``celery -A`` takes it
    (``pkg.module``, ``pkg.module:attr``); default ``tasks``."""
    return os.environ.get("TRANSLATOR_CELERY_APP", "").strip() or DEFAULT_CELERY_APP


@dataclass(frozen=True)
class Settings:
    broker_url: str | None  # None: nothing configured (translator run then runs embedded)
    result_backend: str | None
    state_url: str | None  # where executions are kept in distributed mode
    state_prefix: str
    state_ttl: int
    default_queue: str
    http_queue: str  # where HTTP tasks go (a worker consumes it too unless -Q says otherwise)
    queue_per_task: bool  # route each task to Conductor's queue name (its task name)
    hard_timeout_grace: int  # seconds from a step's soft time limit to its hard one
    visibility_timeout: int
    restore_interval: int  # seconds between sweeps that give back messages of dead workers
    park_after: int  # delays longer than this wait in the state store, not as broker countdowns
    sweep_interval: float  # seconds between two passes of a worker's deadline sweeper
    worker_modules: tuple[str, ...]
    state_source: str | None = None  # the variable state_url comes from (None: not configured)
    celery_app: str = DEFAULT_CELERY_APP  # the app translator runs on, as ``celery -A`` names it

    @classmethod
    def from_env(cls) -> Settings:
        broker = os.environ.get("CELERY_BROKER_URL") or None
        backend = os.environ.get("CELERY_RESULT_BACKEND") or _redis_url(broker)
        state, state_source = _state_url()
        ttl = env_int("TRANSLATOR_STATE_TTL", DEFAULT_TTL)
        if ttl < 0:
            raise UsageError(
                f"TRANSLATOR_STATE_TTL must be 0 (keep forever) or a number of seconds, got {ttl}"
            )
        modules = tuple(
            m.strip() for m in os.environ.get("TRANSLATOR_WORKER_MODULES", "").split(",") if m.strip()
        )
        visibility = env_int("TRANSLATOR_VISIBILITY_TIMEOUT", 4 * 3600)
        return cls(
            broker_url=broker,
            result_backend=backend,
            state_url=state,
            state_prefix=os.environ.get("TRANSLATOR_STATE_PREFIX", "translator:"),
            state_ttl=ttl,
            default_queue=os.environ.get("TRANSLATOR_DEFAULT_QUEUE", "celery"),
            http_queue=os.environ.get("TRANSLATOR_HTTP_QUEUE", "http"),
            queue_per_task=os.environ.get("TRANSLATOR_QUEUE_PER_TASK", "").strip().lower()
            in ("1", "true", "yes"),
            hard_timeout_grace=env_int("TRANSLATOR_HARD_TIMEOUT_GRACE", 30),
            visibility_timeout=visibility,
            restore_interval=env_int("TRANSLATOR_RESTORE_INTERVAL", 60),
            # A countdown is held unacknowledged by a worker: it must stay well inside the visibility
            # timeout, or the broker delivers the message a second time.
            park_after=max(1, min(env_int("TRANSLATOR_PARK_AFTER", 300), visibility // 2)),
            sweep_interval=env_float("TRANSLATOR_SWEEP_INTERVAL", 1.0),
            worker_modules=modules,
            state_source=state_source,
            celery_app=celery_app_name(),
        )

    def status_store_url(self) -> str:
        """The Redis URL ``translator status`` reads: the pool's store, else the default one."""
        if self.state_url is not None:
            if _redis_url(self.state_url) is None:
                raise UsageError(
                    f"{self.state_source} must be a redis://, rediss:// or unix:// URL for the state store, "
                    f"got {safe_url(self.state_url)}"
                )
            return self.state_url
        if self.broker_url is not None:
            raise UsageError(
                f"no Redis state store configured: CELERY_BROKER_URL is {safe_url(self.broker_url)} "
                "and neither TRANSLATOR_STATE_URL nor CELERY_RESULT_BACKEND is a Redis URL"
            )
        return DEFAULT_BROKER_URL

    def state_store_origin(self) -> str:
        """Where ``status_store_url`` comes from, for messages."""
        if self.state_source is not None:
            return f"from {self.state_source}"
        return (
            f"the default: none of {', '.join(STATE_URL_VARIABLES)} is set; embedded runs "
            "(translator run with no CELERY_BROKER_URL) keep no state that status can read"
        )
