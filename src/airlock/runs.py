"""Sandboxed runs: agent code changes a view of its scope, and what it changed becomes a plan.

``run`` is the one entry point; the CLI (``airlock run``) and the service (``POST /runs``) only
translate to it. A run:

1. gets a writable view of the scope that the real files never see: an overlay whose upper layer
   (a tmpfs of ``limits.write`` bytes) collects every change, or, where no overlay can be
   mounted, a copy of the scope;
2. runs the command in a sandbox backend (:mod:`airlock.sandbox`) under the limits;
3. turns the changes into plan operations (:mod:`airlock.capture`), submits and validates the
   plan, and records the run (command, exit code, output) in the audit log beside it.

A run that changed nothing returns its output and no plan. A run that Airlock had to stop
(timeout, output flood) keeps nothing of what it changed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airlock import audit, paths
from airlock.capture import Captured, capture
from airlock.errors import (
    AirlockError,
    InputError,
    NotFoundError,
    NotPermittedError,
    SandboxUnavailableError,
)
from airlock.paths import STATE_DIR, RelPath
from airlock.records import PlanRecord
from airlock.sandbox import cgroup, get_sandbox
from airlock.sandbox.base import Limits, Request
from airlock.sandbox.changes import LocalSides, copy_changes, copy_scope, upper_changes
from airlock.sandbox.runner import Layout, Outcome, launch
from airlock.storage.base import Kind
from airlock.storage.local import LocalStorage
from airlock.workspace import Workspace

AUDIT_OUTPUT_BYTES = 64 * 1024
"""How much of each output stream the audit log keeps (with a digest of all of it)."""

_overlay_problems: dict[int, str | None] = {}


@dataclass
class RunResult:
    run_id: str
    scope: str
    command: list[str]
    sandbox: str
    capture: str
    outcome: Outcome
    plan: PlanRecord | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        out = self.outcome
        if out.timed_out:
            return "stopped: the run went past its timeout; nothing it changed was kept"
        if out.output_limited:
            return (
                "stopped: the run printed more than its output limit; nothing it changed was kept"
            )
        if out.exit_code is None:
            return f"the sandbox could not start: {out.launcher_error or 'no exit code'}"
        if self.plan is None:
            return f"exit code {out.exit_code}; no changes, so no plan"
        return f"exit code {out.exit_code}; changes captured as plan {self.plan.id} ({self.plan.status})"

    def to_dict(self) -> dict[str, Any]:
        out = self.outcome
        return {
            "run_id": self.run_id,
            "scope": self.scope,
            "command": self.command,
            "sandbox": self.sandbox,
            "capture": self.capture,
            "exit_code": out.exit_code,
            "stdout": out.stdout.decode("utf-8", "replace"),
            "stderr": out.stderr.decode("utf-8", "replace"),
            "timed_out": out.timed_out,
            "output_limited": out.output_limited,
            "limits_hit": out.limits_hit,
            "seconds": round(out.seconds, 4),
            "summary": self.summary,
            "plan_id": self.plan.id if self.plan else None,
            "plan_status": self.plan.status if self.plan else None,
            "skipped": self.skipped,
        }


def default_limits(ws: Workspace) -> Limits:
    return Limits(write=ws.policy.limits.max_bytes_written)


def run(
    ws: Workspace,
    scope: str,
    command: Sequence[str],
    *,
    sandbox: str = "bwrap",
    network: bool = False,
    limits: Limits | None = None,
    actor: str = "agent",
    description: str = "",
) -> RunResult:
    """Run ``command`` over ``scope`` in a sandbox; what it changed comes back as a plan."""
    scope_path = _check_scope(ws, scope)
    if not command or not all(isinstance(part, str) for part in command) or not command[0]:
        raise InputError(
            "no command to run", hint="give the command after `--`, e.g. airlock run ... -- ls"
        )
    if any("\x00" in part for part in command):
        raise InputError("the command contains a NUL character", hint="remove it and retry")
    backend = get_sandbox(sandbox)
    limits = limits or default_limits(ws)
    run_id = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    scratch = ws.state_dir / "runs" / run_id
    scratch.mkdir(parents=True, mode=0o700)
    try:
        layout, mode = _layout(ws, scope_path, scratch, limits)
        group = cgroup.make(run_id, limits.memory, limits.processes)
        try:
            request = Request(
                command=tuple(command),
                workspace=ws.root,
                scope=scope_path,
                view=layout.view,
                scratch=scratch,
                hidden=((STATE_DIR,),),
                network=network,
                limits=limits,
                cgroup=group is not None,
            )
            argv = backend.argv(request)
            with launch(
                argv, layout, timeout=limits.timeout, output_limit=limits.output, cgroup=group
            ) as (outcome, running):
                captured = Captured()
                if running is not None:
                    if layout.lower is not None:
                        result_root = running.root() / str(layout.upper_mount).lstrip("/") / "upper"
                        changes = upper_changes(result_root)
                    else:
                        result_root = layout.view
                        changes = copy_changes(ws.root.joinpath(*scope_path), result_root)
                    sides = LocalSides(ws.storage, scope_path, result_root, ws.content)
                    captured = capture(changes, sides, write_limit=limits.write)
                    if captured.over_write_limit and "write" not in outcome.limits_hit:
                        outcome.limits_hit.append("write")
        finally:
            if group is not None:
                group.remove()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = RunResult(run_id, paths.render(scope_path), list(command), backend.name, mode, outcome)
    result.skipped = captured.skipped
    try:
        if captured.operations:
            text = shlex.join(command)
            record = ws.submit(
                {
                    "scope": result.scope,
                    "description": description
                    or f"Changes made by sandboxed run {run_id}: {text[:2000]}",
                    "author": actor,
                    "operations": captured.operations,
                },
                actor=actor,
                staged=captured.staged,
            )
            result.plan = ws.validate(record.id, actor=actor)
    except AirlockError as exc:  # the run is still recorded, with why its plan is not
        reason = f"the captured plan could not be recorded: {exc.message}"
        result.skipped.append({"path": "", "reason": reason})
    finally:
        _audit(ws, result, actor)
    return result


def _check_scope(ws: Workspace, scope: str) -> RelPath:
    scope_path = paths.parse(scope, "scope")
    if scope_path[0] == STATE_DIR:
        raise NotPermittedError(
            f"scope {scope!r} is Airlock's own state", hint="pick a case folder"
        )
    problem = ws.policy.scope_problem(scope_path)
    if problem is not None:
        raise NotPermittedError(problem, hint="run over a case folder such as projects/<case>")
    entry = ws.storage.stat(scope_path)
    if entry is None or entry.kind is not Kind.DIR:
        raise NotFoundError(
            f"scope {scope!r} is not a folder in the workspace",
            hint="create the case folder first, or check the spelling",
        )
    if not isinstance(ws.storage, LocalStorage):
        raise SandboxUnavailableError(
            "sandboxed runs need a workspace on a local (or locally mounted) filesystem",
            hint="mount the bucket with gcsfuse and open the workspace there",
        )
    return scope_path


def _layout(ws: Workspace, scope: RelPath, scratch: Path, limits: Limits) -> tuple[Layout, str]:
    """An overlay of the scope where one can be mounted, else a copy of it."""
    lower = ws.root.joinpath(*scope)
    overlay = Layout(
        upper_mount=scratch / "upper",
        lower=lower,
        view=scratch / "view",
        write_limit=limits.write,
        userns=os.geteuid() != 0,
    )
    overlay.upper_mount.mkdir()
    overlay.view.mkdir()
    if overlay_problem(overlay) is None:
        return overlay, "overlay"
    overlay.view.rmdir()
    copy_scope(lower, overlay.view)
    return replace(overlay, lower=None), "copy"


def overlay_problem(layout: Layout) -> str | None:
    """Why no overlay can be mounted over this scope's filesystem (probed once), or None."""
    key = (layout.lower or Path("/")).stat().st_dev
    if key not in _overlay_problems:
        with launch(["true"], layout, timeout=30, output_limit=65536, cgroup=None) as (out, _):
            _overlay_problems[key] = (
                None if out.exit_code == 0 else (out.launcher_error or "the overlay probe failed")
            )
    return _overlay_problems[key]


def _audit(ws: Workspace, result: RunResult, actor: str) -> None:
    out = result.outcome
    payload: dict[str, Any] = {
        "run_id": result.run_id,
        "scope": result.scope,
        "command": result.command,
        "sandbox": result.sandbox,
        "capture": result.capture,
        "exit_code": out.exit_code,
        "timed_out": out.timed_out,
        "output_limited": out.output_limited,
        "limits_hit": out.limits_hit,
        "seconds": round(out.seconds, 4),
        "skipped": len(result.skipped),
    }
    for name, data in (("stdout", out.stdout), ("stderr", out.stderr)):
        payload[name] = data[:AUDIT_OUTPUT_BYTES].decode("utf-8", "replace")
        payload[f"{name}_bytes"] = len(data)
        payload[f"{name}_sha256"] = hashlib.sha256(data).hexdigest()
    with ws.session() as session:
        audit.append(session, "ran", actor, result.plan.id if result.plan else None, payload)
