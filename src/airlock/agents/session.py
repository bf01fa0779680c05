"""One agent's view of one case: what every agent door (deepagents, LangChain, MCP) calls.

An :class:`AgentSession` is a scope, a principal (from an Airlock token: who acts is never what
the agent says) and the principal's pending plan over the scope (:class:`airlock.drafts.Draft`).
Paths are the ones code sees inside Airlock's sandbox, so a file tool and a shell command name
the same file the same way: ``/workspace/<workspace path>``. The scope is writable (into the
pending plan), the policy's read areas (``/workspace/Tools``) are readable, the folders above
them list only them, and nothing else exists (the ethical wall).

Every method raises :class:`~airlock.errors.AirlockError` (message and hint for the model);
doors turn errors into answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wcmatch import glob as wcglob

from airlock import paths, report
from airlock.drafts import Draft, Entry, Pending
from airlock.errors import (
    AirlockError,
    AuthenticationError,
    InputError,
    NotFoundError,
    NotPermittedError,
)
from airlock.lifecycle import Status
from airlock.paths import RelPath
from airlock.permissions import Principal
from airlock.records import ApplyResult, PlanRecord
from airlock.sandbox.base import MAX_TIMEOUT, SCOPE_MOUNT, WORKSPACE_MOUNT
from airlock.storage.base import Kind
from airlock.workspace import Workspace

GREP_FILE_LIMIT = 10 << 20
"""Files bigger than this are not searched by :meth:`AgentSession.grep` (nor are binary ones)."""

_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.NEGATE


@dataclass(frozen=True)
class Item:
    """A file or folder as an agent sees it."""

    path: str
    is_dir: bool
    size: int
    modified_at: str | None
    """ISO 8601, UTC; None for what only the pending plan makes."""
    is_link: bool = False
    """A symlink: an entry to move or delete, never followed (reading it is refused)."""


@dataclass(frozen=True)
class Match:
    """A line holding the searched text (``line`` counts from 1)."""

    path: str
    line: int
    text: str


@dataclass(frozen=True)
class Ran:
    """What :meth:`AgentSession.execute` did: the output (stdout then stderr), the exit code
    (None if the code did not finish), and how many changes were added to the pending plan."""

    output: str
    exit_code: int | None
    truncated: bool
    changes: int
    summary: str
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    """What the code changed that could not join the plan (a symlink, say), with why."""


class Session(Protocol):
    """What an agent door needs of a session: :class:`AgentSession` in process, or
    :class:`airlock.agents.remote.RemoteSession` against ``airlock serve`` (the same methods,
    the same errors). Every method is described on :class:`AgentSession`."""

    scope: str
    root: str

    @property
    def id(self) -> str: ...
    @property
    def by(self) -> Principal: ...
    def readable_roots(self) -> list[str]: ...
    def stat(self, path: str) -> Item | None: ...
    def ls(self, path: str) -> list[Item]: ...
    def walk(self, path: str) -> list[Item]: ...
    def read_bytes(self, path: str) -> bytes: ...
    def glob(self, pattern: str, path: str | None = None) -> list[Item]: ...
    def grep(
        self,
        literal: str,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> list[Match]: ...
    def write(
        self, path: str, data: bytes | str, *, overwrite: bool = True, reason: str = ""
    ) -> None: ...
    def edit(
        self, path: str, old: str, new: str, *, replace_all: bool = False, reason: str = ""
    ) -> int: ...
    def delete(self, path: str, *, reason: str = "") -> None: ...
    def move(self, source: str, destination: str, *, reason: str = "") -> None: ...
    def copy(self, source: str, destination: str, *, reason: str = "") -> None: ...
    def mkdir(self, path: str, *, reason: str = "") -> None: ...
    def pending(self) -> list[dict[str, Any]]: ...
    def diff(self) -> str: ...
    def discard(self) -> int: ...
    def submit(self, description: str, *, plan_id: str | None = None) -> PlanRecord: ...
    def submit_plan(self, plan: dict[str, Any], plan_id: str | None = None) -> PlanRecord: ...
    def validate(self, plan_id: str) -> PlanRecord: ...
    def status(self, plan_id: str) -> PlanRecord: ...
    def apply(self, plan_id: str) -> ApplyResult: ...
    def rollback(self, plan_id: str) -> ApplyResult: ...
    def approve(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord: ...
    def reject(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord: ...
    def acting_as(self, token: str) -> Session: ...
    def execute(self, command: str, *, timeout: int | None = None) -> Ran: ...


class AgentSession:
    """What ``by`` may see and propose over ``scope`` of ``ws``."""

    def __init__(self, ws: Workspace, scope: str, by: Principal) -> None:
        self.ws = ws
        self.by = by
        self.draft = Draft(ws, scope, by)
        self.scope = self.draft.scope
        self.scope_path = self.draft.scope_path
        problem = ws.policy.scope_problem(self.scope_path)
        if problem is not None:
            raise NotPermittedError(problem, hint="open a session over a case folder")
        found = ws.storage.stat(self.scope_path)
        if found is None or found.kind is not Kind.DIR:
            raise NotFoundError(
                f"scope {self.scope!r} is not a folder of the workspace",
                hint="create the case folder first, or check the spelling",
            )
        self.root = self.shown(self.scope_path)
        self.reads = ws.policy.run_read_paths(self.scope_path)

    @property
    def id(self) -> str:
        return f"airlock:{self.scope}:{self.by.name}"

    # --- paths --------------------------------------------------------------------------------

    def shown(self, path: RelPath) -> str:
        """The agent's name for workspace path ``path``."""
        return "/".join((WORKSPACE_MOUNT, *path))

    def resolve(self, path: str) -> RelPath:
        """The workspace path an agent's ``path`` names; refused if it is relative, leaves the
        workspace, or climbs with ``..``. (Whether it may be seen is :meth:`_visible`.)"""
        if not isinstance(path, str) or not path.startswith("/"):
            raise InputError(
                f"{path!r} is not an absolute path",
                hint=f"name files from the root, e.g. {self.root}/notes.txt",
            )
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if parts[:1] == [SCOPE_MOUNT.strip("/")]:
            parts = [*self.scope_path, *parts[1:]]  # /scope is the scope, as inside a run
        elif parts[:1] == [WORKSPACE_MOUNT.strip("/")]:
            parts = parts[1:]
        else:
            raise NotPermittedError(
                f"{path!r} is outside the workspace",
                hint=f"this session sees {', '.join(self.readable_roots())}",
            )
        if not parts:
            return ()
        return paths.parse("/".join(parts))

    def readable_roots(self) -> list[str]:
        """The folders (and files) this session may read, the scope first."""
        return [self.root, *(self.shown(path) for path in self.reads)]

    def _visible(self, path: RelPath) -> str:
        """How ``path`` may be seen: "inside" (the scope or a read area, or below), "above"
        (a folder holding one of them: it lists only them); else refused as not there."""
        for root in (self.scope_path, *self.reads):
            if path[: len(root)] == root:
                return "inside"
        for root in (self.scope_path, *self.reads):
            if root[: len(path)] == path:
                return "above"
        raise NotFoundError(
            f"{self.shown(path)} does not exist in this session",
            hint=f"this session sees {', '.join(self.readable_roots())}",
        )

    # --- reads --------------------------------------------------------------------------------

    def stat(self, path: str) -> Item | None:
        where = self.resolve(path)
        try:
            seen = self._visible(where)
        except NotFoundError:
            return None
        if seen == "above":
            return Item(self.shown(where), True, 0, None)
        entry = self.draft.entry(where)
        return None if entry is None else self._item(entry)

    def ls(self, path: str) -> list[Item]:
        """The entries of a folder, sorted by name."""
        where = self.resolve(path)
        if self._visible(where) == "above":
            names = sorted(
                {
                    root[len(where)]
                    for root in (self.scope_path, *self.reads)
                    if len(root) > len(where) and root[: len(where)] == where
                }
            )
            items = [self.stat(self.shown((*where, name))) for name in names]
            return [item for item in items if item is not None]
        with self._agent_paths():
            return [self._item(entry) for entry in self.draft.listdir(where)]

    def walk(self, path: str) -> list[Item]:
        """Every entry below a folder (parents first), sorted."""
        return [self._item(entry) for entry in self._walk(self.resolve(path))]

    def _walk(self, where: RelPath, pending: Pending | None = None) -> Iterator[Entry]:
        pending = pending or self.draft.simulate()
        if self._visible(where) == "inside":
            yield from self.draft.walk(where, pending)
            return
        for root in (self.scope_path, *self.reads):
            if root[: len(where)] == where and len(root) > len(where):
                for depth in range(len(where) + 1, len(root)):
                    yield Entry(root[:depth], Kind.DIR, 0, None)
                entry = self.draft.entry(root, pending)
                if entry is None:
                    continue
                yield entry
                if entry.kind is Kind.DIR:
                    yield from self.draft.walk(root, pending)

    def read_bytes(self, path: str) -> bytes:
        where = self.resolve(path)
        if self._visible(where) == "above":
            raise InputError(f"{path!r} is a folder", hint="list it instead")
        with self._agent_paths():
            return self.draft.read_bytes(where)

    def glob(self, pattern: str, path: str | None = None) -> list[Item]:
        """Files below ``path`` (default: the scope) whose path relative to it matches
        ``pattern`` (``**`` for any depth, ``{a,b}``); a pattern without ``/`` matches names."""
        base = self.resolve(path or self.root)
        matcher = _matcher(pattern)
        found = []
        for entry in self._walk(base):
            if entry.kind is Kind.FILE and matcher("/".join(entry.path[len(base) :])):
                found.append(self._item(entry))
        return found

    def grep(
        self,
        literal: str,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> list[Match]:
        """Lines holding ``literal`` (exact text, not a pattern) in the text files below
        ``path`` (default: the scope), optionally only files matching ``glob``."""
        if not literal:
            raise InputError("the text to search for is empty", hint="give some text to find")
        if max_count is not None and max_count <= 0:
            return []
        base = self.resolve(path or self.root)
        matcher = _matcher(glob) if glob else None
        pending = self.draft.simulate()  # once: every file is read from the same view
        targets: list[Entry]
        top = self.draft.entry(base, pending) if self._visible(base) == "inside" else None
        if top is not None and top.kind is Kind.FILE:
            targets = [top]
        else:
            targets = list(self._walk(base, pending))
        found: list[Match] = []
        for entry in targets:
            if entry.kind is not Kind.FILE or entry.size > GREP_FILE_LIMIT:
                continue
            if matcher is not None and not matcher(
                "/".join(entry.path[len(base) :]) or entry.path[-1]
            ):
                continue
            data = self.draft.read_bytes(entry.path, pending)
            if b"\0" in data[:8192]:
                continue
            text = data.decode("utf-8", "replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if literal in line:
                    found.append(Match(self.shown(entry.path), number, line))
                    if max_count is not None and len(found) >= max_count:
                        return found
        return found

    # --- changes (into the pending plan) ------------------------------------------------------

    # ``reason``: why the change is there, shown to the reviewer beside it.

    def write(
        self, path: str, data: bytes | str, *, overwrite: bool = True, reason: str = ""
    ) -> None:
        body = data.encode("utf-8") if isinstance(data, str) else data
        with self._agent_paths():
            self.draft.write(self.resolve(path), body, overwrite=overwrite, reason=reason)

    def edit(
        self, path: str, old: str, new: str, *, replace_all: bool = False, reason: str = ""
    ) -> int:
        with self._agent_paths():
            where = self.resolve(path)
            return self.draft.edit(where, old, new, replace_all=replace_all, reason=reason)

    def delete(self, path: str, *, reason: str = "") -> None:
        with self._agent_paths():
            self.draft.delete(self.resolve(path), reason=reason)

    def move(self, source: str, destination: str, *, reason: str = "") -> None:
        with self._agent_paths():
            self.draft.move(self.resolve(source), self.resolve(destination), reason=reason)

    def copy(self, source: str, destination: str, *, reason: str = "") -> None:
        with self._agent_paths():
            self.draft.copy(self.resolve(source), self.resolve(destination), reason=reason)

    def mkdir(self, path: str, *, reason: str = "") -> None:
        with self._agent_paths():
            self.draft.mkdir(self.resolve(path), reason=reason)

    def pending(self) -> list[dict[str, Any]]:
        """The pending operations in the plan format (paths relative to the scope)."""
        return [op.model_dump(exclude_none=True) for op in self.draft.operations()]

    def diff(self) -> str:
        """The pending changes for a model: one line per change, then what it could do next."""
        pending = self.draft.simulate()
        if not pending.operations:
            return "No pending changes. Everything you read is the case as it is."
        validation = pending.validation
        lines = [f"Pending changes in {self.root} (not applied; nothing real has changed):"]
        why = report.reasons(pending.operations)
        lines += [
            "  " + line for line in report.changes_with_reasons(validation.changes, self.scope, why)
        ]
        for issue in validation.errors:
            lines.append(f"  error: {issue.message}")
        if validation.valid:
            lines.append(report.summary_line(validation))
            if validation.needs_approval:
                lines.append(
                    "Needs a person's approval: " + ", ".join(validation.needs_approval) + "."
                )
        lines.append("Next: submit them for approval, change them further, or discard them.")
        return "\n".join(lines)

    def discard(self) -> int:
        return self.draft.discard()

    # --- plans --------------------------------------------------------------------------------

    def submit(self, description: str, *, plan_id: str | None = None) -> PlanRecord:
        """Submit the pending plan (as ``plan_id``, e.g. one a tool derives from its call, so a
        tool run again on resume finds the plan it submitted) and validate it."""
        return self.draft.submit(description, plan_id=plan_id)

    def validate(self, plan_id: str) -> PlanRecord:
        return self.ws.validate(plan_id, by=self.by)

    def status(self, plan_id: str) -> PlanRecord:
        return self.ws.get(plan_id, by=self.by)

    def apply(self, plan_id: str) -> ApplyResult:
        return self.ws.apply(plan_id, by=self.by)

    def rollback(self, plan_id: str) -> ApplyResult:
        return self.ws.rollback(plan_id, by=self.by)

    def approve(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        """Approve as this session's principal (refused by the core for an agent); with
        ``validation_id``, only if that is the report the approver saw."""
        return self.ws.approve(plan_id, by=self.by, comment=comment, validation_id=validation_id)

    def reject(
        self, plan_id: str, comment: str = "", validation_id: int | None = None
    ) -> PlanRecord:
        return self.ws.reject(plan_id, by=self.by, comment=comment, validation_id=validation_id)

    def submit_plan(self, plan: dict[str, Any], plan_id: str | None = None) -> PlanRecord:
        """Submit (then validate) a whole plan over this session's scope, e.g. one the firm's
        own tools built in the seed format; the pending plan is left as it is."""
        if not isinstance(plan, dict) or plan.get("scope") != self.scope:
            raise NotPermittedError(
                f"this session submits plans over {self.scope!r} only",
                hint=f'set "scope": "{self.scope}" or open a session over the other case',
            )
        record = self.ws.submit(plan, plan_id=plan_id, by=self.by)
        return self.ws.validate(record.id, by=self.by)

    def whoami(self) -> Principal:
        """Who this session acts as (from Airlock authentication)."""
        return self.by

    def acting_as(self, token: str) -> AgentSession:
        """This scope as ``token``'s principal: how a person who resumes a paused agent run
        approves, rejects or rolls back as themselves (never as a name the resume claims)."""
        return AgentSession(self.ws, self.scope, _authenticated(self.ws, token, "approver"))

    # --- code ---------------------------------------------------------------------------------

    def execute(self, command: str, *, timeout: int | None = None) -> Ran:
        """Run a shell command in Airlock's sandbox over the scope as the pending plan leaves
        it (working folder: the scope); what it changes joins the pending plan."""
        from airlock.runs import default_limits

        limits = default_limits(self.ws)
        if timeout:
            limits = dataclasses.replace(limits, timeout=float(min(timeout, MAX_TIMEOUT)))
        shell = f"cd {shlex.quote(self.root)} 2>/dev/null; {command}"
        result = self.draft.execute(["/bin/sh", "-c", shell], limits=limits)
        out = result.outcome
        output = (out.stdout + out.stderr).decode("utf-8", "replace")
        changes = len(result.captured.operations)  # all joined the pending plan, or it raised
        return Ran(
            output=output,
            exit_code=out.exit_code,
            truncated=out.output_limited,
            changes=changes,
            summary=_ran_summary(result.summary, changes, result.skipped),
            skipped=result.skipped,
        )

    # --- helpers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _agent_paths(self) -> Iterator[None]:
        """Errors name paths the way the agent does (``'/workspace/projects/X/a.pdf'``, not the
        core's workspace-relative ``'projects/X/a.pdf'``)."""
        try:
            yield
        except AirlockError as exc:
            roots = "|".join(
                re.escape(paths.render(root)) for root in (self.scope_path, *self.reads)
            )
            quoted = re.compile(rf"'((?:{roots})(?:/[^']*)?)'")
            shown = rf"'{WORKSPACE_MOUNT}/\1'"
            exc.message = quoted.sub(shown, exc.message)
            exc.args = (exc.message,)
            exc.details = [quoted.sub(shown, line) for line in exc.details]
            raise

    def _item(self, entry: Entry) -> Item:
        modified = (
            dt.datetime.fromtimestamp(entry.mtime, dt.UTC).isoformat()
            if entry.mtime is not None
            else None
        )
        return Item(
            self.shown(entry.path),
            entry.kind is Kind.DIR,
            entry.size,
            modified,
            entry.kind is Kind.SYMLINK,
        )


def _matcher(pattern: str) -> Any:
    """Whether a path relative to the search root matches ``pattern``."""
    anchored = pattern.lstrip("/")
    if "/" not in anchored and not pattern.startswith("/"):
        return lambda rel: wcglob.globmatch(rel.rsplit("/", 1)[-1], anchored, flags=_GLOB_FLAGS)
    return lambda rel: wcglob.globmatch(rel, anchored, flags=_GLOB_FLAGS)


def _ran_summary(summary: str, changes: int, skipped: list[dict[str, str]]) -> str:
    text = summary.replace("; no changes, so no plan", "")
    if changes:
        text += f"; {changes} change(s) added to the pending plan (nothing real has changed)"
    elif skipped:
        text += "; nothing it changed could join the pending plan"
    else:
        text += "; it changed no file of the case"
    if skipped:
        text += "; not kept: " + "; ".join(
            f"{item['path'] or 'run'}: {item['reason']}" for item in skipped[:5]
        )
    return text


def report_text(record: PlanRecord) -> str:
    """A plan's report for a model, and what can happen next."""
    lines = report.record_lines(record)
    lines.append(next_step(record))
    return "\n".join(lines)


def next_step(record: PlanRecord) -> str:
    """What can happen to a plan next, in a sentence for a model."""
    status, plan_id = record.status, record.id
    waiting = bool(record.needs_approval)
    if status == Status.VALIDATED and waiting:
        return (
            f"Next: plan {plan_id} waits for a person to approve or reject it (the review page, "
            f"or `airlock plan approve {plan_id}`); an agent cannot approve it. Check its status "
            "later, then apply it."
        )
    if status in (Status.VALIDATED, Status.APPROVED):
        return f"Next: apply plan {plan_id}."
    if status == Status.APPLIED:
        return f"Plan {plan_id} is applied; it can be rolled back."
    if status == Status.INVALID:
        return "Next: fix the errors above and submit a new plan (this one cannot be applied)."
    if status == Status.REJECTED:
        return "The plan was rejected: read the reason, change the work, and submit again."
    return f"Plan {plan_id} is {status}."


def _authenticated(ws: Workspace, token: object, role: str) -> Principal:
    """The principal of API token ``token`` (one for ``role`` is what the caller expects)."""
    from airlock.tokens import authenticate

    found = authenticate(ws, token.strip()) if isinstance(token, str) and token else None
    if found is None:
        what = "the token" if role == "agent" else f"the {role} token"
        raise AuthenticationError(
            f"{what} is not valid (unknown, malformed or revoked)",
            hint=f"an administrator creates one with `airlock token create --role {role}`",
        )
    return found


def open_session(
    workspace: str | Path, *, scope: str, token: str, database_url: str | None = None
) -> AgentSession:
    """A session over ``scope`` of the workspace at ``workspace``, acting as ``token``'s
    principal (an Airlock API token: ``airlock token create``)."""
    ws = Workspace(Path(workspace), database_url=database_url)
    try:
        return AgentSession(ws, scope, _authenticated(ws, token, "agent"))
    except BaseException:
        ws.close()
        raise
