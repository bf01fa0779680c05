"""The local-filesystem backend against the storage conformance suite, plus local-only checks.

Both resolution strategies run the whole suite: Linux ``openat2(2)`` and the portable
component-by-component walk with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.errors import UnsafePathError
from airlock.paths import RelPath
from airlock.storage.base import Kind, Storage
from airlock.storage.local import LocalStorage
from storage_conformance import Planter, StorageConformance

DEADLINE = 20.0


def _openat2_available(root: Path) -> bool:
    probe = LocalStorage(root, use_openat2=None)
    try:
        return probe._openat2
    finally:
        probe.close()


@pytest.fixture(params=[True, False], ids=["openat2", "component-walk"])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStorage]:
    root = tmp_path / "root"
    root.mkdir()
    use_openat2 = bool(request.param)
    if use_openat2 and not _openat2_available(root):
        pytest.skip("this kernel has no openat2(2)")
    storage = LocalStorage(root, use_openat2=use_openat2)
    assert storage._openat2 is use_openat2
    yield storage
    storage.close()


class LocalPlanter:
    def __init__(self, root: Path) -> None:
        self._root = root

    def symlink(self, path: RelPath, target: str) -> None:
        os.symlink(target, self._root.joinpath(*path))

    def special(self, path: RelPath) -> None:
        os.mkfifo(self._root.joinpath(*path))


class TestLocalStorage(StorageConformance):
    @pytest.fixture
    def storage(self, local: LocalStorage) -> Storage:
        return local

    @pytest.fixture
    def planter(self, storage: Storage) -> Planter:
        assert isinstance(storage, LocalStorage)
        return LocalPlanter(storage.root)


# --- local-only ---------------------------------------------------------------------------------


def _finishes(call: Callable[[], object], fifo: Path) -> BaseException | None:
    """Run ``call`` in a thread; fail (after unblocking it) if it has not returned in time."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        # It is blocked opening the FIFO for reading: a writer lets it go, then fail the test.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(DEADLINE)
        pytest.fail(f"{call} hung on the FIFO {fifo}")
    return outcome[0]


def test_a_fifo_is_refused_without_hanging(local: LocalStorage) -> None:
    fifo = local.root / "pipe"
    os.mkfifo(fifo)
    (local.root / "dir").mkdir()
    os.mkfifo(local.root / "dir" / "inner-pipe")
    entry = local.stat(("pipe",))
    assert entry is not None and entry.kind is Kind.SPECIAL
    for call in (
        lambda: b"".join(local.read(("pipe",))),
        lambda: local.sha256(("pipe",)),
        lambda: local.copy_file(("pipe",), ("copy",)),
    ):
        error = _finishes(call, fifo)
        assert isinstance(error, UnsafePathError), error
        assert "not a regular file" in error.message
    assert local.stat(("copy",)) is None
    walked = _finishes(lambda: list(local.walk(("dir",))), fifo)
    assert walked is None
    assert _finishes(lambda: local.remove_tree(("dir",)), fifo) is None
    assert not (local.root / "dir").exists()
    assert fifo.is_fifo()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "canary.txt").write_bytes(b"canary")
    (folder / "sub").mkdir()
    (folder / "sub" / "empty").mkdir()
    return folder


def _tree(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    found: dict[str, tuple[str, bytes, int]] = {".": ("dir", b"", folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path.relative_to(folder))] = (
            "link" if path.is_symlink() else "dir" if path.is_dir() else "file",
            data,
            st.st_mtime_ns,
        )
    return found


ESCAPES: dict[str, Callable[[LocalStorage], object]] = {
    "create": lambda s: s.create(("door", "new.txt"), [b"escaped"]),
    "create-deep": lambda s: s.create(("door", "sub", "new.txt"), [b"escaped"]),
    "mkdir": lambda s: s.mkdir(("door", "newdir")),
    "rename-into": lambda s: s.rename(("mine.txt",), ("door", "mine.txt")),
    "rename-out": lambda s: s.rename(("door", "canary.txt"), ("stolen.txt",)),
    "unlink": lambda s: s.unlink(("door", "canary.txt")),
    "rmdir": lambda s: s.rmdir(("door", "sub", "empty")),
    "copy-into": lambda s: s.copy_file(("mine.txt",), ("door", "copy.txt")),
    "copy-out": lambda s: s.copy_file(("door", "canary.txt"), ("stolen.txt",)),
    "remove-tree": lambda s: s.remove_tree(("door", "sub")),
}


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute-link", "relative-link"])
@pytest.mark.parametrize("operation", list(ESCAPES))
def test_a_parent_symlink_to_a_folder_outside_is_refused(
    local: LocalStorage, outside: Path, operation: str, absolute: bool
) -> None:
    target = str(outside) if absolute else os.path.relpath(outside, local.root)
    os.symlink(target, local.root / "door")
    (local.root / "mine.txt").write_bytes(b"mine")
    before = _tree(outside)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        ESCAPES[operation](local)
    assert _tree(outside) == before
    assert sorted(os.listdir(local.root)) == ["door", "mine.txt"]
    assert (local.root / "mine.txt").read_bytes() == b"mine"


def test_a_deep_symlinked_folder_is_not_a_way_out(local: LocalStorage, outside: Path) -> None:
    """A link deep in the tree, several folders down, is refused the same way."""
    (local.root / "a" / "b").mkdir(parents=True)
    os.symlink(outside, local.root / "a" / "b" / "door")
    before = _tree(outside)
    with pytest.raises(UnsafePathError):
        local.create(("a", "b", "door", "x"), [b"escaped"])
    with pytest.raises(UnsafePathError):
        local.mkdir(("a", "b", "door", "sub", "x"))
    entry = local.stat(("a", "b", "door"))
    assert entry is not None and entry.kind is Kind.SYMLINK
    local.unlink(("a", "b", "door"))
    assert _tree(outside) == before
