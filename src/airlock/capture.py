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

Capture streams: no file is ever held whole in memory. A changed file is hashed and staged into
the content store (:mod:`airlock.content`) in chunks by the :class:`Sides`, and its ``write``
names the stored body by digest and size; only small files (``INLINE_FILE_MAX``, up to
``INLINE_TOTAL_MAX`` per plan) are put inline as ``text`` or ``base64``. Moves are found by size
first and digest second. The write limit counts apparent sizes (``st_size``) before anything is
read, so a sparse file of 100 GiB is refused without reading it. Whatever capture cannot take (a
file it may not read, a name too long) is skipped with a reason; it never raises for one file.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from airlock import paths
from airlock.errors import AirlockError, UnsafePathError, storage_error
from airlock.paths import RelPath

INLINE_FILE_MAX = 64 * 1024
"""Files of at most this many bytes go inline in the plan (as text, or base64 if not UTF-8)..."""
INLINE_TOTAL_MAX = 1 << 20
"""... until the plan's inline bodies reach this many bytes; the rest are stored bodies."""


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


@dataclass(frozen=True, slots=True)
class Body:
    """A file the run left: the SHA-256 and size of its bytes, and the bytes themselves only when
    they are few enough to go inline (``data``); otherwise they are in the content store."""

    sha256: str
    size: int
    data: bytes | None = None


class _Lower(Protocol):
    def lower_kind(self, path: RelPath) -> Kind | None:
        """FILE, DIR, SYMLINK or SPECIAL for what is at ``path`` in the real scope, or None."""

    def lower_files(self, path: RelPath) -> Iterable[tuple[RelPath, int]]:
        """Every regular file at or below ``path`` in the real scope, with its size."""

    def lower_digest(self, path: RelPath) -> str:
        """The SHA-256 (hex) of the bytes of real file ``path``, read in chunks."""


class Sides(_Lower, Protocol):
    """What capture may ask about the real scope (lower) and the run's result (upper).

    Any method may raise ``OSError`` or an :class:`~airlock.errors.AirlockError` for one path;
    capture then skips that path with the reason. None may hold a whole file in memory.
    """

    def upper_size(self, path: RelPath) -> int:
        """The apparent size (``st_size``) of the run's file ``path``, without reading it."""

    def upper_digest(self, path: RelPath) -> str:
        """The SHA-256 (hex) of the bytes the run left in file ``path``, read in chunks."""

    def upper_body(self, path: RelPath, inline_max: int) -> Body:
        """The run's file ``path`` as a :class:`Body`: with its bytes in ``data`` if it holds
        at most ``inline_max`` of them, else (``data`` None) staged into the content store in
        chunks under its digest, where a plan's write may name it."""


@dataclass
class Captured:
    """Operations in apply order, and what could not become part of a plan (with why).

    ``staged`` maps the digest of every stored body the operations name to its size: what the
    submitter passes to :meth:`~airlock.workspace.Workspace.submit` as ``staged``.
    ``over_write_limit`` says a file was left out because of the write limit.
    """

    operations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    bytes_written: int = 0
    staged: dict[str, int] = field(default_factory=dict)
    over_write_limit: bool = False


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


def _problem(exc: OSError | AirlockError, path: RelPath) -> str:
    """Why ``path`` could not be captured, from what reading it raised."""
    if isinstance(exc, AirlockError):
        return exc.message
    return storage_error(exc, "read", paths.render(path)).message


def _write(path: RelPath, body: Body, overwrite: bool) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "write", "path": paths.render(path), "overwrite": overwrite}
    if body.data is None:
        op["sha256"], op["size"] = body.sha256, body.size
        return op
    try:
        op["text"] = body.data.decode("utf-8")
    except UnicodeDecodeError:
        op["base64"] = base64.b64encode(body.data).decode("ascii")
    return op


_Skip = Callable[[RelPath, str], None]


