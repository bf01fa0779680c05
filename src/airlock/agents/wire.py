"""An agent session over HTTP: the calls ``POST /api/v1/agent/{call}`` serves, and how their
arguments and answers travel as JSON (both ends use this module, so they cannot disagree).

Bytes travel as ``{"base64": ...}``; items, matches and run results as their fields; a plan
as the API's plan answer (:class:`~airlock.records.PlanOut`); an apply as its result."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from typing import Any

from airlock.agents.session import Item, Match, Ran
from airlock.errors import AirlockError, InternalError, RequestFormatError, error_classes
from airlock.permissions import Principal, Role
from airlock.plan import Plan
from airlock.records import ApplyResult, ApplyResultOut, PlanOut, PlanRecord

CALLS = (
    "stat",
    "ls",
    "walk",
    "read_bytes",
    "glob",
    "grep",
    "readable_roots",
    "write",
    "edit",
    "delete",
    "move",
    "copy",
    "mkdir",
    "pending",
    "diff",
    "discard",
    "submit",
    "validate",
    "status",
    "apply",
    "rollback",
    "approve",
    "reject",
    "submit_plan",
    "whoami",
    "execute",
)
"""The :class:`~airlock.agents.session.AgentSession` methods a remote session may call: each as
the caller's token, so the core decides who may (an agent's approve is refused there)."""

RETURNS: dict[str, type] = {
    "stat": Item,
    "ls": Item,
    "walk": Item,
    "glob": Item,
    "grep": Match,
    "execute": Ran,
    "submit": PlanRecord,
    "validate": PlanRecord,
    "status": PlanRecord,
    "approve": PlanRecord,
    "reject": PlanRecord,
    "submit_plan": PlanRecord,
    "whoami": Principal,
    "apply": ApplyResult,
    "rollback": ApplyResult,
}
"""What each call's answer is made of, where it is not plain JSON."""


def encode(value: Any) -> Any:
    """An answer (or an argument) as JSON."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, PlanRecord | ApplyResult):
        return value.to_model().model_dump(mode="json")
    if isinstance(value, Item | Match | Ran | Principal):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [encode(item) for item in value]
    return value


def decode_bytes(value: Any) -> Any:
    """An argument or answer that may be bytes sent as ``{"base64": ...}``."""
    if isinstance(value, dict) and set(value) == {"base64"}:
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise RequestFormatError(
                "a {'base64': ...} value is not valid base64",
                hint="send bytes as standard base64 text",
            ) from None
    return value


def decode(call: str, value: Any) -> Any:
    """The answer of ``call`` as the in-process session returns it."""
    kind = RETURNS.get(call)
    if value is None or kind is None:
        return decode_bytes(value)
    if isinstance(value, list):
        return [kind(**item) for item in value]
    if kind is PlanRecord:
        return record_from(PlanOut.model_validate(value))
    if kind is Principal:
        return Principal(value["name"], Role(value["role"]), value["via"], value.get("note", ""))
    if kind is ApplyResult:
        out = ApplyResultOut.model_validate(value)
        return ApplyResult(**out.model_dump())
    return kind(**value)


def record_from(out: PlanOut) -> PlanRecord:
    """A plan answer of the API as the library's record."""
    plan = Plan(
        scope=out.scope, description=out.description, author=out.author, operations=out.operations
    )
    return PlanRecord(
        id=out.plan_id,
        plan=plan,
        digest=out.digest,
        status=str(out.status),
        reason=out.reason,
        created_at=dt.datetime.fromisoformat(out.created_at),
        validation=out.validation,
        validation_id=out.validation_id,
        decisions=[decision.model_dump() for decision in out.decisions],
    )


def error_from(body: Any, status: int) -> AirlockError:
    """The error an error answer describes, as its own class where it names one."""
    if not isinstance(body, dict) or "message" not in body:
        return InternalError(
            f"the Airlock service answered {status} without an error body",
            hint="check the service's URL and its log",
        )
    by_name = {cls.__name__: cls for cls in error_classes()}
    cls = by_name.get(str(body.get("error")), AirlockError)
    return cls(str(body["message"]), str(body.get("hint") or ""), list(body.get("details") or []))
