"""Validation: simulate a plan on a view of the tree and report what it would do.

The view starts as the real tree (read through a :class:`~airlock.storage.Storage`, lazily) and
records each operation as an override, so every operation sees the ones before it. Every real
path the simulation looks at is recorded with its fingerprint (or its absence): these are the
plan's *preconditions*, re-checked under the scope lock at apply so a stale plan is refused.

Pure logic over the storage interface: no database, no locks, no writes.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from airlock import paths
from airlock.content import ContentStore
from airlock.errors import UnsafePathError
from airlock.names import escaped, look_alikes, script_names
from airlock.paths import RelPath, render
from airlock.plan import Copy, Delete, Mkdir, Move, Plan, Write
from airlock.policy import Policy
from airlock.storage.base import Entry, Kind, Storage

Action = Literal["mkdir", "create", "overwrite", "move", "copy", "delete"]


class Issue(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str
    op: int | None = None


class Change(BaseModel):
    """One change the plan makes, in order; apply executes exactly these."""

    op: int
    action: Action
    path: str
    """The entry created, replaced or removed (for a move or copy: the destination)."""
    source: str | None = None
    kind: str = "file"
    """What ``path`` holds afterwards (for a delete: what it held)."""
    size: int = 0
    files: int | None = None
    """For a folder deleted, moved or copied: how many files it holds (``size`` is their bytes
    for a delete or copy)."""
    replaces: bool = False
    """The destination existed and is kept aside (overwrite)."""
    sha256_before: str | None = None
    """Content kept aside, moved or deleted: a file's SHA-256, or a folder's tree digest."""
    sha256_after: str | None = None


class Validation(BaseModel):
    valid: bool
    needs_approval: list[str]
    errors: list[Issue]
    warnings: list[Issue]
    changes: list[Change]
    counts: dict[str, int]
    bytes_written: int
    bytes_removed: int
    preconditions: dict[str, list[object] | None]
    """Every real path the simulation looked at, with its fingerprint (None: it was absent)."""
    folder_contents: dict[str, list[str]] | None = None
    """The names in every real folder the plan deletes, moves or copies (and the folders inside
    them), as validated: apply refuses if any of them holds anything else. None in reports made
    before Airlock recorded it (such a plan must be validated again)."""


def tree_digest(entries: Iterable[tuple[str, Kind, str]]) -> str:
    """A folder's digest: its entries (relative path, kind, file SHA-256 or ""), parents first."""
    digest = hashlib.sha256()
    for rel, kind, content in entries:
        digest.update(f"{rel}\0{kind}\0{content}\n".encode("utf-8", "surrogatepass"))
    return "tree:" + digest.hexdigest()


# --- the view -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Absent:
    pass


@dataclass(frozen=True, slots=True)
class _VFile:
    size: int
    sha: str


@dataclass(frozen=True, slots=True)
class _VDir:
    pass


@dataclass(frozen=True, slots=True)
class _Real:
    """The entry at this view path is the real entry at ``real`` (moved, or untouched)."""

    real: RelPath


