"""A workspace on a local (or FUSE-mounted) POSIX filesystem, touched only through safe fds.

Every path is resolved from a file descriptor on the workspace root, never from a string the
kernel walks freely:

* with Linux's ``openat2(2)`` and ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` the kernel itself
  refuses any symlink and any escape, in one call;
* elsewhere (older kernels, some FUSE mounts) each component is opened in turn with
  ``O_NOFOLLOW | O_DIRECTORY`` relative to the previous one.

The final component is then acted on relative to its parent's descriptor (``renameat2`` with
``RENAME_NOREPLACE``, ``unlinkat``, ``openat`` with ``O_EXCL | O_NOFOLLOW``), so a symlink swapped in
after validation cannot redirect a write, a delete or a move.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import stat as stat_mod
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from airlock.errors import StorageError, UnsafePathError, storage_error
from airlock.paths import RelPath, render
from airlock.storage.base import Entry, Kind, Storage

_libc = ctypes.CDLL(None, use_errno=True)

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64 (generic syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RENAME_NOREPLACE = 1
_CHUNK = 1 << 20


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_KINDS = {stat_mod.S_IFREG: Kind.FILE, stat_mod.S_IFDIR: Kind.DIR, stat_mod.S_IFLNK: Kind.SYMLINK}


def _kind(mode: int) -> Kind:
    return _KINDS.get(stat_mod.S_IFMT(mode), Kind.SPECIAL)


_LISTED_FIRST = 64
"""From this many names looked up in one folder, list it first: a name it does not hold needs no
lookup of its own (a plan's destinations are mostly absent)."""


@functools.lru_cache(maxsize=8192)
def _joined(root: str, path: RelPath) -> str:
    """The absolute path of folder ``path`` under ``root`` (built once per folder)."""
    return root if not path else f"{root}/{render(path)}"


def entry_from_stat(st: os.stat_result) -> Entry:
    return Entry(
        kind=_kind(st.st_mode),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        ino=st.st_ino,
        nlink=st.st_nlink,
    )


class _BatchState(threading.local):
    def __init__(self) -> None:
        self.cache: dict[RelPath, int] | None = None
        self.fds: set[int] = set()
        self.prefixes: dict[RelPath, int] = {}


class LocalStorage(Storage):
    def __init__(self, root: Path, *, use_openat2: bool | None = None) -> None:
        self.root = Path(root)
        try:
            self._root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise storage_error(exc, "open the workspace", str(root)) from exc
        self._openat2 = self._probe_openat2() if use_openat2 is None else use_openat2
        self._name_max = os.statvfs(self.root).f_namemax
        self._local = _BatchState()
        self._real_root = os.path.realpath(self.root)
        self._can_verify = Path("/proc/self/fd").is_dir()

    # --- resolution -------------------------------------------------------------------------

    def _probe_openat2(self) -> bool:
        try:
            os.close(self._openat2_dir("."))
        except OSError:
            return False
        return True

    def _openat2_dir(self, relative: str) -> int:
        how = _OpenHow(
            flags=os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
            mode=0,
            resolve=_RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
        )
        fd = _libc.syscall(
            _SYS_OPENAT2,
            ctypes.c_int(self._root_fd),
            ctypes.c_char_p(os.fsencode(relative)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), relative)
        return int(fd)

    # A batch belongs to the thread that opened it: the service applies plans on different
    # scopes in parallel threads over one LocalStorage.
    @property
    def _cache(self) -> dict[RelPath, int] | None:
        return self._local.cache

    @_cache.setter
    def _cache(self, value: dict[RelPath, int] | None) -> None:
        self._local.cache = value

    @property
    def _cache_fds(self) -> set[int]:
        return self._local.fds

    @_cache_fds.setter
    def _cache_fds(self, value: set[int]) -> None:
        self._local.fds = value

    @property
    def _cached_prefixes(self) -> dict[RelPath, int]:
        return self._local.prefixes

    @_cached_prefixes.setter
    def _cached_prefixes(self, value: dict[RelPath, int]) -> None:
        self._local.prefixes = value

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Reuse folder descriptors until the block ends (the engine holds the scope lock).

        Within a batch a folder is resolved (safely) once, then reused while ``/proc/self/fd``
        shows it still at its path; renaming or removing a folder drops it and everything
        cached below it. Without ``/proc`` there is no reuse.
        """
        if self._cache is not None or not self._can_verify:  # already batching, or no /proc
            yield
            return
        self._cache = {}
        self._cached_prefixes = {}
        try:
            yield
        finally:
            cache, self._cache = self._cache, None
            self._cache_fds = set()
            for fd in cache.values():
                os.close(fd)

    def _still_at(self, fd: int, path: RelPath) -> bool:
        """Whether the folder behind a cached descriptor still sits at ``path`` (one readlink)."""
        expected = _joined(self._real_root, path)
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == expected  # noqa: PTH115 - hot path
        except OSError:
            return False

    def _release(self, fd: int) -> None:
        if fd not in self._cache_fds:
            os.close(fd)

    def _forget(self, path: RelPath) -> None:
        """Drop cached descriptors for ``path`` and anything below it (it moved or vanished)."""
        if self._cache is None or path not in self._cached_prefixes:
            return
        size = len(path)
        for key in [key for key in self._cache if key[:size] == path]:
            fd = self._cache.pop(key)
            self._cache_fds.discard(fd)
            os.close(fd)
            for depth in range(1, len(key) + 1):
                prefix = key[:depth]
                self._cached_prefixes[prefix] -= 1
                if not self._cached_prefixes[prefix]:
                    del self._cached_prefixes[prefix]

    def _open_dir(self, path: RelPath) -> int:
        """A descriptor for folder ``path``; raises UnsafePathError if a component is a symlink.

        Callers hand it back with :meth:`_release`.
        """
        if self._cache is not None:
            cached = self._cache.get(path)
            if cached is not None:
                if self._still_at(cached, path):
                    return cached
                self._forget(path)  # moved or replaced since: resolve it again, safely
            fd = self._resolve_dir(path)
            if len(self._cache) < 4096:
                self._cache[path] = fd
                self._cache_fds.add(fd)
                for depth in range(1, len(path) + 1):
                    prefix = path[:depth]
                    self._cached_prefixes[prefix] = self._cached_prefixes.get(prefix, 0) + 1
            return fd
        return self._resolve_dir(path)

    def _resolve_dir(self, path: RelPath) -> int:
        if not path:
            return os.dup(self._root_fd)
        try:
            if self._openat2:
                return self._openat2_dir(render(path))
            fd = os.dup(self._root_fd)
            for name in path:
                try:
                    next_fd = os.open(
                        name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                finally:
                    os.close(fd)
                fd = next_fd
            return fd
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EXDEV) or (
                exc.errno == errno.ENOTDIR and self._has_symlink(path)
            ):
                raise UnsafePathError(
                    f"{render(path)!r} passes through a symbolic link",
                    hint="symlinks in the workspace are never followed; name the real folder",
                ) from None
            raise

    def _has_symlink(self, path: RelPath) -> bool:
        for depth in range(1, len(path) + 1):
            try:
                st = os.lstat(self.root.joinpath(*path[:depth]))
            except OSError:
                return False
            if stat_mod.S_ISLNK(st.st_mode):
                return True
        return False

    def _parent(self, path: RelPath) -> int:
        if not path:
            raise UnsafePathError("the workspace root itself cannot be changed")
        return self._open_dir(path[:-1])

    # --- primitives -------------------------------------------------------------------------

    def open_folder(self, path: RelPath) -> int:
        """A new ``O_PATH`` descriptor on ``path`` (a folder or file), resolved without following
        any symlink; the caller closes it. For handing a part of the workspace to a sandbox."""
        if not path:
            return os.dup(self._root_fd)
        parent = self._parent(path)
        try:
            fd = os.open(path[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            self._release(parent)
        if stat_mod.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError(
                f"{render(path)!r} is a symbolic link", hint="name the real folder, not a link"
            )
        return fd

    def stat(self, path: RelPath) -> Entry | None:
        if not path:
            return entry_from_stat(os.fstat(self._root_fd))
        try:
            fd = self._parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise storage_error(exc, "look up", render(path)) from exc
        try:
            return entry_from_stat(os.stat(path[-1], dir_fd=fd, follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise storage_error(exc, "look up", render(path)) from exc
        finally:
            self._release(fd)

    def stat_names(self, folder: RelPath, names: Iterable[str]) -> dict[str, Entry | None]:
        try:
            fd = self._open_dir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return dict.fromkeys(names)
        except OSError as exc:
            raise storage_error(exc, "look up", render(folder)) from exc
        names = list(names)
        found: dict[str, Entry | None] = {}
        try:
            held: set[str] | None = None
            if len(names) >= _LISTED_FIRST:
                try:
                    list_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    held = None  # e.g. not readable: look each name up instead
                else:
                    try:
                        held = set(os.listdir(list_fd))
                    finally:
                        os.close(list_fd)
            for name in names:
                if held is not None and name not in held:
                    found[name] = None
                    continue
                try:
                    found[name] = entry_from_stat(os.stat(name, dir_fd=fd, follow_symlinks=False))
                except (FileNotFoundError, NotADirectoryError):
                    found[name] = None
                except OSError as exc:
                    raise storage_error(exc, "look up", render((*folder, name))) from exc
        finally:
            self._release(fd)
        return found

    def listdir(self, path: RelPath) -> list[str]:
        try:
            fd = self._open_dir(path) if path else os.dup(self._root_fd)
        except OSError as exc:
            raise self._translate(exc, "list", path) from exc
        try:
            # O_PATH descriptors cannot be listed; reopen this very folder for reading.
            list_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise self._translate(exc, "list", path) from exc
        finally:
            self._release(fd)
        try:
            return os.listdir(list_fd)
        finally:
            os.close(list_fd)

    def read(self, path: RelPath) -> Iterator[bytes]:
        fd = self._open_file(path)
        try:
            while chunk := os.read(fd, _CHUNK):
                yield chunk
        finally:
            os.close(fd)

    def _open_file(self, path: RelPath) -> int:
        try:
            parent = self._parent(path)
        except OSError as exc:
            raise self._translate(exc, "read", path) from exc
        try:
            # O_NONBLOCK: opening a FIFO must not hang; O_NOFOLLOW: a symlink is refused.
            fd = os.open(
                path[-1],
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                dir_fd=parent,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the entry itself is a symlink: refuse it like a FIFO
                raise UnsafePathError(
                    f"{render(path)!r} is a symbolic link, not a regular file",
                    hint="symlinks in the workspace are never followed; move or delete the link",
                ) from None
            raise self._translate(exc, "read", path) from exc
        finally:
            self._release(parent)
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError(
                f"{render(path)!r} is not a regular file",
                hint="only regular files can be read or copied; FIFOs and devices are refused",
            )
        os.set_blocking(fd, True)
        return fd

    def create(self, path: RelPath, chunks: Iterable[bytes]) -> None:
        try:
            parent = self._parent(path)
        except OSError as exc:
            raise self._translate(exc, "create", path) from exc
        try:
            fd = os.open(
                path[-1],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o666,
                dir_fd=parent,
            )
        except OSError as exc:
            raise self._translate(exc, "create", path) from exc
        finally:
            self._release(parent)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError as exc:
            raise self._translate(exc, "write", path) from exc
        finally:
            os.close(fd)

    def mkdir(self, path: RelPath) -> None:
        self._at(path, "create folder", lambda fd: os.mkdir(path[-1], 0o777, dir_fd=fd))

    def rmdir(self, path: RelPath) -> None:
        self._forget(path)
        self._at(path, "remove folder", lambda fd: os.rmdir(path[-1], dir_fd=fd))

    def unlink(self, path: RelPath) -> None:
        def _unlink(fd: int) -> None:
            st = os.stat(path[-1], dir_fd=fd, follow_symlinks=False)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder", render(path))
            os.unlink(path[-1], dir_fd=fd)

        self._at(path, "remove", _unlink)

    def rename(self, source: RelPath, destination: RelPath) -> None:
        self._forget(source)
        try:
            src_fd = self._parent(source)
        except OSError as exc:
            raise self._translate(exc, "move", source) from exc
        try:
            dst_fd = self._parent(destination)
        except OSError as exc:
            self._release(src_fd)
            raise self._translate(exc, "move to", destination) from exc
        try:
            _renameat_noreplace(src_fd, source[-1], dst_fd, destination[-1])
        except OSError as exc:
            raise self._translate(exc, f"move {render(source)!r} to", destination) from exc
        finally:
            self._release(src_fd)
            self._release(dst_fd)

    def sync(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if _libc.syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise storage_error(OSError(code, os.strerror(code)), "sync", str(self.root))
        finally:
            os.close(fd)

    def name_max(self) -> int:
        return int(self._name_max)

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # --- helpers ----------------------------------------------------------------------------

    def _at(self, path: RelPath, action: str, call: object) -> None:
        try:
            fd = self._parent(path)
        except OSError as exc:
            raise self._translate(exc, action, path) from exc
        try:
            call(fd)  # type: ignore[operator]
        except OSError as exc:
            raise self._translate(exc, action, path) from exc
        finally:
            self._release(fd)

    @staticmethod
    def _translate(exc: OSError, action: str, path: RelPath) -> OSError | StorageError:
        """Missing and existing entries stay OSErrors (the engine reasons about them)."""
        if isinstance(exc, FileNotFoundError | FileExistsError | NotADirectoryError):
            return exc
        if exc.errno in (errno.ENOTEMPTY, errno.EISDIR):
            return exc
        return storage_error(exc, action, render(path))


_renameat2 = _libc.renameat2
_renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_renameat2.restype = ctypes.c_int


def _renameat_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS):
        # The filesystem has no RENAME_NOREPLACE (some FUSE mounts): check, then rename. The
        # scope lock keeps other Airlock writers out of the gap; nothing else writes a workspace.
        try:
            os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            return
        raise FileExistsError(errno.EEXIST, "destination exists", dst)
    raise OSError(code, os.strerror(code), src)
