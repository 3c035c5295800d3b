"""The sweeper: acts on the deadlines the runtime registers in the state store.

Every worker's main process (and an embedded run) runs one sweeper thread. Each pass claims the
deadlines that are due (``StateStore.claim_due``: one claimant each; one that is not marked done
comes back after a lease, so a sweeper that dies loses nothing) and handles them:

* ``response``: an attempt IN_PROGRESS for longer than responseTimeoutSeconds (its worker hangs or
  died and the broker did not give the message back) is TIMED_OUT and retried per its retry policy;
* ``timeout``: an attempt of an embedded run (threads, which cannot be stopped) still IN_PROGRESS
  after timeoutSeconds is timed out per its timeoutPolicy (on a prefork pool time limits do it);
* ``poll``: an attempt SCHEDULED and not picked up within pollTimeoutSeconds is timed out per its
  timeoutPolicy;
* ``total``: a task still running when its totalTimeoutSeconds is spent is timed out per policy;
* ``workflow``: the workflow's timeoutSeconds (TIME_OUT_WF: TIMED_OUT, its tasks canceled and
  running ones revoked; ALERT_ONLY: logged);
* ``wake``: an attempt whose delay was too long for a broker countdown is sent now (a retried WAIT
  starts waiting);
* ``wait``: a WAIT whose time has passed is completed;
* ``wait_timeout`` / ``wait_response``: a WAIT / HUMAN still waiting after its TaskDef's
  timeoutSeconds (a HUMAN: responseTimeoutSeconds) is TIMED_OUT, then retried or failed as any task;
* ``failure``: a failureWorkflow its workflow's ender did not start is started;
* ``child``: a SUB_WORKFLOW / START_WORKFLOW's workflow its decider did not start is started;
* ``parent``: an ended sub-workflow its ender did not report is reported to its parent's task.

Every handler checks the record it was set for is unchanged (same status and token), so stale
deadlines do nothing. While a workflow is PAUSED its task timeouts (``response``, ``timeout``, ``poll``,
``total``, ``wait_timeout``, ``wait_response``) wait: Conductor checks them only when it decides, which
it does not for a paused workflow; they are looked at again every sweep interval and act once it is
resumed. The workflow's own timeout still applies, as in Conductor.
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import Celery

from translator.definitions.tasktypes import WAIT_TYPES
from translator.engine.compiler import hard_timeout_grace, resend_after, timing_of
from translator.engine.deadlines import TIMEOUTS_BY_DEADLINE
from translator.engine.decide import attempt_id, child_start, step_of
from translator.runtime import step as runtime
from translator.runtime.complete import wait_over, wait_timed_out, wait_wake
from translator.runtime.dispatch import (
    follow,
    follow_up,
    notify_parent,
    resend,
    start_child,
    start_failure_workflow,
)
from translator.runtime.limits import Limiter
from translator.runtime.step import Outcome, StepResult
from translator.status import WorkflowStatus
from translator.store.records import plan_of
from translator.store.state import Deadline, StateStore, now_ms

log = logging.getLogger("translator.runtime.sweeper")

DEFAULT_INTERVAL = 1.0
BATCH = 100
TASK_TIMEOUTS = frozenset({"response", "timeout", "poll", "total", "wait_timeout", "wait_response"})


class Sweeper:
    """A thread that handles due deadlines every ``interval`` seconds."""

    def __init__(
        self,
        app: Celery,
        store: StateStore,
        interval: float = DEFAULT_INTERVAL,
        limiter: Limiter | None = None,
    ) -> None:
        self.app, self.store, self.interval, self.limiter = app, store, interval, limiter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="translator-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Sweeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                while self.sweep() >= BATCH and not self._stop.is_set():
                    pass
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("sweeper: state store unreachable (%s); trying again", exc)
            except Exception:
                log.exception("sweeper pass failed")

    def sweep(self, now: int | None = None) -> int:
        """Handle the deadlines due by ``now``; returns how many were claimed."""
        due = self.store.claim_due(now if now is not None else now_ms(), BATCH)
        for deadline in due:
            try:
                again = self.handle(deadline)
            except (redis.ConnectionError, redis.TimeoutError):
                raise  # the lease brings it back
            except Exception:
                log.exception("sweeper: %s failed; it comes back after its lease", deadline)
                continue
            if again is None:
                self.store.done([deadline])
            else:
                self.store.add_deadlines([(deadline, now_ms() + int(again * 1000))])
        return len(due)

    def handle(self, deadline: Deadline) -> float | None:
        """Act on one due deadline; returns seconds after which to look at it again, if any."""
        timing = timing_of(self.app)
        if deadline.kind in TASK_TIMEOUTS and self.store.status(deadline.wf) is WorkflowStatus.PAUSED:
            return self.interval  # DeciderService.decide checks no task timeout of a paused workflow
        if deadline.kind == "response":
            # timeoutSeconds takes precedence: by time limits (and their grace), or by deadline
            grace = 0 if self.app.conf.get(TIMEOUTS_BY_DEADLINE) else hard_timeout_grace(self.app)
            result = runtime.response_timed_out(self.store, deadline, timing, grace)
            if result.outcome is Outcome.DEFER:
                return result.countdown
            self._follow(deadline, result, release_slot=result.task_id is not None)
        elif deadline.kind == "timeout":
            result = runtime.task_timed_out(self.store, deadline, timing)
            self._follow(deadline, result, release_slot=result.task_id is not None)
        elif deadline.kind == "poll":
            self._follow(deadline, runtime.poll_timed_out(self.store, deadline, timing))
        elif deadline.kind == "total":
            self._follow(deadline, runtime.total_timed_out(self.store, deadline, timing))
        elif deadline.kind == "wake":
            return self._wake(deadline)
        elif deadline.kind == "workflow":
            transition = runtime.workflow_timed_out(self.store, deadline)
            plan = plan_of(self.store, self.store.workflow_fields(deadline.wf) or {})
            if transition is not None and plan is not None:
                follow_up(self.app, self.store, plan, deadline.wf, transition)
        elif deadline.kind == "failure":
            start_failure_workflow(self.app, self.store, deadline.wf)
        elif deadline.kind == "parent":
            notify_parent(self.app, self.store, deadline.wf)
        elif deadline.kind == "child":
            self._start_child(deadline)
        elif deadline.kind == "wait":
            wait_over(self.app, self.store, deadline.wf, deadline.ref, deadline.token)
        elif deadline.kind in ("wait_timeout", "wait_response"):
            wait_timed_out(self.app, self.store, deadline)
        else:
            log.warning("sweeper: unknown deadline kind %r dropped", deadline.kind)
        return None

    def _follow(self, deadline: Deadline, result: StepResult, release_slot: bool = False) -> None:
        """Carry the workflow on; ``release_slot``: the attempt was timed out while it may still run,
        so it gives back its concurrentExecLimit slot (its lease renewals only extend a held slot)."""
        if result.outcome is Outcome.STOP and result.ended is None and not release_slot:
            return
        fields = self.store.workflow_fields(deadline.wf)
        plan = plan_of(self.store, fields) if fields is not None else None
        if plan is None:
            return
        task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)
        snap = self.store.snapshot(deadline.wf, [task_id])
        record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
        if release_slot and self.limiter is not None and record is not None:
            policy = step_of(plan, record).policy
            if policy.concurrent_exec_limit > 0:
                self.limiter.release(policy.task_def_name, task_id)
        follow(self.app, self.store, plan, deadline.wf, result)

    def _wake(self, deadline: Deadline) -> float | None:
        """Send an attempt that still waits (SCHEDULED, same scheduledTime): parked, or its message
        lost in transit. Returns when to look again (that message may be lost too)."""
        task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)
        snap = self.store.snapshot(deadline.wf, [task_id])
        plan = plan_of(self.store, snap.workflow) if snap.workflow is not None else None
        if plan is None or snap.workflow is None or snap.workflow["status"] != "RUNNING":
            return None
        record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
        if record is None or record["status"] != "SCHEDULED" or record["scheduledTime"] != deadline.token:
            return None
        if record["taskType"] in WAIT_TYPES:  # a retried WAIT whose delay is over: no message, it waits
            wait_wake(self.app, self.store, deadline)
            return None
        resend(self.app, self.store, plan, deadline.wf, record)
        return resend_after(self.app)

    def _start_child(self, deadline: Deadline) -> None:
        """Start the workflow of a SUB_WORKFLOW / START_WORKFLOW task whose decider died first."""
        task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)
        snap = self.store.snapshot(deadline.wf, [task_id])
        plan = plan_of(self.store, snap.workflow) if snap.workflow is not None else None
        record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
        if plan is None or snap.workflow is None or record is None:
            return
        if record["taskType"] == "SUB_WORKFLOW" and record["status"] != "IN_PROGRESS":
            return
        child = child_start(plan, snap.workflow, record)
        if child is not None:
            start_child(self.app, self.store, deadline.wf, child)