_Node = _Absent | _VFile | _VDir | _Real
_ABSENT = _Absent()


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _View:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.over: dict[RelPath, _Node] = {}
        self.below: dict[RelPath, set[str]] = {}
        """An index of ``over`` as a tree: for a path, the names of its children that are
        overridden or lead to an override. A folder's overrides are found by walking it, so a
        folder move or delete costs what the folder holds, not every override of the plan."""
        self.nodes: dict[RelPath, _Node] = {}
        """What :meth:`node` found since ``over`` last changed (one operation looks at the same
        few paths several times)."""
        self.kid_folds: dict[RelPath, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.real_stats: dict[RelPath, Entry | None] = {}
        self.real_folds: dict[RelPath, dict[str, set[str]]] = {}
        self.real_hashes: dict[RelPath, str] = {}
        self.real_listings: dict[RelPath, list[str]] = {}
        """Every real folder walked (to delete, move or copy it), with its names as seen."""

    # reading the real tree, recording what was seen

    def real_stat(self, real: RelPath) -> Entry | None:
        if real not in self.real_stats:
            try:
                self.real_stats[real] = self.storage.stat(real)
            except UnsafePathError as exc:
                raise _Refused("symlink-in-path", exc.message) from None
        return self.real_stats[real]

    def real_sha(self, real: RelPath) -> str:
        if real not in self.real_hashes:
            self.real_hashes[real] = self.storage.sha256(real)
        return self.real_hashes[real]

    def real_listdir(self, real: RelPath) -> list[str]:
        if real not in self.real_listings:
            self.real_listings[real] = sorted(self.storage.listdir(real))
        return self.real_listings[real]

    def real_fold_index(self, real: RelPath) -> dict[str, set[str]]:
        if real not in self.real_folds:
            index: dict[str, set[str]] = defaultdict(set)
            for name in self.storage.listdir(real):
                index[paths.fold(name)].add(name)
            self.real_folds[real] = index
        return self.real_folds[real]

    # the view

    def node(self, path: RelPath) -> _Node:
        known = self.nodes.get(path)
        if known is None:
            known = self.nodes[path] = self._node(path)
        return known

    def _node(self, path: RelPath) -> _Node:
        for depth in range(len(path), 0, -1):
            found = self.over.get(path[:depth])
            if found is not None:
                rest = path[depth:]
                if not rest or isinstance(found, _Absent):
                    return found
                if isinstance(found, _Real):
                    return _Real(found.real + rest)
                return _ABSENT  # below a virtual file or folder: all its children are overrides
        return _Real(path)

    def entry(self, path: RelPath) -> tuple[Kind, int] | None:
        node = self.node(path)
        if isinstance(node, _Absent):
            return None
        if isinstance(node, _VFile):
            return Kind.FILE, node.size
        if isinstance(node, _VDir):
            return Kind.DIR, 0
        real = self.real_stat(node.real)
        return None if real is None else (real.kind, real.size)

    def set(self, path: RelPath, node: _Node) -> None:
        self.nodes.clear()
        if path not in self.over:
            for depth in range(len(path) - 1, -1, -1):
                names = self.below.get(path[:depth])
                if names is None:
                    self.below[path[:depth]] = {path[depth]}
                elif path[depth] in names:
                    break  # this prefix, and so every shorter one, is indexed already
                else:
                    names.add(path[depth])
        self.over[path] = node
        self.kid_folds[path[:-1]][paths.fold(path[-1])].add(path[-1])

    def _inside(self, path: RelPath) -> list[RelPath]:
        """Every overridden path below ``path`` (not ``path`` itself)."""
        found: list[RelPath] = []
        pending = [path]
        while pending:
            here = pending.pop()
            for name in self.below.get(here, ()):
                key = (*here, name)
                if key in self.over:
                    found.append(key)
                pending.append(key)
        return found

    def _forget(self, keys: list[RelPath]) -> None:
        """Remove ``keys`` from ``over`` and unindex every prefix that leads nowhere now."""
        self.nodes.clear()
        for key in keys:
            del self.over[key]
        for key in keys:
            path = key
            while path and path not in self.over and not self.below.get(path):
                self.below.pop(path, None)
                names = self.below[path[:-1]]
                names.discard(path[-1])
                path = path[:-1]

    def move_children(self, source: RelPath, destination: RelPath) -> None:
        size = len(source)
        inner = self._inside(source)
        nodes = [self.over[key] for key in inner]
        self._forget(inner)
        for key, node in zip(inner, nodes, strict=True):
            self.set(destination + key[size:], node)

    def drop_children(self, path: RelPath) -> None:
        self._forget(self._inside(path))

    def listdir(self, path: RelPath) -> list[str]:
        names: set[str] = set()
        node = self.node(path)
        if isinstance(node, _Real):
            names.update(self.real_listdir(node.real))
        for fold_names in self.kid_folds.get(path, {}).values():
            names.update(fold_names)
        return sorted(name for name in names if self.entry((*path, name)) is not None)

    def siblings_folding_to(self, path: RelPath) -> list[str]:
        parent, name = path[:-1], path[-1]
        key = paths.fold(name)
        candidates = set(self.kid_folds.get(parent, {}).get(key, ()))
        node = self.node(parent)
        if isinstance(node, _Real):
            candidates |= self.real_fold_index(node.real).get(key, set())
        if not candidates:
            return []
        return sorted(c for c in candidates if c != name and self.entry((*parent, c)) is not None)

    def sha(self, path: RelPath) -> str:
        node = self.node(path)
        if isinstance(node, _VFile):
            return node.sha
        assert isinstance(node, _Real)
        return self.real_sha(node.real)

    def walk(self, path: RelPath) -> list[tuple[RelPath, Kind, int]]:
        """Every entry below folder ``path`` in the view, relative to it, parents first."""
        out: list[tuple[RelPath, Kind, int]] = []
        for name in self.listdir(path):
            child = (*path, name)
            found = self.entry(child)
            assert found is not None
            out.append(((name,), found[0], found[1]))
            if found[0] is Kind.DIR:
                out.extend(((name, *rel), kind, size) for rel, kind, size in self.walk(child))
        return out

    def tree_digest(self, path: RelPath) -> str:
        return tree_digest(
            (render(rel), kind, self.sha((*path, *rel)) if kind is Kind.FILE else "")
            for rel, kind, _size in self.walk(path)
        )


# --- the simulation -----------------------------------------------------------------------


class _Simulation:
    def __init__(
        self, plan: Plan, storage: Storage, policy: Policy, content: ContentStore | None
    ) -> None:
        self.plan = plan
        self.policy = policy
        self.content = content
        self.view = _View(storage)
        self.scope = plan.scope_path
        self.name_max = storage.name_max()
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.changes: list[Change] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.bytes_written = 0
        self.bytes_removed = 0
        self.files_deleted = 0
        """What ``max_deletions`` limits: files removed, a folder counting what it holds."""

    def warn(self, op: int | None, code: str, message: str) -> None:
        self.warnings.append(Issue(severity="warning", code=code, message=message, op=op))

    def run(self) -> Validation:
        problem = self.policy.scope_problem(self.scope)
        limits = self.policy.limits
        if problem:
            self.errors.append(Issue(severity="error", code="scope", message=problem))
        elif len(self.plan.operations) > limits.max_operations:
            self.errors.append(
                Issue(
                    severity="error",
                    code="limit-operations",
                    message=f"the plan has {len(self.plan.operations)} operations; the policy "
                    f"allows {limits.max_operations}. Split it into smaller plans.",
                )
            )
        else:
            self._check_scope()
        if not self.errors:
            for index, op in enumerate(self.plan.operations):
                try:
                    self._simulate(index, op)
                except _Refused as refusal:
                    self.errors.append(
                        Issue(
                            severity="error",
                            code=refusal.code,
                            message=f"operation {index + 1} ({op.op}): {refusal.message}",
                            op=index,
                        )
                    )
            self._check_limits()
        preconditions = {
            render(real): (entry.fingerprint() if entry else None)
            for real, entry in self.view.real_stats.items()
        }
        valid = not self.errors
        return Validation(
            valid=valid,
            needs_approval=(
                self.policy.needs_approval(self.counts)
                + (["requested by the submitter"] if self.plan.require_approval else [])
                if valid
                else []
            ),
            errors=self.errors,
            warnings=self.warnings,
            changes=self.changes if valid else [],
            counts=dict(self.counts),
            bytes_written=self.bytes_written,
            bytes_removed=self.bytes_removed,
            preconditions=preconditions,
            folder_contents={
                render(real): names for real, names in self.view.real_listings.items()
            },
        )

    def _check_scope(self) -> None:
        try:
            for depth in range(1, len(self.scope) + 1):
                found = self.view.real_stat(self.scope[:depth])
                if found is None or found.kind is not Kind.DIR:
                    what = "does not exist" if found is None else f"is a {found.kind}, not a folder"
                    raise _Refused(
                        "scope",
                        f"scope {self.plan.scope!r}: {render(self.scope[:depth])!r} {what}; "
                        "create the folder first, with a plan scoped to its parent",
                    )
        except _Refused as refusal:
            self.errors.append(Issue(severity="error", code=refusal.code, message=refusal.message))

    def _check_limits(self) -> None:
        limits = self.policy.limits
        if self.bytes_written > limits.max_bytes_written:
            self.errors.append(
                Issue(
                    severity="error",
                    code="limit-bytes",
                    message=f"the plan writes {self.bytes_written} bytes; the policy allows "
                    f"{limits.max_bytes_written}. Split it into smaller plans.",
                )
            )
        if self.files_deleted > limits.max_deletions:
            self.errors.append(
                Issue(
                    severity="error",
                    code="limit-deletions",
                    message=f"the plan deletes {self.files_deleted} files (a folder counts the "
                    f"files it holds); the policy allows {limits.max_deletions}. Split it into "
                    "smaller plans.",
                )
            )

    # paths

    def _path(self, raw: str) -> RelPath:
        try:
            path = self.scope + paths.parse(raw)
        except UnsafePathError as exc:  # a plan stored before a path rule was tightened
            raise _Refused("unsafe-path", f"{exc.message} ({exc.hint})") from None
        pattern = self.policy.protected_by(path)
        if pattern:
            raise _Refused("protected", f"{render(path)!r} is protected by policy ({pattern!r})")
        return path

    def _parent_must_be_folder(self, path: RelPath) -> None:
        parent = path[:-1]
        found = self.view.entry(parent)
        if found is None:
            raise _Refused(
                "missing-parent",
                f"folder {render(parent)!r} does not exist; add a mkdir for it earlier in the plan",
            )
        if found[0] is Kind.SYMLINK:
            raise _Refused(
                "symlink-in-path",
                f"{render(parent)!r} is a symbolic link; symlinks are never followed, "
                "so nothing can be put through it",
            )
        if found[0] is not Kind.DIR:
            raise _Refused("not-a-folder", f"{render(parent)!r} is a {found[0]}, not a folder")

    def _new_name(self, index: int, path: RelPath, renaming: RelPath | None = None) -> None:
        name = path[-1]
        if not name.isascii():
            self._misleading_name(index, name)
        size = len(name.encode("utf-8"))
        if size > self.name_max:
            raise _Refused(
                "name-too-long",
                f"the name {name!r} is {size} bytes; this filesystem allows {self.name_max}",
            )
        twins = [
            twin
            for twin in self.view.siblings_folding_to(path)
            # A case-only rename ("notes.txt" to "Notes.txt") does not collide with itself.
            if renaming is None or (*path[:-1], twin) != renaming
        ]
        if twins:
            raise _Refused(
                "name-collision",
                f"{render(path)!r} would collide with the existing {twins[0]!r} (the names are "
                "the same after Unicode normalisation and case-folding); choose another name",
            )
        if unicodedata.normalize("NFC", name) != name:
            self.warn(index, "not-nfc", f"{render(path)!r} is not in Unicode NFC form")
        if name != name.strip():
            self.warn(index, "spaces", f"{render(path)!r} begins or ends with a space")

    def _misleading_name(self, index: int, name: str) -> None:
        """Warn of a name that can pass for another: invisible characters, look-alike letters."""
        hidden = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) == "Cf"})
        if hidden:
            self.warn(
                index,
                "invisible-characters",
                f"the name {name!r} holds invisible or direction-changing characters "
                f"({', '.join(hidden)}): what a reviewer reads may not be the real name",
            )
        for alike in look_alikes(name):
            what = (
                f"its word '{escaped(alike.word)}' is {script_names(alike.scripts)} "
                "written with letters that look Latin"
                if alike.whole
                else f"its word '{escaped(alike.word)}' mixes "
                f"{script_names(alike.scripts)} letters that look alike"
            )
            self.warn(
                index,
                "mixed-script",
                f"the name '{escaped(name)}' (shown escaped) can pass for another name: "
                f"{what}; check that it is the name meant",
            )

    def _destination(
        self,
        index: int,
        path: RelPath,
        overwrite: bool,
        incoming: Kind,
        renaming: RelPath | None = None,
    ) -> tuple[bool, str | None]:
        """Check a destination; return (replaces existing, its SHA-256)."""
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            self._new_name(index, path, renaming)
            return False, None
        kind = found[0]
        if kind is Kind.FILE and incoming is not Kind.DIR:
            if not overwrite:
                raise _Refused(
                    "exists",
                    f'{render(path)!r} already exists; set "overwrite": true to replace it '
                    "(the old file is kept aside and restored by rollback)",
                )
            node = self.view.node(path)
            if isinstance(node, _Real):
                real = self.view.real_stat(node.real)
                if real is not None and real.nlink > 1:
                    self.warn(
                        index,
                        "hard-link",
                        f"{render(path)!r} has {real.nlink} hard links; only this name changes",
                    )
            self.bytes_removed += found[1]
            return True, self.view.sha(path)
        raise _Refused(
            "exists",
            f"{render(path)!r} already exists as a {kind}; only files can be overwritten "
            "(delete it first if it must go)",
        )

    def _source(self, path: RelPath) -> Kind:
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            raise _Refused("missing-source", f"{render(path)!r} does not exist")
        if found[0] is Kind.SPECIAL:
            raise _Refused(
                "special-file",
                f"{render(path)!r} is a FIFO, socket or device; Airlock only moves "
                "regular files, folders and symlinks",
            )
        return found[0]

    def _check_tree(
        self, path: RelPath, *, for_copy: bool, landing: RelPath | None = None
    ) -> tuple[int, int]:
        """(files, bytes) below folder ``path``; refuse protected (and, to copy, odd) entries,
        both where they are and where they land (``landing``: a move's or copy's destination)."""
        files = total = 0
        for rel, kind, size in self.view.walk(path):
            inner = path + rel
            for place in (inner,) if landing is None else (inner, landing + rel):
                pattern = self.policy.protected_by(place)
                if pattern:
                    raise _Refused(
                        "protected",
                        f"{render(place)!r} inside is protected by policy ({pattern!r})",
                    )
            if for_copy and kind in (Kind.SYMLINK, Kind.SPECIAL):
                raise _Refused(
                    "copy-link",
                    f"{render(inner)!r} is a {kind}; folders holding links or special files "
                    "cannot be copied (move them instead)",
                )
            if kind is Kind.FILE:
                files += 1
                total += size
        return files, total

    # operations

    def _simulate(self, index: int, op: Mkdir | Write | Copy | Move | Delete) -> None:
        if isinstance(op, Mkdir):
            self._mkdir(index, op)
        elif isinstance(op, Write):
            self._write(index, op)
        elif isinstance(op, Copy):
            self._copy(index, op)
        elif isinstance(op, Move):
            self._move(index, op)
        else:
            self._delete(index, op)

    def _mkdir(self, index: int, op: Mkdir) -> None:
        path = self._path(op.path)
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is not None:
            if found[0] is Kind.DIR:
                self.warn(index, "exists", f"folder {render(path)!r} already exists; skipped")
                return
            raise _Refused("exists", f"{render(path)!r} already exists as a {found[0]}")
        self._new_name(index, path)
        self.view.set(path, _VDir())
        self.counts["mkdir"] += 1
        self.changes.append(Change(op=index, action="mkdir", path=render(path), kind="dir"))

    def _write(self, index: int, op: Write) -> None:
        path = self._path(op.path)
        blob = op.stored
        if blob is None:
            content = op.content()
            size, sha = len(content), hashlib.sha256(content).hexdigest()
        else:
            # The body is not read: its name is its digest, and apply checks the bytes.
            found = None if self.content is None else self.content.size(blob.sha256)
            if found != blob.size:
                raise _Refused(
                    "content-missing",
                    f"the stored body {blob.sha256} ({blob.size} bytes) for {render(path)!r} "
                    "is not in Airlock's content store; capture the run again",
                )
            sha, size = blob
        replaces, before = self._destination(index, path, op.overwrite, Kind.FILE)
        self.view.set(path, _VFile(size, sha))
        self.bytes_written += size
        action: Action = "overwrite" if replaces else "create"
        self.counts["overwrite" if replaces else "write"] += 1
        self.changes.append(
            Change(
                op=index,
                action=action,
                path=render(path),
                size=size,
                replaces=replaces,
                sha256_before=before,
                sha256_after=sha,
            )
        )

    def _copy(self, index: int, op: Copy) -> None:
        source, destination = self._path(op.source), self._path(op.destination)
        kind = self._source(source)
        if kind is Kind.SYMLINK:
            raise _Refused(
                "copy-link", f"{render(source)!r} is a symlink; a symlink can be moved, not copied"
            )
        if paths.is_within(destination, source):
            raise _Refused("into-itself", "a folder cannot be copied into itself")
        replaces, before = self._destination(index, destination, op.overwrite, kind)
        files: int | None = None
        if kind is Kind.DIR:
            files, size = self._check_tree(source, for_copy=True, landing=destination)
            digest = self.view.tree_digest(source)
            self.view.set(destination, _VDir())
            for rel, inner_kind, _size in self.view.walk(source):
                self.view.set(
                    destination + rel,
                    _VDir()
                    if inner_kind is Kind.DIR
                    else _VFile(_size, self.view.sha(source + rel)),
                )
        else:
            found = self.view.entry(source)
            assert found is not None
            size = found[1]
            digest = self.view.sha(source)
            self.view.set(destination, _VFile(size, digest))
        self.bytes_written += size
        self.counts["copy"] += 1
        if replaces:
            self.counts["overwrite"] += 1
        self.changes.append(
            Change(
                op=index,
                action="copy",
                path=render(destination),
                source=render(source),
                kind=str(kind),
                size=size,
                files=files,
                replaces=replaces,
                sha256_before=before,
                sha256_after=digest,
            )
        )

    def _move(self, index: int, op: Move) -> None:
        source, destination = self._path(op.source), self._path(op.destination)
        kind = self._source(source)
        if source == destination:
            raise _Refused("same-path", "source and destination are the same")
        if paths.is_within(destination, source):
            raise _Refused("into-itself", "a folder cannot be moved into itself")
        files = None
        if kind is Kind.DIR:
            files, _size = self._check_tree(source, for_copy=False, landing=destination)
        replaces, before = self._destination(
            index, destination, op.overwrite, kind, renaming=source
        )
        found = self.view.entry(source)
        assert found is not None
        size = found[1] if kind is Kind.FILE else 0
        digest = (
            self.view.sha(source)
            if kind is Kind.FILE
            else self.view.tree_digest(source)
            if kind is Kind.DIR
            else None
        )
        self.view.set(destination, self.view.node(source))
        if kind is Kind.DIR:
            self.view.move_children(source, destination)
        self.view.set(source, _ABSENT)
        self.counts["move"] += 1
        if replaces:
            self.counts["overwrite"] += 1
        self.changes.append(
            Change(
                op=index,
                action="move",
                path=render(destination),
                source=render(source),
                kind=str(kind),
                size=size,
                files=files,
                replaces=replaces,
                sha256_before=before,
                sha256_after=digest,
            )
        )

    def _delete(self, index: int, op: Delete) -> None:
        path = self._path(op.path)
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            raise _Refused("missing-source", f"{render(path)!r} does not exist")
        kind, size = found
        if kind is Kind.SPECIAL:
            raise _Refused(
                "special-file",
                f"{render(path)!r} is a FIFO, socket or device; Airlock does not touch those "
                "(ask an operator to remove it)",
            )
        self.files_deleted += 1
        files = None
        if kind is Kind.DIR:
            files, size = self._check_tree(path, for_copy=False)
            self.files_deleted += max(files, 1) - 1
            digest: str | None = self.view.tree_digest(path)
            self.warn(
                index,
                "delete-folder",
                f"deletes folder {render(path)!r} with {files} file(s), {size} bytes",
            )
        elif kind is Kind.FILE:
            digest = self.view.sha(path)
        else:
            digest = None
        self.view.set(path, _ABSENT)
        if kind is Kind.DIR:
            self.view.drop_children(path)
        self.counts["delete"] += 1
        self.bytes_removed += size
        self.changes.append(
            Change(
                op=index,
                action="delete",
                path=render(path),
                kind=str(kind),
                size=size,
                files=files,
                sha256_before=digest,
            )
        )


