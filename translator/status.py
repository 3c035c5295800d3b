"""Conductor's task and workflow statuses (reference §6.1, §6.2)."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    FAILED_WITH_TERMINAL_ERROR = "FAILED_WITH_TERMINAL_ERROR"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS)

    @property
    def successful(self) -> bool:
        return self not in (
            TaskStatus.FAILED,
            TaskStatus.FAILED_WITH_TERMINAL_ERROR,
            TaskStatus.TIMED_OUT,
            TaskStatus.CANCELED,
        )

    @property
    def retriable(self) -> bool:
        return self not in (
            TaskStatus.FAILED_WITH_TERMINAL_ERROR,
            TaskStatus.CANCELED,
            TaskStatus.SKIPPED,
        )


class WorkflowStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    TERMINATED = "TERMINATED"
    PAUSED = "PAUSED"

    @property
    def terminal(self) -> bool:
        return self not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)

    @property
    def successful(self) -> bool:
        return self in (WorkflowStatus.COMPLETED, WorkflowStatus.PAUSED, WorkflowStatus.RUNNING)


def workflow_status_for_failed_task(status: TaskStatus) -> WorkflowStatus:
    """The status a workflow ends with when a task fails for good (DeciderService)."""
    if status is TaskStatus.CANCELED:
        return WorkflowStatus.TERMINATED
    if status is TaskStatus.TIMED_OUT:
        return WorkflowStatus.TIMED_OUT
    return WorkflowStatus.FAILED
