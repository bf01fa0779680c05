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

import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from airlock import audit, paths
from airlock.capture import Captured
from airlock.errors import (
    AirlockError,
    InputError,
    NotFoundError,
    NotPermittedError,
    SandboxUnavailableError,
)
from airlock.paths import RelPath
from airlock.permissions import Action, Principal, acting, authorize
from airlock.records import PlanRecord
from airlock.sandbox import cgroup, get_sandbox, remote_view, seccomp
from airlock.sandbox.base import MAX_TIMEOUT, Limits, ReadArea, Request
from airlock.sandbox.collect import Where, collect, collect_in
from airlock.sandbox.ids import SandboxIds, sandbox_ids
from airlock.sandbox.runner import Layout, Outcome, Running, launch
from airlock.storage.base import Kind
from airlock.storage.local import LocalStorage
from airlock.workspace import Workspace

AUDIT_OUTPUT_BYTES = 64 * 1024
"""How much of each output stream the audit log keeps (with a digest of all of it)."""


STALE_SCRATCH_SECONDS = 2 * MAX_TIMEOUT
"""A run's scratch folder this old belongs to no live run."""

_overlay_problems: dict[tuple[int, int], str | None] = {}


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
    reads: list[str] = field(default_factory=list)
    """What of the workspace the code could read besides its scope (read-only)."""
    host_ids: tuple[int, int] = (0, 0)
    """The host uid and gid the code ran as."""
    captured: Captured = field(default_factory=Captured)
    """What the code changed, as plan operations (submitted as :attr:`plan` unless the caller
    asked for them alone)."""

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
    by: Principal | None = None,
    description: str = "",
    base: Path | None = None,
    submit: bool = True,
) -> RunResult:
    """Run ``command`` over ``scope`` in a sandbox; what it changed comes back as a plan,
    submitted by ``by`` (the local operator if none is named).

    ``base``: a folder laid out like the workspace whose ``<scope>`` the code sees instead of
    the real one (a pending plan's view of it, :mod:`airlock.drafts`); what the code changed is
    then relative to that. Without ``submit`` nothing is submitted: the changes are left in the
    result's ``captured`` for the caller."""
    by = acting(by)
    authorize(by, Action.RUN)
    scope_path = _check_scope(ws, scope)
    if not command or not all(isinstance(part, str) for part in command) or not command[0]:
        raise InputError(
            "no command to run", hint="give the command after `--`, e.g. airlock run ... -- ls"
        )
    if any("\x00" in part for part in command):
        raise InputError("the command contains a NUL character", hint="remove it and retry")
    limits = limits or default_limits(ws)
    if not 0 < limits.timeout <= MAX_TIMEOUT:
        raise InputError(
            f"a run's timeout must be between 0 and {MAX_TIMEOUT} seconds, not {limits.timeout}",
            hint="split longer work into several runs",
        )
    backend = get_sandbox(sandbox)
    local = isinstance(ws.storage, LocalStorage)
    owner = (ws.root.joinpath(*scope_path) if local else ws.root).stat()
    ids = sandbox_ids(owner.st_uid)
    if isinstance(ids, str):
        raise SandboxUnavailableError(f"sandboxed runs cannot start here: {ids}")
    run_id = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    scratch = scratch_root() / run_id
    scratch.mkdir()
    with contextlib.ExitStack() as fds:
        fds.callback(shutil.rmtree, scratch, ignore_errors=True)  # last: after the fds close
        scratch.chmod(0o711)  # whatever the umask: the sandbox's ids must traverse it
        read_areas = _read_areas(ws, scope_path)
        storage, root = _local_files(ws, scope_path, read_areas, scratch, owner, fds)
        reads: list[tuple[int, Path, Path]] = []
        areas: list[ReadArea] = []
        for index, (path, kind) in enumerate(read_areas):
            fd = storage.open_folder(path)
            fds.callback(os.close, fd)
            mount_point = scratch / f"read-{index}"
            mount_point.mkdir() if kind is Kind.DIR else mount_point.touch()
            reads.append((fd, root.joinpath(*path), mount_point))
            areas.append(ReadArea(path, mount_point))
        lower = (base or root).joinpath(*scope_path)
        layout = _layout(lower, scratch, limits, ids, tuple(reads))
        descriptors: list[int] = []  # the backend may add its own: closed when the run is done
        fds.callback(_close_all, descriptors)
        filter_fd = seccomp.filter_fd() if backend.seccomp else None
        if filter_fd is not None:
            descriptors.append(filter_fd)
        group = cgroup.make(run_id, limits.memory, limits.processes + backend.helper_tasks)
        try:
            request = Request(
                command=tuple(command),
                scope=scope_path,
                view=layout.view,
                scratch=scratch,
                run_as=(ids.launch_uid, ids.launch_gid),
                reads=tuple(areas),
                descriptors=descriptors,
                seccomp_fd=filter_fd,
                network=network,
                limits=limits,
                cgroup=group is not None,
            )
            argv = backend.argv(request)
            with launch(
                argv,
                layout,
                timeout=limits.timeout,
                output_limit=limits.output,
                cgroup=group,
                extra_fds=descriptors,
            ) as (outcome, running):
                captured = Captured()
                if running is not None:
                    captured = _capture(ws, base or root, scope_path, layout, running, limits.write)
                    if captured.over_write_limit and "write" not in outcome.limits_hit:
                        outcome.limits_hit.append("write")
        finally:
            if group is not None:
                group.remove()
    result = RunResult(
        run_id, paths.render(scope_path), list(command), backend.name, layout.mode, outcome
    )
    result.skipped = captured.skipped
    result.reads = [paths.render(area.path) for area in areas]
    result.host_ids = (ids.host_uid, ids.host_gid)
    result.captured = captured
    try:
        if captured.operations and submit:
            text = shlex.join(command)
            record = ws.submit(
                {
                    "scope": result.scope,
                    "description": description
                    or f"Changes made by sandboxed run {run_id}: {text[:2000]}",
                    "operations": captured.operations,
                },
                by=by,
                staged=captured.staged,
            )
            result.plan = ws.validate(record.id, by=by)
    except AirlockError as exc:  # the run is still recorded, with why its plan is not
        reason = f"the captured plan could not be recorded: {exc.message}"
        result.skipped.append({"path": "", "reason": reason})
    finally:
        _audit(ws, result, by)
    return result


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        os.close(fd)


