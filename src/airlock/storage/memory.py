"""An in-memory workspace: the storage backend the core's unit tests use instead of mocks.

It keeps the same contract as the local backend (see :mod:`airlock.storage.base`), including
symlinks as entries that are never followed, and passes the same conformance suite.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from airlock.errors import UnsafePathError, storage_error
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Kind, Storage

_clock = itertools.count(1)


@dataclass
class _Node:
    kind: Kind
    data: bytes = b""
    target: str = ""
    children: dict[str, _Node] = field(default_factory=dict)
    ino: int = field(default_factory=lambda: next(_clock))
    mtime: int = field(default_factory=lambda: next(_clock))
    ctime: int = field(default_factory=lambda: next(_clock))

    def entry(self) -> Entry:
        size = len(self.data) if self.kind is Kind.FILE else len(self.target)
        return Entry(self.kind, size, self.mtime, self.ctime, self.ino, 1)

    def touch(self) -> None:
        self.mtime = self.ctime = next(_clock)


class MemoryStorage(Storage):
    def __init__(self) -> None:
        self.root = _Node(Kind.DIR)

    # Test helpers (not part of the interface): plant entries the engine would never create.
    def add_symlink(self, path: RelPath, target: str) -> None:
        self._dir(path[:-1]).children[path[-1]] = _Node(Kind.SYMLINK, target=target)

    def add_special(self, path: RelPath) -> None:
        self._dir(path[:-1]).children[path[-1]] = _Node(Kind.SPECIAL)

    def _dir(self, path: RelPath) -> _Node:
        node = self.root
        for depth, name in enumerate(path):
            child = node.children.get(name)
            if child is None:
                raise FileNotFoundError(errno.ENOENT, "no such folder", render(path[: depth + 1]))
            if child.kind is Kind.SYMLINK:
                raise UnsafePathError(
                    f"{render(path)!r} passes through a symbolic link",
                    hint="symlinks in the workspace are never followed; name the real folder",
                )
            if child.kind is not Kind.DIR:
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", render(path[: depth + 1]))
            node = child
        return node

    def _get(self, path: RelPath) -> _Node:
        if not path:
            return self.root
        node = self._dir(path[:-1]).children.get(path[-1])
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such entry", render(path))
        return node

    def stat(self, path: RelPath) -> Entry | None:
        try:
            return self._get(path).entry()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def listdir(self, path: RelPath) -> list[str]:
        return list(self._dir(path).children)  # a symlink is refused, as a parent would be

    def read(self, path: RelPath) -> Iterator[bytes]:
        node = self._get(path)
        if node.kind is not Kind.FILE:
            raise UnsafePathError(
                f"{render(path)!r} is not a regular file",
                hint="only regular files can be read or copied; FIFOs and devices are refused",
            )
        yield node.data

    @staticmethod
    def _not_root(path: RelPath) -> None:
        if not path:
            raise UnsafePathError("the workspace root itself cannot be changed")

    def _new(self, path: RelPath, node: _Node) -> None:
        self._not_root(path)
        if len(path[-1].encode("utf-8", "surrogateescape")) > self.name_max():
            too_long = OSError(errno.ENAMETOOLONG, "name too long")
            raise storage_error(too_long, "create", render(path))
        parent = self._dir(path[:-1])
        if path[-1] in parent.children:
            raise FileExistsError(errno.EEXIST, "already exists", render(path))
        parent.children[path[-1]] = node
        parent.touch()

    def create(self, path: RelPath, chunks: Iterable[bytes]) -> None:
        node = _Node(Kind.FILE)
        self._new(path, node)
        node.data = b"".join(chunks)

    def mkdir(self, path: RelPath) -> None:
        self._new(path, _Node(Kind.DIR))

    def rmdir(self, path: RelPath) -> None:
        self._not_root(path)
        node = self._get(path)
        if node.kind is not Kind.DIR:
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", render(path))
        if node.children:
            raise OSError(errno.ENOTEMPTY, "folder not empty", render(path))
        parent = self._dir(path[:-1])
        del parent.children[path[-1]]
        parent.touch()

    def unlink(self, path: RelPath) -> None:
        self._not_root(path)
        node = self._get(path)
        if node.kind is Kind.DIR:
            raise IsADirectoryError(errno.EISDIR, "is a folder", render(path))
        parent = self._dir(path[:-1])
        del parent.children[path[-1]]
        parent.touch()

    def rename(self, source: RelPath, destination: RelPath) -> None:
        self._not_root(source)
        node = self._get(source)
        if len(destination) > len(source) and destination[: len(source)] == source:
            into_itself = OSError(errno.EINVAL, "cannot move a folder into itself")
            raise storage_error(into_itself, f"move {render(source)!r} to", render(destination))
        self._new(destination, node)
        src_parent = self._dir(source[:-1])
        del src_parent.children[source[-1]]
        src_parent.touch()
        node.ctime = next(_clock)

    def sync(self) -> None:
        return None
