"""The Conductor-compatible REST API (``translator serve``): an ASGI app on FastAPI.

Routes live under ``/api`` as Conductor's do; the OpenAPI document is at ``/api-docs`` and Swagger UI
at ``/swagger-ui``; one page per execution at ``/execution/{workflowId}`` (:mod:`translator.api.page`).
With a token configured (``TRANSLATOR_API_TOKEN``), every ``/api`` route and the execution pages need
``Authorization: Bearer <token>``; a browser opens a page once with ``?token=<token>``, which sets an
HttpOnly, SameSite=Strict cookie holding it and redirects to the page without it.
"""

from __future__ import annotations

import hmac
import os

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from translator.api import metadata, page, tasks, workflow
from translator.api.common import Services
from translator.api.errors import error_response, install_handlers
from translator.runner import Session, pool_session
from translator.settings import Settings
from translator.store.metadata import MetadataStore
from translator.store.state import RedisStore

TOKEN_ENV = "TRANSLATOR_API_TOKEN"
PAGE_COOKIE = "translator_token"


class Unauthorized(Exception):
    """A request to /api without the configured bearer token."""


def _bearer(token: str | None):
    expected = token.encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized()

    return check


class TokenInQuery(Exception):
    """A page opened with the right ``?token=``: answered by a redirect that sets the cookie."""

    def __init__(self, location: str, token: str) -> None:
        super().__init__(location)
        self.location, self.token = location, token


def _page_auth(token: str | None):
    """The execution pages' guard: the bearer header, or the cookie a ``?token=`` visit set."""
    expected = token.encode() if token else None
    bearer = _bearer(token)

    def check(request: Request) -> None:
        if expected is None:
            return
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), expected):
            raise TokenInQuery(request.url.path, given)
        cookie = request.cookies.get(PAGE_COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), expected):
            return
        bearer(request)

    return check


async def _token_in_query(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, TokenInQuery)
    response = RedirectResponse(exc.location, status_code=303)  # the token leaves the address bar
    response.set_cookie(PAGE_COOKIE, exc.token, httponly=True, samesite="strict", path="/")
    return response


async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        401,
        "a bearer token is required (Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def create_app(session: Session, *, token: str | None = None) -> FastAPI:
    """The API over a worker pool's ``session`` (its state store must be Redis: definitions are kept
    there too)."""
    store = session.store
    if not isinstance(store, RedisStore):
        raise TypeError("the REST API needs the pool's Redis state store")
    app = FastAPI(
        title="translator",
        summary="Conductor's REST API for workflows that run on Celery",
        version="1",
        openapi_url="/api-docs",
        docs_url="/swagger-ui",
        redoc_url=None,
    )
    app.state.services = Services(session, MetadataStore(store.client, store.prefix))
    install_handlers(app)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(TokenInQuery, _token_in_query)
    api = APIRouter(prefix="/api", dependencies=[Depends(_bearer(token or None))])
    for module in (metadata, workflow, tasks):
        api.include_router(module.router)
    app.include_router(api)
    # the execution pages show execution data: the same token guards them (header, or a cookie for browsers)
    app.include_router(page.router, dependencies=[Depends(_page_auth(token or None))])

    @app.get("/health", tags=["health"], summary="Whether the state store answers")
    def health() -> JSONResponse:
        try:
            store.ping()
        except Exception as exc:  # StoreUnavailable, or whatever the client raised
            return JSONResponse({"healthy": False, "reason": str(exc)}, status_code=503)
        return JSONResponse({"healthy": True})

    return app


def app_from_env() -> FastAPI:
    """The app for the worker pool the environment configures (CELERY_BROKER_URL is required)."""
    settings = Settings.from_env()
    return create_app(pool_session(settings), token=os.environ.get(TOKEN_ENV) or None)
