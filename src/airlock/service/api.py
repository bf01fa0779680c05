"""The native API (``/api/v1``): the library's operations over HTTP, nothing more.

Every answer is a pydantic model (the plan's :class:`~airlock.records.PlanOut` and the others
below), so the OpenAPI document has a schema for each; every route lists the errors it may
answer (:mod:`airlock.service.deps`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from airlock.audit import ChainReport
from airlock.errors import NotFoundError
from airlock.permissions import Action, authorize
from airlock.plan import PLAN_ID_PATTERN, Plan
from airlock.records import ApplyResultOut, PlanOut
from airlock.service.deps import (
    ACTION_ERRORS,
    LIST_ERRORS,
    READ_ERRORS,
    VERIFY_ERRORS,
    CallerDep,
    JobIdPath,
    JobsDep,
    PlanIdPath,
    WorkspaceDep,
)
from airlock.service.http_errors import ErrorOut
from airlock.service.jobs import Job, Jobs, JobState

router = APIRouter(prefix="/api/v1", tags=["native"])


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
    """An apply or rollback running in the background: follow it until it has succeeded or
    failed."""

    job_id: str
    plan_id: str
    kind: Literal["apply", "rollback"]
    state: JobState
    steps_done: int
    steps_total: int
    result: ApplyResultOut | None = Field(
        description="Once it has run: what it did (a failed apply was undone)."
    )
    error: ErrorOut | None = Field(
        description="If it could not run (refused, or the undo itself failed): why."
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job.to_dict())


# Answers that come by the thousand are TypedDicts, not models: checked and written out an
# order of magnitude faster.
class ConflictOut(TypedDict):
    """A path a rollback would have to override, and why."""

    path: str
    reason: str


class AuditEventOut(TypedDict):
    """One event of the hash-chained audit log."""

    seq: int
    at: str
    actor: Annotated[str, Field(description="The principal that acted.")]
    kind: Annotated[
        str, Field(description="What happened: submitted, validated, approved, applied, ...")
    ]
    plan_id: str | None
    payload: Annotated[
        dict[str, Any],
        Field(description="The event's details (paths, SHA-256 of contents, digests, comments)."),
    ]
    prev_hash: str
    hash: str
    signature: Annotated[
        str | None, Field(description="HMAC of `hash` under the audit key, if signed.")
    ]


class SignaturesOut(BaseModel):
    """What the check found of the events' signatures (all 0 when no key was given)."""

    checked: bool
    signed: int
    unsigned_before_signing: int
    unsigned_after_signing: int
    bad: int


class AnchorOut(BaseModel):
    """The head record kept outside the database: the last event written, and how many came
    after it (null: the chain does not reach it)."""

    seq: int
    hash: str
    events_after: int | None


class ExpectedHeadOut(BaseModel):
    """The head hash the caller expected: which event it is (null: none) and how many came
    after it."""

    hash: str
    seq: int | None
    events_after: int | None


class ChainReportOut(BaseModel):
    """The audit chain's check: ``ok`` unless something was edited, forged, deleted, cut off
    or reordered (each listed in ``problems``)."""

    ok: bool
    events: int
    head: str
    problems: list[str]
    warnings: list[str]
    signatures: SignaturesOut
    anchor: AnchorOut | None
    expected_head: ExpectedHeadOut | None

    @classmethod
    def of(cls, report: ChainReport) -> ChainReportOut:
        return cls.model_validate(report.to_dict())


