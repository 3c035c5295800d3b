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

from translator.celery_app import STEP_TASK, TIMED_OUT_TASK
from translator.plan import Plan, Step

DRY_RUN_WORKFLOW_ID = "<workflowId>"


HARD_TIMEOUT_GRACE = 30  # seconds between the soft and the hard time limit of a step


def step_options(step: Step, wf_id: str, queue: str, grace: int = HARD_TIMEOUT_GRACE) -> dict[str, Any]:
    """Celery options of a step: names for Flower, queue, countdown (startDelay), time limits."""
    options: dict[str, Any] = {
        "shadow": step.name,
        "queue": queue,
        "kwargsrepr": f"wf={wf_id} ref={step.ref}",
        "argsrepr": "()",
    }
    policy = step.policy
    if policy.start_delay > 0:
        options["countdown"] = policy.start_delay
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


def compile_plan(plan: Plan, wf_id: str, app: Celery) -> Signature:
    """The canvas that runs ``plan`` as execution ``wf_id``."""
    per_task = bool(app.conf.get("translator_queue_per_task"))
    links: list[Signature] = []
    for step in plan.steps():
        signature = app.signature(STEP_TASK, kwargs={"wf": wf_id, "ref": step.ref}, immutable=True)
        queue = queue_for(step, app.conf.task_default_queue, per_task)
        grace = int(app.conf.get("translator_hard_timeout_grace") or HARD_TIMEOUT_GRACE)
        options = step_options(step, wf_id, queue, grace)
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
