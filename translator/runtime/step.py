"""The step executor that every compiled signature runs, independent of Celery.

One call of :func:`execute_step` is one attempt of one task: resolve the input against the live
execution state (so a retry sees fresh data and a new ``${CPEWF_TASK_ID}``), record the attempt,
call the worker function, then decide with Conductor's rules: continue, retry after a delay computed
by :mod:`translator.engine.retry`, continue despite failure (optional / permissive), or fail the workflow.

Attempts have deterministic task ids (workflow id, reference, attempt number), so a redelivered
message finds its attempt already recorded and does not run it twice once it has finished.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from translator.definitions.expressions import allowed_environment, referenced_names, resolve_task_input
from translator.definitions.tasktypes import WORKER_SYSTEM_TYPES
from translator.engine.deadlines import (
    attempt_deadlines,
    due_ms,
    parks,
    response_deadline,
    scheduling_deadlines,
    timeout_base,
    timeout_deadline,
    total_deadline,
    waiting_deadlines,
    wake_deadline,
)
from translator.engine.decide import (
    DEFAULT_TIMING,
    MAX_CONFLICTS,
    Records,
    Timing,
    Transition,
    attempt_id,
    decide,
    end,
    evaluation_document,
    scheduled_record,
    step_of,
)
from translator.engine.plan import Plan, Step, base_ref, message_expiry
from translator.errors import ExpressionError, NonRetryableError
from translator.runtime.limits import Limiter, Limits
from translator.runtime.system_workers import SystemTaskFailed, run_system_task
from translator.runtime.workers import TaskContext, get_worker
from translator.status import TaskStatus, WorkflowStatus
from translator.store.records import cached_plan, log_end, plan_of, store_records
from translator.store.state import Change, Deadline, Saved, Start, StateStore, now_ms
from translator.text import REASON_LIMIT, short_traceback, shorten

log = logging.getLogger("translator.runtime.step")


class Outcome(Enum):
    CONTINUE = "continue"  # a decision was stored: do what its transition says (send, start, revoke)
    RETRY = "retry"  # run this step again after ``countdown`` seconds, as attempt ``attempt``
    DEFER = "defer"  # not due yet, or a global limit is reached: same attempt after ``countdown`` s
    PARKED = "parked"  # a long delay: a ``wake`` deadline sends the attempt when it is due
    STOP = "stop"  # the workflow is over (or someone else carries it on): run nothing more


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    countdown: float = 0.0
    task_id: str | None = None
    attempt: int = 0  # RETRY: the attempt to run
    expires: float | None = None  # RETRY: seconds until its message expires (pollTimeoutSeconds)
    ended: WorkflowStatus | None = None  # this call ended the workflow with this status
    transition: Transition | None = None  # CONTINUE: the stored decision, to follow up
    plan: Plan | None = None  # CONTINUE: the execution's plan (what the follow-up sends is planned in it)


NOT_DUE_TOLERANCE_MS = 1000  # a message this early for its attempt runs anyway
TIME_LIMIT_SLACK_MS = 5000  # after a step's hard time limit, before its response timeout may act


# ---------------------------------------------------------------------------------------------
# One attempt of one step


@dataclass
class _Attempt:
    """Everything one attempt works with."""

    store: StateStore
    plan: Plan
    workflow: dict[str, Any]
    records: Records  # what the attempt read of the execution (others are read on demand)
    step: Step
    record: dict[str, Any]
    rev: int  # the execution's revision when read: a decision is stored only if it is unchanged
    redelivered: bool = False
    expect: tuple[str, int] = ("SCHEDULED", 0)  # the stored record's (status, startTime) writes require
    timing: Timing = DEFAULT_TIMING
    timeout_deadline: bool = False  # timeoutSeconds by a deadline (embedded), not by time limits
    started: bool = False  # the read that loaded it also started it (IN_PROGRESS, see ``_start_of``)

    @property
    def park_after(self) -> float:
        return self.timing.park_after

    def refresh(self) -> bool:
        """Read the execution again after a conflict; False when it is no longer running."""
        wf_id = self.workflow["workflowId"]
        snap = self.store.snapshot(wf_id, _attempt_ids(wf_id, self.record))
        if snap.workflow is None or WorkflowStatus(snap.workflow["status"]).terminal:
            return False
        self.workflow, self.rev = snap.workflow, int(snap.workflow.get("_rev") or 0)
        self.records = store_records(self.store, wf_id, snap)
        return True

    @property
    def first_scheduled(self) -> int:
        """When the first attempt of this task was scheduled (totalTimeoutSeconds counts from it)."""
        if not self.record.get("retryCount"):  # the first attempt
            return int(self.record["scheduledTime"])
        first = attempt_id(self.workflow["workflowId"], self.record["referenceTaskName"], 0)
        found = self.records.known.get(first)
        return int(found["scheduledTime"]) if found else int(self.record["scheduledTime"])


def _attempt_ids(wf_id: str, record: Mapping[str, Any]) -> list[str]:
    """The ids an attempt reads with the execution: its own, and its task's first attempt's."""
    return _read_ids(wf_id, record["referenceTaskName"], int(record.get("retryCount") or 0), record["taskId"])


def _read_ids(wf_id: str, ref: str, attempt: int, task_id: str) -> list[str]:
    """Attempt ``attempt``'s id (``task_id``) and, for a retry, its task's first attempt's id."""
    return [task_id] if attempt == 0 else [task_id, attempt_id(wf_id, ref, 0)]


