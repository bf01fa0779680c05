"""A naive reference of the seed HTTP API: what the firm would deploy without Airlock.

    .venv/bin/python bench/seed_reference.py --workspace DIR [--host 127.0.0.1] [--port 8125]

The same routes, bodies and answer shapes as Airlock's seed-compatible door (PRODUCT.md, "The
seed-compatible HTTP API"; ``src/airlock/service/seed.py``), done the obvious way: plans kept in
a dict in memory, validate only checks that each operation's source exists, and apply runs one
``os.makedirs(exist_ok=True)`` + ``shutil.move`` / ``shutil.copy2`` / write / delete per
operation, in order, stopping at the first failure. No journal, no preconditions (nothing is
re-checked between validate and apply), no sync to disk, no audit (``audit_log_path`` is empty),
no path checks and no authentication (an ``Authorization`` header is accepted and ignored).
Rollback undoes what the last apply did as far as that is possible without anything kept
aside: moves go back, copies and created files and folders are removed; deleted and replaced
files are gone.

It exists for ``bench/bench_seed_door.py`` to time Airlock's door against. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

SeedType = Literal["move", "copy", "delete", "create_dir", "write_file", "rename"]


class SeedOperation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: SeedType
    source: str | None = None
    destination: str | None = None
    content: str | None = None


class SeedPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    plan_id: str = ""
    case_name: str
    description: str = ""
    operations: list[SeedOperation] = Field(min_length=1)
    created_by: str = "agent"
    requires_approval: bool = False


class Stored:
    """A plan in memory, with what its last apply did (for rollback)."""

    def __init__(self, plan: SeedPlan, plan_id: str) -> None:
        self.plan = plan
        self.plan_id = plan_id
        self.status = "submitted"
        self.created_at = datetime.now(UTC).isoformat()
        self.done: list[tuple[str, str, str]] = []  # (kind, source, destination) per step


def create_app(root: Path) -> FastAPI:
    app = FastAPI(title="seed reference (naive)")
    plans: dict[str, Stored] = {}
    lock = threading.Lock()

    def get(plan_id: str) -> Stored:
        with lock:
            stored = plans.get(plan_id)
        if stored is None:
            raise HTTPException(404, f"plan {plan_id!r} not found")
        return stored

    def case_path(stored: Stored, rel: str | None) -> str:
        return os.path.join(root, "projects", stored.plan.case_name, rel or "")

    def view(stored: Stored) -> dict[str, Any]:
        plan = stored.plan
        return {
            "plan_id": stored.plan_id,
            "case_name": plan.case_name,
            "description": plan.description,
            "created_by": plan.created_by,
            "requires_approval": plan.requires_approval,
            "status": stored.status,
            "created_at": stored.created_at,
            "operations": [op.model_dump(exclude_none=True) for op in plan.operations],
        }

    @app.post("/plans")
    def submit(body: SeedPlan) -> dict[str, Any]:
        plan_id = body.plan_id or f"plan-{uuid.uuid4().hex[:12]}"
        with lock:
            if plan_id in plans:
                raise HTTPException(409, f"plan {plan_id!r} already exists")
            stored = plans[plan_id] = Stored(body, plan_id)
        return view(stored)

    @app.post("/plans/{plan_id}/validate")
    def validate(plan_id: str) -> dict[str, Any]:
        stored = get(plan_id)
        errors: list[str] = []
        lines: list[str] = []
        added = 0
        for n, op in enumerate(stored.plan.operations, start=1):
            if op.type in ("move", "rename", "copy", "delete"):
                source = op.source or op.destination
                if not source or not os.path.exists(case_path(stored, source)):
                    errors.append(f"operation {n} ({op.type}): source {source!r} does not exist")
            if op.type == "write_file":
                added += len((op.content or "").encode())
            lines.append(f"{op.type} {op.source or ''} -> {op.destination or ''}")
        stored.status = "invalid" if errors else "validated"
        return {
            "plan_id": plan_id,
            "valid": not errors,
            "warnings": [],
            "errors": errors,
            "operation_count": len(stored.plan.operations),
            "estimated_size_change_mb": round(added / 1_048_576, 6),
            "dry_run_summary": "\n".join(lines),
        }

    @app.post("/plans/{plan_id}/approve")
    def approve(plan_id: str, approved_by: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        stored = get(plan_id)
        if stored.status != "validated":
            raise HTTPException(409, f"plan {plan_id!r} is {stored.status}, not validated")
        stored.status = "approved"
        return {"status": stored.status, "plan_id": plan_id}

    def run(stored: Stored, op: SeedOperation) -> None:
        source = case_path(stored, op.source or op.destination)
        target = case_path(stored, op.destination or op.source)
        if op.type in ("move", "rename"):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(source, target)
        elif op.type == "copy":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        elif op.type == "delete":
            if os.path.isdir(source):
                shutil.rmtree(source)
            else:
                os.remove(source)
        elif op.type == "create_dir":
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                f.write(op.content or "")
        stored.done.append((op.type, source, target))

    @app.post("/plans/{plan_id}/apply")
    def apply(plan_id: str) -> dict[str, Any]:
        stored = get(plan_id)
        wanted = "approved" if stored.plan.requires_approval else "validated"
        if stored.status not in (wanted, "approved"):
            raise HTTPException(409, f"plan {plan_id!r} is {stored.status}, not {wanted}")
        stored.status, stored.done = "applying", []
        error: str | None = None
        for n, op in enumerate(stored.plan.operations, start=1):
            try:
                run(stored, op)
            except OSError as exc:
                error = f"operation {n} ({op.type}) failed: {exc}"
                break
        stored.status = "failed" if error else "applied"
        return {
            "plan_id": plan_id,
            "success": error is None,
            "operations_completed": len(stored.done),
            "operations_failed": 0 if error is None else 1,
            "audit_log_path": "",
            "error_details": error,
        }

    @app.post("/plans/{plan_id}/rollback")
    def rollback(plan_id: str) -> dict[str, Any]:
        stored = get(plan_id)
        if stored.status not in ("applied", "failed"):
            raise HTTPException(409, f"plan {plan_id!r} is {stored.status}, not applied")
        undone = 0
        error: str | None = None
        for kind, source, target in reversed(stored.done):
            try:
                if kind in ("move", "rename"):
                    shutil.move(target, source)
                elif kind == "copy" and os.path.isdir(target):
                    shutil.rmtree(target)
                elif kind in ("copy", "write_file"):
                    os.remove(target)
                elif kind == "create_dir":
                    os.rmdir(target)
                else:
                    raise OSError(f"{source} was deleted and cannot be restored")
            except OSError as exc:
                error = f"could not undo {kind} of {source}: {exc}"
                break
            undone += 1
        stored.status = "rolled_back" if error is None else "failed"
        return {
            "plan_id": plan_id,
            "success": error is None,
            "operations_rolled_back": undone,
            "audit_log_path": "",
            "error_details": error,
        }

    @app.get("/health")
    def health() -> dict[str, Any]:
        projects = os.path.join(root, "projects")
        return {
            "status": "healthy",
            "workspace_mounted": os.path.isdir(root),
            "projects_accessible": os.access(projects, os.R_OK | os.X_OK),
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8125)
    args = parser.parse_args()
    app = create_app(args.workspace.resolve())
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
