"""The seed-compatible API: the firm's existing agent tools' contract, translated to the core.

Same paths, bodies, field names and answer shapes as the "workspace mutation service" those tools
were written for (see PRODUCT.md). ``case_name`` is the scope ``projects/<case_name>``; operation
types map onto the core's: ``rename`` is a move, ``create_dir`` a mkdir, ``write_file`` a write.
Only translation lives here; every decision is the core's.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import text
from typing_extensions import TypedDict

from airlock.content import ContentStore
from airlock.errors import AirlockError, NotFoundError
from airlock.permissions import Action, Principal, refusal
from airlock.plan import Copy, Delete, Mkdir, Move, Operation
from airlock.records import PlanRecord
from airlock.report import change_line, summary_line
from airlock.seed_format import SeedPlan, to_core_plan
from airlock.service.deps import (
    ACTION_ERRORS,
    HEALTH_ERRORS,
    CallerDep,
    JobsDep,
    PlanIdPath,
    WorkspaceDep,
)
from airlock.workspace import Workspace

router = APIRouter(tags=["seed-compatible"])


# The operations of an answer are TypedDicts, not models: a plan may have 50,000 of them, and
# dicts are checked and written out an order of magnitude faster.
class SeedMoveOut(TypedDict):
    """A move, rename or copy, in the seed's words."""

    type: Literal["move", "copy"]
    source: str
    destination: str


class SeedCreateDirOut(TypedDict):
    type: Literal["create_dir"]
    destination: str


class SeedDeleteOut(TypedDict):
    type: Literal["delete"]
    source: str


class SeedWriteFileOut(TypedDict):
    type: Literal["write_file"]
    destination: str
    content: str


SeedOperationOut = Annotated[
    SeedMoveOut | SeedCreateDirOut | SeedDeleteOut | SeedWriteFileOut, Field(discriminator="type")
]


class SeedPlanOut(BaseModel):
    """A submitted plan, in the seed's words (a rename is shown as the move it is)."""

    plan_id: str
    case_name: str
    description: str
    created_by: str = Field(description="The caller's token name (the plan's author).")
    requires_approval: bool
    status: str
    created_at: str = Field(description="ISO 8601 date and time, in UTC.")
    digest: str
    operations: list[SeedOperationOut]


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


SEED_CONTENT_SHOWN = 1 << 20
"""A write_file's content is echoed whole up to this size (its body is in the content store)."""


def _seed_view(record: PlanRecord, content: ContentStore) -> SeedPlanOut:
    # Made from a valid plan's parts: nothing to check again.
    return SeedPlanOut.model_construct(
        plan_id=record.id,
        case_name=record.plan.scope.removeprefix("projects/"),
        description=record.plan.description,
        created_by=record.plan.author,
        requires_approval=bool(record.validation.needs_approval)
        if record.validation
        else record.plan.require_approval,
        status=record.status,
        created_at=record.created_at.isoformat(),
        digest=record.digest,
        operations=[_seed_operation(op, content) for op in record.plan.operations],
    )


def _seed_operation(
    op: Operation, content: ContentStore
) -> SeedMoveOut | SeedCreateDirOut | SeedDeleteOut | SeedWriteFileOut:
    """A core operation in the seed's words (what the agent sent, as it would send it)."""
    if isinstance(op, Move | Copy):
        return {"type": op.op, "source": op.source, "destination": op.destination}
    if isinstance(op, Mkdir):
        return {"type": "create_dir", "destination": op.path}
    if isinstance(op, Delete):
        return {"type": "delete", "source": op.path}
    stored = op.stored
    if stored is not None and stored.size > SEED_CONTENT_SHOWN:
        text = f"[{stored.size} bytes, stored as {stored.sha256}: too large to echo here]"
    else:
        text = op.head(content, SEED_CONTENT_SHOWN).decode("utf-8", "replace")
    return {"type": "write_file", "destination": op.path, "content": text}


def _audit_file(ws: Workspace, plan_id: str, who: Principal) -> str:
    """Export the plan's audit events to ``.airlock/audit/<plan>.jsonl`` (Airlock's own state)."""
    folder = ws.state_dir / "audit"
    folder.mkdir(exist_ok=True)
    target = folder / f"{plan_id}.jsonl"
    events = ws.audit_events(plan_id, by=who)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events), encoding="utf-8")
    tmp.replace(target)
    return str(target)


@router.post("/plans", summary="Submit a plan (seed contract)", responses=ACTION_ERRORS)
def seed_submit(ws: WorkspaceDep, who: CallerDep, body: SeedPlan) -> SeedPlanOut:
    record = ws.submit(to_core_plan(body, who.name), plan_id=body.plan_id or None, by=who)
    return _seed_view(record, ws.content)


@router.post(
    "/plans/{plan_id}/validate", summary="Validate a plan (seed contract)", responses=ACTION_ERRORS
)
def seed_validate(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> SeedValidation:
    record = ws.get(plan_id, by=who)
    if refusal(who, Action.VALIDATE, record) is None:  # else its last report (e.g. applied)
        record = ws.validate(plan_id, by=who)
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


@router.post(
    "/plans/{plan_id}/approve",
    summary="Approve a plan (seed contract; approvers only)",
    responses=ACTION_ERRORS,
)
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
    comment = f"approved_by={approved_by}" if approved_by and approved_by != who.name else ""
    record = ws.approve(plan_id, by=who, comment=comment, validation_id=validation)
    return SeedApproval(status=record.status, plan_id=record.id)


@router.post(
    "/plans/{plan_id}/apply",
    summary="Apply a plan and wait for the result (seed contract)",
    responses=ACTION_ERRORS,
)
def seed_apply(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> SeedApplyResult:
    # The seed's apply answers when it is done, so it runs here (the scope lock orders it with
    # the jobs of the native API): every refusal (permission, approval, a stale plan) is the
    # core's error and status, checked once, and a step that failed was undone.
    result = ws.apply(plan_id, by=who, lock_timeout=300)
    return SeedApplyResult(
        plan_id=plan_id,
        success=result.success,
        operations_completed=result.operations_completed,
        operations_failed=result.operations_failed,
        audit_log_path=_audit_file(ws, plan_id, who),
        error_details=result.error,
    )


@router.post(
    "/plans/{plan_id}/rollback",
    summary="Roll back an applied plan (seed contract; approvers only)",
    responses=ACTION_ERRORS,
)
def seed_rollback(
    ws: WorkspaceDep, jobs: JobsDep, who: CallerDep, plan_id: PlanIdPath
) -> SeedRollbackResult:
    ws.check_rollback(plan_id, by=who)
    job = jobs.start(plan_id, "rollback", who)
    job.finished.wait()
    result = job.result or {}
    return SeedRollbackResult(
        plan_id=plan_id,
        success=job.state == "succeeded",
        operations_rolled_back=int(result.get("operations_completed", 0)),
        audit_log_path=_audit_file(ws, plan_id, who),
        error_details=job.error["message"] if job.error else None,
    )


@router.get(
    "/health",
    summary="Is the workspace mounted and writable, the state store reachable?",
    responses=HEALTH_ERRORS,
)
def health(ws: WorkspaceDep) -> Health:
    root = ws.root
    mounted = root.is_dir()
    try:  # through the storage: the files may be in a bucket, not under the workspace folder
        ws.storage.listdir(("projects",))
        projects = True
    except (OSError, AirlockError):
        projects = False
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
