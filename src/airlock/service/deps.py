"""Request dependencies shared by the doors: the workspace, the jobs, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from airlock.errors import AuthenticationError
from airlock.service.jobs import Jobs
from airlock.tokens import Principal, authenticate
from airlock.workspace import Workspace

COOKIE = "airlock_token"


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
