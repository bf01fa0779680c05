"""What a plan would lose: for each file it deletes or overwrites, whether identical bytes stay
elsewhere in the scope after the plan, found by content hash.

The simulation (:mod:`airlock.simulate`) hands over, for each operation that deletes or
overwrites, the files it removes with their size and SHA-256 (already known: the report records
them). This module lists the scope as the plan leaves it, hashes only the files whose size is
one of theirs, and fills each :class:`~airlock.validation.Change`'s ``copies``; a file with no
copy left is warned of ("only-copy"), and a plan that calls what it deletes a duplicate when it
is not is warned of too ("claimed-duplicate").

Pure logic over the view: nothing it reads becomes a precondition of the plan (a copy elsewhere
in the scope is evidence for the reviewer, not something apply depends on), and a plan that
deletes and overwrites nothing costs nothing here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from airlock.errors import StorageError, UnsafePathError
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Kind
from airlock.validation import Change, Issue
from airlock.view import Absent, Real, VDir, VFile, View

MAX_FILES = 10_000
"""The most files looked at, in the scope after the plan (and in one folder deleted); past it,
copies are not looked for (``copies`` stays None, and a warning says so)."""

MAX_COPIES = 10
"""The most copies named for one change."""

_DUPLICATE = re.compile(r"\b(?:duplicat(?:e|es|ed)|dupes?|dups?|copy\s+of)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Lost:
    """A file an operation removes (deletes, or replaces): where it was, its size and digest."""

    path: RelPath
    size: int
    sha256: str


Losses = Mapping[int, list[Lost] | None]
"""Operation index -> the files it removes (None: a folder too large to look through)."""


def claims_duplicate(description: str) -> bool:
    """Whether a plan's description calls what it removes a duplicate (or a copy)."""
    return _DUPLICATE.search(description) is not None


def check(
    view: View, scope: RelPath, changes: list[Change], losses: Losses, description: str = ""
) -> list[Issue]:
    """Fill ``copies`` of each change that deletes or overwrites (``losses``, by operation
    index; ``view``: the tree after the plan) and return the warnings to add."""
    if not losses:
        return []
    by_op = {
        change.op: change
        for change in changes
        if change.action in ("delete", "overwrite") or change.replaces
    }
    finder = None if any(lost is None for lost in losses.values()) else _Copies(view, scope)
    if finder is None or finder.too_many:
        return [
            Issue(
                severity="warning",
                code="copies-not-checked",
                message=f"Airlock did not look for copies of what this plan deletes or "
                f"overwrites: there are more than {MAX_FILES} files to look through",
            )
        ]
    warnings: list[Issue] = []
    claimed: list[str] = []
    for op, lost in sorted(losses.items()):
        change = by_op.get(op)
        if change is None or lost is None:
            continue
        alone: list[str] = []
        copies: list[str] = []
        for item in lost:
            found = finder.copies_of(item)
            if found:
                copies.extend(c for c in found if c not in copies)
            else:
                alone.append(render(item.path))
        change.copies = [] if alone else copies[:MAX_COPIES]
        if not alone:
            continue
        if change.action == "delete":
            claimed.extend(alone)
        warnings.append(
            Issue(severity="warning", code="only-copy", message=_alone(change, alone), op=op)
        )
    if claimed and claims_duplicate(description):
        more = f" (and {len(claimed) - 1} more)" if len(claimed) > 1 else ""
        warnings.append(
            Issue(
                severity="warning",
                code="claimed-duplicate",
                message="claimed duplicate, no identical copy found: the plan (its description "
                f"or a delete's reason) calls what it deletes a duplicate, but {claimed[0]!r}{more} has no identical "
                "copy left in the case",
            )
        )
    return warnings


