"""Plan -> Celery canvas: a chain of ``translator.step`` signatures (the last one completes the workflow).

Every signature is immutable (no result passing: data flows through the state store by reference)
and carries the Conductor task name as ``shadow`` (what Flower and logs show), ``kwargsrepr``
``wf=<workflowId> ref=<taskRef>`` (searchable in Flower), its queue, and the Celery options that
realise its policy (``countdown`` for ``startDelay``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature

from translator.deadlines import DEFAULT_PARK_AFTER
from translator.plan import Plan, Step, message_expiry

DRY_RUN_WORKFLOW_ID = "<workflowId>"
STEP_TASK = "translator.step"  # one attempt of one task (translator.celery_app)
TIMED_OUT_TASK = "translator.step_timed_out"  # errback of a step killed at its hard time limit


HARD_TIMEOUT_GRACE = 30  # seconds between the soft and the hard time limit of a step


def step_options(
    step: Step,
    wf_id: str,
    queue: str,
    grace: int = HARD_TIMEOUT_GRACE,
    park_after: float = DEFAULT_PARK_AFTER,
    countdown: float | None = None,
) -> dict[str, Any]:
    """Celery options of a step: names for Flower, queue, countdown (startDelay, or ``countdown``),
    expiry (pollTimeoutSeconds), time limits (timeoutSeconds).

    A delay longer than ``park_after`` is not a countdown: the step parks itself in the state store
    when it arrives early, and the sweeper sends it when it is due."""
    options: dict[str, Any] = {
        "shadow": step.name,
        "queue": queue,
        "kwargsrepr": f"wf={wf_id} ref={step.ref}",
        "argsrepr": "()",
    }
    policy = step.policy
    if countdown is None:
        countdown = policy.start_delay if policy.start_delay <= park_after else 0
    if countdown > 0:
        options["countdown"] = countdown
    expires = message_expiry(step, countdown)
    if expires is not None:
        options["expires"] = expires
    if policy.timeout_seconds > 0 and policy.timeout_policy != "ALERT_ONLY":
        # The soft limit raises in the worker function (the step records TIMED_OUT); the hard limit
        # kills a step that ignores it, and the errback records TIMED_OUT from the main process.
        options["soft_time_limit"] = policy.timeout_seconds
        options["time_limit"] = policy.timeout_seconds + grace
    return options


def conductor_queue(
    task_type: str, domain: str | None, isolation_group: str | None, namespace: str | None
) -> str:
    """Conductor's queue name (QueueUtils.getQueueName): ``domain:type@namespace-isolationGroup``."""
    name = task_type if not domain else f"{domain}:{task_type}"
    if namespace:
        name = f"{name}@{namespace}"
    if isolation_group:
        name = f"{name}-{isolation_group}"
    return name


def queue_for(step: Step, default_queue: str, per_task: bool) -> str:
    """The queue of a step: Conductor's name when isolated (or when routing per task), else the default."""
    policy = step.policy
    if per_task or policy.isolation_group_id or policy.execution_name_space:
        return conductor_queue(step.name, None, policy.isolation_group_id, policy.execution_name_space)
    return default_queue


def hard_timeout_grace(app: Celery) -> int:
    """Seconds between a step's soft time limit and the hard one that kills it."""
    return int(app.conf.get("translator_hard_timeout_grace") or HARD_TIMEOUT_GRACE)


def park_after(app: Celery) -> float:
    """Delays longer than this many seconds wait in the state store instead of the broker."""
    return float(app.conf.get("translator_park_after") or DEFAULT_PARK_AFTER)


def resend_after(app: Celery) -> float | None:
    """Seconds after which a SCHEDULED attempt whose message never arrived is sent again: the Redis
    visibility timeout, after which kombu gives back a message a dead worker had taken. None for
    transports that lose nothing in transit (the embedded run's in-memory one)."""
    options = app.conf.broker_transport_options or {}
    seconds = options.get("visibility_timeout")
    return float(seconds) if seconds else None


def compile_plan(
    plan: Plan,
    wf_id: str,
    app: Celery,
    *,
    start: str | None = None,
    attempt: int = 0,
    countdown: float | None = None,
) -> Signature:
    """The canvas that runs ``plan`` as execution ``wf_id``.

    ``start``: begin at this step (a continuation), as attempt ``attempt`` after ``countdown``
    seconds (default: its startDelay)."""
    per_task = bool(app.conf.get("translator_queue_per_task"))
    grace = hard_timeout_grace(app)
    parking = park_after(app)
    steps = plan.steps()
    if start is not None:
        steps = steps[[s.ref for s in steps].index(start) :]
    links: list[Signature] = []
    for index, step in enumerate(steps):
        signature = app.signature(STEP_TASK, kwargs={"wf": wf_id, "ref": step.ref}, immutable=True)
        queue = queue_for(step, app.conf.task_default_queue, per_task)
        first = index == 0
        options = step_options(step, wf_id, queue, grace, parking, countdown if first else None)
        if first and attempt:
            options["retries"] = attempt  # the step counts attempts by Celery retries
        if "time_limit" in options:
            options["link_error"] = [app.signature(TIMED_OUT_TASK, immutable=False)]
        links.append(signature.set(**options))
    return chain(*links)


def canvas_json(plan: Plan, app: Celery, wf_id: str = DRY_RUN_WORKFLOW_ID) -> dict[str, Any]:
    """What ``translator compile --dry-run`` prints: the plan's steps and the compiled canvas."""
    canvas = compile_plan(plan, wf_id, app)
    return {
        "workflow": {"name": plan.name, "version": plan.version},
        "steps": [
            {"ref": s.ref, "name": s.name, "type": s.type, "policy": asdict(s.policy)} for s in plan.steps()
        ],
        "canvas": json.loads(json.dumps(canvas)),
    }
