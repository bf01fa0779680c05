"""``POST /runs`` (and ``POST /api/v1/runs``): run agent code in a sandbox over one case.

The answer is the run's outcome: exit code, output, and the id of the plan that holds what the
code changed (none when it changed nothing). The plan then goes the usual way: review, approve,
apply. The request waits for the run to end (at most its timeout).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from airlock import runs
from airlock.sandbox.base import MAX_TIMEOUT, Limits
from airlock.service.deps import RUN_ERRORS, CallerDep, WorkspaceDep

router = APIRouter(tags=["runs"], responses=RUN_ERRORS)

_DEFAULTS = Limits()


class RunIn(BaseModel):
    """A command to run over one case. Give ``scope`` or, as the seed tools do, ``case_name``."""

    model_config = {"extra": "forbid"}

    scope: str | None = Field(None, examples=["projects/Abby-Sitgraves-MVA-7-13-2024"])
    case_name: str | None = Field(None, description="Stands for scope projects/<case_name>.")
    command: list[str] = Field(min_length=1, max_length=10_000, examples=[["python3", "sort.py"]])
    sandbox: Literal["bwrap", "gvisor"] = "bwrap"
    network: bool = False
    timeout: float = Field(_DEFAULTS.timeout, gt=0, le=MAX_TIMEOUT, description="Seconds.")
    memory: int = Field(_DEFAULTS.memory, ge=16 << 20, description="Bytes.")
    processes: int = Field(_DEFAULTS.processes, ge=1, le=100_000)
    output: int = Field(_DEFAULTS.output, ge=1, le=1 << 30, description="Bytes of output kept.")
    write: int | None = Field(None, ge=1, description="Bytes it may write (default: policy).")
    description: str = Field("", max_length=10_000)

    @model_validator(mode="after")
    def _one_scope(self) -> RunIn:
        if (self.scope is None) == (self.case_name is None):
            raise ValueError("give exactly one of scope or case_name")
        return self


class SkippedOut(BaseModel):
    path: str
    reason: str


class RunOut(BaseModel):
    """How the run ended, its output, and the plan that holds what it changed (if anything)."""

    run_id: str
    scope: str
    command: list[str]
    sandbox: str
    capture: str
    exit_code: int | None = Field(description="Null when Airlock had to stop the run.")
    stdout: str
    stderr: str
    timed_out: bool
    output_limited: bool
    limits_hit: list[str]
    seconds: float
    summary: str
    plan_id: str | None = Field(description="The plan of its changes; null if it changed nothing.")
    plan_status: str | None
    skipped: list[SkippedOut] = Field(description="Changes that could not become part of the plan.")


def _run(ws: WorkspaceDep, who: CallerDep, body: RunIn) -> RunOut:
    scope = body.scope if body.scope is not None else f"projects/{body.case_name}"
    limits = Limits(
        timeout=body.timeout,
        memory=body.memory,
        processes=body.processes,
        output=body.output,
        write=body.write or ws.policy.limits.max_bytes_written,
    )
    result = runs.run(
        ws,
        scope,
        body.command,
        sandbox=body.sandbox,
        network=body.network,
        limits=limits,
        by=who,
        description=body.description,
    )
    return RunOut.model_validate(result.to_dict())


router.add_api_route(
    "/runs", _run, methods=["POST"], summary="Run code in a sandbox; changes become a plan"
)
router.add_api_route(
    "/api/v1/runs",
    _run,
    methods=["POST"],
    summary="Run code in a sandbox; changes become a plan",
    operation_id="run_native",
)
