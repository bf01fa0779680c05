"""The native API (``/api/v1``): the library's operations over HTTP, nothing more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from airlock.errors import NotFoundError
from airlock.plan import PLAN_ID_PATTERN, Plan
from airlock.service.deps import (
    ERROR_RESPONSES,
    CallerDep,
    JobIdPath,
    JobsDep,
    PlanIdPath,
    WorkspaceDep,
)
from airlock.service.jobs import Job, Jobs
from airlock.tokens import Role

router = APIRouter(prefix="/api/v1", tags=["native"], responses=ERROR_RESPONSES)


class Decision(BaseModel):
    comment: str = Field("", max_length=10_000)
    validation_id: int | None = Field(
        None,
        description="The validation you reviewed (the plan's `validation_id`). If the plan was "
        "checked again since, the decision is refused: the plan changed since you looked.",
    )


class RollbackRequest(BaseModel):
    force: bool = Field(
        False, description="Roll back over changes made since the apply (set aside)."
    )


class JobOut(BaseModel):
    job_id: str
    plan_id: str
    kind: str
    state: str
    steps_done: int
    steps_total: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


PlanOut = dict[str, Any]


@router.post(
    "/plans", status_code=201, summary="Submit a plan (validated at once unless validate=false)"
)
def submit_plan(
    ws: WorkspaceDep,
    who: CallerDep,
    plan: Plan,
    plan_id: Annotated[
        str | None,
        Query(max_length=100, json_schema_extra={"pattern": PLAN_ID_PATTERN}),
    ] = None,
    validate: bool = True,
) -> PlanOut:
    who.require(Role.AGENT, "submit plans")
    # The author is the caller's token, whatever the body says: an author can never approve.
    body = {**plan.model_dump(mode="json"), "author": who.name}
    record = ws.submit(body, plan_id=plan_id or None, actor=who.name)
    if validate and record.status == "submitted":
        record = ws.validate(record.id, actor=who.name)
    return record.to_dict()


@router.get("/plans", summary="List plans, newest first")
def list_plans(
    ws: WorkspaceDep,
    who: CallerDep,
    status: str | None = None,
    scope: str | None = None,
) -> list[PlanOut]:
    who.require(Role.AGENT, "read plans")
    return [r.to_dict() for r in ws.list_plans(status=status, scope=scope)]


@router.get("/plans/{plan_id}", summary="A plan with its latest validation report and decisions")
def show_plan(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> PlanOut:
    who.require(Role.AGENT, "read plans")
    return ws.get(plan_id).to_dict()


@router.post("/plans/{plan_id}/validate", summary="Dry-run the plan against the workspace now")
def validate_plan(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> PlanOut:
    who.require(Role.AGENT, "validate plans")
    return ws.validate(plan_id, actor=who.name).to_dict()


@router.post(
    "/plans/{plan_id}/approve", summary="Approve (approvers only); bound to the plan's digest"
)
def approve_plan(
    ws: WorkspaceDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    decision: Annotated[Decision | None, Body()] = None,
) -> PlanOut:
    who.require(Role.APPROVER, "approve plans")
    decision = decision or Decision()
    return ws.approve(
        plan_id, actor=who.name, comment=decision.comment, validation_id=decision.validation_id
    ).to_dict()


@router.post("/plans/{plan_id}/reject", summary="Reject (approvers only)")
def reject_plan(
    ws: WorkspaceDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    decision: Annotated[Decision | None, Body()] = None,
) -> PlanOut:
    who.require(Role.APPROVER, "reject plans")
    decision = decision or Decision()
    return ws.reject(
        plan_id, actor=who.name, comment=decision.comment, validation_id=decision.validation_id
    ).to_dict()


@router.post("/plans/{plan_id}/apply", status_code=202, summary="Start applying; follow the job")
def apply_plan(ws: WorkspaceDep, jobs: JobsDep, who: CallerDep, plan_id: PlanIdPath) -> JobOut:
    who.require(Role.AGENT, "apply plans")
    ws.check_applyable(plan_id)
    return JobOut(**jobs.start(plan_id, "apply", who.name).to_dict())


@router.get("/plans/{plan_id}/rollback-conflicts", summary="What a rollback would have to override")
def rollback_conflicts(
    ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath
) -> list[dict[str, str]]:
    who.require(Role.AGENT, "read plans")
    return [{"path": c.path, "reason": c.reason} for c in ws.rollback_conflicts(plan_id)]


@router.post(
    "/plans/{plan_id}/rollback", status_code=202, summary="Start a rollback (approvers only)"
)
def rollback_plan(
    ws: WorkspaceDep,
    jobs: JobsDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    request: Annotated[RollbackRequest | None, Body()] = None,
) -> JobOut:
    who.require(Role.APPROVER, "roll back plans")
    force = (request or RollbackRequest()).force
    ws.check_rollback(plan_id, force=force)
    return JobOut(**jobs.start(plan_id, "rollback", who.name, force=force).to_dict())


def _job(jobs: Jobs, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}", hint="jobs are kept while the service runs")
    return job


@router.get("/jobs/{job_id}", summary="An apply or rollback job's progress and result")
def get_job(jobs: JobsDep, who: CallerDep, job_id: JobIdPath) -> JobOut:
    who.require(Role.AGENT, "read jobs")
    return JobOut(**_job(jobs, job_id).to_dict())


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events: the job's progress, then its result",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: progress` lines while the job runs, then one `event: done`; "
            "each `data:` is the job as JSON.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def job_events(jobs: JobsDep, who: CallerDep, job_id: JobIdPath) -> StreamingResponse:
    who.require(Role.AGENT, "read jobs")
    job = _job(jobs, job_id)

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        while True:
            now = job.to_dict()
            if now != last:
                yield f"event: progress\ndata: {json.dumps(now)}\n\n"
                last = now
            if job.finished.is_set():
                yield f"event: done\ndata: {json.dumps(job.to_dict())}\n\n"
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/audit/events", summary="Audit events, oldest first")
def audit_events(
    ws: WorkspaceDep, who: CallerDep, plan_id: str | None = None
) -> list[dict[str, Any]]:
    who.require(Role.AGENT, "read the audit log")
    return ws.audit_events(plan_id)


@router.get("/audit/verify", summary="Verify the audit chain")
def audit_verify(ws: WorkspaceDep, who: CallerDep) -> dict[str, Any]:
    who.require(Role.AGENT, "read the audit log")
    return ws.audit_verify().to_dict()
