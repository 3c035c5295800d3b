"""Conductor's task types and the ones translator can run today."""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    SIMPLE = "SIMPLE"
    DYNAMIC = "DYNAMIC"
    FORK_JOIN = "FORK_JOIN"
    FORK_JOIN_DYNAMIC = "FORK_JOIN_DYNAMIC"
    DECISION = "DECISION"
    SWITCH = "SWITCH"
    JOIN = "JOIN"
    DO_WHILE = "DO_WHILE"
    SUB_WORKFLOW = "SUB_WORKFLOW"
    START_WORKFLOW = "START_WORKFLOW"
    EVENT = "EVENT"
    WAIT = "WAIT"
    HUMAN = "HUMAN"
    USER_DEFINED = "USER_DEFINED"
    HTTP = "HTTP"
    LAMBDA = "LAMBDA"
    INLINE = "INLINE"
    EXCLUSIVE_JOIN = "EXCLUSIVE_JOIN"
    TERMINATE = "TERMINATE"
    KAFKA_PUBLISH = "KAFKA_PUBLISH"
    JSON_JQ_TRANSFORM = "JSON_JQ_TRANSFORM"
    SET_VARIABLE = "SET_VARIABLE"
    NOOP = "NOOP"


KNOWN_TYPES = frozenset(t.value for t in TaskType)

# Types whose semantics the runtime implements. The validator reports every other known type as an
# explicit "unsupported" error, so that nothing is ever run approximately.
SUPPORTED_TYPES = frozenset(
    t.value
    for t in (
        TaskType.SIMPLE,
        TaskType.SWITCH,
        TaskType.DECISION,
        TaskType.FORK_JOIN,
        TaskType.JOIN,
        TaskType.FORK_JOIN_DYNAMIC,
        TaskType.EXCLUSIVE_JOIN,
        TaskType.DO_WHILE,
        TaskType.TERMINATE,
        TaskType.DYNAMIC,
        TaskType.SUB_WORKFLOW,
        TaskType.START_WORKFLOW,
        TaskType.INLINE,
        TaskType.LAMBDA,
        TaskType.JSON_JQ_TRANSFORM,
        TaskType.SET_VARIABLE,
        TaskType.NOOP,
        TaskType.WAIT,
        TaskType.HUMAN,
        TaskType.HTTP,
        TaskType.EVENT,
    )
)

# Run inside the decision that reaches them (``engine.system``), as Conductor runs them in its decider.
SYNC_SYSTEM_TYPES = frozenset(
    t.value
    for t in (
        TaskType.INLINE,
        TaskType.LAMBDA,
        TaskType.JSON_JQ_TRANSFORM,
        TaskType.SET_VARIABLE,
        TaskType.NOOP,
    )
)
# IN_PROGRESS with no message in flight, until their time passes or they are completed from outside.
WAIT_TYPES = frozenset(t.value for t in (TaskType.WAIT, TaskType.HUMAN))
# Run by a built-in worker function (``runtime.system_workers``) on the worker pool.
WORKER_SYSTEM_TYPES = frozenset(t.value for t in (TaskType.HTTP, TaskType.EVENT))
