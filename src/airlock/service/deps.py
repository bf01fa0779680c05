"""Request dependencies shared by the doors: the workspace, the jobs, the caller; and the
errors each kind of route documents (made from the error tree by
:func:`airlock.service.http_errors.responses`).

The APIs authenticate by bearer token only. The review page's session cookie is never accepted
here: a browser sends cookies with requests that other pages start, a bearer token it does not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from airlock.errors import (
    AirlockError,
    AuthenticationError,
    BusyError,
    ConflictError,
    NotFoundError,
    NotPermittedError,
    RequestFormatError,
    SandboxUnavailableError,
    StorageError,
)
from airlock.plan import PLAN_ID_PATTERN
from airlock.service.http_errors import responses
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


CALLER_ERRORS: tuple[type[AirlockError], ...] = (
    AuthenticationError,
    NotPermittedError,
    BusyError,
    StorageError,
)
"""What a route that takes a bearer token may answer besides its own errors: no valid token,
a role (or an origin) that may not, and the state store the token is looked up in being busy
or refusing."""

# The documented errors of the routes (see airlock.service.http_errors.responses). Every route
# with parameters or a body may also be refused as not matching its schema (422).
HEALTH_ERRORS = responses()
"""The health check: no token, no input; it reports the store's troubles rather than failing."""
VERIFY_ERRORS = responses(*CALLER_ERRORS)
"""An authenticated route without input."""
LIST_ERRORS = responses(*CALLER_ERRORS, RequestFormatError)
"""An authenticated route that reads."""
READ_ERRORS = responses(*CALLER_ERRORS, RequestFormatError, NotFoundError)
"""An authenticated route that reads one plan or job."""
ACTION_ERRORS = responses(*CALLER_ERRORS, RequestFormatError, NotFoundError, ConflictError)
"""An authenticated route that submits, checks, decides, applies or rolls back a plan."""
RUN_ERRORS = responses(
    *CALLER_ERRORS, RequestFormatError, NotFoundError, ConflictError, SandboxUnavailableError
)
"""A sandboxed run: an action that also needs a sandbox backend."""


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
