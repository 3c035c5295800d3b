"""Conductor's error body (``ErrorResponse``) and the mapping from translator's errors to HTTP statuses.

| Error | Status |
|---|---|
| DefinitionError, UsageError, InputError, request validation | 400 (``validationErrors``) |
| WorkflowNotFound, DefinitionNotFound | 404 |
| ConflictError | 409 |
| BrokerUnavailable, a Redis error | 503 (``retryable``) |
| any other TranslatorError | 400 |
| anything else | 500, with no detail |
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from translator.definitions.issues import Issue, one_line
from translator.errors import (
    BrokerUnavailable,
    ConflictError,
    DefinitionError,
    DefinitionNotFound,
    TranslatorError,
    WorkflowNotFound,
)
from translator.text import shorten

log = logging.getLogger(__name__)

VALIDATION_FAILED = "Validation failed, check below errors for detail."
_HOST = socket.gethostname()


class ValidationErrorItem(BaseModel):
    path: str
    message: str
    invalidValue: Any | None = None


class ErrorResponse(BaseModel):
    """Conductor's ``ErrorResponse`` (nulls left out)."""

    status: int
    message: str
    instance: str = _HOST
    retryable: bool = False
    validationErrors: list[ValidationErrorItem] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "invalid request"),
        (401, "missing or wrong bearer token"),
        (404, "not found"),
        (409, "refused in the current state"),
    )
}


def error_response(
    status: int,
    message: str,
    validation: list[dict[str, Any]] | None = None,
    *,
    retryable: bool = False,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        status=status, message=message, retryable=retryable, validationErrors=validation or None
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def issue_item(issue: Issue) -> dict[str, Any]:
    """One validation error: the JSON pointer into the request body, or ``<registry path>:<pointer>``
    for an issue in a registered definition, and the message."""
    path = f"{issue.file}:{issue.pointer}" if issue.file else issue.pointer
    return {"path": one_line(path), "message": one_line(issue.message)}


def _status_of(exc: TranslatorError) -> int:
    if isinstance(exc, (WorkflowNotFound, DefinitionNotFound)):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, BrokerUnavailable):
        return 503
    return 400


async def _translator_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TranslatorError)
    if isinstance(exc, DefinitionError):
        items = [issue_item(i) for i in exc.issues]
        return error_response(400, VALIDATION_FAILED if items else exc.message, items)
    status = _status_of(exc)
    return error_response(status, one_line(shorten(exc.message, 2000, quote=False)), retryable=status == 503)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        items.append({"path": ".".join(loc), "message": one_line(str(err.get("msg", "invalid value")))})
    return error_response(400, VALIDATION_FAILED, items)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("state store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, f"the state store cannot be reached: {one_line(str(exc))}", retryable=True)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TranslatorError, _translator_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(redis.RedisError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
