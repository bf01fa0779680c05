"""A read-only local folder showing part of a workspace whose files are not on a local disk (a
GCS bucket), so that a sandboxed run can have it as its overlay's lower layer.

:func:`mounted` mounts it (FUSE, through ``mfusepy`` over Debian's libfuse3) from a helper
process of Airlock's own (this module's :func:`main`), for the run's scope and read areas only:
the folders above them show nothing else. What it costs is what the run does, not the size of
the case:

* A folder is listed from the store the first time anything opens it, once per run (a GCS
  folder is one list call per 1,000 names).
* A file's bytes are downloaded the first time it is opened, whole, into a cache on local disk
  (``.airlock/cache/runs`` in the workspace's state) keyed by its path and its fingerprint
  (which holds a GCS object's generation and checksums). An object unchanged since an earlier
  run is read from the cache and never downloaded again; a changed one has a new key. The
  download reads exactly the version the listing showed (:meth:`Storage.read_version`): if it
  has been replaced since, the open fails with ``ESTALE`` and nothing is cached.
* Links and special entries are not shown (a run's capture never takes them either).

The helper serves until Airlock unmounts it, or until its standard input closes (Airlock died):
then it unmounts itself. It runs as Airlock's user, never as the sandbox's; the code reaches it
only through the mount (``allow_other``, read-only, the kernel checking the modes shown).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock import paths
from airlock.errors import SandboxUnavailableError
from airlock.paths import RelPath
from airlock.storage.base import Entry, Kind, Storage

READY = b"ready\n"
MOUNT_SECONDS = 60.0
"""How long the helper may take to reach the store and mount the view."""


PARTIAL = ".partial-"  # a body being downloaded
PARTIAL_AGE_NS = 3600 * 10**9  # written to for an hour: its helper is gone


class Cache:
    """File bodies a run has read, keyed by path and fingerprint; filled, never changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def key(path: RelPath, entry: Entry) -> str:
        seen = json.dumps([paths.render(path), entry.fingerprint()])
        return hashlib.sha256(seen.encode("utf-8", "surrogateescape")).hexdigest()

    def open(self, storage: Storage, path: RelPath, entry: Entry) -> int:
        """A read-only descriptor of ``path``'s body as ``entry`` saw it, downloaded first if
        missing. A descriptor, not a path: another run's trim may remove the file at any time."""
        key = self.key(path, entry)
        target = self.root / key[:2] / key
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            try:
                fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
            else:
                os.utime(fd)  # recently read: trimmed last
                return fd
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=PARTIAL, delete=False
            ) as out:
                try:
                    for chunk in storage.read_version(path, entry):
                        out.write(chunk)
                except BaseException:
                    Path(out.name).unlink()
                    raise
            fd = os.open(out.name, os.O_RDONLY | os.O_CLOEXEC)
            Path(out.name).replace(target)  # whole or not at all, under its key
            return fd

    def trim(self, limit: int) -> None:
        """Remove the least recently read bodies until the cache holds at most ``limit`` bytes,
        and downloads a killed helper left unfinished (a running one's are spared)."""
        bodies = []
        abandoned = time.time_ns() - PARTIAL_AGE_NS
        for entry in self.root.glob("??/*"):
            with contextlib.suppress(OSError):
                st = entry.stat()
                if not entry.name.startswith(PARTIAL):
                    bodies.append((st.st_mtime_ns, st.st_size, entry))
                elif st.st_mtime_ns < abandoned:
                    entry.unlink()
        total = sum(size for _, size, _ in bodies)
        for _, size, entry in sorted(bodies):
            if total <= limit:
                break
            with contextlib.suppress(OSError):
                entry.unlink()
                total -= size


@dataclass
class _Opened:
    """A file the code opened: its bytes are fetched on its first read."""

    path: RelPath
    entry: Entry
    fd: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _fuse() -> Any:
    try:
        import mfusepy  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:  # OSError: libfuse3 is missing
        raise SandboxUnavailableError(
            f"runs over a bucket need FUSE: {exc}",
            hint="pip install 'airlock[gcs]' and apt-get install fuse3",
        ) from None
    return mfusepy