# The plan each reference (without ``__<iteration>``) was last found in, by this process: a step
# computes its start from it before reading (``_start_of``); the store writes the start only if the
# execution runs that plan.
_START_PLANS: OrderedDict[str, str] = OrderedDict()
_START_PLANS_LOCK = threading.Lock()
_START_PLANS_SIZE = 4096


def _start_of(
    wf_id: str, ref: str, attempt: int, worker_id: str, celery_id: str | None, redelivered: bool
) -> Start | None:
    """The start of attempt ``attempt`` of ``ref`` (as ``_run_attempt`` would claim it), written with
    the read that loads it if it applies (``StateStore.snapshot``); None when it must be decided after
    the read (the plan is not known here yet, or the step has rate or concurrency limits)."""
    with _START_PLANS_LOCK:
        digest = _START_PLANS.get(base_ref(ref))
    plan = None if digest is None else cached_plan(digest)
    if digest is None or plan is None:
        return None
    try:
        policy = plan.step(ref).policy
    except KeyError:
        return None
    limits = Limits(
        policy.rate_limit_per_frequency, policy.rate_limit_frequency_in_seconds, policy.concurrent_exec_limit
    )
    if limits.active:
        return None
    now = now_ms()
    fields: dict[str, Any] = {
        "status": TaskStatus.IN_PROGRESS.value,
        "startTime": now,
        "updateTime": now,
        "workerId": worker_id,
    }
    if celery_id:
        fields["celeryTaskId"] = celery_id
    return Start(
        attempt_id(wf_id, ref, attempt),
        ref,
        attempt,
        digest,
        fields,
        takeover=redelivered,
        response_seconds=policy.response_timeout_seconds,
        poll=bool(policy.poll_timeout_seconds),
        tolerance_ms=NOT_DUE_TOLERANCE_MS,
    )


def _remember_plan(ref: str, digest: str) -> None:
    key = base_ref(ref)
    with _START_PLANS_LOCK:
        if _START_PLANS.get(key) != digest:
            _START_PLANS[key] = digest
            while len(_START_PLANS) > _START_PLANS_SIZE:
                _START_PLANS.popitem(last=False)


