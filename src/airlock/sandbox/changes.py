"""Read what a run changed: an overlay's upper layer, or a copy of the scope beside the original.

Both produce the same :class:`airlock.capture.Change` list, and :class:`LocalSides` answers
capture's questions about the real scope (through the workspace's storage, which never follows
a link) and the run's result. No path here is followed through a symbolic link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from airlock.capture import Change, Kind
from airlock.paths import RelPath
from airlock.storage.base import Kind as StorageKind
from airlock.storage.base import Storage
from airlock.storage.local import entry_from_stat

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def _kind(st: os.stat_result) -> Kind:
    """The storage layer's kind of a stat result, as capture names it."""
    return Kind(entry_from_stat(st).kind.value)


def _entries(folder: Path) -> dict[str, os.stat_result]:
    with os.scandir(folder) as it:
        return {entry.name: entry.stat(follow_symlinks=False) for entry in it}


def _opaque(path: Path) -> bool:
    for name in _OPAQUE:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def upper_changes(upper: Path) -> list[Change]:
    """Every entry of an overlay upper layer: whiteouts (0/0 character devices) are deletions,
    folders marked opaque replace what the lower layer had."""
    changes: list[Change] = []

    def walk(folder: Path, rel: RelPath) -> None:
        for name, st in sorted(_entries(folder).items()):
            path = (*rel, name)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                changes.append(Change(path, Kind.GONE))
            elif stat.S_ISDIR(st.st_mode):
                changes.append(Change(path, Kind.DIR, replaces=_opaque(folder / name)))
                walk(folder / name, path)
            else:
                changes.append(Change(path, _kind(st)))

    walk(upper, ())
    return changes


def copy_scope(original: Path, copy: Path) -> None:
    """Copy a scope for a run, times included; special files are left out."""

    def specials(folder: str, names: list[str]) -> list[str]:
        skip = []
        for name in names:
            mode = (Path(folder) / name).lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                skip.append(name)
        return skip

    shutil.copytree(original, copy, symlinks=True, ignore=specials)


def copy_changes(original: Path, copy: Path) -> list[Change]:
    """The differences a run made to its copy of the scope. A file counts as changed when its
    size or modification time differs; capture then compares the bytes."""
    changes: list[Change] = []

    def all_new(folder: Path, rel: RelPath) -> None:
        for name, st in sorted(_entries(folder).items()):
            kind = _kind(st)
            changes.append(Change((*rel, name), kind))
            if kind is Kind.DIR:
                all_new(folder / name, (*rel, name))

    def walk(before: Path, after: Path, rel: RelPath) -> None:
        old = _entries(before)
        new = _entries(after)
        changes.extend(Change((*rel, name), Kind.GONE) for name in sorted(set(old) - set(new)))
        for name, st in sorted(new.items()):
            path = (*rel, name)
            kind = _kind(st)
            was = old.get(name)
            if was is None or _kind(was) is not kind:
                changes.append(Change(path, kind, replaces=was is not None))
                if kind is Kind.DIR:
                    all_new(after / name, path)
            elif kind is Kind.DIR:
                walk(before / name, after / name, path)
            elif kind is Kind.FILE:
                if (st.st_size, st.st_mtime_ns) != (was.st_size, was.st_mtime_ns):
                    changes.append(Change(path, kind))
            elif kind is Kind.SYMLINK and (before / name).readlink() != (after / name).readlink():
                changes.append(Change(path, kind))

    walk(original, copy, ())
    return changes


class LocalSides:
    """capture's view of a real scope (via storage) and of a run's result folder on the host."""

    def __init__(self, storage: Storage, scope: RelPath, result: Path) -> None:
        self.storage = storage
        self.scope = scope
        self.result = result

    def lower_kind(self, path: RelPath) -> Kind | None:
        entry = self.storage.stat((*self.scope, *path))
        return None if entry is None else Kind(entry.kind.value)

    def lower_files(self, path: RelPath) -> Iterator[tuple[RelPath, int]]:
        entry = self.storage.stat((*self.scope, *path))
        if entry is None:
            return
        if entry.kind is StorageKind.FILE:
            yield path, entry.size
        elif entry.kind is StorageKind.DIR:
            for name in sorted(self.storage.listdir((*self.scope, *path))):
                yield from self.lower_files((*path, name))

    def lower_digest(self, path: RelPath) -> str:
        return self.storage.sha256((*self.scope, *path))

    def upper_bytes(self, path: RelPath) -> bytes:
        fd = os.open(self.result.joinpath(*path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()
