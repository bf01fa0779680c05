"""The seed-compatible API: the firm's existing agent tools' contract, translated to the core.

Same paths, bodies, field names and answer shapes as the "workspace mutation service" those tools
were written for (see PRODUCT.md). ``case_name`` is the scope ``projects/<case_name>``; operation
types map onto the core's: ``rename`` is a move, ``create_dir`` a mkdir, ``write_file`` a write.
Only translation lives here; every decision is the core's.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from airlock import paths
from airlock.errors import InputError, NotFoundError, UnsafePathError
from airlock.plan import PLAN_ID_PATTERN
from airlock.records import PlanRecord
from airlock.report import change_line, summary_line
from airlock.service.deps import ERROR_RESPONSES, CallerDep, JobsDep, PlanIdPath, WorkspaceDep
from airlock.tokens import Role
from airlock.workspace import Workspace

router = APIRouter(tags=["seed-compatible"], responses=ERROR_RESPONSES)

SeedType = Literal["move", "copy", "delete", "create_dir", "write_file", "rename"]


class SeedOperation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: SeedType
    source: str | None = None
    destination: str | None = None
    content: str | None = None


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


class SeedValidation(BaseModel):
    plan_id: str
    valid: bool
    warnings: list[str]
    errors: list[str]
    operation_count: int
    estimated_size_change_mb: float
    dry_run_summary: str


class SeedApproval(BaseModel):
    status: str
    plan_id: str


class SeedApplyResult(BaseModel):
    plan_id: str
    success: bool
    operations_completed: int
    operations_failed: int
    audit_log_path: str
    error_details: str | None


class SeedRollbackResult(BaseModel):
    plan_id: str
    success: bool
    operations_rolled_back: int
    audit_log_path: str
    error_details: str | None


class Health(BaseModel):
    status: str
    workspace_mounted: bool
    projects_accessible: bool
    state_store_reachable: bool
    workspace_writable: bool
    recovery_ran: bool
    recovered_transactions: int
    recovery_failures: list[str] = Field(
        default_factory=list,
        description="Interrupted transactions whose undo could not finish (their scopes refuse "
        "applies until `airlock recover` succeeds).",
    )
    unfinished_transactions: list[str] = Field(
        default_factory=list,
        description="Applies or rollbacks left running by a process that is gone (e.g. one "
        "that could not record its end on a full disk): `airlock recover` undoes them.",
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
    for index, op in enumerate(seed.operations):
        if op.type in ("move", "rename", "copy"):
            operations.append(
                {
                    "op": "copy" if op.type == "copy" else "move",
                    "source": _path(op, index, "source"),
                    "destination": _path(op, index, "destination"),
                }
            )
        elif op.type == "delete":
            operations.append({"op": "delete", "path": _path(op, index, "source", "destination")})
        elif op.type == "create_dir":
            operations.append({"op": "mkdir", "path": _path(op, index, "destination", "source")})
        else:
            operations.append(
                {
                    "op": "write",
                    "path": _path(op, index, "destination", "source"),
                    "text": op.content or "",
                    # The seed service replaced files; here that is an overwrite, which keeps the
                    # old file aside and needs a person's approval under the default policy.
                    "overwrite": True,
                }
            )
    return {
        "scope": f"projects/{seed.case_name}",
        "description": seed.description,
        "author": author,
        "operations": operations,
        "require_approval": seed.requires_approval,
    }


def _seed_view(record: PlanRecord) -> dict[str, Any]:
    return {
        "plan_id": record.id,
        "case_name": record.plan.scope.removeprefix("projects/"),
        "description": record.plan.description,
        "created_by": record.plan.author,
        "requires_approval": bool(record.validation.needs_approval)
        if record.validation
        else record.plan.require_approval,
        "status": record.status,
        "created_at": record.created_at.isoformat(),
        "digest": record.digest,
        "operations": [
            _seed_operation(op.model_dump(mode="json")) for op in record.plan.operations
        ],
    }


def _seed_operation(op: dict[str, Any]) -> dict[str, Any]:
    """A core operation in the seed's words (what the agent sent, as it would send it)."""
    kind = op["op"]
    if kind in ("move", "copy"):
        return {"type": kind, "source": op["source"], "destination": op["destination"]}
    if kind == "mkdir":
        return {"type": "create_dir", "destination": op["path"]}
    if kind == "delete":
        return {"type": "delete", "source": op["path"]}
    return {"type": "write_file", "destination": op["path"], "content": op.get("text") or ""}


def _audit_file(ws: Workspace, plan_id: str) -> str:
    """Export the plan's audit events to ``.airlock/audit/<plan>.jsonl`` (Airlock's own state)."""
    folder = ws.state_dir / "audit"
    folder.mkdir(exist_ok=True)
    target = folder / f"{plan_id}.jsonl"
    events = ws.audit_events(plan_id)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events), encoding="utf-8")
    tmp.replace(target)
    return str(target)


