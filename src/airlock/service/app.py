"""The FastAPI application: one core (a Workspace), three doors (native API, seed API, web page).

Errors are translated once, here: every :class:`~airlock.errors.AirlockError` becomes its HTTP
status with ``{"detail", "error", "hint", "details"}``; a client's mistake is never a 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.errors import AirlockError, AuthenticationError
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
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except _BodyTooLarge:
            await _too_large(self.limit, send)


class _BodyTooLarge(Exception):
    pass


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


def create_app(ws: Workspace, settings: Settings) -> FastAPI:
    from airlock.service import api, seed, web

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
    )
    app.state.ws = ws
    app.state.jobs = jobs
    app.state.settings = settings

    @app.exception_handler(AirlockError)
    async def _airlock_error(_request: Request, exc: AirlockError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)

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
    app.include_router(web.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
