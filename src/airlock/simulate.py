"""The simulation: each operation of a plan, in order, on a :class:`~airlock.view.View` of the
tree, checked against the policy; the result is the :class:`~airlock.validation.Validation`.

Every operation sees the ones before it. Nothing is read that the report does not need: a move
is recorded by identity (:mod:`airlock.digests`), and only what is deleted, overwritten or copied
is hashed. Pure logic over the storage interface: no database, no locks, no writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Iterator

from airlock import losses, paths, preconditions
from airlock.content import ContentStore
from airlock.errors import UnsafePathError
from airlock.names import escaped, look_alikes, script_names
from airlock.paths import RelPath, render
from airlock.plan import Copy, Delete, Mkdir, Move, Plan, Write, touched_paths
from airlock.policy import Policy
from airlock.storage.base import Kind, Storage
from airlock.validation import Action, Change, Issue, Validation
from airlock.view import ABSENT, Absent, Real, Refused, VDir, VFile, View


def validate(
    plan: Plan, storage: Storage, policy: Policy, content: ContentStore | None = None
) -> Validation:
    """Simulate ``plan`` on ``storage`` under ``policy``; never changes anything. Writes that
    name stored bodies are checked against ``content`` (without one they are refused)."""
    return simulated(plan, storage, policy, content)[0]


def simulated(
    plan: Plan,
    storage: Storage,
    policy: Policy,
    content: ContentStore | None = None,
    *,
    copies: bool = True,
) -> tuple[Validation, View]:
    """:func:`validate`, and the view of the tree after the plan (what a pending plan reads).
    Without ``copies`` the copies of what the plan removes are not looked for (the pending
    plan an agent is still making: its submit validates in full)."""
    with storage.batch():  # each folder resolved once, not once per entry looked at
        simulation = _Simulation(plan, storage, policy, content)
        simulation.check_losses = copies
        return simulation.run(), simulation.view


class _Simulation:
    def __init__(
        self, plan: Plan, storage: Storage, policy: Policy, content: ContentStore | None
    ) -> None:
        self.plan = plan
        self.policy = policy
        self.content = content
        self.view = View(storage)
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
        self.check_losses = True
        self.lost: dict[int, list[losses.Lost] | None] = {}
        """By operation index: the files it deletes or replaces (None: a folder too large to
        list), for :func:`airlock.losses.check` once the plan is simulated."""

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
            self.view.look_up(self._paths_named())
            for index, op in enumerate(self.plan.operations):
                try:
                    self._simulate(index, op)
                except Refused as refusal:
                    self.errors.append(
                        Issue(
                            severity="error",
                            code=refusal.code,
                            message=f"operation {index + 1} ({op.op}): {refusal.message}",
                            op=index,
                        )
                    )
            self._check_limits()
        valid = not self.errors
        if valid and self.lost and self.check_losses:
            said = [self.plan.description]  # what the plan says of what it deletes
            said += [op.reason for op in self.plan.operations if isinstance(op, Delete)]
            self.warnings += losses.check(
                self.view, self.scope, self.changes, self.lost, "\n".join(said)
            )
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
            preconditions=preconditions.record(self.view.real_stats),
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
                    raise Refused(
                        "scope",
                        f"scope {self.plan.scope!r}: {render(self.scope[:depth])!r} {what}; "
                        "create the folder first, with a plan scoped to its parent",
                    )
        except Refused as refusal:
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

    def _paths_named(self) -> Iterator[RelPath]:
        """Every path the operations name, as the real tree's paths, to read them ahead (split
        cheaply: a path that :meth:`_path` would spell otherwise is simply not found ahead, and
        nothing read ahead counts until the simulation, past every check, asks for it)."""
        for op in self.plan.operations:
            for raw in touched_paths(op):
                parts = tuple(raw.split("/"))
                if not any(part in ("", ".", "..") for part in parts):
                    yield self.scope + parts

    def _path(self, raw: str) -> RelPath:
        try:
            path = self.scope + paths.parse(raw)
        except UnsafePathError as exc:  # a plan stored before a path rule was tightened
            raise Refused("unsafe-path", f"{exc.message} ({exc.hint})") from None
        pattern = self.policy.protected_by(path)
        if pattern:
            raise Refused("protected", f"{render(path)!r} is protected by policy ({pattern!r})")
        return path

    def _make_parents(self, index: int, path: RelPath) -> None:
        """Create every missing folder above ``path`` (inside the scope) in the view, each as a
        mkdir change of operation ``index``, before the change that needs it.

        Each is a creation like any other: its name is checked, the policy's protected patterns
        apply to it, and its absence is recorded as a precondition (by looking at it), so a plan
        whose folder appeared since validation is stale. The journal makes, undoes and rolls
        back these mkdirs like the plan's own. (An operation refused after this point may leave
        its folders in the view; the plan is invalid then, so nothing of it is applied.)
        """
        missing: list[RelPath] = []
        for depth in range(len(self.scope) + 1, len(path)):
            folder = path[:depth]
            if missing:  # below a missing folder: missing too (and not looked up)
                missing.append(folder)
                continue
            found = self.view.entry(folder)
            if found is None:
                missing.append(folder)
            elif found[0] is not Kind.DIR:
                self._parent_must_be_folder(path[: depth + 1])  # says what stands in the way
        for folder in missing:
            pattern = self.policy.protected_by(folder)
            if pattern:
                raise Refused(
                    "protected",
                    f"{render(folder)!r} (a folder the operation creates) is protected by "
                    f"policy ({pattern!r})",
                )
        for folder in missing:
            self._new_name(index, folder)  # below the first, in a folder just made: no twins
            self.view.set(folder, VDir())
            self.counts["mkdir"] += 1
            self.changes.append(Change(op=index, action="mkdir", path=render(folder), kind="dir"))

    def _parent_must_be_folder(self, path: RelPath) -> None:
        parent = path[:-1]
        found = self.view.entry(parent)
        if found is None:
            raise Refused(
                "missing-parent",
                f"folder {render(parent)!r} does not exist; add a mkdir for it earlier in the "
                'plan, or set "parents": true on this operation to create it',
            )
        if found[0] is Kind.SYMLINK:
            raise Refused(
                "symlink-in-path",
                f"{render(parent)!r} is a symbolic link; symlinks are never followed, "
                "so nothing can be put through it",
            )
        if found[0] is not Kind.DIR:
            raise Refused("not-a-folder", f"{render(parent)!r} is a {found[0]}, not a folder")

    def _new_name(self, index: int, path: RelPath, renaming: RelPath | None = None) -> None:
        name = path[-1]
        if not name.isascii():
            self._misleading_name(index, name)
        size = len(name.encode("utf-8"))
        if size > self.name_max:
            raise Refused(
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
            raise Refused(
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
        *,
        parents: bool = False,
    ) -> tuple[bool, str | None]:
        """Check a destination (creating its missing folders first if ``parents``); return
        (replaces existing, its SHA-256)."""
        if parents:
            self._make_parents(index, path)
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            self._new_name(index, path, renaming)
            return False, None
        kind = found[0]
        if kind is Kind.FILE and incoming is not Kind.DIR:
            if not overwrite:
                raise Refused(
                    "exists",
                    f'{render(path)!r} already exists; set "overwrite": true to replace it '
                    "(the old file is kept aside and restored by rollback)",
                )
            node = self.view.node(path)
            if isinstance(node, Real):
                real = self.view.real_stat(node.real)
                if real is not None and real.nlink > 1:
                    self.warn(
                        index,
                        "hard-link",
                        f"{render(path)!r} has {real.nlink} hard links; only this name changes",
                    )
            self.bytes_removed += found[1]
            sha = self.view.sha(path)
            self.lost[index] = [losses.Lost(path, found[1], sha)]
            return True, sha
        raise Refused(
            "exists",
            f"{render(path)!r} already exists as a {kind}; only files can be overwritten "
            "(delete it first if it must go)",
        )

    def _source(self, path: RelPath) -> Kind:
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            raise Refused("missing-source", f"{render(path)!r} does not exist")
        if found[0] is Kind.SPECIAL:
            raise Refused(
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
                    raise Refused(
                        "protected",
                        f"{render(place)!r} inside is protected by policy ({pattern!r})",
                    )
            if for_copy and kind in (Kind.SYMLINK, Kind.SPECIAL):
                raise Refused(
                    "copy-link",
                    f"{render(inner)!r} is a {kind}; folders holding links or special files "
                    "cannot be copied (move them instead)",
                )
            if kind is Kind.FILE:
                files += 1
                total += size
        return files, total

    def _files_in(self, path: RelPath, files: int) -> list[losses.Lost] | None:
        """The files below folder ``path`` with their digests (known: its tree digest was just
        taken), or None if there are more than :data:`airlock.losses.MAX_FILES`."""
        if files > losses.MAX_FILES:
            return None
        return [
            losses.Lost(path + rel, size, self.view.sha(path + rel))
            for rel, kind, size in self.view.walk(path)
            if kind is Kind.FILE
        ]

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
        if op.parents:
            self._make_parents(index, path)
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is not None:
            if found[0] is Kind.DIR:
                if not op.parents:  # `mkdir -p` asks for the folder to be there: it is
                    self.warn(index, "exists", f"folder {render(path)!r} already exists; skipped")
                return
            raise Refused("exists", f"{render(path)!r} already exists as a {found[0]}")
        self._new_name(index, path)
        self.view.set(path, VDir())
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
                raise Refused(
                    "content-missing",
                    f"the stored body {blob.sha256} ({blob.size} bytes) for {render(path)!r} "
                    "is not in Airlock's content store; capture the run again",
                )
            sha, size = blob
        replaces, before = self._destination(
            index, path, op.overwrite, Kind.FILE, parents=op.parents
        )
        self.view.set(path, VFile(size, sha))
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
            raise Refused(
                "copy-link", f"{render(source)!r} is a symlink; a symlink can be moved, not copied"
            )
        if paths.is_within(destination, source):
            raise Refused("into-itself", "a folder cannot be copied into itself")
        replaces, before = self._destination(
            index, destination, op.overwrite, kind, parents=op.parents
        )
        files: int | None = None
        if kind is Kind.DIR:
            files, size = self._check_tree(source, for_copy=True, landing=destination)
            digest = self.view.tree_digest(source)
            self.view.set(destination, VDir())
            for rel, inner_kind, _size in self.view.walk(source):
                self.view.set(
                    destination + rel,
                    VDir(placed=False)
                    if inner_kind is Kind.DIR
                    else VFile(_size, self.view.sha(source + rel), placed=False),
                )
        else:
            found = self.view.entry(source)
            assert found is not None
            size = found[1]
            digest = self.view.sha(source)
            self.view.set(destination, VFile(size, digest))
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
            raise Refused("same-path", "source and destination are the same")
        if paths.is_within(destination, source):
            raise Refused("into-itself", "a folder cannot be moved into itself")
        files = None
        if kind is Kind.DIR:
            files, _size = self._check_tree(source, for_copy=False, landing=destination)
        replaces, before = self._destination(
            index, destination, op.overwrite, kind, renaming=source, parents=op.parents
        )
        found = self.view.entry(source)
        assert found is not None
        size = found[1] if kind is Kind.FILE else 0
        node = self.view.node(source)
        # Nothing is read: a file the plan wrote has its digest; anything else, its identity.
        identity = self.view.identity(source)
        digest = node.sha if isinstance(node, VFile) else None
        assert not isinstance(node, Absent)
        self.view.set(destination, dataclasses.replace(node, placed=True))
        if kind is Kind.DIR:
            self.view.move_children(source, destination)
        self.view.set(source, ABSENT)
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
                identity=identity,
            )
        )

    def _delete(self, index: int, op: Delete) -> None:
        path = self._path(op.path)
        self._parent_must_be_folder(path)
        found = self.view.entry(path)
        if found is None:
            raise Refused("missing-source", f"{render(path)!r} does not exist")
        kind, size = found
        if kind is Kind.SPECIAL:
            raise Refused(
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
            self.lost[index] = self._files_in(path, files)
            self.warn(
                index,
                "delete-folder",
                f"deletes folder {render(path)!r} with {files} file(s), {size} bytes",
            )
        elif kind is Kind.FILE:
            digest = self.view.sha(path)
            self.lost[index] = [losses.Lost(path, size, digest)]
        else:
            digest = None
        self.view.set(path, ABSENT)
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
