"""Find what a run changed: walk its result beside the real scope, never trusting a marker.

Both walks produce the :class:`airlock.capture.Change` list that capture turns into a plan, and
a list of what they could not take (``skipped`` entries: path and reason).

- :func:`upper_changes` (overlay mode) walks the overlay's upper layer, and for every folder in
  it compares three listings: the upper layer, the *merged view* (what the code itself saw) and
  the real scope. An entry of the real scope that the merged view no longer shows is deleted.
  Whiteouts, opaque-folder xattrs and other overlay markers are never read: the code can write
  xattrs of its own (``user.overlay.opaque``), so only what the overlay actually showed it counts.
- :func:`copy_changes` (copy mode) compares a copy of the scope with the scope. A file counts as
  changed when its size or modification time differs, or its change time is not older than the
  moment the copy was finished (so an edit that restores the size and mtime is still seen).

The walks hold descriptors, not paths: every folder is opened relative to its parent with
``O_NOFOLLOW``, so no symlink is followed, no path grows past ``PATH_MAX``, and a deep tree
needs no recursion. What cannot be read (a folder made unreadable, a path too long for a plan)
is reported, never raised.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from airlock.capture import Change, Kind
from airlock.paths import PATH_MAX_BYTES, RelPath, render
from airlock.storage.local import entry_from_stat

_TOO_LONG = f"the path is longer than {PATH_MAX_BYTES} bytes; a plan cannot hold it"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _kind(st: os.stat_result) -> Kind:
    """The storage layer's kind of a stat result, as capture names it."""
    return Kind(entry_from_stat(st).kind.value)


@dataclass
class Found:
    """What a walk found: the changes, and what it could not take (with why)."""

    changes: list[Change] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, path: RelPath, reason: str) -> None:
        self.skipped.append({"path": render(path), "reason": reason})


def _entries(fd: int | None) -> dict[str, os.stat_result]:
    if fd is None:
        return {}
    with os.scandir(fd) as it:
        return {entry.name: entry.stat(follow_symlinks=False) for entry in it}


def _open(parent: int | None, name: str) -> int | None:
    if parent is None:
        return None
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except OSError:
        return None


@contextlib.contextmanager
def _opened(*paths: Path | None) -> Iterator[list[int | None]]:
    fds = [None if path is None else os.open(path, _DIR) for path in paths]
    try:
        yield fds
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)


def _too_long(path: RelPath) -> bool:
    return len(render(path).encode("utf-8", "surrogateescape")) > PATH_MAX_BYTES


def _walk(
    roots: list[int | None],
    visit: Visit,
    found: Found,
) -> None:
    """Depth-first over folders, holding one descriptor per side per level (no recursion)."""
    stack: list[tuple[RelPath, list[int | None], Iterator[str]]] = []

    def enter(rel: RelPath, fds: list[int | None]) -> None:
        try:
            children = visit(rel, fds, _Listings(fds), found)
        except OSError as exc:
            found.skip(rel, f"the run left a folder Airlock cannot read ({exc.strerror})")
            _close(fds)
            return
        stack.append((rel, fds, iter(children)))

    enter((), [*roots])
    while stack:
        rel, fds, children = stack[-1]
        name = next(children, None)
        if name is None:
            stack.pop()
            if rel:
                _close(fds)
            continue
        path = (*rel, name)
        child = [_open(fd, name) for fd in fds]
        if child[0] is None:
            found.skip(path, "the run left a folder Airlock cannot open")
            _close(child)
            continue
        enter(path, child)


class _Listings:
    """Each side's listing of one folder, read when first asked for (name to lstat)."""

    def __init__(self, fds: list[int | None]) -> None:
        self.fds = fds
        self.read: dict[int, dict[str, os.stat_result]] = {}

    def __getitem__(self, side: int) -> dict[str, os.stat_result]:
        if side not in self.read:
            self.read[side] = _entries(self.fds[side])
        return self.read[side]


