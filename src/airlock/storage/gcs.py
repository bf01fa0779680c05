"""A workspace in a Google Cloud Storage bucket (``gs://BUCKET[/prefix]``), spoken to through its
own JSON API with the ``google-cloud-storage`` client: nothing is mounted, nothing is downloaded
to move or copy.

How the bucket's flat names become the storage contract (see :mod:`airlock.storage.base`):

* A folder is a prefix. It exists if its placeholder object (``name/``, what ``mkdir`` writes and
  the console and gcsfuse write too) exists, or if any object's name starts with it; both
  layouts work. An empty folder needs its placeholder.
* A symbolic link is an object whose metadata holds ``gcsfuse_symlink_target`` (how gcsfuse
  writes one); it is an entry, never followed. GCS has no FIFOs or devices: an object whose
  metadata says ``airlock-kind: special`` stands for one (only tests plant it).
* Exactness comes from object generations, not timestamps. An entry's ``version`` is its
  generation and its ``checksums`` are the md5 and crc32c GCS computed, so a validated plan's
  preconditions change with any write. Every write carries a precondition: a new object is
  created with ``ifGenerationMatch=0`` (never replaces), and a rename, copy or delete acts on
  the generation last seen (``ifSourceGenerationMatch`` / ``ifGenerationMatch``), so another
  writer's change in between makes the step fail instead of being lost.
* What a move keeps: a moved object is a new object (rewritten server-side, then the source
  generation deleted). Its identity (``ino``, from the metadata ``airlock-ino``) and its
  modification time (``gcsfuse_mtime``, the key gcsfuse reads and writes) travel with it in its
  metadata, and its ``ctime_ns`` is its crc32c, so ``fingerprint(lasting=True)`` of a moved
  entry is the same as before.
* A rename is one step for the engine but many calls here: a folder's objects are moved one at
  a time (in parallel). The destination's placeholder, written first, records where it came
  from, so :meth:`GcsStorage.move_back` can finish an undo from any half-done state: each
  object is then at its source, at its destination, or (between the rewrite and the delete) at
  both with the same identity.
* Independent renames (a plan's file moves, and the renames that keep deleted files aside) are
  handed over together (:meth:`GcsStorage.rename_many`): every one is checked first, then the
  files move at once, each on its own as above.
* Listings are cached inside a ``batch`` (the scope lock is held); any stale entry in them is
  harmless for writes, since GCS refuses a write whose precondition no longer holds. After any
  failed call the batch forgets them all: the call may have acted before it failed, and the
  undo that follows must see what it did.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import os
import secrets
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from airlock.errors import InputError, StorageError, UnsafePathError
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Kind, Storage

SYMLINK_KEY = "gcsfuse_symlink_target"
MTIME_KEY = "gcsfuse_mtime"
INO_KEY = "airlock-ino"
KIND_KEY = "airlock-kind"
FROM_KEY = "airlock-moved-from"
CHUNK = 8 << 20
WORKERS = 16
"""Objects moved, copied or removed at once within one folder step."""

T = TypeVar("T")
R = TypeVar("R")

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
IMPLICIT_INO = 0
"""The identity of a folder that has no placeholder: nothing but its name and its objects stand
for it, and a move changes its name, so it has none of its own (its objects are its identity)."""


def parse_url(url: str) -> tuple[str, str]:
    """``gs://BUCKET[/prefix]`` as (bucket, prefix without slashes at either end)."""
    if not url.startswith("gs://"):
        raise InputError(
            f"{url!r} is not a gs:// address", hint="name the bucket as gs://BUCKET[/prefix]"
        )
    bucket, _, prefix = url[len("gs://") :].partition("/")
    if not bucket:
        raise InputError(f"{url!r} names no bucket", hint="name the bucket as gs://BUCKET[/prefix]")
    return bucket, prefix.strip("/")


