"""Turn what a sandboxed run changed into plan operations: the pure half of capture.

A run leaves a *change list* (:class:`Change`): the entries of an overlay's upper layer, or the
differences between a scope and a copy of it. This module reads nothing itself; it asks a
:class:`Sides` for the few facts it needs about the real scope ("lower") and the run's result
("upper"), so the cost of capture grows with what changed, never with the size of the case.

The operations come out in an order that always applies:

1. ``mkdir`` for new folders where nothing was before (parents first);
2. ``move`` for new files whose exact bytes were deleted elsewhere (what a reviewer expects to
   read, and cheap to apply);
3. ``delete`` for what is gone, topmost entries only;
4. ``mkdir`` for folders that replace something (a file, or a folder emptied and made anew);
5. ``write`` for new and modified files (``overwrite`` where a file was there before).

Symbolic links and special files are never captured: a plan has no operation for them, so a run
that plants ``x -> /etc`` cannot make a plan that follows it. They are reported as skipped.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from airlock import paths
from airlock.errors import UnsafePathError
from airlock.paths import RelPath


class Kind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    GONE = "gone"  # deleted: an overlay whiteout, or missing from the copy
    SYMLINK = "symlink"
    SPECIAL = "special"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry a run left behind, relative to the scope.

    ``replaces`` marks a folder whose earlier contents are all gone (an overlay's opaque
    folder): everything below it is new.
    """

    path: RelPath
    kind: Kind
    replaces: bool = False


class Sides(Protocol):
    """What capture may ask about the real scope (lower) and the run's result (upper)."""

    def lower_kind(self, path: RelPath) -> Kind | None:
        """FILE, DIR, SYMLINK or SPECIAL for what is at ``path`` in the real scope, or None."""

    def lower_files(self, path: RelPath) -> Iterable[tuple[RelPath, int]]:
        """Every regular file at or below ``path`` in the real scope, with its size."""

    def lower_digest(self, path: RelPath) -> str:
        """A digest of the bytes of real file ``path``."""

    def upper_bytes(self, path: RelPath) -> bytes:
        """The bytes the run left in file ``path``."""


@dataclass
class Captured:
    """Operations in apply order, and what could not become part of a plan (with why)."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    bytes_written: int = 0


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _valid(path: RelPath) -> str | None:
    """Why ``path`` cannot be named in a plan, or None."""
    try:
        for part in path:
            part.encode("utf-8")
        # The same check a plan's paths get (control characters, backslashes, lengths).
        paths.parse(paths.render(path), "name")
    except UnsafePathError as exc:
        return exc.message
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    return None


def _write(path: RelPath, data: bytes, overwrite: bool) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "write", "path": paths.render(path), "overwrite": overwrite}
    try:
        op["text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        op["base64"] = base64.b64encode(data).decode("ascii")
    return op


def capture(changes: Iterable[Change], sides: Sides) -> Captured:
    """The operations that make the real scope look like the run's result."""
    out = Captured()
    files: list[RelPath] = []
    dirs: list[RelPath] = []
    gone: list[RelPath] = []
    replaced: set[RelPath] = set()
    for change in sorted(changes, key=lambda c: c.path):
        problem = _valid(change.path)
        if problem is not None:
            out.skipped.append({"path": repr(paths.render(change.path)), "reason": problem})
            continue
        if change.kind in (Kind.SYMLINK, Kind.SPECIAL):
            out.skipped.append(
                {
                    "path": paths.render(change.path),
                    "reason": f"a {change.kind} cannot be part of a plan; only files and folders are",
                }
            )
        elif change.kind is Kind.GONE:
            gone.append(change.path)
        elif change.kind is Kind.DIR:
            dirs.append(change.path)
            if change.replaces:
                replaced.add(change.path)
        else:
            files.append(change.path)

    def fresh(path: RelPath) -> bool:
        """True when an ancestor folder replaced what was there: nothing below it is old."""
        return any(path[:i] in replaced for i in range(1, len(path)))

    def lower(path: RelPath) -> Kind | None:
        return None if fresh(path) else sides.lower_kind(path)

    deleted: set[RelPath] = {path for path in gone if lower(path) is not None}
    early_dirs: list[RelPath] = []
    late_dirs: list[RelPath] = []
    for path in dirs:
        kind = lower(path)
        if kind is None:
            (late_dirs if fresh(path) else early_dirs).append(path)
        elif kind is not Kind.DIR or path in replaced:
            replaced.add(path)
            deleted.add(path)
            late_dirs.append(path)
    new_files: list[tuple[RelPath, bytes]] = []
    writes: list[tuple[RelPath, bytes, bool]] = []
    for path in files:
        kind = lower(path)
        data = sides.upper_bytes(path)
        if kind is Kind.FILE:
            if sides.lower_digest(path) != _digest(data):
                writes.append((path, data, True))
            continue
        if kind is not None:
            deleted.add(path)
        if kind is None and not fresh(path):
            new_files.append((path, data))
        else:
            writes.append((path, data, False))
    if replaced:
        deleted = {path for path in deleted if not fresh(path)}
    deleted = {
        path for path in deleted if not any(path[:i] in deleted for i in range(1, len(path)))
    }

    moves, moved_sources, unmatched = _find_moves(new_files, deleted, sides)
    writes += [(path, data, False) for path, data in unmatched]

    ops = out.operations
    ops += [{"op": "mkdir", "path": paths.render(path)} for path in sorted(early_dirs)]
    ops += [
        {"op": "move", "source": paths.render(src), "destination": paths.render(dst)}
        for src, dst in moves
    ]
    ops += [
        {"op": "delete", "path": paths.render(path)}
        for path in sorted(deleted)
        if path not in moved_sources
    ]
    ops += [{"op": "mkdir", "path": paths.render(path)} for path in sorted(late_dirs)]
    for path, data, overwrite in sorted(writes, key=lambda w: w[0]):
        ops.append(_write(path, data, overwrite))
        out.bytes_written += len(data)
    return out


def _find_moves(
    new_files: list[tuple[RelPath, bytes]], deleted: set[RelPath], sides: Sides
) -> tuple[list[tuple[RelPath, RelPath]], set[RelPath], list[tuple[RelPath, bytes]]]:
    """Pair new files with deleted files of the same bytes: (moves, their sources, the rest).

    Only files of a size some deleted file has are read, so the cost stays with the changes.
    A deleted file is the source of one move at most; a same-named candidate is preferred.
    """
    by_size: dict[int, list[RelPath]] = defaultdict(list)
    for root in sorted(deleted):
        for path, size in sides.lower_files(root):
            by_size[size].append(path)
    moves: list[tuple[RelPath, RelPath]] = []
    used: set[RelPath] = set()
    unmatched: list[tuple[RelPath, bytes]] = []
    lower_digests: dict[RelPath, str] = {}
    for path, data in new_files:
        candidates = [c for c in by_size.get(len(data), ()) if c not in used]
        if not candidates:
            unmatched.append((path, data))
            continue
        digest = _digest(data)
        candidates.sort(key=lambda c: (c[-1] != path[-1], c))
        for source in candidates:
            if source not in lower_digests:
                lower_digests[source] = sides.lower_digest(source)
            if lower_digests[source] == digest:
                moves.append((source, path))
                used.add(source)
                break
        else:
            unmatched.append((path, data))
    return moves, used, unmatched