def scratch_root() -> Path:
    """Where runs keep their scratch folders: outside Airlock's private state (which the
    sandbox's ids may not traverse), in a folder of this user's that others may only traverse."""
    root = Path(tempfile.gettempdir()) / f"airlock-runs-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir()
        root.chmod(0o711)
    st = root.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SandboxUnavailableError(
            f"{root} is not a folder of this user's that only it may change",
            hint=f"remove {root} (someone else may have made it) and retry",
        )
    # A run's scratch is removed when it ends; only a killed Airlock leaves one behind.
    stale = time.time() - STALE_SCRATCH_SECONDS
    for entry in root.glob("run-*"):
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < stale:
                shutil.rmtree(entry, ignore_errors=True)
    return root


def _read_areas(ws: Workspace, scope: RelPath) -> list[tuple[RelPath, Kind]]:
    """What of the workspace a run over ``scope`` may read: the policy's, where present."""
    found: list[tuple[RelPath, Kind]] = []
    for path in ws.policy.run_read_paths(scope):
        entry = ws.storage.stat(path)
        if entry is not None and entry.kind in (Kind.DIR, Kind.FILE):
            found.append((path, entry.kind))
    return found


def _capture(
    ws: Workspace,
    files: Path,
    scope: RelPath,
    layout: Layout,
    running: Running,
    write_limit: int,
) -> Captured:
    """What the run changed, as plan operations. Never raises: a failure is reported as
    skipped, so the run is still recorded."""
    where = Where(
        workspace=str(files),
        content=str(ws.content.root),
        scope=scope,
        mode=layout.mode,
        result=layout.result,
        view=str(layout.view),
        copied=str(layout.stage / "copied"),
        write_limit=write_limit,
    )
    try:
        if layout.mode == "overlay" and _untouched(running.path(layout.result)):
            return Captured()  # the code changed nothing: its upper layer is empty
        if layout.ids.subordinate is None:
            return collect(where.under(running.root()))
        return collect_in(running.proc.pid, where)
    except Exception as exc:  # a bug or a filesystem Airlock cannot read: record, never crash
        reason = f"capture failed ({type(exc).__name__}: {exc}); nothing the run changed was kept"
        return Captured(skipped=[{"path": "", "reason": reason}])