def capture(changes: Iterable[Change], sides: Sides, *, write_limit: int | None = None) -> Captured:
    """The operations that make the real scope look like the run's result.

    ``write_limit`` bounds the apparent bytes of all written files together: a file that would
    pass it is not read at all, but skipped, and ``over_write_limit`` is set.
    """
    out = Captured()

    def skip(path: RelPath, reason: str) -> None:
        out.skipped.append({"path": paths.render(path), "reason": reason})

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
            skip(
                change.path,
                f"a {change.kind} cannot be part of a plan; only files and folders are",
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

    blocked: set[RelPath] = set()  # folders that could not be captured, so nothing below them

    def lower(path: RelPath) -> Kind | Literal[False] | None:
        """What the real scope has at ``path``; False (and skipped) if that cannot be read."""
        for i in range(1, len(path)):
            if path[:i] in blocked:
                skip(path, f"inside {paths.render(path[:i])!r}, which could not be captured")
                return False
        if fresh(path):
            return None
        try:
            return sides.lower_kind(path)
        except (OSError, AirlockError) as exc:
            skip(path, _problem(exc, path))
            return False

    deleted: set[RelPath] = set()
    for path in gone:
        kind = lower(path)
        if kind is not None and kind is not False:
            deleted.add(path)
    early_dirs: list[RelPath] = []
    late_dirs: list[RelPath] = []
    for path in dirs:
        kind = lower(path)
        if kind is False:
            blocked.add(path)
        elif kind is None:
            (late_dirs if fresh(path) else early_dirs).append(path)
        elif kind is not Kind.DIR or path in replaced:
            replaced.add(path)
            deleted.add(path)
            late_dirs.append(path)
    new_files: list[RelPath] = []
    writes: list[tuple[RelPath, bool]] = []  # (path, True if it may be the lower file unchanged)
    for path in files:
        kind = lower(path)
        if kind is False:
            continue
        if kind is Kind.FILE:
            writes.append((path, True))
            continue
        if kind is not None:
            deleted.add(path)
        if kind is None and not fresh(path):
            new_files.append(path)
        else:
            writes.append((path, False))

    moves, moved_sources, unmatched = _find_moves(new_files, deleted, sides, skip)
    writes += [(path, False) for path in unmatched]
    write_ops, not_written = _stage_writes(sorted(writes), sides, write_limit, out, skip)
    # A file that replaced an entry but could not be captured leaves that entry as it was.
    deleted -= not_written
    if replaced:
        deleted = {path for path in deleted if not fresh(path)}
    deleted = {
        path for path in deleted if not any(path[:i] in deleted for i in range(1, len(path)))
    }

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
    ops += write_ops
    return out


def _stage_writes(
    writes: list[tuple[RelPath, bool]],
    sides: Sides,
    write_limit: int | None,
    out: Captured,
    skip: _Skip,
) -> tuple[list[dict[str, Any]], set[RelPath]]:
    """The write operations, in path order, and the paths that could not be written.

    Each file's apparent size is checked against what is left of the write limit before it is
    read; only then is it staged (or read inline, if small). A file that may be the real one
    unchanged (a modification, or an overlay's copy-up after a chmod or touch) is dropped if it
    has the real file's size and digest, before anything is staged.
    """
    ops: list[dict[str, Any]] = []
    not_written: set[RelPath] = set()
    inline_left = INLINE_TOTAL_MAX

    def over(path: RelPath, size: int) -> bool:
        if write_limit is None or size <= write_limit - out.bytes_written:
            return False
        out.over_write_limit = True
        skip(
            path,
            f"its {size:,} bytes (apparent size) would take the run past its write limit of "
            f"{write_limit:,} bytes ({out.bytes_written:,} already captured); it was not read",
        )
        return True

    for path, maybe_same in writes:
        try:
            size = sides.upper_size(path)
            if maybe_same and _unchanged(path, size, sides):
                continue
            if over(path, size):
                not_written.add(path)
                continue
            body = sides.upper_body(path, max(0, min(INLINE_FILE_MAX, inline_left)))
        except (OSError, AirlockError) as exc:
            skip(path, _problem(exc, path))
            not_written.add(path)
            continue
        if over(path, body.size):  # it grew after its size was read
            not_written.add(path)
            continue
        if body.data is None:
            out.staged[body.sha256] = body.size
        else:
            inline_left -= body.size
        ops.append(_write(path, body, overwrite=maybe_same))
        out.bytes_written += body.size
    return ops, not_written


def _unchanged(path: RelPath, size: int, sides: Sides) -> bool:
    """Whether the run's file ``path`` holds exactly the real file's bytes (same size first)."""
    if size not in (real for _path, real in sides.lower_files(path)):
        return False
    return sides.upper_digest(path) == sides.lower_digest(path)


def _find_moves(
    new_files: list[RelPath], deleted: set[RelPath], sides: Sides, skip: _Skip
) -> tuple[list[tuple[RelPath, RelPath]], set[RelPath], list[RelPath]]:
    """Pair new files with deleted files of the same bytes: (moves, their sources, the rest).

    Only new files of a size some deleted file has are hashed (in chunks, nothing staged), so
    the cost stays with the changes. A deleted file is the source of one move at most; a
    same-named candidate is preferred.
    """
    by_size: dict[int, list[RelPath]] = defaultdict(list)
    for root in sorted(deleted):
        try:
            for path, size in sides.lower_files(root):
                by_size[size].append(path)
        except (OSError, AirlockError):
            continue  # no move from what cannot be listed; its delete is validated as usual
    moves: list[tuple[RelPath, RelPath]] = []
    used: set[RelPath] = set()
    unmatched: list[RelPath] = []
    lower_digests: dict[RelPath, str | None] = {}
    for path in new_files:
        try:
            size = sides.upper_size(path)
            candidates = [c for c in by_size.get(size, ()) if c not in used]
            digest = sides.upper_digest(path) if candidates else ""
        except (OSError, AirlockError) as exc:
            skip(path, _problem(exc, path))
            continue
        candidates.sort(key=lambda c: (c[-1] != path[-1], c))
        for source in candidates:
            if source not in lower_digests:
                try:
                    lower_digests[source] = sides.lower_digest(source)
                except (OSError, AirlockError):
                    lower_digests[source] = None
            if lower_digests[source] == digest:
                moves.append((source, path))
                used.add(source)
                break
        else:
            unmatched.append(path)
    return moves, used, unmatched
