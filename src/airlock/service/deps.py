"""Request dependencies shared by the doors: the workspace, the jobs, the caller.

The APIs authenticate by bearer token only. The review page's session cookie is never accepted
here: a browser sends cookies with requests that other pages start, a bearer token it does not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from airlock.errors import AuthenticationError
from airlock.plan import PLAN_ID_PATTERN
from airlock.service.jobs import JOB_ID_PATTERN, Jobs
from airlock.tokens import Principal, authenticate
from airlock.workspace import Workspace

BEARER = HTTPBearer(
    auto_error=False,
    bearerFormat="alk_<id>_<secret>",
    scheme_name="bearer",
    description="An Airlock API token (`airlock token create`); its role decides what it may do.",
)
"""Only documents the scheme in the OpenAPI document; :func:`caller` reads the header itself."""


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


def caller(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Principal:
    """The principal behind the request's bearer token (cookies are never read)."""
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
    if not token:
        raise AuthenticationError(
            "no token was sent",
            hint="send 'Authorization: Bearer <token>'; an administrator creates one with "
            "`airlock token create` (the review page's sign-in is not accepted here)",
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


# The ids in paths, described as the code checks them. Only documented, not enforced here: an
# id outside the pattern gets the core's own 400 (or a 404), with its hint, not a bare 422.
PlanIdPath = Annotated[
    str,
    Path(
        description="The plan's id: 1-100 ASCII letters, digits, '-', '_' or '.', starting with "
        "a letter or digit.",
        json_schema_extra={"pattern": PLAN_ID_PATTERN, "minLength": 1, "maxLength": 100},
    ),
]
JobIdPath = Annotated[
    str,
    Path(
        description="The job's id, as the apply or rollback answered it.",
        json_schema_extra={"pattern": JOB_ID_PATTERN},
    ),
]
