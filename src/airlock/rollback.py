"""Rollback checks: has anything the rollback would undo changed since the apply?

Pure logic over the storage interface. A rollback restores the exact prior bytes; it is refused
when a file the plan produced was modified since, when something new stands where a restored
entry must go, or when something new was put into a folder the plan created. ``--force`` sets
those entries aside (into the rollback's trash, so even they are not lost) and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from airlock.paths import RelPath, render
from airlock.storage.base import Kind, Storage
from airlock.validate import Change, tree_digest


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


def find_conflicts(storage: Storage, changes: list[Change]) -> list[Conflict]:
    """What stands in the way of rolling back ``changes`` (empty: the rollback is clean)."""
    conflicts: list[Conflict] = []
    produced: dict[str, Change] = {}
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
        if change.kind == "symlink":
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
