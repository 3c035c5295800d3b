"""The EVENT system task: Conductor's payload, output and event names, published as JSON on a real
Redis broker and read back with a plain kombu consumer; sinks translator cannot publish to fail for
good before any connection."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kombu import Connection

from tests.services import free_port
from translator.errors import BrokerUnavailable, NonRetryableError
from translator.runtime.event_task import (
    EventRefused,
    UnsupportedSink,
    event_target,
    publish_event,
)

WORKFLOW = {
    "workflowId": "wf-1",
    "workflowName": "shop",
    "workflowVersion": 2,
    "correlationId": "order-7",
    "status": "RUNNING",
    "input": {"ignored": True},
}
UNREACHABLE = "redis://127.0.0.1:1/0"  # refusals must not need (or reach) a broker


def read_message(url: str, queue: str) -> Any:
    """The next message on ``queue``, as a plain kombu consumer gets it (JSON only)."""
    with Connection(url) as connection:
        simple = connection.SimpleQueue(queue, serializer="json")
        try:
            message = simple.get(timeout=10)
            message.ack()
            return message
        finally:
            simple.close()


def test_conductor_sink_publishes_conductors_payload(redis_url):
    task_input = {
        "sink": "conductor:orders",
        "asyncComplete": False,
        "orderId": 7,
        "note": "café",
        "tags": ["a"],
    }
    output = publish_event(redis_url, task_input, WORKFLOW, task_ref="notify")
    assert output == {
        **task_input,
        "workflowInstanceId": "wf-1",
        "workflowType": "shop",
        "workflowVersion": 2,
        "correlationId": "order-7",
        "taskToDomain": {},
        "event_produced": "conductor:shop:orders",
    }
    message = read_message(redis_url, "conductor:shop:orders")
    assert message.content_type == "application/json"
    assert message.payload == output  # the message is the task's output, as Conductor publishes it
    assert message.headers["event"] == "conductor:shop:orders"


def test_bare_conductor_sink_is_named_after_the_task(redis_url):
    output = publish_event(redis_url, {"sink": "conductor"}, WORKFLOW, task_ref="notify")
    assert output["event_produced"] == "conductor:shop:notify"
    assert read_message(redis_url, "conductor:shop:notify").payload["workflowInstanceId"] == "wf-1"


def test_celery_sink_on_a_given_connection(redis_url):
    workflow = {**WORKFLOW, "correlationId": None, "taskToDomain": {"*": "blue"}}
    with Connection(redis_url) as connection:
        output = publish_event(
            connection, {"sink": "celery:billing-events", "amount": 1.5}, workflow, task_ref="bill"
        )
    assert output["event_produced"] == "celery:billing-events"
    assert (output["correlationId"], output["taskToDomain"]) == (None, {"*": "blue"})
    assert read_message(redis_url, "billing-events").payload == output


@pytest.mark.parametrize(
    ("sink", "event"),
    [
        ("conductor", "conductor:shop:notify"),
        ("conductor:q", "conductor:shop:q"),
        ("conductor:other_wf:q", "conductor:shop:other_wf:q"),  # not another workflow's queue
        ("conductor:a:conductor:b", "conductor:shop:a:b"),  # every conductor: is removed, as replaceAll
        ("celery:events", "celery:events"),
    ],
)
def test_event_names_follow_conductor(sink, event):
    target = event_target(sink, "shop", "notify")
    assert target.event == event
    assert target.queue == (event if sink.startswith("conductor") else "events")


@pytest.mark.parametrize(
    "sink", ["sqs:my_queue", "amqp:exchange", "amqp_exchange:x", "nats:subject", "kafka:topic", "sqs"]
)
def test_unsupported_sinks_fail_for_good(sink):
    with pytest.raises(
        UnsupportedSink, match=rf"^unsupported sink '{sink}': translator publishes"
    ) as refused:
        publish_event(UNREACHABLE, {"sink": sink}, WORKFLOW, task_ref="notify")
    assert isinstance(refused.value, NonRetryableError)


@pytest.mark.parametrize(
    ("task_input", "message"),
    [
        ({"sink": "conductors:q"}, "Invalid / Unsupported sink specified: 'conductors:q'"),
        ({}, "EVENT task 'notify' has no sink"),
        ({"sink": "  "}, "EVENT task 'notify' has no sink"),
        ({"sink": "celery:"}, "the queue name must be"),
        ({"sink": "celery:translator:wf:1"}, "the queue name must be"),  # a state store key
        ({"sink": "celery:_kombu.binding.celery"}, "not one of the broker's own keys"),
        ({"sink": "celery:unacked"}, "not one of the broker's own keys"),
        ({"sink": "celery:steps", "task": "translator.step"}, "would run as a task message"),
        ({"sink": "conductor:q", "ratio": float("nan")}, "Error serializing JSON payload"),
    ],
)
def test_bad_sinks_and_payloads_fail_for_good(task_input, message):
    with pytest.raises(EventRefused) as refused:
        publish_event(UNREACHABLE, task_input, WORKFLOW, task_ref="notify")
    assert message in str(refused.value)


def test_a_task_key_is_fine_on_conductor_sinks(redis_url):
    publish_event(redis_url, {"sink": "conductor:jobs", "task": "resize"}, WORKFLOW, task_ref="notify")
    assert read_message(redis_url, "conductor:shop:jobs").payload["task"] == "resize"


def test_an_unreachable_broker_is_retryable_and_the_password_is_not_shown():
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as unavailable:
        publish_event(
            f"redis://:pw-123@127.0.0.1:{free_port()}/0", {"sink": "conductor"}, WORKFLOW, task_ref="n"
        )
    assert time.monotonic() - started < 30
    message = str(unavailable.value)
    assert message.startswith(
        "cannot publish event 'conductor:shop:n' to the broker at redis://:***@127.0.0.1:"
    )
    assert "pw-123" not in message
    assert not isinstance(unavailable.value, NonRetryableError)