def _untouched(upper: Path) -> bool:
    """True when an overlay's upper layer is empty; False when it is not, or cannot be read."""
    try:
        with os.scandir(upper) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _check_scope(ws: Workspace, scope: str) -> RelPath:
    scope_path = paths.parse(scope, "scope")  # refuses '.airlock' at any depth
    problem = ws.policy.scope_problem(scope_path)
    if problem is not None:
        raise NotPermittedError(problem, hint="run over a case folder such as projects/<case>")
    entry = ws.storage.stat(scope_path)
    if entry is None or entry.kind is not Kind.DIR:
        raise NotFoundError(
            f"scope {scope!r} is not a folder in the workspace",
            hint="create the case folder first, or check the spelling",
        )
    return scope_path


def _local_files(
    ws: Workspace,
    scope: RelPath,
    read_areas: list[tuple[RelPath, Kind]],
    scratch: Path,
    owner: os.stat_result,
    cleanup: contextlib.ExitStack,
) -> tuple[LocalStorage, Path]:
    """The workspace's files as a local folder laid out like it, for the block: the workspace
    itself on a local disk; for files elsewhere (a bucket), a read-only view of the scope and
    the read areas whose bodies are downloaded on first read (:mod:`airlock.sandbox.remote_view`)."""
    if isinstance(ws.storage, LocalStorage):
        return ws.storage, ws.root
    cache = ws.state_dir / "cache" / "runs"
    cleanup.callback(remote_view.Cache(cache).trim, ws.policy.run_cache_bytes)  # once unmounted
    at = scratch / "files"
    at.mkdir()
    areas = [scope, *(path for path, _ in read_areas)]
    cleanup.enter_context(
        remote_view.mounted(ws.location, areas, at, cache, (owner.st_uid, owner.st_gid))
    )
    view = LocalStorage(at)
    cleanup.callback(view.close)
    return view, at


def _layout(
    lower: Path,
    scratch: Path,
    limits: Limits,
    ids: SandboxIds,
    reads: tuple[tuple[int, Path, Path], ...],
) -> Layout:
    """An overlay of the scope where one can be mounted, else a copy of it."""
    stage = scratch / "stage"
    view = scratch / "view"
    stage.mkdir()
    view.mkdir()
    overlay = Layout(stage, lower, view, limits.write, "overlay", ids, reads)
    if overlay_problem(overlay) is None:
        return overlay
    return replace(overlay, mode="copy", size=_tree_bytes(lower) + limits.write)


def _tree_bytes(folder: Path) -> int:
    """The apparent size of everything under ``folder`` (for a copy of it), never following links."""
    total = 0
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += (Path(parent) / name).lstat().st_size
    return total + 4096


def overlay_problem(layout: Layout) -> str | None:
    """Why no overlay can be mounted over this scope's filesystem (probed once), or None."""
    if shutil.which("fuse-overlayfs") is None:
        return "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is missing or not usable by this user"
    key = (layout.lower.stat().st_dev, os.geteuid())
    if key not in _overlay_problems:
        with launch(["true"], layout, timeout=30, output_limit=65536, cgroup=None) as (out, _):
            _overlay_problems[key] = (
                None if out.exit_code == 0 else (out.launcher_error or "the overlay probe failed")
            )
    return _overlay_problems[key]


def _audit(ws: Workspace, result: RunResult, by: Principal) -> None:
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
        "reads": result.reads,
        "host_ids": list(result.host_ids),
    }
    for name, data in (("stdout", out.stdout), ("stderr", out.stderr)):
        payload[name] = data[:AUDIT_OUTPUT_BYTES].decode("utf-8", "replace")
        payload[f"{name}_bytes"] = len(data)
        payload[f"{name}_sha256"] = hashlib.sha256(data).hexdigest()
    with ws.session() as session:
        audit.append(session, "ran", by.name, result.plan.id if result.plan else None, payload)
