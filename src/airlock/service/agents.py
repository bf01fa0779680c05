"""``POST /api/v1/agent/{call}``: an agent session (:mod:`airlock.agents.session`) over HTTP, for
a deepagents backend or LangChain tools in another process or machine
(:class:`airlock.agents.remote.RemoteSession`). The caller's token is the principal; the body
names the scope and the call's arguments (see :mod:`airlock.agents.wire`)."""

from __future__ import annotations

import enum
from typing import Any

import pydantic
from fastapi import APIRouter
from pydantic import BaseModel, Field

from airlock.agents import wire
from airlock.agents.session import AgentSession
from airlock.errors import RequestFormatError
from airlock.service.deps import RUN_ERRORS, CallerDep, WorkspaceDep

router = APIRouter(tags=["agents"])

Call = enum.StrEnum("Call", {name: name for name in wire.CALLS})  # type: ignore[misc]


class AgentCall(BaseModel):
    scope: str = Field(description="The case folder, e.g. 'projects/Smith'.", min_length=1)
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="The call's arguments by name; bytes as {'base64': ...}.",
    )


class AgentAnswer(BaseModel):
    result: Any = Field(description="The call's answer (see airlock.agents.wire).")


@router.post(
    "/api/v1/agent/{call}",
    summary="Call an agent session: read, propose changes, submit, apply, run code",
    responses=RUN_ERRORS,
)
def agent_call(call: Call, body: AgentCall, ws: WorkspaceDep, who: CallerDep) -> AgentAnswer:
    session = AgentSession(ws, body.scope, who)
    checked = pydantic.validate_call(getattr(session, str(call)))  # arguments by annotation
    args = {name: wire.decode_bytes(value) for name, value in body.args.items()}
    try:
        answer = checked(**args)
    except pydantic.ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise RequestFormatError(
            f"wrong arguments for {call}",
            hint=f"see AgentSession.{call} for its arguments",
            details=problems,
        ) from None
    return AgentAnswer(result=wire.encode(answer))
