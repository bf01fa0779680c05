"""The file on either side of one change of a plan, for a person to open: where its bytes are.

A plan's page lists its changes (a validation's ``changes``, numbered from 1 on the page); each
change of a file has a file *before* it (what it deletes, overwrites, replaces, moves or copies)
and a file *after* it (what it writes, or where it moves or copies to). :func:`file_side` says
where the bytes of one side are, and :meth:`FileSide.read` reads at most a given number of them:

* a write's body is in the content store (by its SHA-256), or inline in a plan not yet stored;
* while the plan is not applied, every other file is the real one, traced back through the plan's
  earlier operations (a file the plan wrote before it moves it is that write's body; a file inside
  a folder the plan moved is read where the folder is now);
* once it is applied, what it deleted, overwrote or replaced is the copy its apply kept aside
  (``.airlock/trash/<transaction>/<n>``: :mod:`airlock.journal`), and the rest is read where the
  plan put it.

Every real file is read through the workspace's :class:`~airlock.storage.base.Storage` (its path
checks and its refusal of anything but a regular file). While an apply or rollback runs, no side
is read: the files are between two states. Nothing is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from airlock import paths
from airlock.errors import InputError, NotFoundError, PlanStateError
from airlock.journal import trash_dir
from airlock.paths import RelPath, render
from airlock.plan import Copy, Move, Operation, Write
from airlock.storage.base import Kind
from airlock.validation import Change

if TYPE_CHECKING:
    from airlock.records import PlanRecord
    from airlock.workspace import Workspace

Side = Literal["before", "after"]
SIDES: tuple[Side, ...] = ("before", "after")

_DESTROYS = ("delete", "overwrite")


def sides_of(change: Change) -> tuple[Side, ...]:
    """Which sides of ``change`` hold a file a person can open (none for a folder)."""
    if change.kind != "file" or change.action == "mkdir":
        return ()
    if change.action == "delete":
        return ("before",)
    if change.action == "create":
        return ("after",)
    return SIDES


@dataclass(frozen=True)
class FileSide:
    """One side of one change: the file a person opens, and where its bytes are."""

    number: int
    """The change's place in the validation's list, from 1 (as the page numbers it)."""
    side: Side
    change: Change
    path: str
    """The workspace path this side's file has (before: where it was; after: where it goes)."""
    where: str
    """Where the bytes are read from, said for a person."""
    sha256: str | None
    """The SHA-256 the plan's report gives this side, when it gives one."""
    _stored: str | None = None
    _inline: bytes | None = None
    _real: RelPath | None = None
    _ws: Workspace | None = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    def size(self) -> int | None:
        """The size in bytes of what :meth:`read` reads (None: it is gone)."""
        if self._inline is not None:
            return len(self._inline)
        assert self._ws is not None
        if self._stored is not None:
            return self._ws.content.size(self._stored)
        assert self._real is not None
        entry = self._ws.storage.stat(self._real)
        return entry.size if entry is not None and entry.kind is Kind.FILE else None

    def chunks(self) -> Iterator[bytes]:
        """The bytes, in chunks (for a download)."""
        if self._inline is not None:
            yield self._inline
            return
        assert self._ws is not None
        if self._stored is not None:
            yield from self._ws.content.read(self._stored)
            return
        assert self._real is not None
        if self.size() is None:
            raise NotFoundError(
                f"{self.path!r} is not there any more ({self.where})",
                hint="it was moved or removed since; check the plan again to see it as it is",
            )
        yield from self._ws.storage.read(self._real)

    def read(self, limit: int) -> bytes:
        """At most the first ``limit`` bytes (a caller that reads ``limit + 1`` learns whether
        there are more)."""
        out = bytearray()
        for chunk in self.chunks():
            out += chunk[: limit - len(out)]
            if len(out) >= limit:
                break
        return bytes(out)

    def unchanged(self, data: bytes) -> bool | None:
        """Whether ``data`` (the whole file) is what the report says this side holds (None: the
        report gives no hash for it)."""
        if self.sha256 is None:
            return None
        return hashlib.sha256(data).hexdigest() == self.sha256


