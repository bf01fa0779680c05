"""Rollback checks: has anything the rollback would undo changed since the apply, or since
the plans applied after it? Which plan may be rolled back, and what a forced rollback sets aside.

Logic over the storage interface and the store's rows. A rollback restores the exact prior bytes; it is refused
when a file the plan produced was modified since, when something new stands where a restored
entry must go, or when something new was put into a folder the plan created. ``--force`` sets
those entries aside (into the rollback's trash, so even they are not lost) and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from airlock.db import PlanRow, TransactionRow
from airlock.digests import entry_identity, tree_digest, tree_identity
from airlock.errors import PlanStateError, RollbackConflictError
from airlock.journal import Step, trash_dir
from airlock.lifecycle import Status
from airlock.locks import lock_key
from airlock.paths import STATE_DIR, RelPath, render
from airlock.permissions import Action, Principal, authorize
from airlock.storage.base import Kind, Storage
from airlock.store import Store
from airlock.validation import Change, Validation


@dataclass(frozen=True)
class Conflict:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _split(text: str) -> RelPath:
    return tuple(text.split("/"))


def _below(path: str, folder: str) -> bool:
    """True if ``path`` is strictly inside ``folder``."""
    return path.startswith(folder + "/")


def _ancestors(text: str) -> Iterator[str]:
    """Every folder strictly above ``text``: 'a/b/c' gives 'a', 'a/b'."""
    index = text.find("/")
    while index != -1:
        yield text[:index]
        index = text.find("/", index + 1)


def _drop(produced: dict[str, Change], altered: set[str], text: str, folder: bool) -> None:
    """Forget ``text`` and, if it is a folder, everything below it (deleted, or moved away)."""
    produced.pop(text, None)
    altered.discard(text)
    if folder:  # scanning is linear: only folders can have anything below them
        for key in [k for k in produced if _below(k, text)]:
            del produced[key]
        altered.difference_update({k for k in altered if _below(k, text)})


def content_digest(storage: Storage, path: RelPath) -> str | None:
    """A file's SHA-256 or a folder's tree digest (as validation computes them)."""
    entry = storage.stat(path)
    if entry is None:
        return None
    if entry.kind is Kind.FILE:
        return storage.sha256(path)
    if entry.kind is Kind.DIR:
        return tree_digest(
            (
                render(inner[len(path) :]),
                inner_entry.kind,
                storage.sha256(inner) if inner_entry.kind is Kind.FILE else "",
            )
            for inner, inner_entry in storage.walk(path)
        )
    return None


def identity_now(storage: Storage, path: RelPath, placed: set[RelPath], made: bool) -> str | None:
    """The identity of what is at ``path`` now, computed as validation computed the identity of
    what a move put there (:mod:`airlock.digests`).

    ``placed``: paths inside (relative) where changes of the plan placed entries, checked on
    their own; ``made``: the folder was one the plan made (its files are compared by content).
    """
    entry = storage.stat(path)
    if entry is None:
        return None
    if entry.kind is not Kind.DIR:
        return entry_identity(entry)

    def inside(rel: RelPath) -> Iterator[tuple[str, list[object]]]:
        for name in sorted(storage.listdir(path + rel)):
            inner = (*rel, name)
            found = storage.stat(path + inner)
            if inner in placed or found is None:
                continue
            if not made:
                yield render(inner), found.fingerprint(lasting=True)
            elif found.kind is Kind.FILE:
                yield render(inner), [str(Kind.FILE), storage.sha256(path + inner)]
            else:
                yield render(inner), [str(found.kind)]
            if found.kind is Kind.DIR:
                yield from inside(inner)

    return tree_identity(None if made else entry.ino, inside(()))


def find_conflicts(storage: Storage, changes: list[Change]) -> list[Conflict]:
    """What stands in the way of rolling back ``changes`` (empty: the rollback is clean)."""
    conflicts: list[Conflict] = []
    produced: dict[str, Change] = {}
    # For each folder move (by id of its change): the paths inside it, relative, where earlier
    # changes placed entries (what its identity leaves out, as validation did).
    placed_inside: dict[int, set[RelPath]] = {}
    # Folders copied or moved whose content later changes of the plan altered: their digest is
    # stale, so only their kind is checked (what the later changes produced is checked itself).
    altered: set[str] = set()
    for change in changes:
        is_dir = change.kind == "dir"
        for text in (change.path, change.source):
            if text is not None:
                altered.update(k for k in _ancestors(text) if k in produced)
        if change.action == "move" and change.source is not None and is_dir:
            # What the plan produced inside a moved folder now lives under its new path.
            source, size = change.source, len(change.source)
            inner = {k: v for k, v in produced.items() if _below(k, source)}
            placed_inside[id(change)] = {_split(k[size + 1 :]) for k in inner}
            moved = {k for k in altered if _below(k, source)}
            _drop(produced, altered, source, is_dir)
            produced.update({change.path + k[size:]: v for k, v in inner.items()})
            altered.update(change.path + k[size:] for k in moved)
        elif change.action == "move" and change.source is not None:
            _drop(produced, altered, change.source, is_dir)
        if change.action == "delete":
            _drop(produced, altered, change.path, is_dir)
        else:
            produced[change.path] = change
            altered.discard(change.path)
    for text, change in produced.items():
        path = _split(text)
        entry = storage.stat(path)
        if entry is None:
            conflicts.append(Conflict(text, "was removed since the apply"))
            continue
        if change.action == "mkdir" or text in altered:
            if entry.kind is not Kind.DIR:
                conflicts.append(Conflict(text, f"is now a {entry.kind}, not the folder made"))
            continue
        if change.identity is not None:
            placed = placed_inside.get(id(change), set())
            made = change.identity.startswith("tree-new:")
            if identity_now(storage, path, placed, made) != change.identity:
                what = "modified" if entry.kind.value == change.kind else "replaced"
                conflicts.append(Conflict(text, f"was {what} since the apply"))
            continue
        if change.kind == "symlink":  # a report from before moves recorded identities
            if entry.kind is not Kind.SYMLINK:
                conflicts.append(Conflict(text, "was replaced since the apply"))
            continue
        if content_digest(storage, path) != change.sha256_after:
            conflicts.append(Conflict(text, "was modified since the apply"))
    for folder in [text for text, c in produced.items() if c.action == "mkdir"]:
        path = _split(folder)
        found = storage.stat(path)
        if found is None or found.kind is not Kind.DIR:
            continue
        for name in sorted(storage.listdir(path)):
            child = f"{folder}/{name}"
            if child not in produced:
                conflicts.append(Conflict(child, "was added since the apply"))
    restored: set[str] = set()
    for change in changes:
        if change.action == "delete" or change.replaces:
            restored.add(change.path)
        if change.action == "move" and change.source is not None:
            restored.add(change.source)
    for text in sorted(restored - set(produced)):
        if storage.stat(_split(text)) is not None:
            conflicts.append(Conflict(text, "something new stands where the rollback restores"))
    return conflicts


def missing_kept_aside(storage: Storage, changes: list[Change], trash: RelPath) -> list[str]:
    """Kept-aside entries a rollback must put back that are gone or incomplete.

    Change ``n`` that deleted or replaced an entry kept it aside as ``trash/n``. A folder is
    counted (files and bytes) against what validation saw, so a purge cut short (``airlock gc``
    killed part-way) or a hand-emptied trash is found before anything is restored.
    """
    missing: list[str] = []
    for n, change in enumerate(changes):
        if change.action != "delete" and not change.replaces:
            continue
        aside = (*trash, str(n))
        entry = storage.stat(aside)
        if entry is None:
            missing.append(f"{change.path}: its kept-aside copy {render(aside)!r} is gone")
            continue
        if change.action != "delete" or change.kind != "dir":
            if change.action == "delete" and change.kind == "file" and entry.size != change.size:
                missing.append(
                    f"{change.path}: its kept-aside copy holds {entry.size} bytes, not "
                    f"the {change.size} it was deleted with"
                )
            continue
        files = total = 0
        for _inner, inner_entry in storage.walk(aside):
            if inner_entry.kind is Kind.FILE:
                files += 1
                total += inner_entry.size
        # Fewer is a loss; more is what slipped in with the folder (kept, and restored too).
        if total < change.size or (change.files is not None and files < change.files):
            was = f"{change.files} file(s), " if change.files is not None else ""
            missing.append(
                f"{change.path}: its kept-aside folder holds {files} file(s), {total} bytes; "
                f"the plan removed {was}{change.size} bytes"
            )
    return missing


def refuse(
    plan_id: str, later: list[Conflict], conflicts: list[Conflict], force: bool
) -> list[Conflict]:
    """Raise why the rollback may not run; else return what ``force`` sets aside."""
    if later:
        raise RollbackConflictError(
            f"plan {plan_id!r} cannot be rolled back before the plans applied after "
            "it on the same paths",
            hint="roll those back first (newest first); --force does not override this",
            details=[str(c) for c in later[:50]],
        )
    if conflicts and not force:
        raise RollbackConflictError(
            f"plan {plan_id!r} cannot be rolled back cleanly: {len(conflicts)} "
            "path(s) changed since it was applied",
            forceable=True,
            hint="review them; `--force` rolls back anyway and sets these aside "
            "in the trash (listed in the audit log)",
            details=[str(c) for c in conflicts[:50]],
        )
    return conflicts


def refuse_incomplete_trash(
    storage: Storage, plan_id: str, txn_id: str, changes: list[Change]
) -> None:
    missing = missing_kept_aside(storage, changes, trash_dir(txn_id))
    if missing:
        raise RollbackConflictError(
            f"plan {plan_id!r} cannot be rolled back: {len(missing)} of the files it kept "
            "aside are gone or incomplete, so the rollback could not restore them",
            hint=f"they may have been removed by an interrupted `airlock gc` or by hand; "
            f"put them back into {STATE_DIR}/trash/{txn_id}/ from a backup, then retry. "
            "--force does not override this",
            details=missing[:50],
        )


def later_plan_conflicts(
    changes: list[Change], scope: str, later: list[tuple[str, str, list[dict[str, Any]]]]
) -> list[Conflict]:
    """Paths this plan touched that a plan applied after it (and not rolled back) touched too:
    rolling back first would undo or carry off that plan's work. ``later`` holds (plan id,
    scope, changes) of each plan applied after this one."""
    ours: set[str] = set()
    for change in changes:
        ours.update(p for p in (change.path, change.source) if p)
    ours_prefixes = {p[:i] for p in ours for i in range(len(p) + 1) if i == len(p) or p[i] == "/"}
    key = lock_key(_split(scope))
    conflicts: list[Conflict] = []
    for plan_id, other_scope, other_changes in later:
        if lock_key(_split(other_scope)) != key:
            continue
        for other in other_changes:
            for text in (other["path"], other.get("source")):
                if not text:
                    continue
                parts = text.split("/")
                above = any("/".join(parts[:i]) in ours for i in range(1, len(parts) + 1))
                if above or text in ours_prefixes:
                    conflicts.append(
                        Conflict(
                            text,
                            f"changed by plan {plan_id}, applied later; roll that plan back first",
                        )
                    )
    return conflicts


def forced_steps(
    storage: Storage, steps: list[Step], conflicts: list[Conflict], txn_id: str
) -> list[Step]:
    """Set conflicting entries aside first, then skip every step that would act on one of them
    (or below one) or on an entry that is gone: the rest of the rollback runs as if the plan had
    never made them. Nothing is deleted; set-aside entries stay in the trash."""
    trash = trash_dir(txn_id)
    extra: list[Step] = []
    untouchable: list[RelPath] = []
    for n, conflict in enumerate(conflicts):
        path = _split(conflict.path)
        if storage.stat(path) is None:
            untouchable.append(path)
        elif "modified" not in conflict.reason:
            extra.append(Step("rename", path, (*trash, f"forced-{n}")))
            untouchable.append(path)

    def blocked(step: Step) -> bool:
        return step.kind in ("rename", "rmdir") and any(
            step.path[: len(p)] == p for p in untouchable
        )

    return [steps[0], *extra, *(s for s in steps[1:] if not blocked(s))]


def applied_plan(
    store: Store, session: Session, plan_id: str, by: Principal | None
) -> tuple[PlanRow, TransactionRow, list[Change]]:
    """The plan, its committed apply and its changes; with ``by``, only if it may roll the plan
    back now (else only if the plan is applied)."""
    row = store.plan(session, plan_id)
    if by is not None:
        authorize(by, Action.ROLLBACK, row)
    elif row.status != Status.APPLIED:
        raise PlanStateError(
            f"plan {plan_id!r} is {row.status}; only an applied plan can be rolled back",
            hint=f"see `airlock plan show {plan_id}`",
        )
    txn = store.last_apply(session, plan_id)
    if txn is None:
        raise PlanStateError(f"plan {plan_id!r} has no committed apply to roll back")
    if txn.purged_at is not None:
        raise PlanStateError(
            f"plan {plan_id!r} cannot be rolled back: its kept-aside files were purged "
            f"by `airlock gc` on {txn.purged_at:%Y-%m-%d}",
        )
    validation = store.latest_validation(session, plan_id)
    assert validation is not None
    return row, txn, Validation.model_validate(validation.report).changes


def later_conflicts(
    store: Store, session: Session, txn: TransactionRow, changes: list[Change]
) -> list[Conflict]:
    """:func:`later_plan_conflicts` with the plans applied after ``txn``, from the store."""
    return later_plan_conflicts(changes, txn.scope, store.applied_after(session, txn))
