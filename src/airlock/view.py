"""The view of the tree a plan is simulated on: the real tree, read lazily through a
:class:`~airlock.storage.Storage`, under the overrides of the operations simulated so far.

Every real path the view looks at is remembered with what was found there (its stat, listing,
SHA-256): the simulation's report records them as the plan's preconditions. Reads nothing it is
not asked for, and writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from airlock import paths
from airlock.digests import entry_identity, tree_digest, tree_identity
from airlock.errors import UnsafePathError
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Kind, Storage

# What a view path holds: nothing, a file or folder the plan makes, or a real entry.


@dataclass(frozen=True, slots=True)
class Absent:
    """Nothing is here (deleted, or moved away, by an earlier operation)."""


@dataclass(frozen=True, slots=True)
class VFile:
    """A file the plan writes or copies: its size and SHA-256 are known without reading."""

    size: int
    sha: str
    placed: bool = True
    """Put here by a change of its own (False: inside a folder a copy made)."""


@dataclass(frozen=True, slots=True)
class VDir:
    """A folder the plan makes (a mkdir, or a folder copy)."""

    placed: bool = True


@dataclass(frozen=True, slots=True)
class Real:
    """The entry at this view path is the real entry at ``real`` (moved, or untouched)."""

    real: RelPath
    placed: bool = False
    """Moved here by a change (False: untouched, where it is, or inside a folder moved)."""


Node = Absent | VFile | VDir | Real
ABSENT = Absent()


class Refused(Exception):
    """An operation cannot be simulated: ``code`` and ``message`` become its error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class View:
    """The tree as the operations simulated so far leave it (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.over: dict[RelPath, Node] = {}
        self.below: dict[RelPath, set[str]] = {}
        """An index of ``over`` as a tree: for a path, the names of its children that are
        overridden or lead to an override. A folder's overrides are found by walking it, so a
        folder move or delete costs what the folder holds, not every override of the plan."""
        self.nodes: dict[RelPath, Node] = {}
        """What :meth:`node` found since ``over`` last changed (one operation looks at the same
        few paths several times)."""
        self.kid_folds: dict[RelPath, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.real_stats: dict[RelPath, Entry | None] = {}
        self.real_folds: dict[RelPath, dict[str, set[str]]] = {}
        self.real_hashes: dict[RelPath, str] = {}
        self.real_listings: dict[RelPath, list[str]] = {}
        """Every real folder walked (to delete, move or copy it), with its names as seen."""
        self.looked_up: dict[RelPath, Entry | None] = {}
        """Entries read ahead, folder by folder (:meth:`look_up`): not yet seen, so not yet
        preconditions, until :meth:`real_stat` is asked for them."""

    # reading the real tree, recording what was seen

    def look_up(self, paths_ahead: Iterable[RelPath]) -> None:
        """Read the entries at ``paths_ahead`` now, one lookup per folder (a plan of 10,000 moves
        names 20,000 paths in a few dozen folders); :meth:`real_stat` then finds them here. A
        folder that cannot be looked up safely is left to :meth:`real_stat`, which says why."""
        by_folder: dict[RelPath, list[str]] = defaultdict(list)
        for path in paths_ahead:
            if path and path not in self.looked_up:
                by_folder[path[:-1]].append(path[-1])
        for folder, names in by_folder.items():
            try:
                found = self.storage.stat_names(folder, names)
            except UnsafePathError:
                continue
            for name, entry in found.items():
                self.looked_up[(*folder, name)] = entry

    def real_stat(self, real: RelPath) -> Entry | None:
        if real not in self.real_stats:
            if real in self.looked_up:
                self.real_stats[real] = self.looked_up.pop(real)
                return self.real_stats[real]
            try:
                self.real_stats[real] = self.storage.stat(real)
            except UnsafePathError as exc:
                raise Refused("symlink-in-path", exc.message) from None
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

    def node(self, path: RelPath) -> Node:
        known = self.nodes.get(path)
        if known is None:
            known = self.nodes[path] = self._node(path)
        return known

    def _node(self, path: RelPath) -> Node:
        for depth in range(len(path), 0, -1):
            found = self.over.get(path[:depth])
            if found is not None:
                rest = path[depth:]
                if not rest or isinstance(found, Absent):
                    return found
                if isinstance(found, Real):
                    return Real(found.real + rest)
                return ABSENT  # below a virtual file or folder: all its children are overrides
        return Real(path)

    def entry(self, path: RelPath) -> tuple[Kind, int] | None:
        node = self.node(path)
        if isinstance(node, Absent):
            return None
        if isinstance(node, VFile):
            return Kind.FILE, node.size
        if isinstance(node, VDir):
            return Kind.DIR, 0
        real = self.real_stat(node.real)
        return None if real is None else (real.kind, real.size)

    def set(self, path: RelPath, node: Node) -> None:
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
        if isinstance(node, Real):
            names.update(self.real_listdir(node.real))
        for fold_names in self.kid_folds.get(path, {}).values():
            names.update(fold_names)
        return sorted(name for name in names if self.entry((*path, name)) is not None)

    def siblings_folding_to(self, path: RelPath) -> list[str]:
        parent, name = path[:-1], path[-1]
        key = paths.fold(name)
        candidates = set(self.kid_folds.get(parent, {}).get(key, ()))
        node = self.node(parent)
        if isinstance(node, Real):
            candidates |= self.real_fold_index(node.real).get(key, set())
        if not candidates:
            return []
        return sorted(c for c in candidates if c != name and self.entry((*parent, c)) is not None)

    def sha(self, path: RelPath) -> str:
        node = self.node(path)
        if isinstance(node, VFile):
            return node.sha
        assert isinstance(node, Real)
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

    def identity(self, path: RelPath) -> str | None:
        """What identifies the entry at ``path`` for a move (see :func:`entry_identity`), from
        stats and known digests only; None for a file the plan wrote or copied."""
        node = self.node(path)
        if isinstance(node, VFile):
            return None
        if isinstance(node, VDir):
            return tree_identity(None, self._unplaced(path, ()))
        assert isinstance(node, Real)
        entry = self.real_stat(node.real)
        assert entry is not None
        if entry.kind is not Kind.DIR:
            return entry_identity(entry)
        return tree_identity(entry.ino, self._unplaced(path, ()))

    def _unplaced(self, top: RelPath, rel: RelPath) -> Iterator[tuple[str, list[object]]]:
        """Below folder ``top``: every entry no change placed, parents first (what a change
        placed, and all below it, is checked on its own)."""
        for name in self.listdir(top + rel):
            inner = (*rel, name)
            node = self.node(top + inner)
            if isinstance(node, Absent) or node.placed:
                continue
            if isinstance(node, Real):
                entry = self.real_stat(node.real)
                assert entry is not None
                yield render(inner), entry.fingerprint(lasting=True)
                is_dir = entry.kind is Kind.DIR
            elif isinstance(node, VFile):
                yield render(inner), [str(Kind.FILE), node.sha]
                is_dir = False
            else:
                yield render(inner), [str(Kind.DIR)]
                is_dir = True
            if is_dir:
                yield from self._unplaced(top, inner)
