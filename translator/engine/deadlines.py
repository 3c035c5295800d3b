"""Deadlines: what the sweeper (:mod:`translator.runtime.sweeper`) acts on.

Each is registered in the state store by the write that creates its reason (an attempt scheduled,
started, a workflow created or ended) and dropped by the write that ends it. A deadline names the
record it was set for by a token (its scheduledTime, startTime or createTime), so a handler finds a
changed record and does nothing.

Kinds of a WAIT / HUMAN attempt: ``wait`` (its time passes), ``wait_timeout`` (its TaskDef's
timeoutSeconds), ``wait_response`` (a HUMAN's responseTimeoutSeconds), ``wake`` (a retry whose
delay is over starts waiting).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from translator.engine.plan import Plan, Policy, Step, Wait
from translator.store.state import Deadline, Due

DEFAULT_PARK_AFTER = 300  # seconds: longer delays wait in the store, not in the broker (see wake)
# A Celery app setting, true when its pool cannot stop a step (an embedded run's threads): the
# steps then register a ``timeout`` deadline for timeoutSeconds instead of relying on time limits.
TIMEOUTS_BY_DEADLINE = "translator_timeout_deadlines"


def parks(record: Mapping[str, Any], park_after: float) -> bool:
    """A SCHEDULED attempt whose delay is too long for a broker countdown: it waits for its wake."""
    return int(record.get("callbackAfterSeconds") or 0) > park_after


def due_ms(record: Mapping[str, Any]) -> int:
    """When a SCHEDULED attempt is due to run (after its startDelay or retry delay)."""
    return int(record["scheduledTime"]) + int(record.get("callbackAfterSeconds") or 0) * 1000


def _deadline(kind: str, record: Mapping[str, Any], token: int) -> Deadline:
    return Deadline(
        kind, record["workflowInstanceId"], record["referenceTaskName"], record["retryCount"], token
    )


def _response_due(kind: str, record: Mapping[str, Any], policy: Policy) -> Due | None:
    """responseTimeoutSeconds (+ callbackAfterSeconds) after an attempt started (a deadline of ``kind``)."""
    seconds = policy.response_timeout_seconds
    if seconds <= 0 or not record.get("startTime"):
        return None
    token = int(record["startTime"])
    grace = seconds + int(record.get("callbackAfterSeconds") or 0)
    return _deadline(kind, record, token), token + grace * 1000


def _timeout_due(kind: str, record: Mapping[str, Any], policy: Policy) -> Due | None:
    """timeoutSeconds after an attempt started, plus its startDelay, as Conductor measures it (a
    deadline of ``kind``). None for ALERT_ONLY, which only logs an attempt that overran."""
    if policy.timeout_seconds <= 0 or policy.timeout_policy == "ALERT_ONLY" or not record.get("startTime"):
        return None
    token = int(record["startTime"])
    after = policy.timeout_seconds + int(record.get("startDelayInSeconds") or 0)
    return _deadline(kind, record, token), token + after * 1000


def response_deadline(record: Mapping[str, Any], step: Step) -> Due | None:
    """responseTimeoutSeconds (+ callbackAfterSeconds) after an attempt started: unresponsive."""
    return _response_due("response", record, step.policy)


def timeout_deadline(record: Mapping[str, Any], step: Step) -> Due | None:
    """timeoutSeconds after an attempt started (plus its startDelay, as Conductor measures it):
    how an embedded run enforces it, its threads being impossible to stop (a worker pool's time
    limits do it there). None for ALERT_ONLY, which only logs an attempt that overran."""
    return _timeout_due("timeout", record, step.policy)


def poll_deadline(record: Mapping[str, Any], step: Step) -> Due | None:
    """pollTimeoutSeconds after a SCHEDULED attempt is due: never picked up."""
    seconds = step.policy.poll_timeout_seconds
    if not seconds:
        return None
    return _deadline("poll", record, int(record["scheduledTime"])), due_ms(record) + seconds * 1000


def total_deadline(record: Mapping[str, Any], step: Step) -> Due | None:
    """totalTimeoutSeconds after the first attempt was scheduled (set with attempt 0)."""
    seconds = step.policy.total_timeout_seconds
    if seconds <= 0 or record["retryCount"] != 0:
        return None
    token = int(record["scheduledTime"])
    return _deadline("total", record, token), token + seconds * 1000


def wake_deadline(record: Mapping[str, Any], resend_after: float = 0) -> Due:
    """Send a parked attempt when it is due; or, ``resend_after`` seconds after it is due, send again
    an attempt whose message was lost (kombu's Redis transport pops a message before it records it
    as taken: a worker or Redis dying in between loses it). A claim drops it."""
    return _deadline("wake", record, int(record["scheduledTime"])), due_ms(record) + int(resend_after * 1000)


def workflow_deadline(workflow: Mapping[str, Any], plan: Plan) -> Due | None:
    if plan.timeout_seconds <= 0:
        return None
    token = timeout_base(workflow)
    return Deadline("workflow", workflow["workflowId"], token=token), token + plan.timeout_seconds * 1000


def timeout_base(workflow: Mapping[str, Any]) -> int:
    """Where a workflow's timeoutSeconds counts from: its last retry or resume, else its creation
    (DeciderService.checkWorkflowTimeout)."""
    return int(workflow.get("lastRetriedTime") or 0) or int(workflow["createTime"])


def failure_deadline(wf_id: str) -> Deadline:
    return Deadline("failure", wf_id)


def scheduling_deadlines(
    record: Mapping[str, Any] | None, step: Step | None, park_after: float, resend_after: float | None = None
) -> list[Due]:
    """The deadlines of a new SCHEDULED attempt: poll, total (first attempt), wake (a long delay; or,
    with ``resend_after``, a message lost in transit)."""
    if record is None or step is None:
        return []
    found = [d for d in (poll_deadline(record, step), total_deadline(record, step)) if d is not None]
    if parks(record, park_after):
        found.append(wake_deadline(record))
    elif resend_after:
        found.append(wake_deadline(record, resend_after))
    return found


def waiting_deadlines(record: Mapping[str, Any], step: Step) -> list[Deadline]:
    """The deadlines a SCHEDULED attempt may have (poll, wake), dropped when it is claimed."""
    found = [wake_deadline(record)[0]]
    if step.policy.poll_timeout_seconds:
        found.append(_deadline("poll", record, int(record["scheduledTime"])))
    return found


def attempt_deadlines(record: Mapping[str, Any], step: Step) -> list[Deadline]:
    """Every per-attempt deadline ``record`` may have registered (dropped when the attempt ends)."""
    found = waiting_deadlines(record, step)
    for running in (response_deadline(record, step), timeout_deadline(record, step)):
        if running is not None:
            found.append(running[0])
    return found


FOLLOW_UP_GRACE_MS = 30_000  # the sweeper does what a write's author should have done after it by then


def child_deadline(record: Mapping[str, Any]) -> Due:
    """Start the workflow a SUB_WORKFLOW / START_WORKFLOW task names, if its decider could not
    (dropped once it is started)."""
    token = int(record["scheduledTime"])
    return _deadline("child", record, token), token + FOLLOW_UP_GRACE_MS


def wait_deadline(record: Mapping[str, Any], until_ms: int) -> Due:
    """A WAIT task's time passes: the sweeper completes it (if it is still waiting)."""
    return _deadline("wait", record, int(record["scheduledTime"])), until_ms


