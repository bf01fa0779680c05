"""The one conformance suite every storage backend passes (see ``airlock.storage.base``).

Written once, in the style of fsspec's ``tests/abstract``: :class:`StorageConformance` holds the
tests and two abstract fixtures. A backend's test module subclasses it and provides

* ``storage``: a fresh, empty :class:`~airlock.storage.base.Storage`;
* ``planter``: a :class:`Planter` that puts into that storage what the engine itself never
  creates (symbolic links, and FIFOs or other special entries).

Nothing here knows which backend it tests. A symlink's target is planted as POSIX text relative
to the link's folder; a backend that cannot resolve it (memory) simply never does, which is
exactly the contract: a symlink is an entry, never followed.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest

from airlock.errors import StorageError, UnsafePathError
from airlock.paths import RelPath
from airlock.storage.base import Kind, Storage


class Planter(Protocol):
    def symlink(self, path: RelPath, target: str) -> None:
        """Create a symbolic link at ``path`` whose text is ``target``."""

    def special(self, path: RelPath) -> None:
        """Create a FIFO (or the backend's nearest special entry) at ``path``."""


def put(storage: Storage, path: RelPath, data: bytes) -> None:
    storage.create(path, [data])


def content(storage: Storage, path: RelPath) -> bytes:
    return b"".join(storage.read(path))


def kind(storage: Storage, path: RelPath) -> Kind | None:
    entry = storage.stat(path)
    return None if entry is None else entry.kind


# How a symlinked parent folder is built: straight to a real folder, dangling, or a chain.
PARENT_LINKS = ["to-folder", "dangling", "chain"]

# Every operation that names a path, aimed *through* the symlinked folder "via".
THROUGH: dict[str, Callable[[Storage], object]] = {
    "stat": lambda s: s.stat(("via", "inner.txt")),
    "stat-deep": lambda s: s.stat(("via", "sub", "deep.txt")),
    "listdir": lambda s: s.listdir(("via", "sub")),
    "read": lambda s: content(s, ("via", "inner.txt")),
    "sha256": lambda s: s.sha256(("via", "inner.txt")),
    "create": lambda s: put(s, ("via", "new.txt"), b"escaped"),
    "mkdir": lambda s: s.mkdir(("via", "newdir")),
    "rmdir": lambda s: s.rmdir(("via", "sub", "empty")),
    "unlink": lambda s: s.unlink(("via", "inner.txt")),
    "rename-from": lambda s: s.rename(("via", "inner.txt"), ("stolen.txt",)),
    "rename-into": lambda s: s.rename(("mine.txt",), ("via", "mine.txt")),
    "walk": lambda s: list(s.walk(("via", "sub"))),
    "remove-tree": lambda s: s.remove_tree(("via", "sub")),
    "copy-from": lambda s: s.copy_file(("via", "inner.txt"), ("copied.txt",)),
    "copy-into": lambda s: s.copy_file(("mine.txt",), ("via", "copied.txt")),
}


class StorageConformance:
    """The storage contract, as tests. Subclass it and provide the two fixtures below."""

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("the backend's test class provides a fresh, empty storage")

    @pytest.fixture
    def planter(self, storage: Storage) -> Planter:
        raise NotImplementedError("the backend's test class provides a planter for `storage`")

    @pytest.fixture(autouse=True, params=["plain", "batched"])
    def _mode(self, request: pytest.FixtureRequest, storage: Storage) -> Iterator[None]:
        """Every test runs twice: as single calls, and inside one ``batch()`` (the apply path)."""
        if request.param == "batched":
            with storage.batch():
                yield
        else:
            yield

    # --- batch --------------------------------------------------------------------------------

    def test_batch_forgets_folders_that_move_or_go(self, storage: Storage) -> None:
        with storage.batch():
            storage.mkdir(("a",))
            storage.mkdir(("a", "b"))
            put(storage, ("a", "b", "f"), b"f")
            storage.rename(("a",), ("c",))
            with pytest.raises(FileNotFoundError):
                put(storage, ("a", "b", "g"), b"lost?")
            assert storage.stat(("a", "b")) is None
            put(storage, ("c", "b", "g"), b"g")
            storage.mkdir(("a",))
            storage.mkdir(("a", "b"))
            put(storage, ("a", "b", "h"), b"h")
            storage.remove_tree(("c",))
            storage.mkdir(("c",))
            with pytest.raises(FileNotFoundError):
                put(storage, ("c", "b", "again"), b"x")
            storage.rmdir(("c",))
            storage.rename(("a", "b"), ("b",))
            put(storage, ("b", "i"), b"i")
        assert storage.stat(("c",)) is None
        assert storage.listdir(("a",)) == []
        assert sorted(storage.listdir(("b",))) == ["h", "i"]

    # --- stat ---------------------------------------------------------------------------------

    def test_stat_root_is_a_folder(self, storage: Storage) -> None:
        root = storage.stat(())
        assert root is not None and root.kind is Kind.DIR

    def test_stat_missing_is_none(self, storage: Storage) -> None:
        put(storage, ("file.txt",), b"x")
        assert storage.stat(("nothing",)) is None
        assert storage.stat(("no", "such", "parent")) is None
        assert storage.stat(("file.txt", "below-a-file")) is None

    def test_stat_names_is_stat_of_each(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        put(storage, ("d", "f"), b"12345")
        storage.mkdir(("d", "sub"))
        put(storage, ("top",), b"t")
        names = ["f", "sub", "missing"]
        assert storage.stat_names(("d",), names) == {n: storage.stat(("d", n)) for n in names}
        assert storage.stat_names((), ["top", "d"]) == {
            "top": storage.stat(("top",)),
            "d": storage.stat(("d",)),
        }
        assert storage.stat_names(("nowhere",), ["x"]) == {"x": None}
        assert storage.stat_names(("top",), ["below-a-file"]) == {"below-a-file": None}

    def test_stat_reports_kind_and_size(self, storage: Storage) -> None:
        storage.mkdir(("folder",))
        put(storage, ("folder", "f.bin"), b"12345")
        folder, file = storage.stat(("folder",)), storage.stat(("folder", "f.bin"))
        assert folder is not None and folder.kind is Kind.DIR
        assert file is not None and file.kind is Kind.FILE
        assert file.size == 5 and file.nlink >= 1
        assert file.ino != folder.ino

    def test_folder_fingerprint_ignores_children_file_fingerprint_does_not(
        self, storage: Storage
    ) -> None:
        storage.mkdir(("d",))
        put(storage, ("d", "f"), b"one")
        folder_before = storage.stat(("d",))
        file_before = storage.stat(("d", "f"))
        assert folder_before is not None and file_before is not None
        put(storage, ("d", "g"), b"new sibling")
        storage.unlink(("d", "f"))
        put(storage, ("d", "f"), b"a different size")
        folder_after, file_after = storage.stat(("d",)), storage.stat(("d", "f"))
        assert folder_after is not None and file_after is not None
        assert folder_after.fingerprint() == folder_before.fingerprint()
        assert file_after.fingerprint() != file_before.fingerprint()

    # --- create -------------------------------------------------------------------------------

    def test_create_writes_all_chunks(self, storage: Storage) -> None:
        storage.create(("a.bin",), iter([b"ab", b"", b"cd", b"e"]))
        storage.create(("empty",), [])
        assert content(storage, ("a.bin",)) == b"abcde"
        assert content(storage, ("empty",)) == b""
        entry = storage.stat(("empty",))
        assert entry is not None and entry.kind is Kind.FILE and entry.size == 0

    def test_create_never_replaces(self, storage: Storage, planter: Planter) -> None:
        put(storage, ("file",), b"original")
        storage.mkdir(("folder",))
        planter.symlink(("link",), "file")
        planter.symlink(("dangling",), "does-not-exist")
        for existing in ("file", "folder", "link", "dangling"):
            with pytest.raises(FileExistsError):
                put(storage, (existing,), b"replacement")
        assert content(storage, ("file",)) == b"original"
        assert kind(storage, ("folder",)) is Kind.DIR
        assert kind(storage, ("link",)) is Kind.SYMLINK
        assert kind(storage, ("dangling",)) is Kind.SYMLINK
        assert storage.stat(("does-not-exist",)) is None

    def test_create_needs_its_parent(self, storage: Storage) -> None:
        put(storage, ("file",), b"x")
        with pytest.raises(FileNotFoundError):
            put(storage, ("missing", "f"), b"x")
        with pytest.raises(NotADirectoryError):
            put(storage, ("file", "f"), b"x")
        assert storage.stat(("missing",)) is None

    # --- mkdir / rmdir ------------------------------------------------------------------------

    def test_mkdir_creates_a_folder(self, storage: Storage) -> None:
        storage.mkdir(("a",))
        storage.mkdir(("a", "b"))
        assert kind(storage, ("a", "b")) is Kind.DIR
        assert storage.listdir(("a",)) == ["b"]
        assert storage.listdir(("a", "b")) == []

    def test_mkdir_never_replaces(self, storage: Storage, planter: Planter) -> None:
        storage.mkdir(("folder",))
        put(storage, ("folder", "keep"), b"k")
        put(storage, ("file",), b"f")
        planter.symlink(("link",), "folder")
        planter.symlink(("dangling",), "nowhere")
        for existing in ("folder", "file", "link", "dangling"):
            with pytest.raises(FileExistsError):
                storage.mkdir((existing,))
        assert storage.listdir(("folder",)) == ["keep"]
        assert content(storage, ("file",)) == b"f"
        assert kind(storage, ("link",)) is Kind.SYMLINK
        assert storage.stat(("nowhere",)) is None

    def test_mkdir_needs_its_parent(self, storage: Storage) -> None:
        with pytest.raises(FileNotFoundError):
            storage.mkdir(("missing", "child"))

    def test_rmdir_removes_only_an_empty_folder(self, storage: Storage, planter: Planter) -> None:
        storage.mkdir(("empty",))
        storage.mkdir(("full",))
        put(storage, ("full", "f"), b"x")
        put(storage, ("file",), b"x")
        planter.symlink(("link",), "empty")
        storage.rmdir(("empty",))
        assert storage.stat(("empty",)) is None
        with pytest.raises(OSError) as not_empty:
            storage.rmdir(("full",))
        assert not_empty.value.errno == errno.ENOTEMPTY
        with pytest.raises(NotADirectoryError):
            storage.rmdir(("file",))
        with pytest.raises(NotADirectoryError):
            storage.rmdir(("link",))
        with pytest.raises(FileNotFoundError):
            storage.rmdir(("missing",))
        assert content(storage, ("full", "f")) == b"x"
        assert kind(storage, ("link",)) is Kind.SYMLINK

    # --- rename -------------------------------------------------------------------------------

    def test_rename_moves_a_file(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        put(storage, ("a.txt",), b"payload")
        before = storage.stat(("a.txt",))
        storage.rename(("a.txt",), ("d", "b.txt"))
        after = storage.stat(("d", "b.txt"))
        assert storage.stat(("a.txt",)) is None
        assert before is not None and after is not None and after.ino == before.ino
        assert content(storage, ("d", "b.txt")) == b"payload"

    def test_rename_moves_a_folder_as_one_entry(self, storage: Storage) -> None:
        storage.mkdir(("src",))
        storage.mkdir(("src", "sub"))
        put(storage, ("src", "sub", "f"), b"deep")
        storage.mkdir(("dst",))
        folder_ino = storage.stat(("src",))
        file_ino = storage.stat(("src", "sub", "f"))
        storage.rename(("src",), ("dst", "moved"))
        assert storage.stat(("src",)) is None
        moved, moved_file = (
            storage.stat(("dst", "moved")),
            storage.stat(("dst", "moved", "sub", "f")),
        )
        assert folder_ino is not None and file_ino is not None
        assert moved is not None and moved.ino == folder_ino.ino
        assert moved_file is not None and moved_file.ino == file_ino.ino
        assert content(storage, ("dst", "moved", "sub", "f")) == b"deep"

    def test_rename_never_replaces(self, storage: Storage, planter: Planter) -> None:
        put(storage, ("a",), b"A")
        put(storage, ("b",), b"B")
        storage.mkdir(("empty",))
        storage.mkdir(("other",))
        planter.symlink(("link",), "nowhere")
        cases = [("a", "b"), ("a", "empty"), ("other", "empty"), ("a", "link"), ("a", "a")]
        for source, destination in cases:
            with pytest.raises(FileExistsError):
                storage.rename((source,), (destination,))
        assert content(storage, ("a",)) == b"A"
        assert content(storage, ("b",)) == b"B"
        assert kind(storage, ("empty",)) is Kind.DIR
        assert kind(storage, ("other",)) is Kind.DIR
        assert kind(storage, ("link",)) is Kind.SYMLINK
        assert storage.stat(("nowhere",)) is None

    def test_rename_missing_source_or_parent(self, storage: Storage) -> None:
        put(storage, ("a",), b"A")
        with pytest.raises(FileNotFoundError):
            storage.rename(("missing",), ("b",))
        with pytest.raises(FileNotFoundError):
            storage.rename(("a",), ("no-parent", "b"))
        assert content(storage, ("a",)) == b"A"

    def test_rename_folder_into_itself_fails(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        storage.mkdir(("d", "e"))
        with pytest.raises(StorageError):
            storage.rename(("d",), ("d", "e", "d"))
        assert kind(storage, ("d", "e")) is Kind.DIR

    def test_rename_moves_a_symlink_not_its_target(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("target",))
        put(storage, ("target", "f"), b"t")
        planter.symlink(("link",), "target")
        storage.mkdir(("elsewhere",))
        storage.rename(("link",), ("elsewhere", "link"))
        assert storage.stat(("link",)) is None
        assert kind(storage, ("elsewhere", "link")) is Kind.SYMLINK
        assert storage.listdir(("target",)) == ["f"]
        assert content(storage, ("target", "f")) == b"t"

    def test_rename_moves_a_special_entry(self, storage: Storage, planter: Planter) -> None:
        planter.special(("pipe",))
        storage.rename(("pipe",), ("pipe2",))
        assert storage.stat(("pipe",)) is None
        assert kind(storage, ("pipe2",)) is Kind.SPECIAL

    def test_rename_many_moves_independent_entries_and_keeps_an_emptied_folder(
        self, storage: Storage
    ) -> None:
        storage.mkdir(("inbox",))
        storage.mkdir(("inbox", "sub"))
        storage.mkdir(("filed",))
        for name in ("a", "b", "c"):
            put(storage, ("inbox", name), name.encode())
        put(storage, ("inbox", "sub", "deep"), b"deep")
        ids = {name: storage.stat(("inbox", name)) for name in ("a", "b", "c", "sub")}
        storage.rename_many([(("inbox", name), ("filed", name)) for name in ("a", "b", "c", "sub")])
        assert storage.listdir(("inbox",)) == [], "the emptied folder stays, as on disk"
        assert sorted(storage.listdir(("filed",))) == ["a", "b", "c", "sub"]
        for name, before in ids.items():
            after = storage.stat(("filed", name))
            assert before is not None and after is not None and after.ino == before.ino
        assert content(storage, ("filed", "b")) == b"b"
        assert content(storage, ("filed", "sub", "deep")) == b"deep"

    def test_rename_many_checks_every_move_before_making_any(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        put(storage, ("a",), b"A")
        put(storage, ("b",), b"B")
        put(storage, ("d", "taken"), b"T")
        for last in [(("b",), ("d", "taken")), (("missing",), ("d", "m")), (("b",), ("no", "b"))]:
            with pytest.raises((FileExistsError, FileNotFoundError)):
                storage.rename_many([(("a",), ("d", "a")), last])
            assert content(storage, ("a",)) == b"A", "nothing moved"
            assert storage.stat(("d", "a")) is None
        assert content(storage, ("d", "taken")) == b"T"

    # --- unlink -------------------------------------------------------------------------------

    def test_unlink_removes_a_file(self, storage: Storage) -> None:
        put(storage, ("f",), b"x")
        storage.unlink(("f",))
        assert storage.stat(("f",)) is None
        with pytest.raises(FileNotFoundError):
            storage.unlink(("f",))

    def test_unlink_refuses_a_folder(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        put(storage, ("d", "f"), b"x")
        storage.mkdir(("empty",))
        for folder in ("d", "empty"):
            with pytest.raises(IsADirectoryError):
                storage.unlink((folder,))
        assert content(storage, ("d", "f")) == b"x"
        assert kind(storage, ("empty",)) is Kind.DIR

    def test_unlink_removes_the_link_not_its_target(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("folder",))
        put(storage, ("folder", "f"), b"in folder")
        put(storage, ("file",), b"file")
        planter.symlink(("to-folder",), "folder")
        planter.symlink(("to-file",), "file")
        planter.symlink(("dangling",), "nowhere")
        for link in ("to-folder", "to-file", "dangling"):
            storage.unlink((link,))
            assert storage.stat((link,)) is None
        assert content(storage, ("folder", "f")) == b"in folder"
        assert content(storage, ("file",)) == b"file"

    def test_unlink_removes_a_special_entry(self, storage: Storage, planter: Planter) -> None:
        planter.special(("pipe",))
        storage.unlink(("pipe",))
        assert storage.stat(("pipe",)) is None

    # --- the root -----------------------------------------------------------------------------

    def test_the_root_itself_cannot_be_changed(self, storage: Storage) -> None:
        put(storage, ("f",), b"x")
        attempts: list[Callable[[], object]] = [
            lambda: put(storage, (), b"x"),
            lambda: storage.mkdir(()),
            lambda: storage.rmdir(()),
            lambda: storage.unlink(()),
            lambda: storage.rename((), ("moved",)),
            lambda: storage.rename(("f",), ()),
        ]
        for attempt in attempts:
            with pytest.raises(UnsafePathError):
                attempt()
        assert storage.listdir(()) == ["f"]

    # --- read, sha256, copy_file --------------------------------------------------------------

    def test_read_returns_the_bytes(self, storage: Storage) -> None:
        big = bytes(range(256)) * (3 * 4096 + 7)  # over 3 MiB: several chunks
        put(storage, ("big",), big)
        put(storage, ("empty",), b"")
        assert content(storage, ("big",)) == big
        assert content(storage, ("empty",)) == b""

    def test_read_refuses_anything_but_a_regular_file(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("folder",))
        put(storage, ("file",), b"secret")
        planter.symlink(("link",), "file")
        planter.special(("pipe",))
        for name in ("folder", "link", "pipe"):
            with pytest.raises(UnsafePathError, match="not a regular file"):
                content(storage, (name,))
        with pytest.raises(FileNotFoundError):
            content(storage, ("missing",))

    def test_read_version_reads_what_was_seen_or_refuses(self, storage: Storage) -> None:
        put(storage, ("f",), b"v1")
        seen = storage.stat(("f",))
        assert seen is not None
        assert b"".join(storage.read_version(("f",), seen)) == b"v1"
        storage.unlink(("f",))
        put(storage, ("f",), b"version two")  # replaced: what was seen is gone
        with pytest.raises(FileNotFoundError):
            b"".join(storage.read_version(("f",), seen))
        now = storage.stat(("f",))
        assert now is not None
        assert b"".join(storage.read_version(("f",), now)) == b"version two"

    def test_sha256(self, storage: Storage, planter: Planter) -> None:
        big = b"0123456789abcdef" * 200_000
        for name, data in (("empty", b""), ("small", b"hello"), ("big", big)):
            put(storage, (name,), data)
            assert storage.sha256((name,)) == hashlib.sha256(data).hexdigest()
        planter.symlink(("link",), "small")
        with pytest.raises(UnsafePathError):
            storage.sha256(("link",))

    def test_copy_file_makes_an_independent_copy(self, storage: Storage) -> None:
        storage.mkdir(("d",))
        put(storage, ("src",), b"copy me")
        storage.copy_file(("src",), ("d", "dst"))
        source, copy = storage.stat(("src",)), storage.stat(("d", "dst"))
        assert source is not None and copy is not None
        assert copy.kind is Kind.FILE and copy.ino != source.ino
        assert content(storage, ("d", "dst")) == b"copy me"
        storage.unlink(("src",))
        assert content(storage, ("d", "dst")) == b"copy me"

    def test_copy_file_never_replaces(self, storage: Storage) -> None:
        put(storage, ("src",), b"new")
        put(storage, ("dst",), b"old")
        with pytest.raises(FileExistsError):
            storage.copy_file(("src",), ("dst",))
        assert content(storage, ("dst",)) == b"old"

    def test_copy_file_refuses_a_source_that_is_not_a_regular_file(
        self, storage: Storage, planter: Planter
    ) -> None:
        put(storage, ("file",), b"secret")
        storage.mkdir(("folder",))
        planter.symlink(("link",), "file")
        planter.special(("pipe",))
        for name in ("link", "pipe", "folder"):
            with pytest.raises(UnsafePathError, match="not a regular file"):
                storage.copy_file((name,), (f"copy-of-{name}",))
            assert storage.stat((f"copy-of-{name}",)) is None, "a refused copy left a file"
        with pytest.raises(FileNotFoundError):
            storage.copy_file(("missing",), ("copy-of-missing",))
        assert storage.stat(("copy-of-missing",)) is None

    # --- listdir, walk, remove_tree -----------------------------------------------------------

    def test_listdir(self, storage: Storage, planter: Planter) -> None:
        storage.mkdir(("d",))
        put(storage, ("d", "f"), b"")
        storage.mkdir(("d", "sub"))
        planter.symlink(("d", "link"), "sub")
        planter.special(("d", "pipe"))
        assert sorted(storage.listdir(("d",))) == ["f", "link", "pipe", "sub"]
        assert sorted(storage.listdir(())) == ["d"]
        with pytest.raises(FileNotFoundError):
            storage.listdir(("missing",))
        with pytest.raises(NotADirectoryError):
            storage.listdir(("d", "f"))
        with pytest.raises(UnsafePathError):
            storage.listdir(("d", "link"))

    def test_walk_lists_entries_parents_first_without_following_links(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("top",))
        storage.mkdir(("top", "a"))
        put(storage, ("top", "a", "f1"), b"1")
        storage.mkdir(("top", "a", "b"))
        put(storage, ("top", "a", "b", "f2"), b"22")
        storage.mkdir(("elsewhere",))
        put(storage, ("elsewhere", "not-listed"), b"")
        planter.symlink(("top", "link"), "../elsewhere")
        planter.special(("top", "pipe"))
        walked = list(storage.walk(("top",)))
        paths = [path for path, _entry in walked]
        assert sorted(paths) == sorted(
            [
                ("top", "a"),
                ("top", "a", "f1"),
                ("top", "a", "b"),
                ("top", "a", "b", "f2"),
                ("top", "link"),
                ("top", "pipe"),
            ]
        )
        assert len(paths) == len(set(paths))
        for path in paths:
            if len(path) > 2:
                assert paths.index(path[:-1]) < paths.index(path), f"{path} before its parent"
        kinds = {path[-1]: entry.kind for path, entry in walked}
        assert kinds == {
            "a": Kind.DIR,
            "f1": Kind.FILE,
            "b": Kind.DIR,
            "f2": Kind.FILE,
            "link": Kind.SYMLINK,
            "pipe": Kind.SPECIAL,
        }
        sizes = {path[-1]: entry.size for path, entry in walked if entry.kind is Kind.FILE}
        assert sizes == {"f1": 1, "f2": 2}
        assert list(storage.walk(("top", "a", "b"))) == [
            (("top", "a", "b", "f2"), walked[paths.index(("top", "a", "b", "f2"))][1])
        ]

    def test_remove_tree_removes_links_not_their_targets(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("keep",))
        put(storage, ("keep", "precious"), b"precious")
        put(storage, ("keep-file",), b"also precious")
        storage.mkdir(("doomed",))
        storage.mkdir(("doomed", "sub"))
        put(storage, ("doomed", "sub", "f"), b"x")
        planter.symlink(("doomed", "to-folder"), "../keep")
        planter.symlink(("doomed", "sub", "to-file"), "../../keep-file")
        planter.symlink(("doomed", "dangling"), "nowhere")
        planter.special(("doomed", "pipe"))
        storage.remove_tree(("doomed",))
        assert storage.stat(("doomed",)) is None
        assert storage.listdir(("keep",)) == ["precious"]
        assert content(storage, ("keep", "precious")) == b"precious"
        assert content(storage, ("keep-file",)) == b"also precious"

    def test_remove_tree_of_a_link_or_file_or_nothing(
        self, storage: Storage, planter: Planter
    ) -> None:
        storage.mkdir(("keep",))
        put(storage, ("keep", "f"), b"x")
        planter.symlink(("link",), "keep")
        put(storage, ("file",), b"y")
        storage.remove_tree(("link",))
        storage.remove_tree(("file",))
        storage.remove_tree(("missing",))
        assert storage.stat(("link",)) is None and storage.stat(("file",)) is None
        assert storage.listdir(("keep",)) == ["f"]

    # --- symlinked parents --------------------------------------------------------------------

    def _plant_parent_link(self, storage: Storage, planter: Planter, how: str) -> None:
        storage.mkdir(("real",))
        put(storage, ("real", "inner.txt"), b"inner")
        storage.mkdir(("real", "sub"))
        storage.mkdir(("real", "sub", "empty"))
        put(storage, ("real", "sub", "deep.txt"), b"deep")
        put(storage, ("mine.txt",), b"mine")
        if how == "to-folder":
            planter.symlink(("via",), "real")
        elif how == "dangling":
            planter.symlink(("via",), "no-such-folder")
        else:
            planter.symlink(("hop",), "real")
            planter.symlink(("via",), "hop")

    @pytest.mark.parametrize("how", PARENT_LINKS)
    @pytest.mark.parametrize("operation", list(THROUGH))
    def test_a_symlinked_parent_is_refused(
        self, storage: Storage, planter: Planter, operation: str, how: str
    ) -> None:
        self._plant_parent_link(storage, planter, how)
        with pytest.raises(UnsafePathError, match="symbolic link"):
            THROUGH[operation](storage)
        assert sorted(storage.listdir(("real",))) == ["inner.txt", "sub"]
        assert sorted(storage.listdir(("real", "sub"))) == ["deep.txt", "empty"]
        assert content(storage, ("real", "inner.txt")) == b"inner"
        assert content(storage, ("mine.txt",)) == b"mine"
        assert kind(storage, ("via",)) is Kind.SYMLINK
        for name in ("stolen.txt", "copied.txt", "no-such-folder"):
            assert storage.stat((name,)) is None

    # --- limits, sync -------------------------------------------------------------------------

    def test_names_up_to_name_max(self, storage: Storage) -> None:
        limit = storage.name_max()
        assert limit >= 100
        longest, too_long = "n" * limit, "n" * (limit + 1)
        put(storage, (longest,), b"ok")
        assert content(storage, (longest,)) == b"ok"
        put(storage, ("short",), b"s")
        attempts: list[Callable[[], object]] = [
            lambda: put(storage, (too_long,), b"x"),
            lambda: storage.mkdir((too_long,)),
            lambda: storage.rename(("short",), (too_long,)),
        ]
        for attempt in attempts:
            with pytest.raises(StorageError, match="too long"):
                attempt()
        assert sorted(storage.listdir(())) == sorted([longest, "short"])

    def test_sync(self, storage: Storage) -> None:
        put(storage, ("f",), b"x")
        storage.sync()
        assert content(storage, ("f",)) == b"x"
