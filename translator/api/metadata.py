"""``/api/metadata``: task and workflow definitions (Conductor's MetadataResource)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from translator.api.common import (
    TASKDEF_SCHEMA,
    WORKFLOWDEF_SCHEMA,
    Body,
    Svc,
    json_body,
    parse_json,
    require,
)
from translator.api.errors import ERROR_RESPONSES
from translator.definitions.issues import error, join
from translator.definitions.model import WorkflowDef
from translator.errors import DefinitionError
from translator.store.metadata import check_taskdef, check_workflow, full_json

router = APIRouter(prefix="/metadata", tags=["metadata"], responses=ERROR_RESPONSES)

_LIST = {"type": "array", "items": TASKDEF_SCHEMA}
_WORKFLOW_LIST = {"type": "array", "items": WORKFLOWDEF_SCHEMA}


def _each(items: list[Any], check: Any) -> list[Any]:
    """Every item checked, the issues of all of them in one DefinitionError."""
    models, issues = [], []
    for i, item in enumerate(items):
        try:
            models.append(check(item, join("", i)))
        except DefinitionError as exc:
            issues += exc.issues
    if issues:
        raise DefinitionError("invalid definitions", issues)
    return models


def _non_empty(items: list[Any], what: str) -> list[Any]:
    if not items:
        raise DefinitionError(f"{what} is empty", [error("", "required", f"{what} is empty")])
    return items


@router.post(
    "/taskdefs",
    summary="Create or replace task definitions",
    openapi_extra=json_body(_LIST, "a non-empty JSON array of TaskDef"),
)
def register_taskdefs(svc: Svc, body: Body) -> Response:
    items = _non_empty(require(parse_json(body), list, "the request body"), "TaskDefList")
    svc.metadata.put_taskdefs(_each(items, check_taskdef))
    return Response(status_code=200)


@router.put(
    "/taskdefs",
    summary="Update an existing task definition",
    openapi_extra=json_body(TASKDEF_SCHEMA, "one TaskDef"),
)
def update_taskdef(svc: Svc, body: Body) -> Response:
    svc.metadata.update_taskdef(check_taskdef(require(parse_json(body), dict, "the request body")))
    return Response(status_code=200)


@router.get("/taskdefs", summary="Every task definition")
def list_taskdefs(svc: Svc) -> list[dict[str, Any]]:
    return [full_json(t) for t in svc.metadata.taskdefs()]


@router.get("/taskdefs/{name}", summary="A task definition")
def get_taskdef(svc: Svc, name: str) -> dict[str, Any]:
    return full_json(svc.metadata.taskdef(name))


@router.delete("/taskdefs/{name}", summary="Remove a task definition")
def delete_taskdef(svc: Svc, name: str) -> Response:
    svc.metadata.delete_taskdef(name)
    return Response(status_code=200)


@router.post(
    "/workflow",
    summary="Register a new workflow definition (409 when its name and version exist)",
    openapi_extra=json_body(WORKFLOWDEF_SCHEMA, "one WorkflowDef"),
)
def register_workflow(
    svc: Svc,
    body: Body,
    overwrite: Annotated[bool, Query(description="replace an existing name and version")] = False,
) -> Response:
    workflow: WorkflowDef = check_workflow(require(parse_json(body), dict, "the request body"))
    svc.metadata.create_workflow(workflow, overwrite=overwrite)
    return Response(status_code=200)


@router.put(
    "/workflow",
    summary="Create or replace workflow definitions",
    openapi_extra=json_body(_WORKFLOW_LIST, "a non-empty JSON array of WorkflowDef"),
)
def update_workflows(svc: Svc, body: Body) -> dict[str, Any]:
    items = _non_empty(require(parse_json(body), list, "the request body"), "WorkflowDefList")
    workflows: list[WorkflowDef] = _each(items, check_workflow)
    done: list[str] = []
    failed: dict[str, str] = {}
    for workflow in workflows:
        try:
            svc.metadata.put_workflow(workflow)
            done.append(workflow.name or "")
        except Exception as exc:  # Conductor reports each failure and goes on
            failed[workflow.name or ""] = str(exc)
    return {"bulkErrorResults": failed, "bulkSuccessfulResults": done}


@router.post(
    "/workflow/validate",
    summary="Validate a workflow definition without registering it",
    openapi_extra=json_body(WORKFLOWDEF_SCHEMA, "one WorkflowDef"),
)
def validate_workflow(body: Body) -> Response:
    check_workflow(require(parse_json(body), dict, "the request body"))
    return Response(status_code=200)


@router.get("/workflow", summary="Every version of every workflow definition")
def list_workflows(svc: Svc) -> list[dict[str, Any]]:
    return [full_json(w) for w in svc.metadata.workflows()]


@router.get("/workflow/{name}", summary="A workflow definition (the latest version by default)")
def get_workflow(svc: Svc, name: str, version: Annotated[int | None, Query()] = None) -> dict[str, Any]:
    return full_json(svc.metadata.workflow(name, version))


@router.delete("/workflow/{name}/{version}", summary="Remove a workflow definition version")
def delete_workflow(svc: Svc, name: str, version: int) -> Response:
    svc.metadata.delete_workflow(name, version)
    return Response(status_code=200)