def validate(
    plan: Plan, storage: Storage, policy: Policy, content: ContentStore | None = None
) -> Validation:
    """Simulate ``plan`` on ``storage`` under ``policy``; never changes anything. Writes that
    name stored bodies are checked against ``content`` (without one they are refused)."""
    with storage.batch():  # each folder resolved once, not once per entry looked at
        return _Simulation(plan, storage, policy, content).run()


def stale_paths(
    preconditions: dict[str, list[object] | None],
    storage: Storage,
    folder_contents: dict[str, list[str]] | None = None,
    *,
    after_undo: bool = False,
) -> list[str]:
    """The recorded paths whose state differs now, each with what changed; and, for each folder
    the plan deletes, moves or copies, every name it holds now that it did not hold then.

    ``after_undo``: check that an undone apply left the tree as validated. An entry renamed away
    and back keeps its inode, size and modification time, but not its change time: that one
    is not compared.
    """
    changed = _stale_entries(preconditions, storage, after_undo)
    for text, names in (folder_contents or {}).items():
        path = tuple(text.split("/")) if text else ()
        try:
            now = storage.listdir(path)
        except (FileNotFoundError, NotADirectoryError, UnsafePathError):
            continue  # the folder itself is gone or replaced: its own precondition says so
        was = set(names)
        for name in sorted(set(now) - was):
            changed.append(
                f"{render((*path, name))}: added since validation, inside a folder the plan "
                "deletes, moves or copies"
            )
        for name in sorted(was - set(now)):
            if render((*path, name)) not in preconditions:  # else reported above
                changed.append(f"{render((*path, name))}: disappeared since validation")
    return changed


def _stale_entries(
    preconditions: dict[str, list[object] | None], storage: Storage, after_undo: bool
) -> list[str]:
    changed = []
    for text, expected in preconditions.items():
        path = tuple(text.split("/")) if text else ()
        try:
            found = storage.stat(path)
        except UnsafePathError:
            changed.append(f"{text}: now passes through a symbolic link")
            continue
        now = found.fingerprint() if found else None
        if after_undo and now is not None and expected is not None and len(now) == 5:
            now, expected = now[:3] + now[4:], expected[:3] + expected[4:]
        if now != expected:
            if expected is None:
                changed.append(f"{text}: appeared since validation")
            elif now is None:
                changed.append(f"{text}: disappeared since validation")
            elif now[0] != expected[0]:
                changed.append(f"{text}: was a {expected[0]}, is now a {now[0]}")
            else:
                changed.append(f"{text}: modified since validation")
    return changed