def _hides_something(fd: int | None, upper: dict[str, os.stat_result]) -> bool:
    """Whether this upper-layer folder holds anything an overlay hides lower entries with: a
    whiteout (a character device, or a ``.wh.`` file) or an opaque mark (an xattr, or a
    ``.wh..wh..opq`` file). Without one the overlay shows every lower entry, so the merged view
    need not be read; with one (forged or not) it is read, and only what it shows counts."""
    if any(stat.S_ISCHR(st.st_mode) or name.startswith(".wh.") for name, st in upper.items()):
        return True
    try:
        names = os.listxattr(fd) if fd is not None else []
    except OSError:
        return True
    return any("opaque" in name for name in names)


def _close(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


Visit = Callable[[RelPath, list[int | None], _Listings, Found], list[str]]
"""One folder's descriptors and listings in, its changes into ``found``; out, the child folders
to enter."""


def _visit_overlay(
    rel: RelPath, fds: list[int | None], listings: _Listings, found: Found
) -> list[str]:
    """Sides: the upper layer, the merged view, the real scope."""
    upper, lower = listings[0], listings[2]
    merged = listings[1] if _hides_something(fds[0], upper) else upper
    enter = []
    for name in sorted(set(upper) | set(lower)):
        path = (*rel, name)
        if _too_long(path):
            found.skip(path, _TOO_LONG)
            continue
        was = lower.get(name)
        if name not in upper:
            if merged is not upper and name not in merged and was is not None:
                found.changes.append(Change(path, Kind.GONE))  # hidden by the overlay
            continue  # else shown from the real scope, untouched
        seen = merged.get(name)
        if seen is None:
            if was is not None:
                found.changes.append(Change(path, Kind.GONE))
            continue
        kind = _kind(seen)
        found.changes.append(Change(path, kind))
        if kind is Kind.DIR:
            enter.append(name)
        elif (
            kind is Kind.FILE
            and was is not None
            and _kind(was) is Kind.FILE
            and stat.S_IMODE(was.st_mode) != stat.S_IMODE(seen.st_mode)
        ):
            found.skip(path, _mode_reason(was, seen))
    return enter


def _visit_copy(
    copied_ns: int, rel: RelPath, fds: list[int | None], listings: _Listings, found: Found
) -> list[str]:
    """Sides: the copy, the real scope. ``copied_ns``: when the copy was finished (ctime)."""
    copy, lower = listings[0], listings[1]
    enter = []
    found.changes.extend(Change((*rel, name), Kind.GONE) for name in sorted(set(lower) - set(copy)))
    for name, st in sorted(copy.items()):
        path = (*rel, name)
        if _too_long(path):
            found.skip(path, _TOO_LONG)
            continue
        kind = _kind(st)
        was = lower.get(name)
        if was is None or _kind(was) is not kind:
            found.changes.append(Change(path, kind, replaces=was is not None))
        elif kind is Kind.FILE:
            same = (st.st_size, st.st_mtime_ns) == (was.st_size, was.st_mtime_ns)
            if not same or st.st_ctime_ns >= copied_ns:
                found.changes.append(Change(path, kind))
            if stat.S_IMODE(was.st_mode) != stat.S_IMODE(st.st_mode):
                found.skip(path, _mode_reason(was, st))
        elif kind is Kind.SYMLINK and _link(fds[0], name) != _link(fds[1], name):
            found.changes.append(Change(path, kind))  # capture reports links; never followed
        if kind is Kind.DIR:
            enter.append(name)
    return enter


def _link(fd: int | None, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=fd)
    except OSError:
        return None


def _mode_reason(before: os.stat_result, after: os.stat_result) -> str:
    return (
        f"its permissions changed ({stat.filemode(before.st_mode)} to "
        f"{stat.filemode(after.st_mode)}); a plan carries contents, not permissions, so that "
        "part of the change is not kept"
    )


def upper_changes(upper: Path, merged: Path, lower: Path) -> Found:
    """What a run changed, from an overlay's upper layer, the merged view and the real scope."""
    found = Found()
    with _opened(upper, merged, lower) as fds:
        _walk(fds, _visit_overlay, found)
    return found


def copy_changes(original: Path, copy: Path, copied: Path) -> Found:
    """What a run changed in its copy of ``original``; ``copied`` was touched once the copy was
    finished, before the run."""
    found = Found()
    with _opened(copy, original) as fds:
        _walk(fds, functools.partial(_visit_copy, os.lstat(copied).st_ctime_ns), found)
    return found
