"""The content store: file bodies kept as files under Airlock's state, named by their SHA-256.

A plan's ``write`` may name a stored body (``{"sha256": ..., "size": ...}``) instead of carrying
its bytes inline, so a big file never passes whole through memory and never lands in the state
database. The store is one folder (``.airlock/content``) of immutable blobs::

    content/<sha256[:2]>/<sha256>

What the store guarantees:

* :meth:`ContentStore.put` streams bytes into a temporary file in the store's folder while hashing
  them, fsyncs it, and renames it into place under its digest (then fsyncs the folder). A blob is
  whole or absent at every instant, ``kill -9`` included; a crash leaves at most a ``.tmp-*``
  file behind. Memory use is one chunk, whatever the size. Putting the same bytes again returns
  the same :class:`Blob` and leaves one copy (repairing a damaged one).
* A blob never changes once in place. :meth:`ContentStore.read` yields its bytes in chunks and,
  after the last one, raises :class:`~airlock.errors.IntegrityError` if they no longer hash to
  its name (a damaged disk, a hand edit), so a consumer such as apply can undo what it wrote.
* A name is checked before any path is built from it: anything but 64 lowercase hex digits is
  refused with :class:`~airlock.errors.InputError`.
* Blobs are removed only by :meth:`ContentStore.remove`, which ``airlock gc`` calls for blobs no
  plan names (see :mod:`airlock.housekeeping`); the store itself does not know which plans
  still need them.

Who may *refer* to a blob is not the store's business: :mod:`airlock.bodies` accepts a stored
body only from the principal that put it there, since digests of other cases' files appear in
the audit log.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from airlock.errors import InputError, IntegrityError, NotFoundError, storage_error

CHUNK = 1 << 20
"""Bytes per read and per yielded chunk."""

SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)


class Blob(NamedTuple):
    """A stored body: its SHA-256 (lowercase hex) and its size in bytes."""

    sha256: str
    size: int


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits, else InputError."""
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InputError(
            f"{sha256!r} is not a SHA-256 digest",
            hint="give 64 lowercase hexadecimal digits",
        )
    return sha256


class ContentStore:
    """Immutable blobs under ``root``, named by their SHA-256. See the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it is there)."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def size(self, sha256: str) -> int | None:
        """The size of the blob named ``sha256``, or None if the store does not hold it."""
        try:
            return self.path(sha256).lstat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(exc, "look up stored content", sha256) from exc

    def put(self, chunks: Iterable[bytes]) -> Blob:
        """Store the bytes of ``chunks`` (consumed once, one at a time) and return their Blob."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "create the content store", str(self.root)) from exc
        tmp = self.root / f".tmp-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            blob = Blob(digest.hexdigest(), size)
            target = self.path(blob.sha256)
            # Always into place, even over the same name: the same bytes again change nothing a
            # reader sees, and a damaged copy is repaired.
            target.parent.mkdir(mode=0o700, exist_ok=True)
            tmp.replace(target)
            fsync_dir(target.parent)
            fsync_dir(self.root)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise storage_error(exc, "store content in", str(self.root)) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return blob

    def read(self, sha256: str) -> Iterator[bytes]:
        """The bytes of blob ``sha256`` in chunks; IntegrityError after the last one if they do
        not hash to ``sha256``. NotFoundError (raised on first use) if the store lacks it."""
        fd = self._open(sha256)
        digest = hashlib.sha256()
        try:
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
                yield chunk
        finally:
            os.close(fd)
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"stored content {sha256} is damaged: its bytes no longer match its digest",
                hint=f"restore {self.path(sha256)} from a backup, or capture the run again",
            )

    def head(self, sha256: str, limit: int) -> bytes:
        """At most the first ``limit`` bytes of blob ``sha256`` (for previews; not verified)."""
        fd = self._open(sha256)
        try:
            parts: list[bytes] = []
            left = limit
            while left > 0 and (chunk := os.read(fd, min(left, CHUNK))):
                parts.append(chunk)
                left -= len(chunk)
            return b"".join(parts)
        finally:
            os.close(fd)

    def blobs(self) -> Iterator[tuple[str, float]]:
        """Every blob held: (its digest, when it was stored, as a POSIX time)."""
        try:
            folders = sorted(self.root.iterdir())
        except FileNotFoundError:
            return
        for folder in folders:
            if len(folder.name) != 2 or not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if _SHA256.match(entry.name):
                    yield entry.name, entry.lstat().st_mtime

    def remove(self, sha256: str) -> None:
        """Remove blob ``sha256`` (nothing if it is not held)."""
        path = self.path(sha256)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise storage_error(exc, "remove stored content", str(path)) from exc

    def _open(self, sha256: str) -> int:
        path = self.path(sha256)
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(
                f"stored content {sha256} is not in Airlock's content store",
                hint="capture the run again; its stored file bodies are gone",
            ) from None
        except OSError as exc:
            raise storage_error(exc, "read stored content", str(path)) from exc


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename into it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