@router.post(
    "/plans",
    status_code=201,
    summary="Submit a plan (validated at once unless validate=false)",
    responses=ACTION_ERRORS,
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
    record = ws.submit(plan.model_dump(mode="json"), plan_id=plan_id or None, by=who)
    if validate and record.status == "submitted":
        record = ws.validate(record.id, by=who)
    return record.to_model()


@router.get("/plans", summary="List plans, newest first", responses=LIST_ERRORS)
def list_plans(
    ws: WorkspaceDep,
    who: CallerDep,
    status: str | None = None,
    scope: str | None = None,
) -> list[PlanOut]:
    return [r.to_model() for r in ws.list_plans(status=status, scope=scope, by=who)]


@router.get(
    "/plans/{plan_id}",
    summary="A plan with its latest validation report and decisions",
    responses=READ_ERRORS,
)
def show_plan(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> PlanOut:
    return ws.get(plan_id, by=who).to_model()


@router.post(
    "/plans/{plan_id}/validate",
    summary="Dry-run the plan against the workspace now",
    responses=ACTION_ERRORS,
)
def validate_plan(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> PlanOut:
    return ws.validate(plan_id, by=who).to_model()


@router.post(
    "/plans/{plan_id}/approve",
    summary="Approve (approvers only); bound to the plan's digest",
    responses=ACTION_ERRORS,
)
def approve_plan(
    ws: WorkspaceDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    decision: Annotated[Decision | None, Body()] = None,
) -> PlanOut:
    decision = decision or Decision()
    return ws.approve(
        plan_id, by=who, comment=decision.comment, validation_id=decision.validation_id
    ).to_model()


@router.post("/plans/{plan_id}/reject", summary="Reject (approvers only)", responses=ACTION_ERRORS)
def reject_plan(
    ws: WorkspaceDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    decision: Annotated[Decision | None, Body()] = None,
) -> PlanOut:
    decision = decision or Decision()
    return ws.reject(
        plan_id, by=who, comment=decision.comment, validation_id=decision.validation_id
    ).to_model()


@router.post(
    "/plans/{plan_id}/apply",
    status_code=202,
    summary="Start applying; follow the job",
    responses=ACTION_ERRORS,
)
def apply_plan(ws: WorkspaceDep, jobs: JobsDep, who: CallerDep, plan_id: PlanIdPath) -> JobOut:
    ws.check_applyable(plan_id, by=who)
    return JobOut.of(jobs.start(plan_id, "apply", who))


@router.get(
    "/plans/{plan_id}/rollback-conflicts",
    summary="What a rollback would have to override",
    responses=ACTION_ERRORS,
)
def rollback_conflicts(ws: WorkspaceDep, who: CallerDep, plan_id: PlanIdPath) -> list[ConflictOut]:
    return [{"path": c.path, "reason": c.reason} for c in ws.rollback_conflicts(plan_id, by=who)]


@router.post(
    "/plans/{plan_id}/rollback",
    status_code=202,
    summary="Start a rollback (approvers only)",
    responses=ACTION_ERRORS,
)
def rollback_plan(
    ws: WorkspaceDep,
    jobs: JobsDep,
    who: CallerDep,
    plan_id: PlanIdPath,
    request: Annotated[RollbackRequest | None, Body()] = None,
) -> JobOut:
    force = (request or RollbackRequest()).force
    ws.check_rollback(plan_id, force=force, by=who)
    return JobOut.of(jobs.start(plan_id, "rollback", who, force=force))


def _job(jobs: Jobs, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}", hint="jobs are kept while the service runs")
    return job


@router.get(
    "/jobs/{job_id}",
    summary="An apply or rollback job's progress and result",
    responses=READ_ERRORS,
)
def get_job(jobs: JobsDep, who: CallerDep, job_id: JobIdPath) -> JobOut:
    authorize(who, Action.READ)
    return JobOut.of(_job(jobs, job_id))


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events: the job's progress, then its result",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: progress` lines while the job runs, then one `event: done`; "
            "each `data:` is the job as JSON (the schema `JobOut`).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **READ_ERRORS,
    },
)
async def job_events(jobs: JobsDep, who: CallerDep, job_id: JobIdPath) -> StreamingResponse:
    authorize(who, Action.READ)
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


@router.get("/audit/events", summary="Audit events, oldest first", responses=LIST_ERRORS)
def audit_events(
    ws: WorkspaceDep, who: CallerDep, plan_id: str | None = None
) -> list[AuditEventOut]:
    # audit.event_dict makes each event in this shape
    return cast(list[AuditEventOut], ws.audit_events(plan_id, by=who))


@router.get("/audit/verify", summary="Verify the audit chain", responses=VERIFY_ERRORS)
def audit_verify(ws: WorkspaceDep, who: CallerDep) -> ChainReportOut:
    return ChainReportOut.of(ws.audit_verify(by=who))
