"""``/api/tasks``: ending a task from outside (Conductor's TaskResource, the part a Celery pool needs:
workers are Celery's, so there is no polling)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from translator.api.common import (
    ANY_OBJECT_SCHEMA,
    Body,
    Svc,
    json_body,
    parse_json,
    require,
)
from translator.api.errors import ERROR_RESPONSES
from translator.errors import TaskNotPending, UsageError
from translator.runtime.complete import OUTSIDE_STATUSES, complete_task

router = APIRouter(prefix="/tasks", tags=["tasks"], responses=ERROR_RESPONSES)


@router.post(
    "/{workflowId}/{taskRefName}/{status}",
    summary="End the pending task of a reference (HUMAN, WAIT, asyncComplete) with a status and output",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "the task id"}
    },
    openapi_extra=json_body(ANY_OBJECT_SCHEMA, "the task's output", required=False),
)
def update_task(
    svc: Svc,
    workflowId: str,
    taskRefName: str,
    status: str,
    body: Body,
    workerid: Annotated[str | None, Query()] = None,
) -> PlainTextResponse:
    allowed = {s.value for s in OUTSIDE_STATUSES}
    if status not in allowed:
        raise UsageError(f"a task can be ended from outside as {', '.join(sorted(allowed))}, not {status!r}")
    output = require(parse_json(body, default={}), dict, "the task output")
    session = svc.session
    try:
        record = complete_task(session.app, session.store, workflowId, taskRefName, status, output)
    except TaskNotPending:
        return PlainTextResponse("")  # Conductor: nothing pending, an empty 200
    return PlainTextResponse(record.get("taskId", ""))
