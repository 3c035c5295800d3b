"""Conductor's EVENT system task: publish the task's payload as a JSON message on the broker.

Conductor (``Event.java``) builds the payload from the task's input (which carries ``sink`` and
``asyncComplete``, as Conductor's mapper puts them there) plus ``workflowInstanceId``,
``workflowType``, ``workflowVersion``, ``correlationId`` and ``taskToDomain``; the task's output is
that payload plus ``event_produced`` (the event's name), and the message is the JSON of the output.

Sinks (the task's ``sink``, resolved):

* ``conductor``: event ``conductor:<workflow name>:<task reference>``;
* ``conductor:<name>``: event ``conductor:<workflow name>:<name>`` (Conductor removes every
  ``conductor:`` from the sink and prefixes the current workflow's name, so ``conductor:other_wf:q``
  names ``conductor:<workflow name>:other_wf:q``, not another workflow's queue);
* ``celery:<queue>``: event ``celery:<queue>``; the queue name is letters, digits, ``_``, ``.`` and
  ``-`` (so that it cannot name a key of the state store or of kombu in a shared Redis).

The message goes to a broker queue named after the event: ``conductor:<workflow name>:<name>`` for
the ``conductor`` sinks, ``<queue>`` for ``celery:<queue>``, declared as Celery declares its queues
(a direct exchange and routing key of the same name), so a plain kombu consumer of that queue, or a
Celery consumer step, reads it. Messages are JSON only (``application/json``, UTF-8), with the
header ``event`` (the event's name). A Celery *worker* consuming the queue would take the message
for a task, so a payload with a top-level ``task`` key (Celery's protocol 1 task message) is refused
for ``celery:`` sinks.

Other sinks (``sqs:``, ``amqp:``, ``nats:``, ``kafka:``...) raise :class:`UnsupportedSink`; a bad
sink or payload raises :class:`EventRefused` (both NonRetryableError); a broker that cannot be reached
raises :class:`translator.errors.BrokerUnavailable` (retryable).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError

from translator.errors import BrokerUnavailable, NonRetryableError
from translator.store.state import safe_url
from translator.text import shorten

EVENT_PRODUCED = "event_produced"
CONDUCTOR = "conductor"
CELERY = "celery"
CONNECT_TIMEOUT = 5.0  # seconds, for a connection made here from a URL
PUBLISH_RETRIES = 3
# A celery:<queue> name: no ':' (the state store's keys have one), not a key kombu keeps for itself.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_BROKER_KEYS = ("_kombu", "unacked")


class EventRefused(NonRetryableError):
    """The EVENT task cannot be published: its sink or payload is not acceptable."""


class UnsupportedSink(EventRefused):
    """The sink names a queue type translator does not publish to."""


@dataclass(frozen=True)
class EventTarget:
    event: str  # Conductor's event name: the task's ``event_produced``
    queue: str  # the broker queue the message goes to


def event_target(sink: object, workflow_name: str, task_ref: str) -> EventTarget:
    """Where an EVENT task with this (resolved) sink publishes (``Event.computeQueueName``)."""
    if not isinstance(sink, str) or not sink.strip():
        raise EventRefused(
            f"EVENT task {shorten(task_ref)} has no sink: give sink conductor:<name> or celery:<queue>"
        )
    if sink.startswith(CONDUCTOR):
        if sink == CONDUCTOR:
            event = f"{CONDUCTOR}:{workflow_name}:{task_ref}"
        elif sink.startswith(f"{CONDUCTOR}:"):
            event = f"{CONDUCTOR}:{workflow_name}:{sink.replace(f'{CONDUCTOR}:', '')}"
        else:
            raise UnsupportedSink(f"Invalid / Unsupported sink specified: {shorten(sink)}")
        return EventTarget(event, event)
    kind, _, name = sink.partition(":")
    if kind == CELERY:
        if not _QUEUE_NAME.fullmatch(name) or name.startswith(_BROKER_KEYS):
            raise EventRefused(
                f"sink {shorten(sink)}: the queue name must be letters, digits, '_', '.' and '-' "
                "(not one of the broker's own keys)"
            )
        return EventTarget(sink, name)
    raise UnsupportedSink(
        f"unsupported sink {shorten(sink)}: translator publishes EVENT messages to conductor, "
        "conductor:<name> and celery:<queue> on the Celery broker "
        "(sqs, amqp, nats, kafka... are not supported)"
    )


def event_payload(task_input: Mapping[str, Any], workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The task input plus the workflow's fields, as ``Event.start`` builds it."""
    payload = dict(task_input)
    payload.update(
        workflowInstanceId=workflow.get("workflowId"),
        workflowType=workflow.get("workflowName"),
        workflowVersion=workflow.get("workflowVersion"),
        correlationId=workflow.get("correlationId"),
        taskToDomain=workflow.get("taskToDomain") or {},
    )
    return payload


def publish_event(
    connection: str | Connection,
    task_input: Mapping[str, Any],
    workflow: Mapping[str, Any],
    *,
    task_ref: str,
) -> dict[str, Any]:
    """Publish an EVENT task's message; its output (the payload and ``event_produced``).

    ``connection``: a broker URL, or a kombu Connection (for instance the Celery app's
    ``connection_for_write()``, which carries its transport options); ``task_input``: the resolved
    input, with ``sink``; ``workflow``: the execution (``workflowId``, ``workflowName``,
    ``workflowVersion``, ``correlationId``, ``taskToDomain``); ``task_ref``: the task's reference name
    (the bare ``conductor`` sink names its event after it).
    """
    target = event_target(task_input.get("sink"), str(workflow.get("workflowName")), task_ref)
    output = event_payload(task_input, workflow)
    output[EVENT_PRODUCED] = target.event
    if target.event.startswith(f"{CELERY}:") and isinstance(output.get("task"), str):
        raise EventRefused(
            f"the payload for sink {shorten(target.event)} has a top-level 'task' key, which a Celery worker "
            "would run as a task message: rename that input parameter"
        )
    try:
        body = json.dumps(output, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise EventRefused(f"Error serializing JSON payload: {shorten(str(exc), quote=False)}") from None
    if isinstance(connection, str):
        with Connection(connection, connect_timeout=CONNECT_TIMEOUT) as owned:
            _publish(owned, target, body)
    else:
        _publish(connection, target, body)
    return output


def _publish(connection: Connection, target: EventTarget, body: str) -> None:
    exchange = Exchange(target.queue, type="direct")
    queue = Queue(target.queue, exchange, routing_key=target.queue)
    try:
        with connection.Producer() as producer:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=target.queue,
                declare=[queue],
                content_type="application/json",
                content_encoding="utf-8",
                headers={"event": target.event},
                retry=True,
                retry_policy={"max_retries": PUBLISH_RETRIES, "interval_start": 0.2, "interval_step": 0.5},
            )
    except (OperationalError, *connection.connection_errors, *connection.channel_errors) as exc:
        where = safe_url(connection.as_uri(include_password=True))  # the password masked
        raise BrokerUnavailable(
            f"cannot publish event {shorten(target.event)} to the broker at {where}: "
            f"{shorten(str(exc) or type(exc).__name__, quote=False)}"
        ) from None