def trace(operations: list[Operation], scope: RelPath, path: RelPath) -> Write | RelPath:
    """What the file at ``path`` after ``operations`` is: a write of theirs, or a real path."""
    for op in reversed(operations):
        if isinstance(op, Write) and scope + paths.parse(op.path) == path:
            return op
        if isinstance(op, Copy | Move):
            destination = scope + paths.parse(op.destination)
            if path[: len(destination)] == destination:
                path = scope + paths.parse(op.source) + path[len(destination) :]
    return path


def file_side(ws: Workspace, record: PlanRecord, number: int, side: str) -> FileSide:
    """The file on ``side`` ("before" or "after") of change ``number`` (from 1) of ``record``'s
    latest validation. Refuses a change that has no such file, and any side while the plan's
    files are between two states (an apply or rollback running)."""
    validation = record.validation
    changes = validation.changes if validation is not None else []
    if not 1 <= number <= len(changes):
        raise NotFoundError(
            f"plan {record.id!r} has no change {number} (it lists {len(changes)})",
            hint="open the file from the plan's page; if the plan was checked again, reload it",
        )
    change = changes[number - 1]
    if side not in sides_of(change):
        offered = " or ".join(sides_of(change)) or "neither side (it is a folder)"
        raise InputError(
            f"change {number} ({change.action} {change.path}) has no {side!r} file: "
            f"it has {offered}",
            hint="open the file from the plan's page",
        )
    if record.status in ("applying", "rolling_back"):
        raise PlanStateError(
            f"plan {record.id!r} is {record.status.replace('_', ' ')}: its files are between "
            "two states and are not shown meanwhile",
            hint="wait for it to finish (its page shows the progress), then open the file again",
        )
    plan = record.plan
    op = plan.operations[change.op]
    scope = paths.parse(plan.scope, "scope")
    before = side == "before"
    path = change.source if before and change.action in ("move", "copy") else change.path
    path = path or change.path
    sha = change.sha256_before if before and change.action in _DESTROYS else None
    if before and change.replaces:
        path, sha = change.path, change.sha256_before
    if not before:
        sha = change.sha256_after
    here = FileSide(number, side, change, path, "", sha, _ws=ws)
    applied = record.status == "applied"
    if not before and isinstance(op, Write):
        return _write(here, op, "the body the plan writes")
    if applied:
        if before and (change.action in _DESTROYS or change.replaces):
            with ws.read_session() as session:
                txn = ws.store.last_apply(session, record.id)
                purged = txn is None or txn.purged_at is not None
                txn_id = txn.id if txn is not None else ""
            if purged:
                raise NotFoundError(
                    f"the old {path!r} was kept aside by the apply and has since been purged",
                    hint="`airlock gc` purges kept-aside files once the retention has passed",
                )
            aside = (*trash_dir(txn_id), str(number - 1))
            return _real(here, aside, "the copy the apply kept aside")
        # What was moved or copied is where the plan put it (so is what it wrote).
        return _real(here, paths.parse(change.path, stored=True), "the file as it is now")
    operations = plan.operations[: change.op + (0 if before else 1)]
    traced = trace(operations, scope, paths.parse(path, stored=True))
    if isinstance(traced, Write):
        return _write(here, traced, "the body an earlier operation of the plan writes")
    what = "the file as it is now" if before else f"the file now at {render(traced)}"
    return _real(here, traced, what)


def _write(here: FileSide, op: Write, where: str) -> FileSide:
    blob = op.stored
    if blob is not None:
        return FileSide(**{**here.__dict__, "where": where, "_stored": blob.sha256})
    return FileSide(**{**here.__dict__, "where": where, "_inline": op.content()})


def _real(here: FileSide, path: RelPath, where: str) -> FileSide:
    return FileSide(**{**here.__dict__, "where": where, "_real": path})