def _alone(change: Change, alone: list[str]) -> str:
    if change.action == "delete" and change.kind == "dir":
        if len(alone) == 1:
            return (
                f"{alone[0]!r} (in folder {change.path!r}, which this plan deletes) is the only "
                "copy of these bytes in the case"
            )
        listed = ", ".join(repr(path) for path in alone[:5])
        more = f" and {len(alone) - 5} more" if len(alone) > 5 else ""
        return (
            f"{len(alone)} files in folder {change.path!r}, which this plan deletes, are the only "
            f"copies of their bytes in the case: {listed}{more}"
        )
    if change.action == "delete":
        return f"{alone[0]!r} is the only copy of these bytes in the case"
    return (
        f"{alone[0]!r} is the only copy of these bytes in the case, and this plan replaces it "
        "(the old file is kept aside, not left in the case)"
    )


@dataclass
class _Copies:
    """The files of the scope after the plan, by size, hashed when asked (each at most once)."""

    view: View
    scope: RelPath
    by_size: dict[int, list[RelPath]] = field(default_factory=lambda: defaultdict(list))
    digests: dict[RelPath, str | None] = field(default_factory=dict)
    too_many: bool = False

    def __post_init__(self) -> None:
        self.too_many = not self._list()

    def copies_of(self, lost: Lost) -> list[str]:
        found: list[str] = []
        for path in self.by_size.get(lost.size, ()):
            if self._sha(path) == lost.sha256:
                found.append(render(path))
                if len(found) == MAX_COPIES:
                    break
        return found

    def _sha(self, path: RelPath) -> str | None:
        if path not in self.digests:
            try:
                self.digests[path] = self.view.sha(path)
            except (OSError, StorageError, UnsafePathError):
                self.digests[path] = None  # unreadable now: not counted as a copy
        return self.digests[path]

    def _list(self) -> bool:
        """Index every file of the scope after the plan by size; False past :data:`MAX_FILES`.

        Reads the real tree directly, not through the view's recording reads: what is seen here
        is not a precondition. A folder that cannot be listed is skipped (its files are then not
        counted as copies: a copy is never claimed that was not seen)."""
        view, seen = self.view, 0
        pending = [self.scope]
        while pending:
            folder = pending.pop()
            names: set[str] = set()
            for twins in view.kid_folds.get(folder, {}).values():
                names.update(twins)
            node = view.node(folder)
            if isinstance(node, Real):
                listing = view.real_listings.get(node.real)
                try:
                    names.update(
                        listing if listing is not None else view.storage.listdir(node.real)
                    )
                except (OSError, StorageError, UnsafePathError):
                    continue
            real_children: dict[RelPath, list[str]] = defaultdict(list)
            children: list[tuple[RelPath, RelPath]] = []
            for name in names:
                child = (*folder, name)
                inner = view.node(child)
                if isinstance(inner, Absent):
                    continue
                if isinstance(inner, VFile):
                    self.by_size[inner.size].append(child)
                    seen += 1
                elif isinstance(inner, VDir):
                    pending.append(child)
                else:
                    children.append((child, inner.real))
                    if inner.real not in view.real_stats:
                        real_children[inner.real[:-1]].append(inner.real[-1])
            stats = self._stats(real_children)
            for child, real in children:
                entry = view.real_stats[real] if real in view.real_stats else stats.get(real)
                if entry is None:
                    continue
                if entry.kind is Kind.DIR:
                    pending.append(child)
                elif entry.kind is Kind.FILE:
                    self.by_size[entry.size].append(child)
                    seen += 1
            if seen > MAX_FILES:
                return False
        for found in self.by_size.values():
            found.sort()
        return True

    def _stats(self, by_folder: dict[RelPath, list[str]]) -> dict[RelPath, Entry | None]:
        out: dict[RelPath, Entry | None] = {}
        for folder, names in by_folder.items():
            try:
                found = self.view.storage.stat_names(folder, names)
            except (OSError, StorageError, UnsafePathError):
                continue
            for name, entry in found.items():
                out[(*folder, name)] = entry
        return out
