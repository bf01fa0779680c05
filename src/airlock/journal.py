"""The journal: how a validated plan becomes steps that can always be undone.

A plan's changes compile into *steps*, each one atomic or cleanly reversible:

    mkdir P        undo: rmdir P            (P did not exist before)
    rmdir P        undo: mkdir P            (P was empty)
    rename A B     undo: rename B A         (B did not exist before; never replaces)
    create P k     undo: unlink P           (P did not exist; content is operation k's)
    copy A B       undo: remove tree B      (B did not exist)

Nothing is destroyed: a file a plan deletes or overwrites is first *renamed* into the
transaction's trash folder ``.airlock/trash/<txn>/<n>`` on the same filesystem.

Crash safety (see docs/recovery.md):

1. The full list of steps is committed to the state database (fsynced) before the first one runs.
2. Before step ``i`` runs, a cursor file records ``i + 1``: "steps below this may have happened".
   It is a plain ``pwrite`` (no fsync): it survives a kill -9 of the process, which is the crash
   Airlock guarantees at every instant, and costs microseconds rather than a disk flush. On a
   store that runs renames at once (``Storage.concurrent_renames``: a bucket), a stretch of
   independent renames runs together, under one cursor set past all of them.
3. After the last step, one ``syncfs`` makes the whole apply durable, then the database records it.
4. To undo (after a failure, or in recovery after a crash), steps run backwards from the cursor.
   Each undo first looks at the tree and does nothing if its step had not happened, so it can be
   interrupted and repeated; the cursor moves down after each one.

Recovery always returns the workspace to the state before the transaction (roll back, not
forward): the only step that can be half-done is the one at the cursor, and its own undo
handles the partial case.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, NoReturn

from airlock.errors import AirlockError, StorageError, UnsafePathError, storage_error
from airlock.paths import STATE_DIR, RelPath, render
from airlock.storage.base import Kind, Storage
from airlock.validation import Change

StepKind = Literal["mkdir", "rmdir", "rename", "create", "copy"]


class Step(NamedTuple):
    """One journal step (a tuple: a plan of 10,000 operations compiles 10,000 of them)."""

    kind: StepKind
    path: RelPath
    target: RelPath = ()
    op: int = -1

    def to_json(self) -> list[object]:
        return [self.kind, render(self.path), render(self.target), self.op]

    @classmethod
    def from_json(cls, data: list[object]) -> Step:
        kind, path, target, op = data
        assert isinstance(path, str) and isinstance(target, str) and isinstance(op, int)
        return cls(
            kind,  # type: ignore[arg-type]
            tuple(path.split("/")) if path else (),
            tuple(target.split("/")) if target else (),
            op,
        )

    def describe(self) -> str:
        if self.kind in ("rename", "copy"):
            return f"{self.kind} {render(self.path)!r} to {render(self.target)!r}"
        return f"{self.kind} {render(self.path)!r}"


def trash_dir(txn_id: str) -> RelPath:
    return (STATE_DIR, "trash", txn_id)


def kept_aside(steps: Iterable[Step], txn_id: str) -> list[dict[str, str]]:
    """What ``steps`` keep aside: each entry renamed into the transaction's trash, as
    ``{"path": where it was, "as": its kept-aside name}`` (what the audit records)."""
    trash = trash_dir(txn_id)
    return [
        {"path": render(step.path), "as": render(step.target)}
        for step in steps
        if step.kind == "rename" and step.target[: len(trash)] == trash
    ]


def _split(text: str) -> RelPath:
    return tuple(text.split("/"))


def compile_apply(changes: Iterable[Change | Mapping[str, Any]], txn_id: str) -> list[Step]:
    """The steps that apply ``changes`` (report objects, or their stored JSON); displaced
    entries go to the transaction's trash."""
    trash = trash_dir(txn_id)
    steps = [Step("mkdir", trash)]
    append = steps.append
    for n, item in enumerate(changes):
        fields: Mapping[str, Any] = item if isinstance(item, Mapping) else item.__dict__
        action = fields["action"]
        path = tuple(fields["path"].split("/"))
        if action == "delete" or fields.get("replaces"):
            append(Step("rename", path, (*trash, str(n))))
            if action == "delete":
                continue
        if action == "mkdir":
            append(Step("mkdir", path))
        elif action in ("create", "overwrite"):
            append(Step("create", path, (), fields["op"]))
        else:
            source = tuple(fields["source"].split("/"))
            append(Step("copy" if action == "copy" else "rename", source, path))
    return steps