def _load_attempt(
    store: StateStore,
    wf_id: str,
    ref: str,
    attempt: int | None,
    timing: Timing,
    *,
    create: bool = False,
    start: Start | None = None,
) -> _Attempt | StepResult:
    """The attempt as stored (``attempt`` None: the latest of ``ref``), or STOP when there is nothing
    to do (no such workflow, it ended, or the record is missing and ``create`` is false). With
    ``start``, started by the same read when it applies (``_Attempt.started``)."""
    if attempt is None:
        latest = store.latest_records(wf_id, [ref]).get(ref)
        attempt = int(latest["retryCount"]) if latest is not None else None
        if attempt is None:
            return StepResult(Outcome.STOP)
    task_id = start.task_id if start is not None else attempt_id(wf_id, ref, attempt)
    snap = store.snapshot(wf_id, _read_ids(wf_id, ref, attempt, task_id), start)
    workflow = snap.workflow
    plan = plan_of(store, workflow) if workflow is not None else None
    if plan is None or workflow is None:
        log.warning("workflow %s: no execution record (expired or removed); dropping %s", wf_id, ref)
        return StepResult(Outcome.STOP)
    _remember_plan(ref, workflow["_plan"])
    if WorkflowStatus(workflow["status"]).terminal:
        return StepResult(Outcome.STOP)
    record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
    if snap.started and start is not None and record is not None:
        return _Attempt(
            store,
            plan,
            workflow,
            store_records(store, wf_id, snap),
            step_of(plan, record),
            start.record(record),
            int(workflow.get("_rev") or 0),
            expect=(TaskStatus.IN_PROGRESS.value, start.start_ms),
            timing=timing,
            started=True,
        )
    if record is None:
        if not create:
            return StepResult(Outcome.STOP)
        try:
            step = plan.step(ref)
        except KeyError:
            return StepResult(Outcome.STOP)
        record = scheduled_record(workflow, step, attempt, store.next_seq(wf_id), ref=ref)
        record["_unresolved"] = True
    step = step_of(plan, record)
    expect = (record["status"], int(record.get("startTime") or 0))
    return _Attempt(
        store,
        plan,
        workflow,
        store_records(store, wf_id, snap),
        step,
        record,
        int(workflow.get("_rev") or 0),
        expect=expect,
        timing=timing,
    )


def execute_step(
    store: StateStore,
    wf_id: str,
    ref: str,
    attempt: int,
    worker_id: str,
    limiter: Limiter | None = None,
    redelivered: bool = False,
    *,
    timing: Timing = DEFAULT_TIMING,
    celery_id: str | None = None,
    timeout_deadline: bool = False,
) -> StepResult:
    """Run attempt ``attempt`` of step ``ref``.

    Never raises for task failures: the result says what the Celery layer must do next. With a
    ``limiter``, a step whose task definition is over its rate or concurrency limit is deferred.
    ``redelivered``: the broker delivers this message again (its worker died): an attempt left
    IN_PROGRESS is taken over; otherwise an IN_PROGRESS attempt belongs to another delivery. A
    message that arrives before its attempt is due waits (``DEFER``), or, for longer than
    ``timing.park_after`` seconds, is parked in the store. ``celery_id`` is recorded (``celeryTaskId``) so
    the attempt can be revoked. ``timeout_deadline``: the pool cannot stop a step (threads), so the
    attempt registers a ``timeout`` deadline for timeoutSeconds instead of relying on time limits.
    ``timing.resend_after``: the attempts this call schedules are sent again when their message has
    not arrived that many seconds after they are due (``deadlines.wake_deadline``).
    """
    park_after = timing.park_after
    start = None if timeout_deadline else _start_of(wf_id, ref, attempt, worker_id, celery_id, redelivered)
    loaded = _load_attempt(store, wf_id, ref, attempt, timing, create=True, start=start)
    if isinstance(loaded, StepResult):
        return loaded
    run, record, step = loaded, loaded.record, loaded.step
    run.redelivered = redelivered
    run.timeout_deadline = timeout_deadline
    if run.started:  # due, no limits, and claimed by the read: run it
        return _call_worker(run, attempt, worker_id)
    status = TaskStatus(record["status"])
    if status.terminal or (status is TaskStatus.IN_PROGRESS and not redelivered):
        return _already_handled(step, status, record["taskId"])
    if status is TaskStatus.SCHEDULED:
        early = due_ms(record) - now_ms()
        if early > park_after * 1000:
            store.add_deadlines([wake_deadline(record)])
            return StepResult(Outcome.PARKED, task_id=record["taskId"])
        if early > NOT_DUE_TOLERANCE_MS:
            return StepResult(Outcome.DEFER, countdown=early / 1000, task_id=record["taskId"])
    if celery_id:
        record["celeryTaskId"] = celery_id
    policy = step.policy
    limits = Limits(
        policy.rate_limit_per_frequency, policy.rate_limit_frequency_in_seconds, policy.concurrent_exec_limit
    )
    if limiter is None or not limits.active:
        return _run_attempt(run, attempt, worker_id)
    admission = limiter.acquire(policy.task_def_name, record["taskId"], limits)
    if not admission.admitted:
        if admission.wait > park_after:
            store.add_deadlines([(wake_deadline(record)[0], now_ms() + int(admission.wait * 1000))])
            return StepResult(Outcome.PARKED, task_id=record["taskId"])
        return StepResult(Outcome.DEFER, countdown=admission.wait, task_id=record["taskId"])
    with limiter.hold(policy.task_def_name, record["taskId"], limits):
        return _run_attempt(run, attempt, worker_id, started_ms=admission.at_ms)


