"""What every route uses: the services the app runs with, strict JSON bodies, OpenAPI body schemas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from translator.definitions.issues import Level, error
from translator.definitions.jsonsource import MAX_DOCUMENT_BYTES, decode
from translator.errors import DefinitionError
from translator.runner import Session
from translator.store.metadata import MetadataStore


@dataclass
class Services:
    """The worker pool's session (Celery app + state store) and the definitions registry."""

    session: Session
    metadata: MetadataStore


def services(request: Request) -> Services:
    return request.app.state.services


async def raw_body(request: Request) -> bytes:
    """The body, read no further than one byte past the largest document accepted (so a huge body is
    refused as too large by ``parse_json`` without being held in memory)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_DOCUMENT_BYTES:
            break
    return bytes(data[: MAX_DOCUMENT_BYTES + 1])


Svc = Annotated[Services, Depends(services)]
Body = Annotated[bytes, Depends(raw_body)]


def parse_json(data: bytes, *, default: Any = None) -> Any:
    """A request body read as strictly as definition files (no NaN, depth and size limits); an
    empty body is ``default``. DefinitionError with the issues at their JSON pointers."""
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        return default
    value, issues = decode(data)
    errors = [i for i in issues if i.level is Level.ERROR]
    if errors:
        raise DefinitionError("the request body is not acceptable JSON", errors)
    return value


def require(value: Any, kind: type, what: str) -> Any:
    """``value`` when it is a ``kind`` (dict or list), else DefinitionError at the body's root."""
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "a JSON object" if kind is dict else "a JSON array"
        raise DefinitionError(f"{what} must be {expected}", [error("", "type", f"{what} must be {expected}")])
    return value


def json_body(schema: dict[str, Any], description: str, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself."""
    return {
        "requestBody": {
            "required": required,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}

TASKDEF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "name": {"type": "string"},
        "retryCount": {"type": "integer"},
        "retryLogic": {"type": "string", "enum": ["FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF"]},
        "retryDelaySeconds": {"type": "integer"},
        "timeoutSeconds": {"type": "integer"},
        "timeoutPolicy": {"type": "string", "enum": ["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]},
        "responseTimeoutSeconds": {"type": "integer"},
        "ownerEmail": {"type": "string"},
    },
}

WORKFLOW_TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "name": {"type": "string"},
        "taskReferenceName": {"type": "string"},
        "type": {"type": "string"},
        "inputParameters": _ANY_OBJECT,
    },
}

WORKFLOWDEF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "tasks": {"type": "array", "items": WORKFLOW_TASK_SCHEMA},
        "outputParameters": _ANY_OBJECT,
        "ownerEmail": {"type": "string"},
    },
}

START_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "correlationId": {"type": "string"},
        "input": _ANY_OBJECT,
        "priority": {"type": "integer"},
        "workflowDef": WORKFLOWDEF_SCHEMA,
    },
}

ANY_OBJECT_SCHEMA = _ANY_OBJECT
