"""Pending plans: the changes one principal has proposed over one scope and not yet submitted.

An agent works the way it would on a real disk (write, edit, move, delete, run code) and every
change lands here instead: an ordered list of plan operations, kept in the database (one
:class:`~airlock.db.DraftRow` per scope and principal) so that every door and process sees the
same pending changes. Nothing here writes a real file.

- Each change is checked when it is added, by simulating the whole pending plan
  (:func:`airlock.simulate.simulated`): a change the plan could not make is refused with the
  simulation's own error, so what is pending is always a plan that validates.
- Reads see the pending changes (read-your-writes): what exists, and its size, comes from the
  simulation's :class:`~airlock.view.View`; a file's bytes are found by tracing its path back
  through the operations (:func:`origin`) to a body in the content store or a real file.
- Write bodies go into the content store at once, recorded as uploads of the principal, so the
  pending plan names them by SHA-256 exactly as the plan it becomes will.
- :meth:`Draft.submit` turns it into a plan (submitted and validated) and empties it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlock import paths
from airlock.bodies import store_inline
from airlock.db import DraftRow, UploadRow, utcnow
from airlock.errors import (
    AirlockError,
    BusyError,
    ConflictError,
    InputError,
    NotFoundError,
    NotPermittedError,
    UnsafePathError,
)
from airlock.permissions import Action, Principal, authorize
from airlock.plan import Copy, Delete, Mkdir, Move, Plan, Write, canonical_json, parse_plan
from airlock.plan_files import trace
from airlock.sandbox.base import Limits
from airlock.simulate import simulated
from airlock.storage.base import Kind
from airlock.validation import Issue, Validation
from airlock.view import Real, Refused, View

if TYPE_CHECKING:
    from airlock.records import PlanRecord
    from airlock.runs import RunResult
    from airlock.workspace import Workspace

Operation = Mkdir | Write | Copy | Move | Delete


@dataclass(frozen=True)
class Entry:
    """One entry of the pending view: its workspace path, kind, size and, for a real entry
    the plan leaves where it is or moves, its modification time (None for what the plan makes)."""

    path: paths.RelPath
    kind: Kind
    size: int
    mtime: float | None


@dataclass(frozen=True)
class Pending:
    """The pending plan simulated now: its operations, the report, and the view after them."""

    operations: list[Operation]
    validation: Validation
    view: View


def origin(
    operations: list[Operation], scope: paths.RelPath, path: paths.RelPath
) -> str | paths.RelPath:
    """Where the bytes of the file at workspace path ``path`` after ``operations`` (a plan over
    ``scope``) come from: the SHA-256 of a body in the content store (a write), or the path of
    a real file."""
    found = trace(operations, scope, path)
    if isinstance(found, Write):
        assert found.sha256 is not None  # pending writes are always stored
        return found.sha256
    return found


_NOTHING = Validation(
    valid=True,
    needs_approval=[],
    errors=[],
    warnings=[],
    changes=[],
    counts={},
    bytes_written=0,
    bytes_removed=0,
    preconditions={},
)
"""The report of an empty pending plan."""


class Draft:
    """The pending plan of ``by`` over ``scope`` (a workspace-relative folder)."""

    def __init__(self, ws: Workspace, scope: str, by: Principal) -> None:
        self.ws = ws
        self.scope = paths.render(paths.parse(scope, "scope"))
        self.scope_path = paths.parse(self.scope, "scope")
        self.by = by

    # --- the stored list ----------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        with self.ws.store.read() as session:
            row = session.get(DraftRow, (self.scope, self.by.name))
            raw = json.loads(row.operations) if row is not None else []
        return list(self._plan(raw).operations) if raw else []

    def _plan(self, raw: list[dict[str, Any]]) -> Plan:
        return parse_plan({"scope": self.scope, "author": self.by.name, "operations": raw})

    def _save(self, operations: list[Operation], based_on: list[Operation]) -> bool:
        """Store ``operations`` if the pending plan is still ``based_on`` (what they were made
        from); False if another call changed it meanwhile (nothing is stored then)."""
        raw = canonical_json([op.model_dump() for op in operations])
        with self.ws.store.write() as session:
            row = session.get(DraftRow, (self.scope, self.by.name))
            stored = row.operations if row is not None else "[]"
            if stored != canonical_json([op.model_dump() for op in based_on]):
                return False
            if not operations:
                if row is not None:
                    session.delete(row)
                return True
            if row is None:
                row = DraftRow(scope=self.scope, owner=self.by.name, operations="[]")
                session.add(row)
            row.operations = raw
            row.updated_at = utcnow()
            return True

    def _change(self, make: Callable[[list[Operation]], tuple[list[Operation], int]]) -> Pending:
        """Replace the pending plan by ``make(current)`` (the new operations, and the index of
        the first new one), refused with the simulation's error if it could not make them. Two
        calls at once never lose a change: the one that finds the plan changed is made again."""
        for _attempt in range(_ATTEMPTS):
            current = self.operations()
            new, first = make(current)
            pending = self.simulate(new)
            problems = [e for e in pending.validation.errors if e.op is None or e.op >= first]
            if problems:
                raise _refusal(problems)
            if self._save(new, current):
                return pending
        raise BusyError(
            "the pending plan kept changing while this change was checked",
            hint="another call of the same agent is changing it; retry in a moment",
        )

    def simulate(self, operations: list[Operation] | None = None) -> Pending:
        """Simulate the pending plan (or ``operations``) on the workspace as it is now."""
        authorize(self.by, Action.READ)
        ops = self.operations() if operations is None else operations
        if not ops:
            return Pending([], _NOTHING, View(self.ws.storage))
        plan = Plan(scope=self.scope, author=self.by.name, operations=ops)
        validation, view = simulated(
            plan, self.ws.storage, self.ws.policy, self.ws.content, copies=False
        )
        return Pending(ops, validation, view)

    # --- reads --------------------------------------------------------------------------------

    def entry(self, path: paths.RelPath, pending: Pending | None = None) -> Entry | None:
        """The entry at workspace path ``path`` after the pending changes, or None. (Outside
        the scope nothing is pending: that is the workspace as it is.)"""
        pending = pending or self.simulate()
        try:
            found = pending.view.entry(path)
        except Refused as refusal:
            raise UnsafePathError(
                refusal.message, hint="a symlink is an entry to move or delete, never a way in"
            ) from None
        if found is None:
            return None
        kind, size = found
        node = pending.view.node(path)
        mtime = None
        if isinstance(node, Real):
            real = pending.view.real_stat(node.real)
            mtime = real.mtime_ns / 1e9 if real is not None else None
        return Entry(path, kind, size, mtime)

    def listdir(self, path: paths.RelPath, pending: Pending | None = None) -> list[Entry]:
        """The entries of folder ``path`` (a workspace path) after the pending changes, sorted by name."""
        pending = pending or self.simulate()
        folder = self.entry(path, pending)
        if folder is None:
            raise NotFoundError(f"{self._shown(path)} does not exist", hint="list its parent")
        if folder.kind is not Kind.DIR:
            raise InputError(f"{self._shown(path)} is a file, not a folder", hint="read it")
        found = []
        for name in pending.view.listdir(path):
            entry = self.entry((*path, name), pending)
            if entry is not None:
                found.append(entry)
        return found

    def walk(self, path: paths.RelPath, pending: Pending | None = None) -> Iterator[Entry]:
        """Every entry below folder ``path`` after the pending changes, parents first."""
        pending = pending or self.simulate()
        for entry in self.listdir(path, pending):
            yield entry
            if entry.kind is Kind.DIR:
                yield from self.walk(entry.path, pending)

    def read(self, path: paths.RelPath, pending: Pending | None = None) -> Iterator[bytes]:
        """The bytes of file ``path`` after the pending changes, in chunks."""
        pending = pending or self.simulate()
        entry = self.entry(path, pending)
        if entry is None:
            raise NotFoundError(f"{self._shown(path)} does not exist", hint="check the path")
        if entry.kind is Kind.DIR:
            raise InputError(f"{self._shown(path)} is a folder", hint="list it instead")
        if entry.kind is not Kind.FILE:
            raise InputError(
                f"{self._shown(path)} is a {entry.kind.value}, not a file",
                hint="only regular files can be read",
            )
        source = origin(pending.operations, self.scope_path, path)
        if isinstance(source, str):
            return self.ws.content.read(source)
        return self.ws.storage.read(source)

    def read_bytes(self, path: paths.RelPath, pending: Pending | None = None) -> bytes:
        return b"".join(self.read(path, pending))

    # --- changes ------------------------------------------------------------------------------

    def add(self, op: Operation) -> Pending:
        """Add ``op`` to the pending plan, refused (with the simulation's error) if the plan
        could not make it; the last write of a file is replaced rather than stacked."""
        authorize(self.by, Action.SUBMIT)

        def added(current: list[Operation]) -> tuple[list[Operation], int]:
            ops = _folded(current, op)
            return ops, len(ops) - 1

        return self._change(added)

    def add_all(self, raw: list[dict[str, Any]], staged: dict[str, int]) -> Pending:
        """Add what a sandboxed run changed (plan operations over the pending view, naming the
        bodies it ``staged``), checked together."""
        authorize(self.by, Action.SUBMIT)
        plan, inline = store_inline(self._plan(raw), self.ws.content)
        self._record_uploads({**staged, **inline})
        return self._change(lambda current: ([*current, *plan.operations], len(current)))

    def execute(
        self,
        command: Sequence[str],
        *,
        sandbox: str = "bwrap",
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``command`` in the sandbox over the scope as the pending plan leaves it; what
        the code changed is added to the pending plan (a move it makes stays a move).

        With nothing pending the code sees the real scope (an overlay: nothing is copied).
        Otherwise the pending view of the scope is first copied into a scratch folder, so
        that costs reading every file of the scope once."""
        from airlock import runs

        authorize(self.by, Action.RUN)
        pending = self.simulate()
        with contextlib.ExitStack() as cleanup:
            base = None
            if pending.operations:
                base = Path(tempfile.mkdtemp(prefix="pending-", dir=runs.scratch_root()))
                cleanup.callback(shutil.rmtree, base, ignore_errors=True)
                base.chmod(0o711)
                self._copy_scope(base, pending)
            result = runs.run(
                self.ws,
                self.scope,
                command,
                sandbox=sandbox,
                limits=limits,
                by=self.by,
                base=base,
                submit=False,
            )
        if result.captured.operations:
            self.add_all(result.captured.operations, result.captured.staged)
        return result

    def _copy_scope(self, base: Path, pending: Pending) -> None:
        """Lay out the scope as ``pending`` leaves it under ``base`` (folders and files, with
        their modification times; symlinks and special files are left out)."""
        top = base.joinpath(*self.scope_path)
        top.mkdir(mode=0o755, parents=True)
        with self.ws.storage.batch():  # each real folder resolved once
            self._copy_entries(base, pending)

    def _copy_entries(self, base: Path, pending: Pending) -> None:
        for entry in self.walk(self.scope_path, pending):
            target = base.joinpath(*entry.path)
            if entry.kind is Kind.DIR:
                target.mkdir(mode=0o755)
            elif entry.kind is Kind.FILE:
                with target.open("wb") as out:
                    for chunk in self.read(entry.path, pending):
                        out.write(chunk)
                target.chmod(0o644)
                if entry.mtime is not None:
                    os.utime(target, (entry.mtime, entry.mtime))

    def write(
        self, path: paths.RelPath, data: bytes, *, overwrite: bool = True, reason: str = ""
    ) -> Pending:
        """Write ``data`` to file ``path``; with ``overwrite`` False an existing file is refused."""
        rel = self.in_scope(path)
        pending = self.simulate()
        existing = self.entry(path, pending)
        if existing is not None and existing.kind is Kind.FILE and not overwrite:
            raise ConflictError(
                f"{self._shown(path)} exists already",
                hint="edit it, or write with overwrite allowed",
            )
        blob = self.ws.upload([data], by=self.by)  # the plan names it, as its submit will
        return self.add(
            Write(
                op="write",
                path=paths.render(rel),
                sha256=blob.sha256,
                size=blob.size,
                overwrite=existing is not None,
                parents=True,
                reason=reason,
            )
        )

    def mkdir(self, path: paths.RelPath, *, reason: str = "") -> Pending:
        """Make folder ``path`` and any missing parents (an existing folder is nothing to do)."""
        return self.add(
            Mkdir(op="mkdir", path=paths.render(self.in_scope(path)), parents=True, reason=reason)
        )

    def delete(self, path: paths.RelPath, *, reason: str = "") -> Pending:
        """Delete file or folder ``path`` (a folder with all it holds)."""
        return self.add(Delete(op="delete", path=paths.render(self.in_scope(path)), reason=reason))

    def move(
        self, source: paths.RelPath, destination: paths.RelPath, *, reason: str = ""
    ) -> Pending:
        """Move (rename) ``source`` to ``destination``; never over an existing entry."""
        return self.add(
            Move(
                op="move",
                source=paths.render(self.in_scope(source)),
                destination=paths.render(self.in_scope(destination)),
                parents=True,
                reason=reason,
            )
        )

    def copy(
        self, source: paths.RelPath, destination: paths.RelPath, *, reason: str = ""
    ) -> Pending:
        """Copy file or folder ``source`` to ``destination``; never over an existing entry."""
        return self.add(
            Copy(
                op="copy",
                source=paths.render(self.in_scope(source)),
                destination=paths.render(self.in_scope(destination)),
                parents=True,
                reason=reason,
            )
        )

    def edit(
        self,
        path: paths.RelPath,
        old: str,
        new: str,
        *,
        replace_all: bool = False,
        reason: str = "",
    ) -> int:
        """Replace ``old`` by ``new`` in text file ``path``: exactly once (``old`` must be
        unique), or everywhere; how many were replaced."""
        self.in_scope(path)
        if not old:
            raise InputError("the text to replace is empty", hint="give the exact text to change")
        try:
            text = self.read_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{self._shown(path)} is not UTF-8 text", hint="write the whole file instead"
            ) from None
        count = text.count(old)
        if count == 0:
            raise InputError(
                f"the text to replace was not found in {self._shown(path)}",
                hint="read the file and copy the exact text, whitespace included",
            )
        if count > 1 and not replace_all:
            raise InputError(
                f"the text to replace appears {count} times in {self._shown(path)}",
                hint="give a longer, unique piece of text, or replace every occurrence",
            )
        self.write(path, text.replace(old, new).encode("utf-8"), reason=reason)
        return count

    def discard(self) -> int:
        """Drop every pending change; how many there were."""
        authorize(self.by, Action.SUBMIT)
        while True:
            current = self.operations()
            if self._save([], current):
                return len(current)

    def submit(self, description: str, *, plan_id: str | None = None) -> PlanRecord:
        """Submit the pending plan (then validate it) as ``plan_id`` (default: a new id) and
        empty it."""
        ops = self.operations()
        if not ops:
            raise InputError(
                "there are no pending changes to submit",
                hint="make a change first (write, edit, move, delete, or run code)",
            )
        record = self.ws.submit(
            {
                "scope": self.scope,
                "description": description,
                "operations": [op.model_dump() for op in ops],
            },
            plan_id=plan_id,
            by=self.by,
        )
        while True:  # what was added meanwhile stays pending
            current = self.operations()
            if current[: len(ops)] != ops or self._save(current[len(ops) :], current):
                break  # (changed under the submit itself: left as it is, for the agent to see)
        return self.ws.validate(record.id, by=self.by)

    def _record_uploads(self, staged: dict[str, int]) -> None:
        """Record bodies put in the content store for the pending plan (by a sandboxed run, or
        moved out of a captured plan) as this principal's uploads, so the plan may name them."""
        if not staged:
            return
        with self.ws.store.write() as session:
            for sha256, size in staged.items():
                session.add(UploadRow(sha256=sha256, size=size, uploaded_by=self.by.name))

    def in_scope(self, path: paths.RelPath) -> paths.RelPath:
        """Workspace path ``path`` relative to the scope; refused outside it (or at its root)."""
        size = len(self.scope_path)
        if len(path) <= size or path[:size] != self.scope_path:
            raise NotPermittedError(
                f"{self._shown(path)} is outside the scope {self.scope!r}",
                hint=f"change only files inside {self.scope}/",
            )
        return path[size:]

    @staticmethod
    def _shown(path: paths.RelPath) -> str:
        return repr(paths.render(path))


