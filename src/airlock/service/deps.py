"""Request dependencies shared by the doors: the workspace, the jobs, the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from airlock.errors import AuthenticationError
from airlock.service.jobs import Jobs
from airlock.tokens import Principal, authenticate
from airlock.workspace import Workspace

COOKIE = "airlock_token"


class ErrorOut(BaseModel):
    """Every error: what went wrong, its kind, what to do next, and any particulars."""

    detail: str
    error: str
    hint: str
    details: list[str]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request is wrong: a bad path, plan, id or parameter."),
    401: _error("No valid token (missing, unknown, malformed or revoked)."),
    403: _error("The token's role, the policy or a missing approval forbids it."),
    404: _error("No such plan or job."),
    409: _error("The plan's status, a stale or invalid plan, or rollback conflicts forbid it."),
    413: _error("The request body is larger than the configured limit."),
    423: _error("Another process holds the scope's lock."),
    507: _error("The filesystem refused (full, read-only, permission denied)."),
}
"""The errors every route may answer (documented in the OpenAPI document)."""


def workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.ws
    return ws


def jobs(request: Request) -> Jobs:
    found: Jobs = request.app.state.jobs
    return found


def caller(request: Request) -> Principal:
    """The principal behind the request's bearer token (or the web page's sign-in cookie)."""
    header = request.headers.get("authorization")
    token: str | None = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "the Authorization header is not a bearer token",
                hint="send 'Authorization: Bearer <token>'",
            )
        token = value.strip()
    else:
        token = request.cookies.get(COOKIE)
    if not token:
        raise AuthenticationError(
            "no token was sent",
            hint="send 'Authorization: Bearer <token>'; an administrator creates one with "
            "`airlock token create`",
        )
    principal = authenticate(workspace(request), token)
    if principal is None:
        raise AuthenticationError(
            "the token is not valid (unknown, malformed or revoked)",
            hint="ask an administrator for a new token",
        )
    return principal


WorkspaceDep = Annotated[Workspace, Depends(workspace)]
JobsDep = Annotated[Jobs, Depends(jobs)]
CallerDep = Annotated[Principal, Depends(caller)]
