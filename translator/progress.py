"""Live progress of a running workflow on stderr: a redrawn table on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _duration(task: dict[str, Any]) -> str:
    start, end = task.get("startTime") or 0, task.get("endTime") or 0
    if not start:
        return ""
    seconds = ((end or time.time() * 1000) - start) / 1000
    return f"{seconds:.1f}s"


class Progress:
    """Callable given to ``runner.wait``: shows each task's latest status."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lines_drawn = 0
        self._seen: dict[str, str] = {}

    def __call__(self, execution: dict[str, Any]) -> None:
        if self.live:
            self._redraw(execution)
        else:
            self._log_changes(execution)

    def _redraw(self, execution: dict[str, Any]) -> None:
        lines = [f"workflow {execution['workflowId']}  {execution['status']}"]
        for task in execution["tasks"]:
            attempt = f"attempt {task['retryCount'] + 1}"
            lines.append(
                f"  {task['referenceTaskName']:<32} {task['status']:<26} {attempt:<10} {_duration(task)}"
            )
        if self._lines_drawn:
            self.stream.write(f"\x1b[{self._lines_drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._lines_drawn = len(lines)

    def _log_changes(self, execution: dict[str, Any]) -> None:
        for task in execution["tasks"]:
            key = task["taskId"]
            if self._seen.get(key) == task["status"]:
                continue
            self._seen[key] = task["status"]
            reason = f": {task['reasonForIncompletion']}" if task.get("reasonForIncompletion") else ""
            self.stream.write(
                f"translator: {task['referenceTaskName']} {task['status']} "
                f"(attempt {task['retryCount'] + 1}){reason}\n"
            )
        if self._seen.get("") != execution["status"]:
            self._seen[""] = execution["status"]
            self.stream.write(f"translator: workflow {execution['workflowId']} {execution['status']}\n")
        self.stream.flush()