@router.post("/plans", summary="Submit a plan (seed contract)")
def seed_submit(ws: WorkspaceDep, who: CallerDep, body: SeedPlan) -> dict[str, Any]:
    who.require(Role.AGENT, "submit plans")
    record = ws.submit(to_core_plan(body, who.name), plan_id=body.plan_id or None, actor=who.name)
    return _seed_view(record)


@router.post("/plans/{plan_id}/validate", summary="Validate a plan (seed contract)")
def seed_validate(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> SeedValidation:
    who.require(Role.AGENT, "validate plans")
    record = ws.get(plan_id)
    if record.status in ("submitted", "invalid", "validated", "approved", "failed"):
        record = ws.validate(plan_id, actor=who.name)
    report = record.validation
    if report is None:
        raise NotFoundError(f"plan {plan_id!r} has no validation", hint="validate it first")
    lines = [summary_line(report)] + [change_line(c, record.plan.scope) for c in report.changes]
    if report.needs_approval:
        lines.append("Needs approval: " + ", ".join(report.needs_approval))
    return SeedValidation(
        plan_id=plan_id,
        valid=report.valid,
        warnings=[w.message for w in report.warnings],
        errors=[e.message for e in report.errors],
        operation_count=len(record.plan.operations),
        estimated_size_change_mb=round(
            (report.bytes_written - report.bytes_removed) / 1_048_576, 6
        ),
        dry_run_summary="\n".join(lines),
    )


@router.post("/plans/{plan_id}/approve", summary="Approve a plan (seed contract; approvers only)")
def seed_approve(
    ws: WorkspaceDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    approved_by: Annotated[str | None, Query(max_length=200)] = None,
    validation: Annotated[
        int | None,
        Query(
            description="Airlock's addition: the id of the report reviewed (`validation_id` of "
            "GET /api/v1/plans/{plan_id}); if the plan was checked again since, the approval "
            "is refused (409)."
        ),
    ] = None,
) -> SeedApproval:
    who.require(Role.APPROVER, "approve plans")
    comment = f"approved_by={approved_by}" if approved_by and approved_by != who.name else ""
    record = ws.approve(plan_id, actor=who.name, comment=comment, validation_id=validation)
    return SeedApproval(status=record.status, plan_id=record.id)


@router.post(
    "/plans/{plan_id}/apply", summary="Apply a plan and wait for the result (seed contract)"
)
def seed_apply(
    ws: WorkspaceDep, jobs: JobsDep, who: CallerDep, plan_id: PlanIdPath
) -> SeedApplyResult:
    who.require(Role.AGENT, "apply plans")
    ws.check_applyable(plan_id)
    job = jobs.start(plan_id, "apply", who.name)
    job.finished.wait()
    result = job.result or {}
    error = job.error["message"] if job.error else result.get("error")
    return SeedApplyResult(
        plan_id=plan_id,
        success=job.state == "succeeded",
        operations_completed=int(result.get("operations_completed", 0)),
        operations_failed=int(
            result.get("operations_failed", 0 if job.state == "succeeded" else 1)
        ),
        audit_log_path=_audit_file(ws, plan_id),
        error_details=error,
    )


@router.post(
    "/plans/{plan_id}/rollback", summary="Roll back an applied plan (seed contract; approvers only)"
)
def seed_rollback(
    ws: WorkspaceDep, jobs: JobsDep, who: CallerDep, plan_id: PlanIdPath
) -> SeedRollbackResult:
    who.require(Role.APPROVER, "roll back plans")
    ws.check_rollback(plan_id)
    job = jobs.start(plan_id, "rollback", who.name)
    job.finished.wait()
    result = job.result or {}
    return SeedRollbackResult(
        plan_id=plan_id,
        success=job.state == "succeeded",
        operations_rolled_back=int(result.get("operations_completed", 0)),
        audit_log_path=_audit_file(ws, plan_id),
        error_details=(job.error or {}).get("message"),
    )


@router.get("/health", summary="Is the workspace mounted and writable, the state store reachable?")
def health(ws: WorkspaceDep) -> Health:
    root = ws.root
    mounted = root.is_dir()
    projects = (root / "projects").is_dir() and os.access(root / "projects", os.R_OK | os.X_OK)
    writable = mounted and os.access(ws.state_dir, os.W_OK)
    try:
        with ws.read_session() as session:
            session.execute(text("SELECT 1"))
        store = True
    except Exception:  # the store is down: say so, do not fail the health check itself
        store = False
    try:
        unfinished = ws.unfinished() if store else []
    except Exception:  # as above: a health check reports, it does not fail
        unfinished = ["the state database could not be read for unfinished transactions"]
    healthy = (
        mounted and projects and store and writable and not ws.recovery_failures and not unfinished
    )
    return Health(
        status="healthy" if healthy else "degraded",
        workspace_mounted=mounted,
        projects_accessible=projects,
        state_store_reachable=store,
        workspace_writable=writable,
        recovery_ran=True,
        recovered_transactions=len(ws.recovered),
        recovery_failures=list(ws.recovery_failures),
        unfinished_transactions=unfinished,
    )
