"""The storage interface: the few primitives the engine builds everything else on.

Paths are :data:`airlock.paths.RelPath` tuples relative to the workspace root, already checked by
:func:`airlock.paths.parse`. A backend MUST:

* never follow a symbolic link in any component of a path. A symlink is an entry that ``stat``
  reports as ``Kind.SYMLINK`` and that ``rename`` and ``unlink`` act on as an entry. A path whose
  *parent* components include a symlink raises :class:`~airlock.errors.UnsafePathError`;
* never replace an existing entry: ``create``, ``mkdir`` and ``rename`` fail with
  ``FileExistsError`` if the target exists (atomically where the filesystem allows);
* make ``rename`` atomic for one entry, file or folder, when source and target are on one
  filesystem;
* raise ``FileNotFoundError`` for a missing entry and :class:`~airlock.errors.StorageError` for
  any other failure of the underlying store (full, read-only, permission denied);
* make everything done so far durable when ``sync`` returns.

Every backend passes the one conformance suite in ``tests/storage_conformance.py``.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hashlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from airlock.errors import StorageError
from airlock.paths import RelPath, render


class Kind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SPECIAL = "special"  # FIFO, socket or device: never read, written, moved or copied


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    nlink: int
    version: int = 0
    """The store's own version of the entry where it keeps one (a GCS object's generation,
    new with every write and every move); 0 on a filesystem."""
    checksums: str = ""
    """Checksums the store already holds, without reading the bytes (GCS: md5 and crc32c)."""

    def fingerprint(self, *, lasting: bool = False) -> list[object]:
        """What must be unchanged for a validated plan to still hold (compared at apply).

        A folder is identified by its inode alone: its times change whenever any child does,
        and the children a plan depends on are recorded on their own. ``lasting``: only what a
        rename keeps (for the entries inside a moved folder, which a store without atomic
        folder renames writes anew under the new name).
        """
        if self.kind is Kind.DIR:
            return [str(self.kind), self.ino]
        found: list[object] = [str(self.kind), self.size, self.mtime_ns, self.ctime_ns, self.ino]
        if self.version and not lasting:
            found += [self.version, self.checksums]
        return found


def stored_identity(fingerprint: list[object] | None) -> dict[str, object] | None:
    """What the store itself identified an entry by, read back from its :meth:`Entry.fingerprint`:
    ``{"version": ..., "md5": ..., "crc32c": ...}`` for a GCS object (its generation and the
    checksums GCS holds); None where the store keeps no versions (a filesystem) or for a folder."""
    if fingerprint is None or len(fingerprint) != 7:
        return None
    version, checksums = fingerprint[5], fingerprint[6]
    found: dict[str, object] = {"version": version}
    for part in str(checksums).split():
        name, _, value = part.partition(":")
        found[name] = value
    return found


class Storage(ABC):
    """A workspace's files. See the module docstring for the contract."""

    atomic_rename = True
    """Whether ``rename`` moves a folder in one step. A store where it cannot (an object store)
    moves it object by object and must then undo a half-done move in :meth:`move_back`."""

    concurrent_renames = False
    """Whether :meth:`rename_many` runs its renames at once (a store where every call is a round
    trip); the journal then hands it runs of independent renames instead of one at a time."""

    @abstractmethod
    def stat(self, path: RelPath) -> Entry | None:
        """The entry at ``path`` without following it, or None if it or a parent is missing."""

    @abstractmethod
    def listdir(self, path: RelPath) -> list[str]:
        """The names in folder ``path``, in no particular order."""

    @abstractmethod
    def read(self, path: RelPath) -> Iterator[bytes]:
        """The bytes of regular file ``path``, in chunks. Refuses anything but a regular file."""

    @abstractmethod
    def create(self, path: RelPath, chunks: Iterable[bytes]) -> None:
        """Create regular file ``path`` (which must not exist) with the given bytes."""

    @abstractmethod
    def mkdir(self, path: RelPath) -> None:
        """Create folder ``path``; its parent must exist."""

    @abstractmethod
    def rmdir(self, path: RelPath) -> None:
        """Remove the empty folder ``path``."""

    @abstractmethod
    def rename(self, source: RelPath, destination: RelPath) -> None:
        """Move one entry; ``destination`` must not exist and its parent must."""

    @abstractmethod
    def unlink(self, path: RelPath) -> None:
        """Remove a file or symlink (never a folder)."""

    @abstractmethod
    def sync(self) -> None:
        """Make every change made so far durable."""

    def move_back(self, source: RelPath, destination: RelPath) -> None:
        """Undo ``rename(source, destination)`` if it happened (the journal's undo of a move;
        on a store without atomic renames, also from any half-done point)."""
        if self.stat(source) is None and self.stat(destination) is not None:
            self.rename(destination, source)

    def name_max(self) -> int:
        """The longest name, in bytes, this store accepts."""
        return 255

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (file descriptors)."""

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """A block of many operations by one thread (a writer holds the scope lock; a reader,
        such as validation, need not); backends may cache resolved folders within it (and must
        drop a folder that is renamed or removed, and re-check a cached one before reuse)."""
        yield

    # Built on the primitives, once, for every backend.

    def rename_many(self, moves: Sequence[tuple[RelPath, RelPath]]) -> None:
        """``rename`` each ``(source, destination)``: independent moves (no name of one is at,
        in or above a name of another). Every check is made before the first move, so an error
        for a missing source, a taken destination or a missing parent means none happened; after
        that, a failure may leave any of them done (:meth:`move_back` undoes each)."""
        for source, destination in moves:
            if self.stat(source) is None:
                raise FileNotFoundError(errno.ENOENT, "no such entry", render(source))
            if self.stat(destination) is not None:
                raise FileExistsError(errno.EEXIST, "already exists", render(destination))
            parent = self.stat(destination[:-1])
            if parent is None or parent.kind is not Kind.DIR:
                raise FileNotFoundError(errno.ENOENT, "no such folder", render(destination[:-1]))
        for n, (source, destination) in enumerate(moves):
            try:
                self.rename(source, destination)
            except (OSError, StorageError) as exc:
                if n == 0:
                    raise
                raise StorageError(
                    f"{len(moves) - n} of {len(moves)} moves were not made: {exc}",
                    hint="validate the plan again",
                ) from exc

    def stat_names(self, folder: RelPath, names: Iterable[str]) -> dict[str, Entry | None]:
        """``stat`` of each of ``names`` inside ``folder`` (a plan's checks stat thousands of
        entries in a few folders; a backend may look the folder up once for all of them)."""
        return {name: self.stat((*folder, name)) for name in names}

    def read_version(self, path: RelPath, seen: Entry) -> Iterator[bytes]:
        """The bytes of file ``path`` as ``seen`` (a :meth:`stat` of it) described them, or
        FileNotFoundError if it has changed since. A store that keeps versions reads exactly
        that version; this default reads the file if its fingerprint is still ``seen``'s."""
        now = self.stat(path)
        if now is None or now.fingerprint() != seen.fingerprint():
            raise FileNotFoundError(errno.ENOENT, "changed since it was seen", render(path))
        return self.read(path)

    def sha256(self, path: RelPath) -> str:
        digest = hashlib.sha256()
        for chunk in self.read(path):
            digest.update(chunk)
        return digest.hexdigest()

    def copy_file(self, source: RelPath, destination: RelPath) -> None:
        # Open (and check) the source before creating the destination, so that a refused or
        # missing source leaves no empty destination behind.
        chunks = self.read(source)
        try:
            first = next(chunks, b"")
            self.create(destination, itertools.chain((first,), chunks))
        finally:
            getattr(chunks, "close", lambda: None)()  # a generator: release its descriptor now

    def walk(self, path: RelPath) -> Iterator[tuple[RelPath, Entry]]:
        """Every entry below folder ``path`` (not ``path`` itself), parents before children."""
        for name in sorted(self.listdir(path)):
            child = (*path, name)
            entry = self.stat(child)
            if entry is None:
                continue
            yield child, entry
            if entry.kind is Kind.DIR:
                yield from self.walk(child)

    def remove_tree(self, path: RelPath) -> None:
        """Remove ``path`` and, if it is a folder, everything in it; symlinks are not followed."""
        entry = self.stat(path)
        if entry is None:
            return
        if entry.kind is Kind.DIR:
            for name in self.listdir(path):
                self.remove_tree((*path, name))
            self.rmdir(path)
        else:
            self.unlink(path)
