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
* ``wake``: an attempt whose delay was too long for a broker countdown is sent now;
* ``failure``: a failureWorkflow its workflow's ender did not start is started.

Every handler checks the record it was set for is unchanged (same status and token), so stale
deadlines do nothing.
"""

from __future__ import annotations

import logging
import threading

import redis
from celery import Celery

from translator import runtime
from translator.compiler import hard_timeout_grace, park_after, resend_after
from translator.deadlines import TIMEOUTS_BY_DEADLINE
from translator.dispatch import follow, send_from, start_failure_workflow
from translator.limits import Limiter
from translator.records import attempt_id, plan_of
from translator.runtime import Outcome, StepResult
from translator.state import Deadline, StateStore, now_ms

log = logging.getLogger("translator.sweeper")

DEFAULT_INTERVAL = 1.0
BATCH = 100


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
        park, resend = park_after(self.app), resend_after(self.app)
        if deadline.kind == "response":
            # timeoutSeconds takes precedence: by time limits (and their grace), or by deadline
            grace = 0 if self.app.conf.get(TIMEOUTS_BY_DEADLINE) else hard_timeout_grace(self.app)
            result = runtime.response_timed_out(self.store, deadline, park, grace, resend)
            if result.outcome is Outcome.DEFER:
                return result.countdown
            self._follow(deadline, result, release_slot=result.task_id is not None)
        elif deadline.kind == "timeout":
            result = runtime.task_timed_out(self.store, deadline, park, resend)
            self._follow(deadline, result, release_slot=result.task_id is not None)
        elif deadline.kind == "poll":
            self._follow(deadline, runtime.poll_timed_out(self.store, deadline, park, resend))
        elif deadline.kind == "total":
            self._follow(deadline, runtime.total_timed_out(self.store, deadline, park, resend))
        elif deadline.kind == "wake":
            return self._wake(deadline)
        elif deadline.kind == "workflow":
            timed_out = runtime.workflow_timed_out(self.store, deadline)
            if timed_out.ended:
                self._revoke(timed_out.running)
                start_failure_workflow(self.app, self.store, deadline.wf)
        elif deadline.kind == "failure":
            start_failure_workflow(self.app, self.store, deadline.wf)
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
        policy = plan.step(deadline.ref).policy
        if release_slot and self.limiter is not None and policy.concurrent_exec_limit > 0:
            task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)
            self.limiter.release(policy.task_def_name, task_id)
        follow(self.app, self.store, plan, deadline.wf, deadline.ref, result)

    def _wake(self, deadline: Deadline) -> float | None:
        """Send an attempt that still waits (SCHEDULED, same scheduledTime): parked, or its message
        lost in transit. Returns when to look again (that message may be lost too)."""
        snap = self.store.snapshot(deadline.wf)
        plan = plan_of(self.store, snap.workflow) if snap.workflow is not None else None
        if plan is None or snap.workflow is None or snap.workflow["status"] != "RUNNING":
            return None
        task_id = attempt_id(deadline.wf, deadline.ref, deadline.attempt)
        record = next((t for t in snap.tasks if t["taskId"] == task_id), None)
        if record is None or record["status"] != "SCHEDULED" or record["scheduledTime"] != deadline.token:
            return None
        send_from(self.app, plan, deadline.wf, deadline.ref, deadline.attempt, countdown=0)
        return resend_after(self.app)

    def _revoke(self, celery_ids: list[str]) -> None:
        """Stop the attempts a workflow timeout canceled while they ran (prefork pools)."""
        if celery_ids:
            try:
                self.app.control.revoke(celery_ids, terminate=True, signal="SIGTERM")
            except Exception:
                log.warning("sweeper: could not revoke %s", celery_ids, exc_info=True)
