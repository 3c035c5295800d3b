"""``/api/workflow``: starting workflows, reading executions and operating on them (Conductor's
WorkflowResource)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from translator.api.common import (
    ANY_OBJECT_SCHEMA,
    START_REQUEST_SCHEMA,
    Body,
    Services,
    Svc,
    json_body,
    parse_json,
    require,
)
from translator.api.errors import ERROR_RESPONSES
from translator.definitions.issues import Issue, error
from translator.definitions.loader import build_model
from translator.definitions.model import WorkflowDef
from translator.engine.plan import build_plan
from translator.errors import DefinitionError, DefinitionNotFound, UsageError, WorkflowNotFound
from translator.runner import submit
from translator.runtime import lifecycle
from translator.store import search as searching

router = APIRouter(prefix="/workflow", tags=["workflow"], responses=ERROR_RESPONSES)

_TEXT = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "the workflow id"}}
INLINE_FILE = "/workflowDef"


def _check_priority(priority: int) -> int:
    if not 0 <= priority <= 99:
        message = (
            "priority: Priority cannot be negative" if priority < 0 else "priority: Priority cannot exceed 99"
        )
        raise DefinitionError(message, [error("/priority", "range", message)])
    return priority


def _start(
    svc: Services,
    definition: WorkflowDef,
    workflow_input: dict[str, Any],
    correlation_id: str | None,
    priority: int,
    inline: bool = False,
) -> str:
    """Validate and plan ``definition`` against the registry, then start it on the pool."""
    try:
        bundle = svc.metadata.bundle(definition, "" if inline else None)
    except DefinitionError as exc:
        if not inline:
            raise
        # the inline definition's issues point into the request body
        issues = [
            Issue(INLINE_FILE + i.pointer, i.code, i.message, i.level) if not i.file else i
            for i in exc.issues
        ]
        raise DefinitionError(exc.message, issues) from None
    plan = build_plan(bundle)
    return submit(svc.session, plan, workflow_input, correlation_id=correlation_id, priority=priority)


def _registered(svc: Services, name: str, version: int | None) -> WorkflowDef:
    try:
        return svc.metadata.workflow(name, version)
    except DefinitionNotFound:
        shown = "null" if version is None else str(version)
        raise DefinitionNotFound(f"No such workflow defined. name={name}, version={shown}") from None


def _execution(svc: Services, wf_id: str, include_tasks: bool = True) -> dict[str, Any]:
    execution = svc.session.store.workflow(wf_id, include_tasks=include_tasks)
    if execution is None:
        raise WorkflowNotFound(f"No such workflow found by id: {wf_id}")
    return execution


@router.post(
    "",
    summary="Start a workflow from a StartWorkflowRequest (an inline workflowDef allowed)",
    response_class=PlainTextResponse,
    responses=_TEXT,
    openapi_extra=json_body(START_REQUEST_SCHEMA, "StartWorkflowRequest"),
)
def start_request(svc: Svc, body: Body) -> PlainTextResponse:
    request = require(parse_json(body), dict, "the request body")
    name = request.get("name")
    inline = request.get("workflowDef")
    if not isinstance(name, str) or not name:
        message = "Workflow name cannot be null or empty"
        raise DefinitionError(message, [error("/name", "required", message)])
    version = request.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise DefinitionError("invalid version", [error("/version", "type", "version must be an integer")])
    correlation_id = request.get("correlationId")
    if correlation_id is not None and not isinstance(correlation_id, str):
        message = "correlationId must be a string"
        raise DefinitionError(message, [error("/correlationId", "type", message)])
    priority = request.get("priority") or 0
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise DefinitionError("invalid priority", [error("/priority", "type", "priority must be an integer")])
    workflow_input = request.get("input") or {}
    if not isinstance(workflow_input, dict):
        raise DefinitionError("invalid input", [error("/input", "type", "input must be a JSON object")])
    _check_priority(priority)
    if inline is not None:
        definition, issues = build_model(WorkflowDef, inline, INLINE_FILE)
        if definition is None or issues:
            raise DefinitionError("invalid workflowDef", issues)
        wf_id = _start(svc, definition, workflow_input, correlation_id, priority, inline=True)
    else:
        definition = _registered(svc, name, version)
        wf_id = _start(svc, definition, workflow_input, correlation_id, priority)
    return PlainTextResponse(wf_id)


@router.get("/search", summary="Search executions (Conductor's query and freeText)")
def search(
    svc: Svc,
    query: Annotated[str | None, Query()] = None,
    freeText: Annotated[str, Query()] = "*",
    start: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=0, le=1000)] = 100,
    sort: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    return searching.search(
        svc.session.store, query=query, free_text=freeText, start=start, size=size, sort=sort
    )


@router.get("/running/{name}", summary="The ids of the running executions of a workflow")
def running(svc: Svc, name: str, version: Annotated[int | None, Query()] = None) -> list[str]:
    return searching.running(svc.session.store, name, version)


@router.post(
    "/{name}",
    summary="Start a workflow by name; the body is its input",
    response_class=PlainTextResponse,
    responses=_TEXT,
    openapi_extra=json_body(ANY_OBJECT_SCHEMA, "the workflow input", required=False),
)
def start(
    svc: Svc,
    name: str,
    body: Body,
    version: Annotated[int | None, Query()] = None,
    correlationId: Annotated[str | None, Query()] = None,
    priority: Annotated[int, Query()] = 0,
) -> PlainTextResponse:
    workflow_input = require(parse_json(body, default={}), dict, "the workflow input")
    _check_priority(priority)
    definition = _registered(svc, name, version)
    return PlainTextResponse(_start(svc, definition, workflow_input, correlationId, priority))


@router.get("/{workflowId}", summary="An execution, in Conductor's Workflow shape")
def get_execution(svc: Svc, workflowId: str, includeTasks: Annotated[bool, Query()] = True) -> dict[str, Any]:
    return _execution(svc, workflowId, includeTasks)


@router.get("/{workflowId}/status", summary="An execution's status summary")
def status(
    svc: Svc,
    workflowId: str,
    includeOutput: Annotated[bool, Query()] = False,
    includeVariables: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    execution = _execution(svc, workflowId, include_tasks=False)
    summary = {k: execution[k] for k in ("workflowId", "correlationId", "status") if k in execution}
    if includeOutput:
        summary["output"] = execution.get("output", {})
    if includeVariables:
        summary["variables"] = execution.get("variables", {})
    return summary


@router.get("/{workflowId}/tasks", summary="An execution's tasks, a page at a time")
def tasks(
    svc: Svc,
    workflowId: str,
    start: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int, Query(ge=0)] = 15,
    status: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    records = _execution(svc, workflowId)["tasks"]
    if status:
        records = [t for t in records if t.get("status") in set(status)]
    return {"totalHits": len(records), "results": records[start : start + count]}


@router.delete("/{workflowId}/remove", summary="Delete an execution and its records")
def remove(svc: Svc, workflowId: str, archiveWorkflow: Annotated[bool, Query()] = True) -> Response:
    lifecycle.remove(svc.session.app, svc.session.store, workflowId)
    return Response(status_code=200)


@router.delete("/{workflowId}", summary="Terminate an execution")
def terminate(
    svc: Svc,
    workflowId: str,
    reason: Annotated[str | None, Query()] = None,
    triggerFailureWorkflow: Annotated[bool, Query()] = False,
) -> Response:
    if triggerFailureWorkflow:
        raise UsageError(
            "triggerFailureWorkflow is not supported: a terminated workflow starts no failure workflow"
        )
    lifecycle.terminate(svc.session.app, svc.session.store, workflowId, reason)
    return Response(status_code=200)


@router.put("/{workflowId}/pause", summary="Pause: no new task is scheduled")
def pause(svc: Svc, workflowId: str) -> Response:
    lifecycle.pause(svc.session.app, svc.session.store, workflowId)
    return Response(status_code=200)


@router.put("/{workflowId}/resume", summary="Resume a paused execution")
def resume(svc: Svc, workflowId: str) -> Response:
    lifecycle.resume(svc.session.app, svc.session.store, workflowId)
    return Response(status_code=200)


@router.post("/{workflowId}/retry", summary="Retry the failed tasks of an ended execution", status_code=204)
def retry(svc: Svc, workflowId: str, resumeSubworkflowTasks: Annotated[bool, Query()] = False) -> Response:
    lifecycle.retry(
        svc.session.app, svc.session.store, workflowId, resume_subworkflow_tasks=resumeSubworkflowTasks
    )
    return Response(status_code=204)


@router.post("/{workflowId}/restart", summary="Run an ended execution again from its start", status_code=204)
def restart(svc: Svc, workflowId: str, useLatestDefinitions: Annotated[bool, Query()] = False) -> Response:
    plan = None
    if useLatestDefinitions:  # the latest registered version of its definition
        execution = _execution(svc, workflowId, include_tasks=False)
        plan = svc.metadata.plan(execution.get("workflowName", ""))
    lifecycle.restart(
        svc.session.app,
        svc.session.store,
        workflowId,
        use_latest_definitions=useLatestDefinitions,
        plan=plan,
    )
    return Response(status_code=204)


@router.post(
    "/{workflowId}/rerun",
    summary="Rerun an ended execution from a task",
    response_class=PlainTextResponse,
    responses=_TEXT,
    openapi_extra=json_body(ANY_OBJECT_SCHEMA, "RerunWorkflowRequest", required=False),
)
def rerun(svc: Svc, workflowId: str, body: Body) -> PlainTextResponse:
    request = require(parse_json(body, default={}), dict, "the request body")
    return PlainTextResponse(lifecycle.rerun(svc.session.app, svc.session.store, workflowId, request))


@router.put(
    "/{workflowId}/skiptask/{taskReferenceName}",
    summary="Skip a task that has not run yet",
    openapi_extra=json_body(ANY_OBJECT_SCHEMA, "SkipTaskRequest", required=False),
)
def skip_task(svc: Svc, workflowId: str, taskReferenceName: str, body: Body) -> Response:
    request = parse_json(body)
    if request is not None:
        require(request, dict, "the request body")
    lifecycle.skip_task(svc.session.app, svc.session.store, workflowId, taskReferenceName, request)
    return Response(status_code=200)