def _operations_class() -> type:
    fuse = _fuse()

    operations: Any = fuse.Operations

    class View(operations):  # type: ignore[misc]
        """The FUSE calls: lookups, listings and reads of the areas shown; nothing else."""

        use_ns = True

        def __init__(
            self, storage: Storage, cache: Cache, areas: Sequence[RelPath], owner: tuple[int, int]
        ) -> None:
            self.storage = storage
            self.cache = cache
            self.areas = [tuple(area) for area in areas]
            self.owner = owner
            self.listed: dict[RelPath, dict[str, Entry]] = {}
            self.area_entries: dict[RelPath, Entry | None] = {}
            self.opened: dict[int, _Opened] = {}
            self.handles = 0
            self.lock = threading.Lock()

        # --- what is shown ---

        def _inside(self, path: RelPath) -> bool:
            return any(path[: len(area)] == area for area in self.areas)

        def _above(self, path: RelPath) -> list[str]:
            """The names below ``path`` on the way to an area (empty if it is on no way)."""
            return sorted(
                {
                    area[len(path)]
                    for area in self.areas
                    if len(area) > len(path) and area[: len(path)] == path
                }
            )

        def _children(self, folder: RelPath) -> dict[str, Entry]:
            with self.lock:
                if folder not in self.listed:
                    with self.storage.batch():
                        names = self.storage.listdir(folder)
                        found = self.storage.stat_names(folder, names)
                    self.listed[folder] = {
                        name: entry
                        for name, entry in found.items()
                        if entry is not None and entry.kind in (Kind.FILE, Kind.DIR)
                    }
                return self.listed[folder]

        def _entry(self, path: RelPath) -> Entry | None:
            if path in self.areas:
                if path not in self.area_entries:  # once per run, like every listing
                    self.area_entries[path] = self.storage.stat(path)
                entry = self.area_entries[path]
            elif self._inside(path):
                entry = self._children(path[:-1]).get(path[-1])
            elif not path or self._above(path):
                return Entry(Kind.DIR, 0, 0, 0, 0, 2)
            else:
                return None
            return entry if entry is not None and entry.kind in (Kind.FILE, Kind.DIR) else None

        def _lookup(self, text: str) -> tuple[RelPath, Entry]:
            path = tuple(part for part in text.split("/") if part)
            try:
                entry = self._entry(path)
            except (FileNotFoundError, NotADirectoryError):
                entry = None
            except Exception as exc:  # the store failed: the code sees an I/O error
                print(f"airlock view: {text}: {exc}", file=sys.stderr, flush=True)
                raise fuse.FuseOSError(errno.EIO) from None
            if entry is None:
                raise fuse.FuseOSError(errno.ENOENT)
            return path, entry

        # --- the FUSE calls ---

        def init(self, _path: str) -> None:
            sys.stdout.buffer.write(READY)
            sys.stdout.flush()

        def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
            _, entry = self._lookup(path)
            uid, gid = self.owner
            if entry.kind is Kind.DIR:
                mode, size, links = stat.S_IFDIR | 0o755, 0, 2
            else:
                mode, size, links = stat.S_IFREG | 0o644, entry.size, 1
            when = entry.mtime_ns
            return {
                "st_mode": mode,
                "st_nlink": links,
                "st_size": size,
                "st_uid": uid,
                "st_gid": gid,
                "st_mtime": when,
                "st_ctime": when,
                "st_atime": when,
            }

        def readdir(self, path: str, fh: int) -> list[str]:
            rel, _ = self._lookup(path)
            if self._inside(rel):
                try:
                    names = sorted(self._children(rel))
                except Exception as exc:
                    print(f"airlock view: {path}: {exc}", file=sys.stderr, flush=True)
                    raise fuse.FuseOSError(errno.EIO) from None
            else:
                names = self._above(rel)
            return [".", "..", *names]

        def statfs(self, path: str) -> dict[str, int]:
            return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": self.storage.name_max()}

        def open(self, path: str, flags: int) -> int:
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise fuse.FuseOSError(errno.EROFS)
            rel, entry = self._lookup(path)
            if entry.kind is not Kind.FILE:
                raise fuse.FuseOSError(errno.EISDIR)
            # Nothing is downloaded yet: fuse-overlayfs opens every file it looks up (to read
            # its extended attributes), and only a read needs the bytes.
            with self.lock:
                self.handles += 1
                self.opened[self.handles] = _Opened(rel, entry)
                return self.handles

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            opened = self.opened[fh]
            with opened.lock:
                if opened.fd is None:
                    try:
                        opened.fd = self.cache.open(self.storage, opened.path, opened.entry)
                    except FileNotFoundError:  # replaced or deleted since it was listed
                        raise fuse.FuseOSError(errno.ESTALE) from None
                    except Exception as exc:
                        print(f"airlock view: {path}: {exc}", file=sys.stderr, flush=True)
                        raise fuse.FuseOSError(errno.EIO) from None
            return os.pread(opened.fd, size, offset)

        def release(self, path: str, fh: int) -> None:
            with self.lock:
                opened = self.opened.pop(fh)
            if opened.fd is not None:
                os.close(opened.fd)

    return View


