"""The Celery side of the runtime: the generic task every compiled step runs.

``translator.step`` is one attempt of one Conductor task (``runtime.execute_step``). Retries are
Celery retries with *our* countdown (Conductor's formula, never Celery's jittered autoretry); what
comes next is decided by the step itself (``decide``) and sent as one message per task.

``install(app)`` adds it to any Celery app, so translator can live in an existing project.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery, signals
from celery.app.amqp import AMQP
from celery.exceptions import Reject

from translator.compiler import STEP_TASK, TIMED_OUT_TASK, timing_of
from translator.deadlines import TIMEOUTS_BY_DEADLINE
from translator.dispatch import follow, follow_up
from translator.limits import Limiter, MemoryLimiter, RedisLimiter
from translator.records import plan_of
from translator.runtime import Outcome, execute_step, hard_timeout
from translator.settings import DEFAULT_BROKER_URL
from translator.state import MemoryStore, RedisStore, StateStore
from translator.sweeper import DEFAULT_INTERVAL, Sweeper

log = logging.getLogger("translator.celery")

_store: StateStore | None = None
_limiter: Limiter | None = None
_store_lock = threading.Lock()
_sweeper: Sweeper | None = None


def set_store(store: StateStore | None) -> None:
    """Use ``store`` for every step run in this process (embedded mode, tests)."""
    global _store, _limiter
    with _store_lock:
        _store, _limiter = store, None


def get_limiter(app: Celery) -> Limiter:
    """The global limits, kept where the state is (Redis, or this process)."""
    global _limiter
    store = get_store(app)
    with _store_lock:
        if _limiter is None:
            if isinstance(store, RedisStore):
                _limiter = RedisLimiter(store.client, store.prefix)
            else:
                _limiter = MemoryLimiter()
        return _limiter


def sweep_interval(app: Celery) -> float:
    return float(app.conf.get("translator_sweep_interval") or DEFAULT_INTERVAL)


def get_store(app: Celery) -> StateStore:
    """The process's state store, created from the app's settings on first use."""
    global _store
    with _store_lock:
        if _store is None:
            url = app.conf.get("translator_state_url") or _redis_or_none(app.conf.broker_url)
            if url is None:
                log.warning("no Redis state store configured; keeping executions in this process only")
                _store = MemoryStore()
            else:
                _store = RedisStore(
                    url,
                    prefix=app.conf.get("translator_state_prefix", "translator:"),
                    ttl=int(app.conf.get("translator_state_ttl", 7 * 24 * 3600)),
                )
        return _store


def _redis_or_none(url: Any) -> str | None:
    text = str(url or DEFAULT_BROKER_URL)
    return text if text.startswith(("redis://", "rediss://", "unix://")) else None


class ShadowNamedEvents(AMQP):
    """Celery's AMQP helper, with ``task-sent`` events named by the task's shadow.

    Celery names ``task-received`` events (and Flower's rows) by the shadow, but ``task-sent`` by the
    real task name. The sent event of a chain's next step, published by the worker that ran the
    previous one, can reach Flower after the step was received, and would rename the row
    ``translator.step``. With this, every event of a step carries its Conductor task name.
    """

    def as_task_v2(self, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and isinstance(message.sent_event, dict):
            message.sent_event["name"] = shadow
        return message


def install(app: Celery) -> None:
    """Register translator's tasks on ``app`` (idempotent), and run a sweeper in its workers."""
    if STEP_TASK in app.tasks:
        return
    if "amqp" not in app.__dict__:  # not created yet: use the shadow-aware one
        app.amqp_cls = ShadowNamedEvents

    @app.task(bind=True, name=STEP_TASK, ignore_result=True, max_retries=None, acks_late=True)
    def step(self: Any, *, wf: str, ref: str, attempt: int = 0) -> None:
        store = get_store(app)
        worker_id = self.request.hostname or "embedded"
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        self.request.chain = None  # the decider sends what comes next
        try:
            result = execute_step(
                store,
                wf,
                ref,
                attempt,
                worker_id,
                get_limiter(app),
                redelivered,
                timing=timing_of(app),
                celery_id=self.request.id,
                timeout_deadline=bool(app.conf.get(TIMEOUTS_BY_DEADLINE)),
            )
            if result.outcome is Outcome.CONTINUE:
                plan = plan_of(store, store.workflow_fields(wf) or {})
                if plan is not None:
                    follow_up(app, store, plan, wf, result.transition)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The state store is unreachable: give the message back (or leave it unacknowledged
            # for the broker to restore), never drop it; the attempt has not run.
            log.warning("state store unreachable (%s); step %s of %s requeued", exc, ref, wf)
            time.sleep(1)
            raise Reject(str(exc), requeue=True) from None
        if result.outcome is Outcome.DEFER:
            kwargs = {"wf": wf, "ref": ref, "attempt": attempt}
            raise self.retry(countdown=result.countdown, kwargs=kwargs, max_retries=None)
        if result.outcome is Outcome.RETRY:
            kwargs = {"wf": wf, "ref": ref, "attempt": result.attempt}
            raise self.retry(
                countdown=result.countdown, kwargs=kwargs, max_retries=None, expires=result.expires
            )

    @app.task(name=TIMED_OUT_TASK, ignore_result=True)
    def step_timed_out(request: Any, exc: Any, traceback: Any, **_: Any) -> None:
        """Errback of steps with time limits, run by the worker's main process when the pool killed a
        step at its hard time limit (the step itself could not record anything)."""
        from celery.exceptions import TimeLimitExceeded

        if not isinstance(exc, TimeLimitExceeded):
            return  # other failures are recorded by the step itself
        kwargs = dict(request.kwargs or {})
        wf, ref, attempt = kwargs["wf"], kwargs["ref"], int(kwargs.get("attempt", 0))
        store = get_store(app)
        result = hard_timeout(store, wf, ref, attempt, timing_of(app))
        plan = plan_of(store, store.workflow_fields(wf) or {})
        if plan is not None:
            follow(app, store, plan, wf, result)

    def start_sweeper(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is app:
            global _sweeper
            _sweeper = Sweeper(app, get_store(app), sweep_interval(app), get_limiter(app)).start()

    def stop_sweeper(**_: Any) -> None:
        global _sweeper
        if _sweeper is not None:
            _sweeper.stop()
            _sweeper = None

    signals.worker_ready.connect(start_sweeper, weak=False)  # sent by the `celery worker` command
    signals.worker_shutdown.connect(stop_sweeper, weak=False)