def _rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def _parse_rfc3339(text: str) -> int | None:
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        seconds = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
        return int(seconds.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Obj:
    """What a listing or a lookup said of one object (one generation of it)."""

    name: str
    generation: int
    size: int
    metadata: dict[str, str]
    md5: str
    crc32c: str
    updated_ns: int

    @classmethod
    def of(cls, blob: Any) -> Obj:
        updated = blob.updated
        return cls(
            name=blob.name,
            generation=int(blob.generation),
            size=int(blob.size or 0),
            metadata=dict(blob.metadata or {}),
            md5=blob.md5_hash or "",
            crc32c=blob.crc32c or "",
            updated_ns=int(updated.timestamp() * 1e9) if updated else 0,
        )

    @property
    def kind(self) -> Kind:
        if SYMLINK_KEY in self.metadata:
            return Kind.SYMLINK
        if self.metadata.get(KIND_KEY) == "special":
            return Kind.SPECIAL
        return Kind.FILE

    @property
    def ino(self) -> int:
        try:
            return int(self.metadata[INO_KEY])
        except (KeyError, ValueError):
            return self.generation  # an object Airlock did not write: unique until it changes

    @property
    def mtime_ns(self) -> int:
        found = _parse_rfc3339(self.metadata.get(MTIME_KEY, ""))
        return found if found is not None else self.updated_ns

    def entry(self) -> Entry:
        kind = self.kind
        size = len(self.metadata[SYMLINK_KEY]) if kind is Kind.SYMLINK else self.size
        crc = int.from_bytes(base64.b64decode(self.crc32c), "big") if self.crc32c else 0
        return Entry(
            kind,
            size,
            self.mtime_ns,
            crc,
            self.ino,
            1,
            version=self.generation,
            checksums=f"md5:{self.md5} crc32c:{self.crc32c}",
        )

    def carried(self) -> dict[str, str]:
        """The metadata a move or copy gives the new object: identity and time kept."""
        return {**self.metadata, INO_KEY: str(self.ino), MTIME_KEY: _rfc3339(self.mtime_ns)}


@dataclass
class _Folder:
    """What is known of one folder inside a batch."""

    placeholder: Obj | None = None
    objects: dict[str, Obj | None] = field(default_factory=dict)
    """Looked-up names: the object named exactly so (None: none)."""
    prefixes: dict[str, bool] = field(default_factory=dict)
    """Looked-up names: whether a folder of that name has anything in it."""
    complete: bool = False
    """Every name inside is in ``objects`` / ``prefixes``."""


class _Batch(threading.local):
    def __init__(self) -> None:
        self.folders: dict[RelPath, _Folder] | None = None


class GcsStorage(Storage):
    """A workspace in a bucket. ``client`` is a ``google.cloud.storage.Client``."""

    atomic_rename = False
    concurrent_renames = True

    def __init__(self, url: str, *, client: Any = None) -> None:
        from google.api_core import exceptions as gexc

        self._gexc = gexc
        self.url = url
        bucket, prefix = parse_url(url)
        self.client = client if client is not None else make_client()
        self.bucket = self.client.bucket(bucket)
        self.prefix = f"{prefix}/" if prefix else ""
        self._batch = _Batch()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="airlock-gcs")
        try:
            exists = self.bucket.exists()
        except gexc.GoogleAPIError as exc:
            raise self._error(exc, "open the bucket", url) from exc
        if not exists:
            raise StorageError(
                f"the bucket of {url!r} does not exist or cannot be seen",
                hint="create the bucket, or check the account's permissions on it",
            )

    # --- names ------------------------------------------------------------------------------

    def key(self, path: RelPath) -> str:
        return self.prefix + "/".join(path)

    def _folder_key(self, path: RelPath) -> str:
        return self.prefix + "".join(f"{name}/" for name in path)

    # --- talking to GCS ---------------------------------------------------------------------

    def _stale(self, action: str, where: str) -> StorageError:
        """Another writer changed an object: what this batch had learnt of the bucket is out of
        date (the undo that follows, and its check, must look again)."""
        self._lost_track()
        return StorageError(
            f"could not {action} {where!r}: the object changed since Airlock looked at it "
            "(its generation no longer matches)",
            hint="another writer is changing the bucket; validate the plan again",
            errno=errno.ESTALE,
        )

    def _lost_track(self) -> None:
        if self._batch.folders is not None:
            self._batch.folders = {}

    def _error(self, exc: Exception, action: str, where: str) -> OSError | StorageError:
        """What a failed call means here. After any failure, what this batch had learnt of the
        bucket may be wrong (the call may have acted before it failed): the undo that follows
        must look again."""
        self._lost_track()
        gexc = self._gexc
        if isinstance(exc, gexc.NotFound):
            return FileNotFoundError(errno.ENOENT, "no such object", where)
        if isinstance(exc, gexc.PreconditionFailed):
            return self._stale(action, where)
        if isinstance(exc, gexc.Forbidden) and any(
            word in str(exc).lower() for word in ("hold", "retention")
        ):
            return StorageError(
                f"could not {action} {where!r}: GCS keeps it from change ({exc})",
                hint="the object is under a hold or a retention policy: release it (or leave it "
                "out of the plan), then validate the plan again",
            )
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
            return StorageError(
                f"could not {action} {where!r}: permission denied by GCS ({exc})",
                hint="give the account Airlock runs as the Storage Object Admin role on the bucket",
            )
        return StorageError(
            f"could not {action} {where!r}: {exc}", hint="check the bucket and the network, retry"
        )

    def _get(self, key: str) -> Obj | None:
        try:
            blob = self.bucket.get_blob(key)
        except self._gexc.GoogleAPIError as exc:
            raise self._error(exc, "look up", key) from exc
        return None if blob is None else Obj.of(blob)

    def _list(
        self, prefix: str, *, delimiter: str | None = "/", max_results: int | None = None
    ) -> tuple[list[Obj], set[str]]:
        try:
            pages = self.client.list_blobs(
                self.bucket, prefix=prefix, delimiter=delimiter, max_results=max_results
            )
            objects = [Obj.of(blob) for blob in pages]
            return objects, set(pages.prefixes)
        except self._gexc.GoogleAPIError as exc:
            raise self._error(exc, "list", prefix) from exc

    def _delete(self, obj: Obj) -> None:
        try:
            self.bucket.blob(obj.name).delete(if_generation_match=obj.generation)
        except self._gexc.NotFound:
            return  # already gone (a retried call that had succeeded)
        except self._gexc.GoogleAPIError as exc:
            raise self._error(exc, "remove", obj.name) from exc

    def _write(self, key: str, data: BinaryIO, size: int, metadata: dict[str, str]) -> Obj:
        blob = self.bucket.blob(key, chunk_size=None if size <= CHUNK else CHUNK)
        blob.metadata = metadata
        try:
            blob.upload_from_file(data, size=size, if_generation_match=0, rewind=True)
        except self._gexc.PreconditionFailed:
            self._lost_track()
            there = self._get(key)
            if there is not None and there.size == size and there.metadata == metadata:
                return there  # a retried call whose first attempt had succeeded (its answer lost)
            raise FileExistsError(errno.EEXIST, "already exists", key) from None
        except self._gexc.GoogleAPIError as exc:
            raise self._error(exc, "write", key) from exc
        return Obj.of(blob)

    def _rewrite(self, source: Obj, key: str, metadata: dict[str, str]) -> Obj:
        """Copy ``source`` (that generation) to new object ``key``, server-side."""
        destination = self.bucket.blob(key)
        destination.metadata = metadata
        origin = self.bucket.blob(source.name, generation=source.generation)
        try:
            token, _done, _total = destination.rewrite(
                origin, if_generation_match=0, if_source_generation_match=source.generation
            )
            while token is not None:
                token, _done, _total = destination.rewrite(
                    origin,
                    token=token,
                    if_generation_match=0,
                    if_source_generation_match=source.generation,
                )
        except self._gexc.PreconditionFailed:
            there = self._get(key)
            if there is not None and self._same(there, source, metadata):
                return there  # a retried call whose first attempt had succeeded
            if there is not None:
                raise FileExistsError(errno.EEXIST, "already exists", key) from None
            raise self._stale("move", source.name) from None
        except self._gexc.NotFound:
            raise FileNotFoundError(errno.ENOENT, "source object is gone", source.name) from None
        except self._gexc.GoogleAPIError as exc:
            raise self._error(exc, "copy", source.name) from exc
        return Obj.of(destination)

    @staticmethod
    def _same(copy: Obj, source: Obj, metadata: dict[str, str]) -> bool:
        return copy.crc32c == source.crc32c and copy.metadata.get(INO_KEY) == metadata.get(INO_KEY)

    # --- the batch's knowledge ------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if self._batch.folders is not None:
            yield
            return
        self._batch.folders = {}
        try:
            yield
        finally:
            self._batch.folders = None

    def _known(self) -> dict[RelPath, _Folder]:
        found = self._batch.folders
        return found if found is not None else {}

    def _info(self, folder: RelPath) -> _Folder:
        known = self._batch.folders
        if known is None:
            return _Folder()  # outside a batch nothing is kept
        return known.setdefault(folder, _Folder())

    def _forget(self, path: RelPath) -> None:
        known = self._batch.folders
        if not known:
            return
        size = len(path)
        for key in [key for key in known if key[:size] == path]:
            del known[key]
        parent = known.get(path[:-1]) if path else None
        if parent is not None:
            parent.complete = False
            parent.objects.pop(path[-1], None)
            parent.prefixes.pop(path[-1], None)

    def _learn(self, path: RelPath, obj: Obj | None) -> None:
        if self._batch.folders is None or not path:
            return
        info = self._info(path[:-1])
        info.objects[path[-1]] = obj

    def _list_folder(self, folder: RelPath) -> _Folder:
        info = self._info(folder)
        if info.complete:
            return info
        prefix = self._folder_key(folder)
        objects, prefixes = self._list(prefix)
        info.objects = {}
        info.prefixes = {}
        info.placeholder = None
        for obj in objects:
            name = obj.name[len(prefix) :]
            if name == "":
                info.placeholder = obj
            else:
                info.objects[name] = obj
        for sub in prefixes:
            info.prefixes[sub[len(prefix) :].rstrip("/")] = True
        info.complete = True
        return info

    def _object(self, path: RelPath) -> Obj | None:
        info = self._info(path[:-1])
        if path[-1] in info.objects:
            return info.objects[path[-1]]
        if info.complete:
            return None
        found = self._get(self.key(path))
        info.objects[path[-1]] = found
        return found

    def _has_inside(self, path: RelPath) -> bool:
        """Whether folder ``path`` exists as a prefix (a placeholder or anything under it)."""
        if not path:
            return True
        info = self._info(path[:-1])
        if path[-1] in info.prefixes:
            return info.prefixes[path[-1]]
        if info.complete:
            return False
        objects, prefixes = self._list(self._folder_key(path), max_results=1)
        found = bool(objects or prefixes)
        info.prefixes[path[-1]] = found
        return found

    def _parents_ok(self, path: RelPath) -> None:
        """Raise unless every folder above ``path`` is a real folder (not a link, not a file):
        UnsafePathError for a link, FileNotFoundError / NotADirectoryError otherwise."""
        for depth in range(1, len(path)):
            above = path[:depth]
            obj = self._object(above)
            if obj is not None:
                if obj.kind is Kind.SYMLINK:
                    raise UnsafePathError(
                        f"{render(path)!r} passes through a symbolic link",
                        hint="symlinks in the workspace are never followed; name the real folder",
                    )
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", render(above))
            if not self._has_inside(above):
                raise FileNotFoundError(errno.ENOENT, "no such folder", render(above))

    def _resolve(self, path: RelPath) -> tuple[Kind, Obj | None] | None:
        """What ``path`` is (its parents checked): a file-like object, a folder (with its
        placeholder, if any), or None."""
        self._parents_ok(path)
        if not path:
            return Kind.DIR, None
        obj = self._object(path)
        if obj is not None:
            return obj.kind, obj
        if self._has_inside(path):
            info = self._info(path)
            if info.placeholder is None and not info.complete:
                info.placeholder = self._get(self._folder_key(path))
            return Kind.DIR, info.placeholder
        return None

    def _folder_entry(self, path: RelPath, placeholder: Obj | None) -> Entry:
        if placeholder is None:
            return Entry(Kind.DIR, 0, 0, 0, IMPLICIT_INO, 1)
        return Entry(
            Kind.DIR, 0, placeholder.mtime_ns, 0, placeholder.ino, 1, version=placeholder.generation
        )

    @staticmethod
    def _not_root(path: RelPath) -> None:
        if not path:
            raise UnsafePathError("the workspace root itself cannot be changed")

    def _new_name(self, path: RelPath) -> None:
        """Check that ``path`` may be created: its parent a folder, nothing there yet."""
        self._not_root(path)
        if len(path[-1].encode("utf-8", "surrogateescape")) > self.name_max():
            raise StorageError(
                f"could not create {render(path)!r}: the name is too long",
                hint=f"use a name of at most {self.name_max()} bytes",
                errno=errno.ENAMETOOLONG,
            )
        if self._resolve(path) is not None:
            raise FileExistsError(errno.EEXIST, "already exists", render(path))

    # --- the primitives ---------------------------------------------------------------------

    def stat(self, path: RelPath) -> Entry | None:
        try:
            found = self._resolve(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if found is None:
            return None
        kind, obj = found
        if kind is Kind.DIR:
            return self._folder_entry(path, obj)
        assert obj is not None
        return obj.entry()

    def stat_names(self, folder: RelPath, names: Iterable[str]) -> dict[str, Entry | None]:
        names = list(names)
        if len(names) > 1 and self._batch.folders is not None:  # a page lists 1,000 names
            try:
                self._parents_ok((*folder, "."))
                if self.stat(folder) is not None:
                    self._list_folder(folder)
            except (FileNotFoundError, NotADirectoryError):
                return dict.fromkeys(names)
        return {name: self.stat((*folder, name)) for name in names}

    def listdir(self, path: RelPath) -> list[str]:
        found = self._resolve(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such folder", render(path))
        if found[0] is not Kind.DIR:
            if found[0] is Kind.SYMLINK:
                raise UnsafePathError(
                    f"{render(path)!r} is a symbolic link",
                    hint="symlinks in the workspace are never followed; name the real folder",
                )
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", render(path))
        info = self._list_folder(path) if self._batch.folders is not None else None
        if info is None:
            prefix = self._folder_key(path)
            objects, prefixes = self._list(prefix)
            names = {obj.name[len(prefix) :] for obj in objects} - {""}
            return sorted(names | {sub[len(prefix) :].rstrip("/") for sub in prefixes})
        return sorted(
            {name for name, obj in info.objects.items() if obj is not None}
            | {name for name, inside in info.prefixes.items() if inside}
        )

    def read(self, path: RelPath) -> Iterator[bytes]:
        found = self._resolve(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", render(path))
        kind, obj = found
        if kind is not Kind.FILE or obj is None:
            raise UnsafePathError(
                f"{render(path)!r} is not a regular file",
                hint="only regular files can be read or copied; folders and links are refused",
            )
        return self._chunks(obj)

    def read_version(self, path: RelPath, seen: Entry) -> Iterator[bytes]:
        if seen.kind is not Kind.FILE or not seen.version:
            return super().read_version(path, seen)
        # The generation ``seen`` names, and no other: once it is replaced or deleted, GCS
        # answers 404 (this backend never relies on the bucket's versioning).
        size = seen.size
        obj = Obj(self.key(path), seen.version, size, {}, "", "", seen.mtime_ns)
        return self._chunks(obj)

    def _chunks(self, obj: Obj) -> Iterator[bytes]:
        blob = self.bucket.blob(obj.name, generation=obj.generation)
        for start in range(0, obj.size, CHUNK):
            end = min(start + CHUNK, obj.size) - 1
            try:
                yield blob.download_as_bytes(start=start, end=end, checksum=None)
            except self._gexc.GoogleAPIError as exc:
                raise self._error(exc, "read", obj.name) from exc

    def create(self, path: RelPath, chunks: Iterable[bytes]) -> None:
        self._new_name(path)
        with tempfile.SpooledTemporaryFile(CHUNK) as spool:
            for chunk in chunks:
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            metadata = {INO_KEY: str(secrets.randbits(62)), MTIME_KEY: _rfc3339(_now_ns())}
            self._learn(path, self._write(self.key(path), spool, size, metadata))  # type: ignore[arg-type]

    def mkdir(self, path: RelPath, *, metadata: dict[str, str] | None = None) -> None:
        self._new_name(path)
        self._place(path, metadata)
        if self._batch.folders is not None:
            self._info(path).complete = True  # new, so empty: nothing inside to look up

    def _place(self, path: RelPath, metadata: dict[str, str] | None = None) -> None:
        """Write folder ``path``'s placeholder (refused if one exists)."""
        carried = metadata or {INO_KEY: str(secrets.randbits(62)), MTIME_KEY: _rfc3339(_now_ns())}
        with tempfile.TemporaryFile() as empty:
            placeholder = self._write(self._folder_key(path), empty, 0, carried)
        self._forget(path)
        if self._batch.folders is not None:
            parent = self._info(path[:-1])
            parent.prefixes[path[-1]] = True
            parent.objects[path[-1]] = None
            self._info(path).placeholder = placeholder

    def _pin(self, folder: RelPath, leaving: int = 1) -> None:
        """Before ``leaving`` entries leave ``folder``: a folder that is a prefix only would
        vanish with its last object (a folder on disk stays when emptied, and an undo puts the
        entries back into it), so give such a folder its placeholder first."""
        if not folder:
            return
        known = self._known().get(folder)
        if known is not None:
            inside = sum(obj is not None for obj in known.objects.values())
            if known.placeholder is not None or inside + sum(known.prefixes.values()) > leaving:
                return  # the batch has seen it hold more than these entries: no call needed
        key = self._folder_key(folder)
        objects, prefixes = self._list(key, max_results=leaving + 1)
        if any(obj.name == key for obj in objects) or len(objects) + len(prefixes) > leaving:
            return
        with contextlib.suppress(FileExistsError):  # its identity stays none of its own
            self._place(folder, {INO_KEY: str(IMPLICIT_INO), MTIME_KEY: _rfc3339(_now_ns())})

    def rmdir(self, path: RelPath) -> None:
        self._not_root(path)
        found = self._resolve(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such folder", render(path))
        kind, placeholder = found
        if kind is not Kind.DIR:
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", render(path))
        objects, prefixes = self._list(self._folder_key(path), max_results=2)
        if prefixes or any(obj.name != self._folder_key(path) for obj in objects):
            raise OSError(errno.ENOTEMPTY, "folder not empty", render(path))
        if placeholder is not None:
            self._pin(path[:-1])
            self._delete(placeholder)
        self._forget(path)

    def unlink(self, path: RelPath) -> None:
        self._not_root(path)
        found = self._resolve(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such entry", render(path))
        kind, obj = found
        if kind is Kind.DIR:
            raise IsADirectoryError(errno.EISDIR, "is a folder", render(path))
        assert obj is not None
        self._pin(path[:-1])
        self._delete(obj)
        self._learn(path, None)

    def rename(self, source: RelPath, destination: RelPath) -> None:
        kind, obj = self._check_move(source, destination)
        self._pin(source[:-1])
        if kind is Kind.DIR:
            self._move_folder(source, destination, obj)
            return
        assert obj is not None
        moved = self._move_object(obj, self.key(destination), obj.carried())
        self._learn(source, None)
        self._learn(destination, moved)

    def rename_many(self, moves: Sequence[tuple[RelPath, RelPath]]) -> None:
        """The files move at once (a rewrite and a delete each, up to ``WORKERS`` at a time),
        then the folders one by one (each moves its objects at once)."""
        checked = [(source, dest, *self._check_move(source, dest)) for source, dest in moves]
        for folder, leaving in Counter(source[:-1] for source, *_ in checked).items():
            self._pin(folder, leaving)
        files = [
            (source, dest, obj)
            for source, dest, kind, obj in checked
            if kind is not Kind.DIR and obj is not None
        ]

        def move(file: tuple[RelPath, RelPath, Obj]) -> Obj:
            return self._move_object(file[2], self.key(file[1]), file[2].carried())

        for (source, dest, _obj), new in zip(files, self._each(files, move), strict=True):
            self._learn(source, None)
            self._learn(dest, new)
        for source, dest, kind, obj in checked:
            if kind is Kind.DIR:
                self._move_folder(source, dest, obj)

    def _check_move(self, source: RelPath, destination: RelPath) -> tuple[Kind, Obj | None]:
        """What ``source`` is, once it is known that it may move to ``destination``."""
        self._not_root(source)
        found = self._resolve(source)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such entry", render(source))
        if len(destination) > len(source) and destination[: len(source)] == source:
            raise StorageError(
                f"could not move {render(source)!r} to {render(destination)!r}: "
                "a folder cannot move into itself",
                hint="choose a destination outside the folder",
                errno=errno.EINVAL,
            )
        self._new_name(destination)
        return found

    def _move_object(self, obj: Obj, key: str, metadata: dict[str, str]) -> Obj:
        moved = self._rewrite(obj, key, metadata)
        self._delete(obj)
        return moved

    def _move_folder(self, source: RelPath, destination: RelPath, placeholder: Obj | None) -> None:
        """Move every object under ``source`` (see the module docstring for the order that
        lets :meth:`move_back` undo it from any point)."""
        src_key, dst_key = self._folder_key(source), self._folder_key(destination)
        ino = placeholder.ino if placeholder is not None else IMPLICIT_INO
        marker = {
            **(placeholder.carried() if placeholder is not None else {}),
            INO_KEY: str(ino),
            FROM_KEY: src_key,
        }
        if placeholder is None:
            marker[MTIME_KEY] = _rfc3339(_now_ns())
        with tempfile.TemporaryFile() as empty:
            new_placeholder = self._write(dst_key, empty, 0, marker)
        self._forget(source)
        self._forget(destination)
        objects, _ = self._list(src_key, delimiter=None)
        inner = [obj for obj in objects if obj.name != src_key]
        self._each(
            inner,
            lambda obj: self._move_object(obj, dst_key + obj.name[len(src_key) :], obj.carried()),
        )
        if placeholder is not None:
            self._delete(placeholder)
        else:
            self._delete(new_placeholder)  # the source had none: neither does the destination

    def move_back(self, source: RelPath, destination: RelPath) -> None:
        """Undo ``rename(source, destination)`` from whatever point it reached."""
        there = self.stat(destination)
        if there is None:
            return
        here = self.stat(source)
        if here is None:
            self.rename(destination, source)
            return
        src_found, dst_found = self._resolve(source), self._resolve(destination)
        assert src_found is not None and dst_found is not None
        if here.kind is not Kind.DIR or there.kind is not Kind.DIR:
            obj, copy = src_found[1], dst_found[1]
            if obj is not None and copy is not None and self._same(copy, obj, obj.carried()):
                self._delete(copy)  # the move had copied it and not yet removed the source
                self._learn(destination, None)
                return
            raise StorageError(
                f"cannot undo the move of {render(source)!r}: {render(destination)!r} holds "
                "something else",
                hint="inspect both objects; `airlock recover --resolve` leaves them as they are",
            )
        src_key, dst_key = self._folder_key(source), self._folder_key(destination)
        marker = dst_found[1]
        if marker is None or marker.metadata.get(FROM_KEY) != src_key:
            raise StorageError(
                f"cannot undo the move of folder {render(source)!r}: {render(destination)!r} was "
                "not made by it",
                hint="inspect both folders; `airlock recover --resolve` leaves them as they are",
            )
        self._forget(source)
        self._forget(destination)
        at_source = {
            obj.name[len(src_key) :]: obj for obj in self._list(src_key, delimiter=None)[0]
        }
        moved, _ = self._list(dst_key, delimiter=None)

        def back(obj: Obj) -> None:
            rel = obj.name[len(dst_key) :]
            original = at_source.get(rel)
            if original is not None and self._same(obj, original, original.carried()):
                self._delete(obj)
            elif original is None:
                self._move_object(obj, src_key + rel, obj.carried())
            else:
                raise FileExistsError(errno.EEXIST, "both copies differ", obj.name)

        self._each([obj for obj in moved if obj.name != dst_key], back)
        self._delete(marker)

    def _each(self, objects: Sequence[T], act: Callable[[T], R]) -> list[R]:
        """``act`` on every object (or move), in parallel, and what each returned; once the
        first has run, a failure means the step is half done (never "it already existed",
        which would say nothing happened)."""
        failures: list[BaseException] = []
        done: list[R] = []
        for future in [self._pool.submit(act, obj) for obj in objects]:
            try:
                done.append(future.result())
            except (OSError, StorageError) as exc:
                failures.append(exc)
        if failures:
            self._lost_track()
            first = failures[0]
            text = first.message if isinstance(first, StorageError) else str(first)
            raise StorageError(
                f"{len(failures)} of {len(objects)} object(s) could not be moved or removed: {text}",
                hint=getattr(first, "hint", "") or "check the bucket, then run `airlock recover`",
                errno=errno.ESTALE
                if isinstance(first, FileExistsError)
                else getattr(first, "errno", None),
            ) from first
        return done

    def copy_file(self, source: RelPath, destination: RelPath) -> None:
        found = self._resolve(source)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", render(source))
        kind, obj = found
        if kind is not Kind.FILE or obj is None:
            raise UnsafePathError(
                f"{render(source)!r} is not a regular file",
                hint="only regular files can be read or copied; folders and links are refused",
            )
        self._new_name(destination)
        metadata = {**obj.metadata, INO_KEY: str(secrets.randbits(62))}
        metadata[MTIME_KEY] = _rfc3339(_now_ns())
        self._learn(destination, self._rewrite(obj, self.key(destination), metadata))

    def walk(self, path: RelPath) -> Iterator[tuple[RelPath, Entry]]:
        found = self._resolve(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such folder", render(path))
        if found[0] is not Kind.DIR:
            yield from super().walk(path)  # refuses a link or a file the way listdir does
            return
        top = self._folder_key(path)
        objects, _ = self._list(top, delimiter=None)
        files: dict[RelPath, Obj] = {}
        folders: dict[RelPath, Obj | None] = {}
        for obj in objects:
            rel = tuple(obj.name[len(top) :].split("/"))
            if obj.name.endswith("/"):
                rel = rel[:-1]
                if rel:
                    folders[rel] = obj
            else:
                files[rel] = obj
            for depth in range(1, len(rel)):
                folders.setdefault(rel[:depth], None)
        entries: dict[RelPath, Entry] = {}
        for rel, obj in files.items():
            if rel not in folders:
                entries[rel] = obj.entry()
        for rel, placeholder in folders.items():
            if rel[:-1] and any(rel[:d] in files for d in range(1, len(rel))):
                continue  # below an object of a folder's name: shadowed, as stat sees it
            entries[rel] = self._folder_entry((*path, *rel), placeholder)
        for rel in sorted(entries, key=lambda rel: rel):
            if any(rel[:d] in files and rel[:d] not in folders for d in range(1, len(rel))):
                continue
            if any(entries.get(rel[:d]) is None for d in range(1, len(rel))):
                continue
            yield (*path, *rel), entries[rel]

    def remove_tree(self, path: RelPath) -> None:
        found = self._resolve(path)
        if found is None:
            return
        kind, obj = found
        if kind is not Kind.DIR:
            self._not_root(path)
            assert obj is not None
            self._delete(obj)
            self._learn(path, None)
            return
        self._not_root(path)
        top = self._folder_key(path)
        objects, _ = self._list(top, delimiter=None)
        self._each([o for o in objects if not o.name.endswith("/")], self._delete)
        placeholders = sorted(
            (o for o in objects if o.name.endswith("/")), key=lambda o: -len(o.name)
        )
        for placeholder in placeholders:
            self._delete(placeholder)
        self._forget(path)

    def sync(self) -> None:
        return None  # a write GCS acknowledged is durable

    def name_max(self) -> int:
        return 255

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _now_ns() -> int:
    import time

    return time.time_ns()


def make_client() -> Any:
    """A ``google.cloud.storage.Client``: against ``$STORAGE_EMULATOR_HOST`` anonymously if that
    is set (an emulator), else with the machine's Application Default Credentials."""
    import requests
    from google.cloud import storage

    emulator = os.environ.get(EMULATOR_ENV)
    adapter = requests.adapters.HTTPAdapter(pool_connections=WORKERS, pool_maxsize=WORKERS * 2)
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(
            project="airlock",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
            _http=session,
        )
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, project = google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise StorageError(
            f"no Google Cloud credentials on this machine to reach the bucket ({exc})",
            hint="run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account's key file",
        ) from None
    authorized = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    authorized.mount("https://", adapter)
    return storage.Client(project=project, credentials=credentials, _http=authorized)