def _first_scheduled(run: _Attempt) -> int:
    return run.first_scheduled


def total_timeout_reason(run: _Attempt) -> str:
    """Conductor's message when totalTimeoutSeconds is spent."""
    policy = run.step.policy
    elapsed = (now_ms() - _first_scheduled(run)) // 1000
    return (
        f"Task {policy.task_def_name}/{run.record['taskId']} exceeded total timeout of "
        f"{policy.total_timeout_seconds} seconds (elapsed {elapsed} seconds across all attempts including "
        f"retry delays). Timeout policy: {policy.timeout_policy}"
    )


def _over_total_budget(run: _Attempt) -> bool:
    """totalTimeoutSeconds: the time since the first attempt was scheduled is spent."""
    budget = run.step.policy.total_timeout_seconds
    return budget > 0 and now_ms() - _first_scheduled(run) >= budget * 1000


def _already_handled(step: Step, status: TaskStatus, task_id: str) -> StepResult:
    """A duplicate delivery: the attempt ended (carry on if it succeeded) or another delivery runs it."""
    if status is TaskStatus.IN_PROGRESS:
        return StepResult(Outcome.STOP, task_id=task_id)  # the running delivery continues the chain
    continues = status.successful or step.policy.optional or step.policy.permissive
    return StepResult(Outcome.CONTINUE if continues else Outcome.STOP, task_id=task_id)


def _run_attempt(run: _Attempt, attempt: int, worker_id: str, started_ms: int | None = None) -> StepResult:
    """``started_ms``: when a limiter admitted the step (its clock is the one the limits count)."""
    wf_id, step, record = run.workflow["workflowId"], run.step, run.record
    now = started_ms or now_ms()
    record.update(
        status=TaskStatus.IN_PROGRESS.value,
        startTime=now,
        updateTime=now,
        pollCount=record.get("pollCount", 0) + 1,
        workerId=worker_id,
    )
    if record.pop("_unresolved", False):  # a record this attempt had to create (see _load_attempt)
        try:
            record["inputData"] = _resolve(run, step, record)
        except ExpressionError as exc:
            return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
    running = [response_deadline(record, step)]
    if run.timeout_deadline:
        running.append(timeout_deadline(record, step))
    taken = run.store.claim_task(
        wf_id,
        record,
        takeover=run.redelivered,
        deadlines=[due for due in running if due is not None],
        clear=waiting_deadlines(record, step),
    )
    if taken is not None:  # another delivery claimed it first, or it ended meanwhile
        return _already_handled(step, TaskStatus(taken), record["taskId"])
    run.expect = (TaskStatus.IN_PROGRESS.value, record["startTime"])
    return _call_worker(run, attempt, worker_id)


