"""The FastAPI application: one core (a Workspace), three doors (native API, seed API, web page).

Errors are translated once, here: every :class:`~airlock.errors.AirlockError` becomes its HTTP
status with ``{"detail", "error", "hint", "details"}``; a client's mistake is never a 500.
Before any route, :mod:`airlock.service.guards` refuses unknown Host headers and changes sent
from other origins. ``OPTIONS`` answers 204 with the path's methods in ``Allow`` and offers no
CORS; a wrong method gets 405 with the same ``Allow``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.errors import AirlockError, AuthenticationError
from airlock.service.guards import DefaultHeaders, HostGuard, OriginGuard, answered_hosts
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
    """Refuse request bodies over ``limit`` bytes with 413, whether sized or chunked."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit, send)
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
                if seen > self.limit:
                    refused = True
                    if not started:
                        started = True
                        await _too_large(self.limit, send)
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
    body = json.dumps(
        {
            "detail": f"the request body is larger than {limit} bytes",
            "error": "InputError",
            "hint": "split the plan into smaller plans",
            "details": [],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(error: AirlockError) -> dict[str, Any]:
    return {
        "detail": error.message,
        "error": type(error).__name__,
        "hint": error.hint,
        "details": error.details,
    }


def encodable(value: Any) -> Any:
    """``value`` made JSON-encodable: a lone surrogate from a hostile request becomes the text
    ``\\udXXX``, NaN the text ``nan``, so that echoing the input back never fails with a 500."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and Infinity are not JSON
    return value


_HTTP_ERRORS = {
    400: ("InputError", "send the body as JSON encoded in UTF-8"),
    404: ("NotFoundError", "the API's routes are listed in /openapi.json"),
    405: ("InputError", "the API's routes and their methods are listed in /openapi.json"),
}


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
    from airlock.service import api, docs, runs, seed, web

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
        docs_url=None,  # see airlock.service.docs: off unless settings.docs
        redoc_url=None,
    )
    app.state.ws = ws
    app.state.jobs = jobs
    app.state.settings = settings

    @app.exception_handler(AirlockError)
    async def _airlock_error(_request: Request, exc: AirlockError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return JSONResponse(
            encodable(error_body(exc)), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # the framework's own errors (no such route, an unreadable body) in the same shape
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers["Allow"] = allow
        kind, hint = _HTTP_ERRORS.get(exc.status_code, ("HTTPError", ""))
        detail = str(exc.detail)
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        body = {"detail": detail, "error": kind, "hint": hint, "details": []}
        return JSONResponse(encodable(body), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but safe for input that JSON cannot encode
        return JSONResponse({"detail": encodable(jsonable_encoder(exc.errors()))}, status_code=422)

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
    app.include_router(runs.router)
    app.include_router(web.router)
    if settings.docs:
        docs.add_docs(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(OriginGuard)
    app.add_middleware(HostGuard, allowed=answered_hosts(settings))
    app.add_middleware(DefaultHeaders)  # outermost: on the guards' refusals too
    return app