def wait_timeout_deadline(record: Mapping[str, Any], node: Wait) -> Due | None:
    """A WAIT / HUMAN attempt's TaskDef timeoutSeconds after it started (plus its startDelay), as
    DeciderService.checkTaskTimeout measures every task with a definition. None for ALERT_ONLY, which
    only logs it."""
    return _timeout_due("wait_timeout", record, node.policy)


def wait_response_deadline(record: Mapping[str, Any], node: Wait) -> Due | None:
    """A HUMAN attempt's responseTimeoutSeconds (+ callbackAfterSeconds) after it started, as
    DeciderService.isResponseTimedOut finds it (nothing updates a HUMAN task meanwhile). None for a
    WAIT: Conductor's system task executor updates a waiting WAIT at every evaluation, always before
    responseTimeoutSeconds + callbackAfterSeconds have passed, so it never times out that way."""
    if node.type != "HUMAN":
        return None
    return _response_due("wait_response", record, node.policy)


def waiting_started(record: Mapping[str, Any], node: Wait) -> list[Due]:
    """The deadlines of a WAIT / HUMAN attempt that became IN_PROGRESS: its time (``waitTimeout``,
    at the soonest now) and its timeouts."""
    found: list[Due] = []
    if record.get("waitTimeout"):
        found.append(wait_deadline(record, int(record["waitTimeout"])))
    for due in (wait_timeout_deadline(record, node), wait_response_deadline(record, node)):
        if due is not None:
            found.append(due)
    return found


def wait_deadlines(record: Mapping[str, Any], node: Wait) -> list[Deadline]:
    """Every deadline a WAIT / HUMAN attempt may have registered (dropped when it ends): its wake (a
    retry waiting for its delay), its time and its timeouts."""
    return [wake_deadline(record)[0]] + [due[0] for due in waiting_started(record, node)]


def parent_deadline(wf_id: str) -> Deadline:
    return Deadline("parent", wf_id)


def ended_deadlines(
    workflow: Mapping[str, Any], finish: Mapping[str, Any], has_failure_workflow: bool
) -> list[Due]:
    """What an ending write registers so its follow-ups happen even if its author dies: start the
    failureWorkflow; report the end to the parent workflow's SUB_WORKFLOW task."""
    from translator.store.state import now_ms

    found: list[Due] = []
    due = now_ms() + FOLLOW_UP_GRACE_MS
    if has_failure_workflow and finish.get("status") in ("FAILED", "TIMED_OUT", "TERMINATED"):
        found.append((failure_deadline(workflow["workflowId"]), due))
    if workflow.get("parentWorkflowId"):
        found.append((parent_deadline(workflow["workflowId"]), due))
    return found