def _call_worker(run: _Attempt, attempt: int, worker_id: str) -> StepResult:
    """Call the worker function of a claimed (IN_PROGRESS) attempt, then decide what follows."""
    wf_id, step, record = run.workflow["workflowId"], run.step, run.record
    builtin = step.type in WORKER_SYSTEM_TYPES
    worker = None if builtin else get_worker(step.name)
    if worker is None and not builtin:
        reason = (
            f"no worker function is registered for task {step.name!r} in worker {worker_id}: "
            "import the module that defines it "
            "(TRANSLATOR_WORKER_MODULES, or celery -A tasks worker -I MODULE)"
        )
        return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, reason)
    context = TaskContext(
        wf_id,
        record["taskId"],
        record["referenceTaskName"],
        step.name,
        attempt,
        worker_id,
        beat=_heartbeat(run.store, record, step),
    )
    try:
        if worker is None:
            output = run_system_task(step.type, record["inputData"], context, run.workflow)
        else:
            output = worker.call(record["inputData"], context)
    except SoftTimeLimitExceeded:
        return _after_failure(run, TaskStatus.TIMED_OUT, timeout_reason(step, time_limit="soft"))
    except NonRetryableError as exc:
        return _after_failure(run, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
    except SystemTaskFailed as exc:
        record["outputData"] = exc.output
        return _after_failure(run, TaskStatus.FAILED, str(exc))
    except Exception as exc:  # any worker error fails this attempt; the policy decides what follows
        log.warning("task %s (%s) attempt %d failed\n%s", step.ref, step.name, attempt, short_traceback(exc))
        return _after_failure(run, TaskStatus.FAILED, f"{type(exc).__name__}: {exc}")

    end = now_ms()
    timeout = step.policy.timeout_seconds
    if timeout > 0 and (end - record["startTime"]) / 1000 > timeout:  # ALERT_ONLY: no limit was set
        log.warning(
            "task %s (%s) of workflow %s ran %.1f s, over timeoutSeconds %d (timeoutPolicy %s)",
            step.ref,
            step.name,
            wf_id,
            (end - record["startTime"]) / 1000,
            timeout,
            step.policy.timeout_policy,
        )
    if builtin and record["inputData"].get("asyncComplete") is True:
        return _await_completion(run, output, end)
    record.update(
        status=TaskStatus.COMPLETED.value, outputData=output, endTime=end, updateTime=end, executed=True
    )
    return _carry_on(run)


def _await_completion(run: _Attempt, output: dict[str, Any], now: int) -> StepResult:
    """``asyncComplete``: the call is made, the task stays IN_PROGRESS (its output kept) until it is
    ended from outside (``runtime.complete``); its running deadlines are dropped."""
    run.record.update(outputData=output, updateTime=now)

    def build() -> Transition:
        change = Change(drop=attempt_deadlines(run.record, run.step))
        change.write(run.record)
        return Transition(change)

    _store(run, build)
    return StepResult(Outcome.STOP, task_id=run.record["taskId"])


def _resolve(run: _Attempt, step: Step, record: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt's input, resolved against the execution as it is now (a retry, or a record the
    scheduler did not write): the records its expressions read, fetched by reference."""
    names = referenced_names([step.input_parameters, step.input_template])
    if names is None:
        records: list[dict[str, Any]] = run.records.all()
    else:
        records = list(run.records.get(n for n in names if n != "workflow").values())
    return resolve_task_input(
        step.input_parameters,
        evaluation_document(run.workflow, records),
        input_template=step.input_template,
        task_id=record["taskId"],
        env=allowed_environment(),
    )


def _heartbeat(store: StateStore, record: Mapping[str, Any], step: Step) -> Callable[[], None] | None:
    """What ``TaskContext.heartbeat`` does: push the attempt's response deadline back."""
    seconds = step.policy.response_timeout_seconds
    response = response_deadline(record, step)
    if response is None:
        return None
    deadline = response[0]

    def beat() -> None:
        store.add_deadlines([(deadline, now_ms() + seconds * 1000)])

    return beat


def _ref_ended(run: _Attempt) -> list[Deadline]:
    """Deadlines to drop when the step is over for good: those of the attempt, and its total timeout."""
    clear = attempt_deadlines(run.record, run.step)
    total = total_deadline({**run.record, "retryCount": 0, "scheduledTime": _first_scheduled(run)}, run.step)
    if total is not None:
        clear.append(total[0])
    return clear


def _store(run: _Attempt, build: Callable[[], Transition]) -> tuple[Saved, Transition]:
    """Store the transition ``build`` makes from the attempt's view of the execution, as long as the
    attempt's record is as read; after a conflict (another decision stored meanwhile) read the
    execution again and decide again."""
    wf_id = run.workflow["workflowId"]
    for _ in range(MAX_CONFLICTS):
        transition = build()
        expect = (run.record["taskId"], *run.expect)
        saved = run.store.apply(wf_id, transition.change, expect=expect, rev=run.rev)
        if saved.applied or not saved.conflict or not run.refresh():
            return saved, transition
    raise RuntimeError(f"workflow {wf_id}: no decision could be stored after {MAX_CONFLICTS} conflicts")


def _carry_on(run: _Attempt) -> StepResult:
    """Store the attempt's end and what the workflow does next (``decide``)."""
    wf_id = run.workflow["workflowId"]

    def build() -> Transition:
        transition = decide(run.plan, run.workflow, run.records, [run.record], run.timing)
        transition.change.drop += _ref_ended(run)
        return transition

    saved, transition = _store(run, build)
    if not saved.applied:  # timed out or canceled meanwhile: whoever did it carries the workflow on
        return StepResult(Outcome.STOP, task_id=run.record["taskId"])
    ended = None
    if transition.change.finish is not None:
        log_end(saved.ended, run.plan, wf_id, transition.change.finish)
        ended = transition.ended if saved.ended else None
    return StepResult(
        Outcome.CONTINUE, task_id=run.record["taskId"], ended=ended, transition=transition, plan=run.plan
    )


def timeout_reason(step: Step, time_limit: str | None = None, elapsed: int | None = None) -> str:
    """Conductor's timeout message (``elapsed`` seconds; default: timeoutSeconds), and which time
    limit tripped, if one did."""
    seconds = step.policy.timeout_seconds
    reason = (
        f"Task timed out after {seconds if elapsed is None else elapsed} seconds. Timeout configured as "
        f"{seconds} seconds. Timeout policy configured to {step.policy.timeout_policy}"
    )
    return reason if time_limit is None else f"{reason} ({time_limit} time limit)"


def _after_failure(
    run: _Attempt,
    status: TaskStatus,
    reason: str,
    consult_timeout_policy: bool = True,
    budget_spent: bool = False,
) -> StepResult:
    """Conductor's decision after a failed attempt: retry, carry on, or fail the workflow.

    ``budget_spent``: the reason already says that totalTimeoutSeconds is spent."""
    record, policy = run.record, run.step.policy
    now = now_ms()
    reason = shorten(reason, REASON_LIMIT, quote=False)  # a reason may quote a megabyte of input
    record.update(status=status.value, reasonForIncompletion=reason, endTime=now, updateTime=now)
    attempt = record["retryCount"]
    time_out_workflow = (
        consult_timeout_policy and status is TaskStatus.TIMED_OUT and policy.timeout_policy == "TIME_OUT_WF"
    )
    may_retry = status.retriable and attempt < policy.retry_count and not time_out_workflow
    if may_retry and (budget_spent or _over_total_budget(run)):  # totalTimeoutSeconds: no more retries
        may_retry = False
        if not budget_spent:
            record["reasonForIncompletion"] = f"{reason}; {total_timeout_reason(run)}"
    if may_retry:
        delay = policy.retry_delay(attempt)
        record["retried"] = True

        def build() -> Transition:
            seq = run.records.seq + 1
            retry = scheduled_record(
                run.workflow,
                run.step,
                attempt + 1,
                seq,
                ref=record["referenceTaskName"],
                iteration=int(record.get("iteration") or 0),
                retried_task_id=record["taskId"],
                callback_after_seconds=delay.seconds,
            )
            if record.get("workflowTask"):
                retry["workflowTask"], retry["taskType"] = record["workflowTask"], record["taskType"]
            if record.get("_fork"):
                retry["_fork"] = record["_fork"]
            retry["inputData"] = _resolve(run, run.step, retry)  # again, with its own ${CPEWF_TASK_ID}
            change = Change(
                add=scheduling_deadlines(retry, run.step, run.park_after, run.timing.resend_after),
                drop=attempt_deadlines(record, run.step),
            )
            change.write(record)
            change.write(retry)
            made["retry"] = retry
            return Transition(change)

        made: dict[str, dict[str, Any]] = {}
        try:
            saved, _ = _store(run, build)
        except ExpressionError as exc:  # the retry's input cannot be resolved: no retry
            record["retried"] = False
            record["reasonForIncompletion"] = shorten(
                f"{reason}; retry input: {exc}", REASON_LIMIT, quote=False
            )
            return _carry_on(run)
        if not saved.applied:
            return StepResult(Outcome.STOP, task_id=record["taskId"])
        retry = made["retry"]
        if parks(retry, run.park_after):
            return StepResult(Outcome.PARKED, task_id=retry["taskId"])
        return StepResult(
            Outcome.RETRY,
            countdown=delay.countdown,
            task_id=retry["taskId"],
            attempt=attempt + 1,
            expires=message_expiry(run.step, delay.countdown),
        )
    if policy.optional:
        record["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
    return _carry_on(run)


# ---------------------------------------------------------------------------------------------
# Timeouts found outside the step: a killed step, and the deadlines the sweeper finds due


def hard_timeout(
    store: StateStore,
    wf_id: str,
    ref: str,
    attempt: int,
    timing: Timing = DEFAULT_TIMING,
) -> StepResult:
    """A worker process was killed at its hard time limit: time the attempt out, apply the policy."""
    loaded = _load_attempt(store, wf_id, ref, attempt, timing)
    if isinstance(loaded, StepResult):
        return loaded
    if TaskStatus(loaded.record["status"]).terminal:
        return StepResult(Outcome.STOP)
    return _after_failure(loaded, TaskStatus.TIMED_OUT, timeout_reason(loaded.step, time_limit="hard"))


def task_timed_out(store: StateStore, deadline: Deadline, timing: Timing) -> StepResult:
    """timeoutSeconds passed for a running attempt whose step cannot be stopped (embedded): as in
    Conductor, TIMED_OUT and its timeoutPolicy (RETRY: the retry rules; TIME_OUT_WF: the workflow
    times out). Its thread runs on; the result it may still write is refused."""
    run = _current(store, deadline, TaskStatus.IN_PROGRESS, "startTime", timing)
    if run is None:
        return StepResult(Outcome.STOP)
    delay_ms = int(run.record.get("startDelayInSeconds") or 0) * 1000
    elapsed = (now_ms() - deadline.token - delay_ms) // 1000  # Conductor's: from startTime + startDelay
    reason = timeout_reason(run.step, elapsed=elapsed)
    log.warning("workflow %s task %s: %s", deadline.wf, deadline.ref, reason)
    return _after_failure(run, TaskStatus.TIMED_OUT, reason)


def _current(
    store: StateStore,
    deadline: Deadline,
    status: TaskStatus,
    token_field: str,
    timing: Timing,
) -> _Attempt | None:
    """The attempt a deadline was set for, if it is still in ``status`` with the same token."""
    loaded = _load_attempt(store, deadline.wf, deadline.ref, deadline.attempt, timing)
    if isinstance(loaded, StepResult):
        return None
    record = loaded.record
    if record["status"] != status.value or int(record.get(token_field) or 0) != deadline.token:
        return None
    return loaded


def response_timed_out(
    store: StateStore,
    deadline: Deadline,
    timing: Timing,
    time_limit_grace: int = 30,
) -> StepResult:
    """responseTimeoutSeconds passed for a running attempt: TIMED_OUT, then the retry rules
    (whatever the timeoutPolicy). The worker that ran it may still finish; its writes are refused.

    When timeoutSeconds is enforced by time limits and is due as well, it takes precedence (as in
    Conductor's decider): the worker's own limits act, and this check comes back once they must
    have (a worker that died)."""
    run = _current(store, deadline, TaskStatus.IN_PROGRESS, "startTime", timing)
    if run is None:
        return StepResult(Outcome.STOP)
    policy = run.step.policy
    elapsed = now_ms() - deadline.token
    if policy.timeout_seconds > 0 and policy.timeout_policy != "ALERT_ONLY":
        limits_done = (policy.timeout_seconds + time_limit_grace) * 1000 + TIME_LIMIT_SLACK_MS
        if policy.timeout_seconds * 1000 <= elapsed < limits_done:
            return StepResult(Outcome.DEFER, countdown=(limits_done - elapsed) / 1000)  # check again
    reason = (
        f"responseTimeout: {policy.response_timeout_seconds} exceeded for the taskId: "
        f"{run.record['taskId']} with Task Definition: {policy.task_def_name}"
    )
    log.warning("workflow %s: %s", deadline.wf, reason)
    return _after_failure(run, TaskStatus.TIMED_OUT, reason, consult_timeout_policy=False)


def poll_timed_out(store: StateStore, deadline: Deadline, timing: Timing) -> StepResult:
    """pollTimeoutSeconds passed for a SCHEDULED attempt nobody picked up: the timeoutPolicy."""
    run = _current(store, deadline, TaskStatus.SCHEDULED, "scheduledTime", timing)
    if run is None:
        return StepResult(Outcome.STOP)
    policy, record = run.step.policy, run.record
    # Conductor's elapsed time: from scheduledTime plus the start delay (not the retry delay)
    elapsed = (
        now_ms() - record["scheduledTime"] - int(record.get("startDelayInSeconds") or 0) * 1000
    ) // 1000
    reason = (
        f"Task poll timed out after {elapsed} seconds. Poll timeout configured as "
        f"{policy.poll_timeout_seconds} seconds. Timeout policy configured to {policy.timeout_policy}"
    )
    log.warning("workflow %s task %s: %s", deadline.wf, deadline.ref, reason)
    if policy.timeout_policy == "ALERT_ONLY":
        return StepResult(Outcome.STOP)
    return _after_failure(run, TaskStatus.TIMED_OUT, reason)


def total_timed_out(store: StateStore, deadline: Deadline, timing: Timing) -> StepResult:
    """totalTimeoutSeconds passed while the task still has an attempt to finish: the timeoutPolicy."""
    run = _load_attempt(store, deadline.wf, deadline.ref, None, timing)
    if isinstance(run, StepResult) or TaskStatus(run.record["status"]).terminal:
        return StepResult(Outcome.STOP)
    if _first_scheduled(run) != deadline.token:
        return StepResult(Outcome.STOP)
    reason = total_timeout_reason(run)
    log.warning("workflow %s: %s", deadline.wf, reason)
    if run.step.policy.timeout_policy == "ALERT_ONLY":
        return StepResult(Outcome.STOP)
    return _after_failure(run, TaskStatus.TIMED_OUT, reason, budget_spent=True)


def workflow_timed_out(store: StateStore, deadline: Deadline) -> Transition | None:
    """The workflow's timeoutSeconds passed: TIME_OUT_WF ends it TIMED_OUT and cancels its tasks
    (the stored transition is returned: revoke and stop what it says), ALERT_ONLY logs it."""
    for _ in range(MAX_CONFLICTS):
        snap = store.snapshot(deadline.wf)
        workflow = snap.workflow
        plan = plan_of(store, workflow) if workflow is not None else None
        if plan is None or workflow is None or WorkflowStatus(workflow["status"]).terminal:
            return None
        if workflow.get("createTime") is None or timeout_base(workflow) != deadline.token:
            return None
        elapsed = (now_ms() - deadline.token) // 1000
        reason = (
            f"Workflow timed out after {elapsed} seconds. Timeout configured as {plan.timeout_seconds} "
            f"seconds. Timeout policy configured to {plan.timeout_policy}"
        )
        if plan.timeout_policy != "TIME_OUT_WF":
            log.warning("workflow %s (%s): %s", deadline.wf, plan.name, reason)
            return None
        transition = end(plan, workflow, store.tasks(deadline.wf), WorkflowStatus.TIMED_OUT, reason)
        saved = store.apply(deadline.wf, transition.change, rev=int(workflow.get("_rev") or 0))
        if saved.applied:
            log.warning("workflow %s (%s): %s", deadline.wf, plan.name, reason)
            log_end(True, plan, deadline.wf, transition.change.finish or {})
            return transition
        if not saved.conflict:
            return None
    return None
