"""Read what a run changed, for capture: :class:`LocalSides`.

The walks that find the changes (an overlay's upper layer, or a copy of the scope beside the
original) are in :mod:`airlock.sandbox.layers`; :class:`LocalSides` answers capture's questions
about the real scope (through the workspace's storage, which never follows a link) and the run's
result. No path here is followed through a symbolic link.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from airlock.capture import Body, Kind
from airlock.content import CHUNK, ContentStore
from airlock.errors import SandboxUnavailableError, UnsafePathError
from airlock.paths import STATE_DIR, RelPath, render
from airlock.storage.base import Kind as StorageKind
from airlock.storage.base import Storage
from airlock.storage.local import LocalStorage


class LocalSides:
    """capture's view of a real scope (via storage) and of a run's result folder on the host.

    The run's files are opened one name at a time from ``result`` (``openat``, ``O_NOFOLLOW``),
    so no link is followed and no path grows past ``PATH_MAX``; they are read in chunks and
    staged into ``content`` (the workspace's content store, by default the one beside a local
    storage's root), never held whole in memory.
    """

    def __init__(
        self,
        storage: Storage,
        scope: RelPath,
        result: Path,
        content: ContentStore | None = None,
    ) -> None:
        self.storage = storage
        self.scope = scope
        self.result = result
        if content is None and isinstance(storage, LocalStorage):
            content = ContentStore(storage.root / STATE_DIR / "content")
        self.content = content

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

    def upper_size(self, path: RelPath) -> int:
        with self._parent(path) as parent:
            return os.stat(path[-1], dir_fd=parent, follow_symlinks=False).st_size

    def upper_digest(self, path: RelPath) -> str:
        digest = hashlib.sha256()
        with self._open(path) as fd:
            for chunk in _chunks(fd):
                digest.update(chunk)
        return digest.hexdigest()

    def upper_body(self, path: RelPath, inline_max: int) -> Body:
        with self._open(path) as fd:
            head = b""
            if os.fstat(fd).st_size <= inline_max:
                head = _read_upto(fd, inline_max + 1)
                if len(head) <= inline_max:
                    return Body(hashlib.sha256(head).hexdigest(), len(head), head)
            if self.content is None:
                raise SandboxUnavailableError(
                    f"{render(path)!r} is too big to go inline and there is no content store",
                    hint="capture with the workspace's content store (Workspace.content)",
                )
            blob = self.content.put(itertools.chain((head,), _chunks(fd)))
            return Body(blob.sha256, blob.size)

    @contextlib.contextmanager
    def _parent(self, path: RelPath) -> Iterator[int]:
        """A descriptor on the folder holding ``path`` in the result, reached without links."""
        fd = os.open(self.result, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in path[:-1]:
                inner = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _open(self, path: RelPath) -> Iterator[int]:
        """A descriptor on the result's regular file ``path`` (a link, FIFO or device is refused:
        O_NONBLOCK so a FIFO swapped in cannot hang the open)."""
        with self._parent(path) as parent:
            fd = os.open(
                path[-1],
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                dir_fd=parent,
            )
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePathError(
                    f"{render(path)!r} is no longer a regular file", hint="run it again"
                )
            os.set_blocking(fd, True)
            yield fd
        finally:
            os.close(fd)


def _chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, CHUNK):
        yield chunk


def _read_upto(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    while limit > 0 and (chunk := os.read(fd, min(limit, CHUNK))):
        parts.append(chunk)
        limit -= len(chunk)
    return b"".join(parts)
