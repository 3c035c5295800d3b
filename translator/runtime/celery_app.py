"""The Celery side of the runtime: the task every step message runs.

A step message is one attempt of one Conductor task (``runtime.execute_step``), named by the
Conductor task name: each worker function registered with ``@worker_task`` is a Celery task of that
name (``register_workers``, at ``install`` and at worker start), so ``celery inspect registered``, the
worker's ``[tasks]`` banner, Flower and ``task_routes`` see Conductor names. ``translator.step`` runs
the same code for any task name (messages of a name another Celery task of the app already has).

The Celery state of a message mirrors what the store recorded for its attempt: SUCCESS, FAILURE
(``StepFailed``, an expected exception: no traceback) or RETRY (``self.retry`` with *our* countdown,
Conductor's formula, never Celery's jittered autoretry; the next attempt is a message with its own
task id, the attempt's Conductor taskId). A worker that receives a task name it has no function for
records the attempt FAILED_WITH_TERMINAL_ERROR (``task_unknown``), never leaves it unrecorded.

``install(app)`` adds all this to any Celery app, so translator can live in an existing project.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery, Task, signals
from celery.app.amqp import AMQP
from celery.exceptions import Reject, Retry
from celery.worker import state as worker_state
from celery.worker.control import control_command
from kombu import Queue

from translator.engine.compiler import (
    DEFAULT_HTTP_QUEUE,
    HTTP_QUEUE_SETTING,
    STEP_TASK,
    TIMED_OUT_TASK,
    timing_of,
)
from translator.engine.deadlines import TIMEOUTS_BY_DEADLINE, wake_deadline
from translator.engine.decide import attempt_id
from translator.errors import TranslatorError
from translator.runtime import system_workers
from translator.runtime.dispatch import follow, follow_up, resend
from translator.runtime.limits import Limiter, MemoryLimiter, RedisLimiter
from translator.runtime.step import Outcome, StepResult, execute_step, hard_timeout
from translator.runtime.sweeper import DEFAULT_INTERVAL, Sweeper
from translator.runtime.workers import get_worker, registered_task_names
from translator.settings import DEFAULT_BROKER_URL
from translator.status import TaskStatus
from translator.store.records import plan_of
from translator.store.state import MemoryStore, RedisStore, StateStore, now_ms

log = logging.getLogger("translator.celery")

_store: StateStore | None = None
_limiter: Limiter | None = None
_store_lock = threading.Lock()
_sweeper: Sweeper | None = None
_clashes: set[str] = set()  # Conductor names another Celery task has (warned about once)


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
    real task name. For a message sent as ``translator.step`` (a Conductor name another Celery task
    of the app has), the sent event can reach Flower after the step was received and would rename
    the row; with this, every event of a step carries its Conductor task name.
    """

    def as_task_v2(self, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and isinstance(message.sent_event, dict):
            message.sent_event["name"] = shadow
        return message


class StepFailed(TranslatorError):
    """The attempt a step message ran ended unsuccessfully: ``STATUS: reason`` as the store recorded
    it. Raised after it is recorded, so that the message's Celery state (FAILURE, or RETRY with a
    retry) mirrors the store; an expected exception (``Task.throws``): one log line, no traceback."""


class StepDeferred(TranslatorError):
    """The attempt a step message carries runs later (not due yet, or a global limit is reached):
    the reason of the message's RETRY state."""


class StepTask(Task):
    """The Celery task of step messages: one attempt (``attempt``) of step ``ref`` of workflow ``wf``."""

    translator_step = True  # compiler.step_signature names messages after the tasks with this mark
    throws = (StepFailed,)
    ignore_result = True
    acks_late = True
    max_retries = None


def run_step(self: StepTask, *, wf: str, ref: str, attempt: int = 0) -> None:
    """Run one attempt, carry the workflow on, then end with the Celery state of what was recorded."""
    app = self.app
    store = get_store(app)
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    self.request.chain = None  # the decider sends what comes next
    try:
        result = execute_step(
            store,
            wf,
            ref,
            attempt,
            self.request.hostname or "embedded",
            get_limiter(app),
            redelivered,
            timing=timing_of(app),
            celery_id=self.request.id,
            timeout_deadline=bool(app.conf.get(TIMEOUTS_BY_DEADLINE)),
        )
        if result.outcome is Outcome.CONTINUE and result.transition is not None:
            plan = result.plan or plan_of(store, store.workflow_fields(wf) or {})
            if plan is not None:
                follow_up(app, store, plan, wf, result.transition)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The state store is unreachable: give the message back (or leave it unacknowledged
        # for the broker to restore), never drop it; the attempt has not run.
        log.warning("state store unreachable (%s); step %s of %s requeued", exc, ref, wf)
        time.sleep(1)
        raise Reject(str(exc), requeue=True) from None
    own_id = attempt_id(wf, ref, attempt)
    reprs = message_reprs(wf, ref)
    if result.outcome is Outcome.DEFER:
        waits = StepDeferred(f"attempt {attempt} waits {result.countdown:.3g} s (not due, or a limit)")
        kwargs = step_kwargs(wf, ref, attempt)
        raise self.retry(exc=waits, countdown=result.countdown, kwargs=kwargs, max_retries=None, **reprs)
    if result.outcome is Outcome.RETRY:  # the next attempt: a message of its own, its own task id
        raise self.retry(
            exc=StepFailed(_recorded(store, wf, own_id, result) or f"attempt {attempt} failed"),
            countdown=result.countdown,
            kwargs=step_kwargs(wf, ref, result.attempt),
            max_retries=None,
            expires=result.expires,
            task_id=result.task_id,
            **reprs,
        )
    if result.outcome is Outcome.PARKED:  # sent again by the sweeper when due (no message now)
        if result.task_id == own_id:
            raise Retry(exc=StepDeferred(f"attempt {attempt} is not due: parked until it is"))
        failed = _recorded(store, wf, own_id, result) or f"attempt {attempt} failed"
        raise Retry(exc=StepFailed(f"{failed}; attempt {attempt + 1} parked until due"))
    failed = _recorded(store, wf, own_id, result, unsuccessful_only=True)
    if failed is not None:
        raise StepFailed(failed)


def step_kwargs(wf: str, ref: str, attempt: int) -> dict[str, Any]:
    """The kwargs of a step message (as ``compiler.step_signature`` writes them)."""
    return {"wf": wf, "ref": ref, "attempt": attempt} if attempt else {"wf": wf, "ref": ref}


def message_reprs(wf: str, ref: str) -> dict[str, str]:
    """What Flower shows of a step message's arguments (Celery does not keep them on a retry)."""
    return {"argsrepr": "()", "kwargsrepr": f"wf={wf} ref={ref}"}


def _recorded(
    store: StateStore, wf: str, task_id: str, result: StepResult, unsuccessful_only: bool = False
) -> str | None:
    """``STATUS: reason`` of attempt ``task_id`` as recorded (from the decision just stored, else
    read); with ``unsuccessful_only``, None unless it ended unsuccessfully. None when unknown."""
    if unsuccessful_only and result.task_id is None:
        return None  # nothing was recorded (the workflow is over, or gone)
    record = result.transition.change.records.get(task_id) if result.transition is not None else None
    if record is None:
        try:
            record = next((t for t in store.snapshot(wf, [task_id]).tasks if t["taskId"] == task_id), None)
        except redis.RedisError:
            log.warning("workflow %s: could not read attempt %s for its Celery state", wf, task_id)
            return None
    if record is None:
        return None
    status = TaskStatus(record["status"])
    failed = not status.successful or status is TaskStatus.COMPLETED_WITH_ERRORS  # optional: failed too
    if unsuccessful_only and not (status.terminal and failed):
        return None
    return f"{status.value}: {record.get('reasonForIncompletion') or 'no reason recorded'}"


def register_workers(app: Celery) -> list[str]:
    """Make each worker function's Conductor task name a Celery task of ``app`` that runs its steps
    (idempotent); returns the names added. A name another Celery task of the app already has stays
    that task's: its steps are sent as ``translator.step`` (``compiler.step_signature``)."""
    added = []
    for name in registered_task_names():
        existing = app.tasks.get(name)
        if existing is None:
            app.task(name=name, base=StepTask, bind=True, shared=False)(run_step)
            added.append(name)
        elif not getattr(existing, "translator_step", False) and name not in _clashes:
            _clashes.add(name)
            log.warning(
                "Conductor task %r is also the Celery task %s: its steps are sent as %s",
                name,
                type(existing).__module__,
                STEP_TASK,
            )
    return added


def record_unknown(app: Celery, name: str, message: Any, worker_id: str) -> None:
    """A step message whose task name this worker has no task for (Celery has dropped it): record
    its attempt FAILED_WITH_TERMINAL_ERROR (the runtime's reason names the task and the worker) and
    carry the workflow on. An attempt not due yet gets a ``wake`` deadline instead: the sweeper sends
    it when due. A function registered since the worker started is registered and sent again."""
    kwargs = _message_kwargs(message)
    if kwargs is None:
        return  # not a step message: Celery's log line is all there is to say
    wf, ref, attempt = str(kwargs["wf"]), str(kwargs["ref"]), int(kwargs.get("attempt") or 0)
    store = get_store(app)
    task_id = attempt_id(wf, ref, attempt)
    snap = store.snapshot(wf, [task_id])
    record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
    plan = plan_of(store, snap.workflow) if snap.workflow is not None else None
    if record is None or plan is None:
        return  # the workflow ended or is gone
    if get_worker(name) is not None:  # imported after the worker started
        register_workers(app)
        if record["status"] == TaskStatus.SCHEDULED.value:
            resend(app, store, plan, wf, record)
        return
    redelivered = bool((getattr(message, "delivery_info", None) or {}).get("redelivered"))
    result = execute_step(store, wf, ref, attempt, worker_id, None, redelivered, timing=timing_of(app))
    waits = result.outcome in (Outcome.DEFER, Outcome.PARKED)
    fate = "sent again when due" if waits else "recorded as failed"
    log.warning("worker %s has no task %r: step %s of workflow %s %s", worker_id, name, ref, wf, fate)
    if result.outcome is Outcome.DEFER:  # not due yet: no countdown for a name this worker lacks
        store.add_deadlines([(wake_deadline(record)[0], now_ms() + int(result.countdown * 1000))])
    else:
        follow(app, store, result.plan or plan, wf, result)


def _message_kwargs(message: Any) -> dict[str, Any] | None:
    """The kwargs of a step message (protocol 2 or 1), None for any other message."""
    try:
        body = message.decode()
    except Exception:
        return None
    kwargs = (
        body.get("kwargs") if isinstance(body, dict) else body[1] if isinstance(body, list | tuple) else None
    )
    if isinstance(kwargs, dict) and isinstance(kwargs.get("wf"), str) and isinstance(kwargs.get("ref"), str):
        return kwargs
    return None


@control_command(args=[("ids", list)], signature="<ids>")
def translator_unrevoke(state: Any, ids: list[str]) -> dict[str, str]:
    """Remote control command: forget the revocation of ``ids`` (a restarted or rerun workflow uses
    the task ids of its earlier run again; ``translator.runtime.lifecycle``)."""
    for task_id in ids:
        worker_state.revoked.discard(task_id)
    return {"ok": f"{len(ids)} revocation(s) forgotten"}


def install(app: Celery) -> None:
    """Register translator's tasks on ``app`` (idempotent): ``translator.step``, a task per worker
    function known now and at worker start, the errback of killed steps; and run a sweeper in its
    workers."""
    if getattr(app, "_translator_installed", False):
        return
    app._translator_installed = True  # type: ignore[attr-defined]
    if "amqp" not in app.__dict__:  # not created yet: use the shadow-aware one
        app.amqp_cls = ShadowNamedEvents
    app.task(name=STEP_TASK, base=StepTask, bind=True, shared=False)(run_step)
    register_workers(app)
    system_workers.bind(app)
    if not app.conf.task_queues:  # a worker started without -Q consumes the HTTP tasks' queue too
        http = str(app.conf.get(HTTP_QUEUE_SETTING) or DEFAULT_HTTP_QUEUE)
        app.conf.task_queues = [Queue(q) for q in dict.fromkeys([app.conf.task_default_queue, http])]

    @app.task(name=TIMED_OUT_TASK, ignore_result=True, shared=False)
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

    def worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # after the worker imported its modules (-I, imports)
            register_workers(app)

    def task_unknown(sender: Any = None, name: str = "", message: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app or message is None:
            return
        try:
            record_unknown(app, name, message, getattr(sender, "hostname", None) or "embedded")
        except Exception:  # the wake deadline of a SCHEDULED attempt sends it again later
            log.exception("could not record the step of unknown task %r", name)

    def start_sweeper(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is app:
            global _sweeper
            _sweeper = Sweeper(app, get_store(app), sweep_interval(app), get_limiter(app)).start()

    def stop_sweeper(**_: Any) -> None:
        global _sweeper
        if _sweeper is not None:
            _sweeper.stop()
            _sweeper = None

    signals.worker_init.connect(worker_init, weak=False)
    signals.task_unknown.connect(task_unknown, weak=False)
    signals.worker_ready.connect(start_sweeper, weak=False)  # sent by the `celery worker` command
    signals.worker_shutdown.connect(stop_sweeper, weak=False)