@contextlib.contextmanager
def mounted(
    location: str,
    areas: Sequence[RelPath],
    at: Path,
    cache: Path,
    owner: tuple[int, int],
) -> Iterator[Path]:
    """Mount the view of ``areas`` of the store at ``location`` on the empty folder ``at``, for
    the block; the files shown belong to ``owner`` (uid, gid), as the workspace folder does."""
    _fuse()
    if shutil.which("fusermount3") is None:
        raise SandboxUnavailableError(
            "runs over a bucket need FUSE, and fusermount3 is not installed",
            hint="apt-get install fuse3",
        )
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "airlock.sandbox.remote_view",
        json.dumps(
            {
                "location": location,
                "areas": [paths.render(area) for area in areas],
                "at": str(at),
                "cache": str(cache),
                "owner": list(owner),
            }
        ),
    ]
    with tempfile.TemporaryFile() as errors:
        helper = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, close_fds=True
        )
        assert helper.stdout is not None and helper.stdin is not None
        try:
            if not _ready(helper, MOUNT_SECONDS):
                errors.seek(0)
                said = errors.read().decode("utf-8", "replace").strip().splitlines()
                raise SandboxUnavailableError(
                    "the run's view of the bucket could not be mounted: "
                    + (said[-1] if said else f"no answer within {MOUNT_SECONDS:.0f} s"),
                    hint="check the bucket's credentials and that /dev/fuse is usable "
                    "(docs/runs.md, 'Over a bucket')",
                )
            yield at
        finally:
            _unmount(at)
            helper.stdin.close()
            try:
                helper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
            helper.stdout.close()


def _ready(helper: subprocess.Popen[bytes], seconds: float) -> bool:
    assert helper.stdout is not None
    deadline = time.monotonic() + seconds
    said = b""
    while not said.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([helper.stdout], [], [], left)[0]:
            return False
        chunk = os.read(helper.stdout.fileno(), 64)
        if not chunk:
            return False
        said += chunk
    return said == READY


def _unmount(at: Path) -> None:
    if os.path.ismount(at):
        done = subprocess.run(["fusermount3", "-u", str(at)], capture_output=True, check=False)
        if done.returncode != 0:  # still busy: detach it now, the kernel frees it when idle
            subprocess.run(["fusermount3", "-u", "-z", str(at)], capture_output=True, check=False)


def main() -> None:
    """The helper: mount the view described by ``argv[1]`` (JSON) and serve it."""
    from airlock.storage import open_storage

    fuse = _fuse()
    config = json.loads(sys.argv[1])
    at = Path(config["at"])
    storage = open_storage(config["location"])
    areas = [paths.parse(area, "a run area") for area in config["areas"]]
    view = _operations_class()(storage, Cache(Path(config["cache"])), areas, tuple(config["owner"]))

    def watch_parent() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        _unmount(at)  # Airlock is gone (or done): nothing must stay mounted

    threading.Thread(target=watch_parent, daemon=True).start()
    fuse.FUSE(
        view,
        str(at),
        foreground=True,
        ro=True,
        allow_other=True,
        default_permissions=True,
        fsname="airlock-view:" + re.sub(r"[^\w.:/@-]", "_", config["location"]),  # in `mount`
        kernel_cache=True,
        attr_timeout=3600,
        entry_timeout=3600,
    )
    storage.close()


if __name__ == "__main__":
    main()
