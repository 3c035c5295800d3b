"""The progress display: plain lines when not on a terminal, a redrawn table on one."""

from __future__ import annotations

import io

from translator.progress import Progress


def _execution(status, tasks):
    return {"workflowId": "w", "status": status, "tasks": tasks}


def _task(status, attempt=0, reason=None):
    return {
        "taskId": f"t{attempt}",
        "referenceTaskName": "step",
        "status": status,
        "retryCount": attempt,
        "reasonForIncompletion": reason,
        "startTime": 0,
        "endTime": 0,
    }


def test_plain_lines_report_each_change_once():
    out = io.StringIO()
    progress = Progress(out, live=False)
    progress(_execution("RUNNING", [_task("SCHEDULED")]))
    progress(_execution("RUNNING", [_task("SCHEDULED")]))
    progress(_execution("RUNNING", [_task("FAILED", 0, "boom"), _task("SCHEDULED", 1)]))
    progress(_execution("FAILED", [_task("FAILED", 0, "boom"), _task("FAILED", 1, "boom")]))
    assert out.getvalue().splitlines() == [
        "translator: step SCHEDULED (attempt 1)",
        "translator: workflow w RUNNING",
        "translator: step FAILED (attempt 1): boom",
        "translator: step SCHEDULED (attempt 2)",
        "translator: step FAILED (attempt 2): boom",
        "translator: workflow w FAILED",
    ]


def test_live_table_redraws_in_place():
    out = io.StringIO()
    progress = Progress(out, live=True)
    progress(_execution("RUNNING", [_task("IN_PROGRESS")]))
    progress(_execution("COMPLETED", [_task("COMPLETED")]))
    text = out.getvalue()
    assert "\x1b[2F\x1b[J" in text  # cursor up two lines, clear, redraw
    assert text.rstrip().endswith("COMPLETED                  attempt 1")