def _folded(current: list[Operation], op: Operation) -> list[Operation]:
    """``current`` with ``op`` added: a write right after a write of the same file replaces it
    (keeping whether the first one overwrote), so editing a file twice is one change."""
    if isinstance(op, Write) and current:
        last = current[-1]
        if isinstance(last, Write) and last.path == op.path:
            kept = {"overwrite": last.overwrite, "reason": op.reason or last.reason}
            return [*current[:-1], op.model_copy(update=kept)]
    return [*current, op]


_ATTEMPTS = 5
"""How often a change is made again when other calls keep changing the pending plan."""

_REFUSALS: dict[str, tuple[type[AirlockError], str]] = {
    "exists": (ConflictError, "choose another name, or move or delete what is there first"),
    "missing-source": (NotFoundError, "check the path: list the folder to see what is there"),
    "protected": (NotPermittedError, "the policy protects this path; leave it as it is"),
    "scope": (NotPermittedError, "work inside the case folder"),
    "limit-operations": (InputError, "submit what is pending first, then go on in a new plan"),
    "limit-bytes": (InputError, "submit what is pending first, then go on in a new plan"),
    "limit-deletions": (InputError, "submit what is pending first, then go on in a new plan"),
}
"""How a simulation error becomes the refusal of a change: its error class and what to do."""


def _refusal(problems: list[Issue]) -> AirlockError:
    first = problems[0]
    error, hint = _REFUSALS.get(first.code, (InputError, "change the request and retry"))
    message = first.message.split(": ", 1)[-1] if first.op is not None else first.message
    # A pending move or copy never replaces what is there: the plan's advice is not for it.
    return error(
        message.split('; set "overwrite"', 1)[0],
        hint=hint,
        details=[p.message for p in problems[1:]],
    )
