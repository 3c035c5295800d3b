"""Plan -> Celery signatures: one step signature per worker task instance, named by its Conductor task
name (``translator.step`` when the app already has another task of that name).

Every signature is immutable (no result passing: data flows through the state store by reference)
and carries the Conductor task name as ``shadow`` (what Flower and logs show), ``kwargsrepr``
``wf=<workflowId> ref=<taskRef>`` (searchable in Flower), its queue, and the Celery options that
realise its policy (``countdown`` for ``startDelay``, ``expires``, time limits).

The runtime sends one signature per task instance when the decider schedules it (``dispatch``), so a
message never carries the rest of the workflow: its size and cost do not grow with the workflow.
``canvas_json`` prints the equivalent canvas for ``translator compile --dry-run``: a run of worker
tasks as a ``chain``, a fork's branches as a ``group`` of chains, and the points the decider handles
(switch, join, loop, terminate, sub-workflow...) as ``decide`` nodes. Branches are not a Celery
``group`` with a chord: a JOIN is decided by an atomic check in the store when a branch ends, so no
result backend is needed and Celery's nested group/chord issues cannot arise.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature

from translator.definitions.tasktypes import WORKER_SYSTEM_TYPES, TaskType
from translator.engine.deadlines import DEFAULT_PARK_AFTER
from translator.engine.decide import Timing
from translator.engine.plan import Fork, Join, Loop, Plan, Sequence, Step, SubWorkflow, Switch, message_expiry

DEFAULT_HTTP_QUEUE = "http"  # HTTP tasks' queue (``translator_http_queue``)
HTTP_QUEUE_SETTING = "translator_http_queue"

DRY_RUN_WORKFLOW_ID = "<workflowId>"
STEP_TASK = "translator.step"  # one attempt of one task (translator.runtime.celery_app)
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


def timing_of(app: Celery) -> Timing:
    return Timing(park_after(app), resend_after(app))


def step_signature(
    app: Celery,
    step: Step,
    wf_id: str,
    ref: str | None = None,
    attempt: int = 0,
    countdown: float | None = None,
) -> Signature:
    """The message of one attempt of a worker task (``ref``: its reference, ``ref__N`` in a loop).

    Its task name is the Conductor task name (a Celery task of every worker that has its function:
    ``celery_app.register_workers``), or ``translator.step`` when another Celery task of the app has
    that name. Its task id is the attempt's Conductor taskId: the same for every send of the attempt."""
    from translator.engine.decide import attempt_id

    ref = ref or step.ref
    kwargs: dict[str, Any] = {"wf": wf_id, "ref": ref}
    if attempt:
        kwargs["attempt"] = attempt
    registered = app.tasks.get(step.name)
    builtin = step.type in WORKER_SYSTEM_TYPES  # HTTP, EVENT: run by every worker's translator.step
    own_name = registered is None or getattr(registered, "translator_step", False)
    name = step.name if own_name and not builtin else STEP_TASK
    signature = app.signature(name, kwargs=kwargs, immutable=True)
    per_task = bool(app.conf.get("translator_queue_per_task"))
    default_queue = app.conf.task_default_queue
    if step.type == TaskType.HTTP:  # slow endpoints must not hold the slots of other tasks
        default_queue = str(app.conf.get(HTTP_QUEUE_SETTING) or DEFAULT_HTTP_QUEUE)
    queue = queue_for(step, default_queue, per_task)
    if attempt and countdown is None:
        countdown = 0  # a retry's delay is given; startDelay is the first attempt's
    options = step_options(step, wf_id, queue, hard_timeout_grace(app), park_after(app), countdown)
    options["kwargsrepr"] = f"wf={wf_id} ref={ref}"
    options["task_id"] = attempt_id(wf_id, ref, attempt)
    if "time_limit" in options:
        options["link_error"] = [app.signature(TIMED_OUT_TASK, immutable=False)]
    return signature.set(**options)


def _canvas(sequence: Sequence, wf_id: str, app: Celery) -> list[Any]:
    """The canvas of a task list: runs of worker tasks as chains, decided points in between."""
    parts: list[Any] = []
    run: list[Signature] = []

    def flush() -> None:
        if run:
            parts.append(json.loads(json.dumps(chain(*run))))
            run.clear()

    for node in sequence.nodes:
        if isinstance(node, Step):
            run.append(step_signature(app, node, wf_id))
            continue
        flush()
        described: dict[str, Any] = {"decide": node.type, "ref": node.ref}
        if isinstance(node, Fork):
            # the branches start together, as a group of chains would
            described["group"] = [_canvas(branch, wf_id, app) for branch in node.branches]
        elif isinstance(node, Switch):
            described["cases"] = {name: _canvas(tasks, wf_id, app) for name, tasks in node.cases}
            described["default"] = _canvas(node.default, wf_id, app)
        elif isinstance(node, Loop):
            described["body"] = _canvas(node.body, wf_id, app)
        elif isinstance(node, Join):
            described["joinOn"] = list(node.join_on)
        elif isinstance(node, SubWorkflow) and node.plan is not None:
            described["workflow"] = {"name": node.plan.name, "version": node.plan.version}
        parts.append(described)
    flush()
    return parts


def canvas_json(plan: Plan, app: Celery, wf_id: str = DRY_RUN_WORKFLOW_ID) -> dict[str, Any]:
    """What ``translator compile --dry-run`` prints: the plan's worker tasks and the canvas."""
    parts = _canvas(plan.root, wf_id, app)
    canvas: Any = parts[0] if len(parts) == 1 else parts
    return {
        "workflow": {"name": plan.name, "version": plan.version},
        "steps": [
            {"ref": s.ref, "name": s.name, "type": s.type, "policy": asdict(s.policy)} for s in plan.steps()
        ],
        "canvas": canvas,
    }
