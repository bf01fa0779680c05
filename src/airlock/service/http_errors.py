"""Airlock's errors over HTTP, translated in one place: the one error body as a schema, each
route's documented error responses, and the answers that carry the body.

Every error answer is :meth:`airlock.errors.AirlockError.to_dict` with the class's
``http_status``: an Airlock error as raised; the framework's own (no such route, a wrong method,
an unreadable body, a request that does not match the schema) translated into the tree by
:func:`framework_error` and :func:`request_error`; any other exception an
:class:`~airlock.errors.InternalError` that names only its type (:class:`UnexpectedErrors`; the
traceback goes to the log, never to the caller).

A route documents what it can answer with :func:`responses`, given the classes it may raise.
Each status is described by the first docstring lines of the classes that answer it (a class
brings its subclasses of the same status), which are listed in ``x-airlock-errors``: the values
the body's ``error`` may take.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, get_args, get_type_hints

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.errors import (
    AirlockError,
    AuthenticationError,
    BodyTooLargeError,
    ErrorBody,
    InputError,
    IntegrityError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    RequestFormatError,
    error_classes,
)

log = logging.getLogger("airlock.service")


_BODY = get_type_hints(ErrorBody, include_extras=True)


def _described(name: str) -> Any:
    """The field ``name`` of the one body, described as :class:`~airlock.errors.ErrorBody` does."""
    return Field(description=get_args(_BODY[name])[1])


class ErrorOut(BaseModel):
    """Every error, whichever door answers it: what went wrong, its kind, what to do next.

    The schema of :class:`airlock.errors.ErrorBody` (a test keeps their fields the same)."""

    error: str = _described("error")
    message: str = _described("message")
    detail: str = _described("detail")
    hint: str = _described("hint")
    details: list[str] = _described("details")


EVERY_REQUEST: tuple[type[AirlockError], ...] = (
    InputError,
    BodyTooLargeError,
    IntegrityError,
    InternalError,
)
"""What any request may be answered, whatever its route: a Host that is not served, an unreadable
body (400), a body over the limit (413), damaged state or a bug (500)."""

ERRORS_EXTENSION = "x-airlock-errors"
"""The key, in each documented error response, of the error classes that answer it."""


def _family(declared: type[AirlockError]) -> list[type[AirlockError]]:
    """``declared`` and the classes below it in the tree that answer with its status."""
    return [
        cls
        for cls in error_classes()
        if issubclass(cls, declared) and cls.http_status == declared.http_status
    ]


def describe(kinds: list[type[AirlockError]]) -> str:
    """An error response's description: one line per class that answers it."""
    return "\n".join(f"- `{kind.__name__}`: {kind.summary()}" for kind in kinds)


def responses(*raised: type[AirlockError]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI error responses of a route that may raise ``raised`` (and
    :data:`EVERY_REQUEST`): per status, the one body, a description and the classes."""
    by_status: dict[int, list[type[AirlockError]]] = {}
    for declared in (*EVERY_REQUEST, *raised):
        kinds = by_status.setdefault(declared.http_status, [])
        kinds.extend(cls for cls in _family(declared) if cls not in kinds)
    order = error_classes()
    return {
        status: {
            "model": ErrorOut,
            "description": describe(sorted(kinds, key=order.index)),
            ERRORS_EXTENSION: [kind.__name__ for kind in sorted(kinds, key=order.index)],
        }
        for status, kinds in sorted(by_status.items())
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


def _headers(error: AirlockError, headers: dict[str, str] | None) -> dict[str, str] | None:
    if isinstance(error, AuthenticationError):
        return {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return headers


def error_response(error: AirlockError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer for ``error``: its status and the one body."""
    return JSONResponse(
        encodable(error.to_dict()), status_code=error.http_status, headers=_headers(error, headers)
    )


async def send_error(
    send: Send, error: AirlockError, headers: dict[str, str] | None = None
) -> None:
    """Send the answer for ``error`` from ASGI middleware (before any route ran)."""
    body = json.dumps(encodable(error.to_dict())).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in (_headers(error, headers) or {}).items()
        ),
    ]
    await send({"type": "http.response.start", "status": error.http_status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_FRAMEWORK: dict[int, tuple[type[AirlockError], str]] = {
    400: (InputError, "send the body as JSON encoded in UTF-8"),
    404: (NotFoundError, "the API's routes are listed in /openapi.json"),
    405: (MethodNotAllowedError, "the API's routes and their methods are listed in /openapi.json"),
}


def framework_error(exc: StarletteHTTPException, message: str | None = None) -> AirlockError:
    """One of the framework's own errors (no such route, a wrong method, an unreadable body)
    as the error of the tree with its status."""
    kind, hint = _FRAMEWORK.get(
        exc.status_code,
        (InputError, "") if exc.status_code < 500 else (InternalError, ""),
    )
    return kind(message or str(exc.detail), hint=hint)


DETAILS_LISTED = 50
"""Most problems a :class:`RequestFormatError` lists (a plan of 50,000 bad operations has as
many)."""


def request_error(exc: RequestValidationError) -> RequestFormatError:
    """A request that does not match the schema, as a RequestFormatError naming each problem
    (where, what), never echoing the input."""
    problems = [
        f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}"
        for problem in exc.errors()
    ]
    first = problems[0] if problems else "the request is not valid"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return RequestFormatError(
        f"the request does not match the API's schema: {first}{more}",
        hint="see the operation's request schema in /openapi.json",
        details=problems[:DETAILS_LISTED],
    )


class UnexpectedErrors:
    """Answer any exception no handler translated with an InternalError's body (status 500),
    and log it with its traceback. Innermost of the middleware: the answer passes through the
    others (security headers, the request log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.exception(
                "unexpected error",
                extra={"fields": {"method": scope.get("method"), "path": scope.get("path")}},
            )
            if started:  # part of an answer is out: all that can be done is to cut it off
                raise
            await send_error(send, InternalError.of(exc))