def compile_rollback(applied: list[Step], txn_id: str) -> list[Step]:
    """The steps that reverse an applied transaction; what it created is kept aside too."""
    trash = trash_dir(txn_id)
    steps = [Step("mkdir", trash)]
    for n, step in enumerate(reversed(applied)):
        aside = (*trash, str(n))
        if step.kind == "mkdir":
            steps.append(Step("rmdir", step.path))
        elif step.kind == "rmdir":
            steps.append(Step("mkdir", step.path))
        elif step.kind == "rename":
            steps.append(Step("rename", step.target, step.path))
        elif step.kind == "create":
            steps.append(Step("rename", step.path, aside))
        else:
            steps.append(Step("rename", step.target, aside))
    return steps


class Cursor:
    """How many steps may have started, in a file that survives the process being killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # e.g. the state folder's filesystem is read-only
            raise storage_error(exc, "create the journal cursor", str(path)) from exc

    @staticmethod
    def read(path: Path) -> int | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return int.from_bytes(data[:8], "little") if len(data) >= 8 else 0

    def set(self, value: int) -> None:
        try:
            os.pwrite(self._fd, value.to_bytes(8, "little"), 0)
        except OSError as exc:  # EIO, or ENOSPC on the first write of a new cursor
            raise storage_error(exc, "update the journal cursor", str(self.path)) from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, "remove the journal cursor", str(self.path)) from exc


Content = Callable[[int], bytes | Iterable[bytes]]
"""The bytes a ``create`` step writes, by plan operation index: whole, or as chunks (a body from
the content store streams; it may raise after its last chunk if the bytes are damaged)."""
Hook = Callable[[int], None]
"""Called with the step index before each step (crash tests kill the process here)."""
Progress = Callable[[int, int], None]


def _no_hook(_index: int) -> None:
    return None


class StepFailed(AirlockError):
    def __init__(self, index: int, step: Step, cause: BaseException) -> None:
        text = str(cause.message) if isinstance(cause, AirlockError) else str(cause)
        super().__init__(
            f"step {index} ({step.describe()}) failed: {text}",
            hint=cause.hint if isinstance(cause, AirlockError) else "",
        )
        self.index = index
        self.cause = cause


def run_steps(
    storage: Storage,
    steps: list[Step],
    cursor: Cursor,
    content: Content,
    *,
    hook: Hook = _no_hook,
    progress: Progress | None = None,
) -> None:
    """Run every step in order; on any failure undo what ran, then raise StepFailed.

    On a store that runs renames at once (a bucket), a run of independent renames is one
    stretch: the cursor covers all of them before the first starts, and a failure or a crash
    undoes each one the tree shows happened."""
    total = len(steps)
    index = 0
    while index < total:
        count = _independent_renames(steps, index) if storage.concurrent_renames else 1
        try:
            cursor.set(index + count)
        except StorageError as exc:  # EIO, or ENOSPC on a new cursor: step ``index`` never ran
            _fail(storage, steps, index, index, cursor, exc)
        for at in range(index, index + count):
            hook(at)
        step = steps[index]
        try:
            if count == 1:
                _do(storage, step, content)
            else:
                storage.rename_many([(s.path, s.target) for s in steps[index : index + count]])
        except (OSError, AirlockError) as exc:
            happened = (
                index + count if count > 1 or _may_be_half_done(step, exc, storage) else index
            )
            _fail(storage, steps, index, happened, cursor, exc)
        index += count
        if progress is not None and (index % 256 < count or index == total):
            progress(index, total)


RENAMES_AT_ONCE = 256
"""The longest stretch of renames handed to a store at once (what a crash may leave to undo)."""


def _independent_renames(steps: list[Step], start: int) -> int:
    """How many steps from ``start`` (at least 1) are renames none of which names a path at,
    in or above a path another names: they may run in any order, or at once."""
    named: set[RelPath] = set()  # every source and destination so far
    above: set[RelPath] = set()  # every folder above one of them
    count = 0
    for step in steps[start : start + RENAMES_AT_ONCE]:
        ends = (step.path, step.target)
        if step.kind != "rename" or any(
            end in named or end in above or any(end[:n] in named for n in range(1, len(end)))
            for end in ends
        ):
            break
        named.update(ends)
        above.update(end[:n] for end in ends for n in range(1, len(end)))
        count += 1
    return max(count, 1)


def _fail(
    storage: Storage,
    steps: list[Step],
    index: int,
    happened: int,
    cursor: Cursor,
    exc: OSError | AirlockError,
) -> NoReturn:
    """Step ``index`` failed (or could not start): undo the ``happened`` steps, raise."""
    # Say so before undoing: a crash during the undo must not "undo" a step that never
    # happened (and remove what someone else put in its way). A cursor that cannot be
    # written is no reason to leave the steps that ran in place: undo them regardless.
    with contextlib.suppress(StorageError):
        cursor.set(happened)
    undo_steps(storage, steps, happened, cursor)
    raise StepFailed(index, steps[index], exc) from exc


def _may_be_half_done(step: Step, exc: BaseException, storage: Storage) -> bool:
    """Whether a step that raised may have changed the tree.

    ``mkdir``, ``rmdir`` and ``rename`` are single system calls: when they fail, nothing
    happened (a ``rename`` on a store without atomic renames may have moved part of a folder).
    ``create`` and ``copy`` may have made part of their file or tree, unless they failed before
    making anything (the target already exists, or a link stood in the path).
    """
    if step.kind in ("mkdir", "rmdir") or (step.kind == "rename" and storage.atomic_rename):
        return False
    if isinstance(exc, FileExistsError):
        return False
    return not (isinstance(exc, UnsafePathError) and step.kind == "create")


def _do(storage: Storage, step: Step, content: Content) -> None:
    if step.kind == "mkdir":
        storage.mkdir(step.path)
    elif step.kind == "rmdir":
        storage.rmdir(step.path)
    elif step.kind == "rename":
        storage.rename(step.path, step.target)
    elif step.kind == "create":
        data = content(step.op)
        storage.create(step.path, [data] if isinstance(data, bytes) else data)
    else:
        _copy_tree(storage, step.path, step.target)


def _copy_tree(storage: Storage, source: RelPath, destination: RelPath) -> None:
    entry = storage.stat(source)
    if entry is None:
        raise FileNotFoundError(2, "copy source vanished", render(source))
    if entry.kind is Kind.FILE:
        storage.copy_file(source, destination)
        return
    if entry.kind is not Kind.DIR:  # swapped for a link or FIFO since validation
        raise UnsafePathError(
            f"copy source {render(source)!r} is now a {entry.kind}, not a file or folder",
            hint="validate the plan again",
        )
    storage.mkdir(destination)
    # From here the step has happened (its top folder is ours), so an inner "already exists"
    # must not read as "nothing happened": it becomes a StorageError and the tree is undone.
    for inner, inner_entry in storage.walk(source):
        target = destination + inner[len(source) :]
        try:
            if inner_entry.kind is Kind.DIR:
                storage.mkdir(target)
            else:
                storage.copy_file(inner, target)
        except FileExistsError as exc:
            raise StorageError(
                f"copying into {render(destination)!r} met an existing {render(target)!r}",
                hint="something else is writing the workspace; validate the plan again",
            ) from exc


def undo_steps(
    storage: Storage,
    steps: list[Step],
    started: int,
    cursor: Cursor,
    skipped: list[str] | None = None,
) -> None:
    """Undo steps ``started - 1`` down to 0, each only if the tree shows it happened.

    An undo that fails raises, unless ``skipped`` is given (an operator resolving a transaction
    nothing else can finish): then the failure is listed there and the undo goes on.
    """
    for index in range(started - 1, -1, -1):
        try:
            _undo(storage, steps[index])
        except (OSError, AirlockError) as exc:
            text = exc.message if isinstance(exc, AirlockError) else str(exc)
            if skipped is not None:
                skipped.append(f"step {index} ({steps[index].describe()}): {text}")
                continue
            raise StorageError(
                f"could not undo step {index} ({steps[index].describe()}): {text}",
                hint="fix the cause (space, permissions, a read-only mount), then run "
                "`airlock recover`: it finishes the undo from where it stopped (`airlock "
                "recover --resolve` skips what cannot be undone, when nothing else can)",
            ) from exc
        # A cursor that cannot be written stops the undo here (StorageError): one left higher
        # than the truth would let a later recovery re-run undos that already happened, and
        # undoing a create again would remove the original that the next undo had put back.
        cursor.set(index)


def _undo(storage: Storage, step: Step) -> None:
    if step.kind == "mkdir":
        found = storage.stat(step.path)
        if found is not None and found.kind is Kind.DIR:
            storage.rmdir(step.path)
    elif step.kind == "rmdir":
        if storage.stat(step.path) is None:
            storage.mkdir(step.path)
    elif step.kind == "rename":
        storage.move_back(step.path, step.target)
    elif step.kind == "create":
        if storage.stat(step.path) is not None:
            storage.unlink(step.path)
    else:
        # If a link now stands on the way to the copy, nothing it made is reachable there,
        # and leaving a copy behind loses nothing (unlike skipping a rename would).
        with contextlib.suppress(UnsafePathError):
            storage.remove_tree(step.target)
