"""The seed service's plan format (the firm's existing tools send it: ``POST /plans``, and the
``reorganize_case_files`` tool) and how it becomes an Airlock plan. One home for both doors that
speak it: the seed-compatible HTTP API and the LangChain tools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airlock import paths
from airlock.errors import InputError, UnsafePathError
from airlock.plan import PLAN_ID_PATTERN

SeedType = Literal["move", "copy", "delete", "create_dir", "write_file", "rename"]


class SeedOperation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: SeedType
    source: str | None = None
    destination: str | None = None
    content: str | None = None
    reason: str = Field("", max_length=2000, description="Why this operation is there.")


class SeedPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    plan_id: str = Field(
        "",
        description="Empty: the service assigns one.",
        json_schema_extra={"pattern": f"^$|{PLAN_ID_PATTERN}"},
    )
    case_name: str = Field(description="The case folder: the plan's scope is projects/<case_name>.")
    description: str = ""
    operations: list[SeedOperation] = Field(min_length=1)
    created_by: str = "agent"
    requires_approval: bool = Field(
        False, description="True asks for a person's approval; False never bypasses the policy."
    )


def _path(op: SeedOperation, index: int, *names: Literal["source", "destination"]) -> str:
    for name in names:
        value = getattr(op, name)
        if value:
            return str(value)
    raise InputError(
        f"operation {index + 1} ({op.type}) needs {' or '.join(repr(n) for n in names)}",
        hint="give the path relative to the case folder",
    )


def to_core_plan(seed: SeedPlan, author: str) -> dict[str, Any]:
    """The core plan for a seed plan. ``author`` is the caller's token name, never the body's
    ``created_by``: a plan's author is who it can never be approved by."""
    try:
        if len(paths.parse(seed.case_name, "case_name")) != 1:
            raise UnsafePathError(
                f"case_name {seed.case_name!r} contains '/'",
                hint="give the case folder's own name, e.g. 'Abby-Sitgraves-MVA-7-13-2024'",
            )
    except UnsafePathError as exc:
        raise InputError(
            f"{exc.message}; case_name is one folder name under projects/", hint=exc.hint
        ) from None
    operations: list[dict[str, Any]] = []
    # "parents": the seed service created the folders every operation needed (its documented
    # example is create_dir "Medical Records/Provider1" in a case without "Medical Records").
    for index, op in enumerate(seed.operations):
        why = {"reason": op.reason} if op.reason else {}
        if op.type in ("move", "rename", "copy"):
            operations.append(
                {
                    "op": "copy" if op.type == "copy" else "move",
                    "source": _path(op, index, "source"),
                    "destination": _path(op, index, "destination"),
                    "parents": True,
                    **why,
                }
            )
        elif op.type == "delete":
            operations.append(
                {"op": "delete", "path": _path(op, index, "source", "destination"), **why}
            )
        elif op.type == "create_dir":
            operations.append(
                {
                    "op": "mkdir",
                    "path": _path(op, index, "destination", "source"),
                    "parents": True,
                    **why,
                }
            )
        else:
            operations.append(
                {
                    "op": "write",
                    "path": _path(op, index, "destination", "source"),
                    "text": op.content or "",
                    # The seed service replaced files; here that is an overwrite, which keeps the
                    # old file aside and needs a person's approval under the default policy.
                    "overwrite": True,
                    "parents": True,
                    **why,
                }
            )
    return {
        "scope": f"projects/{seed.case_name}",
        "description": seed.description,
        "author": author,
        "operations": operations,
        "require_approval": seed.requires_approval,
    }
