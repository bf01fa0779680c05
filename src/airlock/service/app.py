"""The FastAPI application: one core (a Workspace), three doors (native API, seed API, web page).

Errors are translated once, by :mod:`airlock.service.http_errors`: every error answers its
class's HTTP status with the one body of :mod:`airlock.errors` (``error``, ``message``,
``detail``, ``hint``, ``details``), the framework's own errors and unexpected exceptions
included; a client's mistake is never a 500, and a 500 never carries a traceback.
Before any route, :mod:`airlock.service.guards` refuses unknown Host headers and changes sent
from other origins. ``OPTIONS`` answers 204 with the path's methods in ``Allow`` and offers no
CORS; a wrong method gets 405 with the same ``Allow``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.errors import AirlockError, BodyTooLargeError
from airlock.service.guards import DefaultHeaders, HostGuard, OriginGuard, answered_hosts
from airlock.service.http_errors import (
    UnexpectedErrors,
    error_response,
    framework_error,
    request_error,
    send_error,
)
from airlock.service.jobs import Jobs
from airlock.service.settings import Settings
from airlock.workspace import Workspace

log = logging.getLogger("airlock.service")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("airlock")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether sized or chunked; the paths
    in ``larger`` (a streamed upload of a file body) have limits of their own."""

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.default)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit, send)
            return
        # A chunked body is counted as it is read. Past the limit the 413 is sent from here and
        # the app is told the client left: an exception raised into the app would reach it
        # wrapped (task groups) and come out as a 400 "error parsing the body".
        seen = 0
        started = False
        refused = False

        async def counting() -> Message:
            nonlocal seen, refused, started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        started = True
                        await _too_large(limit, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app answers is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting, guarded)


async def _too_large(limit: int, send: Send) -> None:
    await send_error(
        send,
        BodyTooLargeError(
            f"the request body is larger than {limit} bytes",
            hint="split the plan into smaller plans",
        ),
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path, and OPTIONS (Starlette's own Allow
    names only the first route that matched the path)."""
    methods = {"OPTIONS"}
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


def create_app(ws: Workspace, settings: Settings) -> FastAPI:
    from airlock.service import agents, api, content, docs, previews, runs, seed, web

    jobs = Jobs(ws, settings.apply_workers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        title="Airlock",
        version="0.1.0",
        summary="Let AI agents change real files safely: reviewed, all-or-nothing, audited, reversible plans.",
        lifespan=lifespan,
        # One schema per model, as requests send it: the answers' models have no defaults, so
        # nothing is lost, and an operation is documented as a plan submits it.
        separate_input_output_schemas=False,
        docs_url=None,  # see airlock.service.docs: off unless settings.docs
        redoc_url=None,
    )
    app.state.ws = ws
    app.state.jobs = jobs
    app.state.settings = settings

    # Innermost: an exception no handler below translates is answered here (500, the one body),
    # and the answer still passes through the request log and the guards' headers.
    app.add_middleware(UnexpectedErrors)

    @app.exception_handler(AirlockError)
    async def _airlock_error(_request: Request, exc: AirlockError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # the framework's own errors (no such route, an unreadable body) in the same body
        headers = dict(exc.headers or {})
        message = None
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers["Allow"] = allow
            message = f"{request.method} is not allowed here; allowed: {allow}"
        return error_response(framework_error(exc, message), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request_error(exc))

    @app.middleware("http")
    async def _log_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        log.info(
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - start) * 1000, 1),
                }
            },
        )
        return response

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    app.include_router(seed.router)
    app.include_router(api.router)
    app.include_router(content.router)
    app.include_router(runs.router)
    app.include_router(agents.router)
    app.include_router(web.router)
    app.include_router(previews.router)
    if settings.docs:
        docs.add_docs(app)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        larger={
            content.CONTENT_PATH: settings.max_upload_bytes or ws.policy.limits.max_bytes_written
        },
    )
    app.add_middleware(OriginGuard)
    app.add_middleware(HostGuard, allowed=answered_hosts(settings))
    app.add_middleware(DefaultHeaders)  # outermost: on the guards' refusals too
    return app
