"""Capture: a run's change list becomes plan operations that make the real scope equal its result.

* Unit tests drive :func:`airlock.capture.capture` with a change list and a small in-memory
  :class:`Sides` (a lower tree and the upper files as dicts) and expect exact operation lists.
* A property test does what a copy-mode run does, on the real filesystem and without a sandbox:
  random lower tree, a copy made as the launcher makes it (``cp -a``, handed to the sandbox's ids,
  then a marker touched), random mutations of the copy, ``copy_changes`` + ``capture``, then
  submit / validate / approve / apply through a real workspace. The scope must then equal the
  mutated copy byte for byte, a rollback must restore it, and every rename of an untouched file
  must have come out as a ``move``.
* The walks (:mod:`airlock.sandbox.layers`) on hard trees: an edit that keeps a file's size and
  mtime, 1,500 nested folders, paths past ``PATH_MAX``, a folder its reader may not open.

``mutate`` (the random mutations) is shared with ``test_capture_overlay.py``, which runs it
inside a real overlay (fuse-overlayfs).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, given, note, settings

from airlock.capture import Body, Captured, Change, Kind, capture
from airlock.paths import PATH_MAX_BYTES, RelPath, render
from airlock.sandbox.changes import LocalSides
from airlock.sandbox.ids import sandbox_ids
from airlock.sandbox.layers import Found, copy_changes, upper_changes
from airlock.workspace import Workspace
from support import person, snapshot

# --- unit tests over an in-memory Sides -------------------------------------------------------

DIR = "<dir>"
LINK = "<symlink>"
SPECIAL = "<special>"

Lower = dict[str, bytes | str]


def rel(text: str) -> RelPath:
    return tuple(text.split("/"))


class DictSides:
    """Lower tree: path text -> bytes (a file), DIR, LINK or SPECIAL. Upper: path text -> bytes."""

    def __init__(self, lower: Lower, upper: dict[str, bytes] | None = None) -> None:
        self.lower = lower
        self.upper = upper or {}
        self.digests_read: list[str] = []

    def lower_kind(self, path: RelPath) -> Kind | None:
        entry = self.lower.get("/".join(path))
        if entry is None:
            return None
        if isinstance(entry, bytes):
            return Kind.FILE
        return {DIR: Kind.DIR, LINK: Kind.SYMLINK, SPECIAL: Kind.SPECIAL}[entry]

    def lower_files(self, path: RelPath) -> Iterable[tuple[RelPath, int]]:
        text = "/".join(path)
        for name, entry in sorted(self.lower.items()):
            if isinstance(entry, bytes) and (name == text or name.startswith(text + "/")):
                yield rel(name), len(entry)

    def lower_digest(self, path: RelPath) -> str:
        entry = self.lower["/".join(path)]
        assert isinstance(entry, bytes), f"digest asked of non-file {path}"
        self.digests_read.append("/".join(path))
        return hashlib.sha256(entry).hexdigest()

    # The run's files are in memory here: every body inline, whatever its size, none staged.
    def upper_size(self, path: RelPath) -> int:
        return len(self.upper["/".join(path)])

    def upper_digest(self, path: RelPath) -> str:
        return hashlib.sha256(self.upper["/".join(path)]).hexdigest()

    def upper_body(self, path: RelPath, inline_max: int) -> Body:
        data = self.upper["/".join(path)]
        return Body(hashlib.sha256(data).hexdigest(), len(data), data)


def changes(*entries: tuple[str, Kind] | tuple[str, Kind, bool]) -> list[Change]:
    return [Change(rel(entry[0]), *entry[1:]) for entry in entries]


def write(path: str, text: str, overwrite: bool = False) -> dict[str, Any]:
    return {"op": "write", "path": path, "overwrite": overwrite, "text": text}


def mkdir(path: str) -> dict[str, Any]:
    return {"op": "mkdir", "path": path}


def delete(path: str) -> dict[str, Any]:
    return {"op": "delete", "path": path}


def move(source: str, destination: str) -> dict[str, Any]:
    return {"op": "move", "source": source, "destination": destination}


F, D, G = Kind.FILE, Kind.DIR, Kind.GONE


def test_new_file_is_a_write_without_overwrite() -> None:
    sides = DictSides({"inbox": DIR}, {"inbox/new.txt": b"hello", "top.txt": b""})
    out = capture(changes(("inbox/new.txt", F), ("top.txt", F)), sides)
    assert out.operations == [write("inbox/new.txt", "hello"), write("top.txt", "")]
    assert out.skipped == [] and out.bytes_written == 5


def test_binary_bytes_are_written_as_base64() -> None:
    data = b"\xff\xfe\x00 not utf-8"
    out = capture(changes(("blob.bin", F)), DictSides({}, {"blob.bin": data}))
    assert out.operations == [
        {
            "op": "write",
            "path": "blob.bin",
            "overwrite": False,
            "base64": base64.b64encode(data).decode("ascii"),
        }
    ]


def test_modified_file_is_an_overwrite() -> None:
    sides = DictSides({"notes.txt": b"first"}, {"notes.txt": b"second"})
    out = capture(changes(("notes.txt", F)), sides)
    assert out.operations == [write("notes.txt", "second", overwrite=True)]
    assert out.bytes_written == 6


def test_touched_file_with_the_same_bytes_is_no_operation() -> None:
    sides = DictSides({"d": DIR, "d/notes.txt": b"same"}, {"d/notes.txt": b"same"})
    out = capture(changes(("d", D), ("d/notes.txt", F)), sides)
    assert out.operations == [] and out.skipped == [] and out.bytes_written == 0


def test_whiteout_is_a_delete_and_a_gone_entry_that_never_was_is_nothing() -> None:
    sides = DictSides({"old.txt": b"x", "d": DIR, "d/y": b"y"})
    out = capture(changes(("old.txt", G), ("d/y", G), ("never-was", G)), sides)
    assert out.operations == [delete("d/y"), delete("old.txt")]


def test_deleted_bytes_reappearing_elsewhere_are_a_move_after_its_mkdir() -> None:
    sides = DictSides(
        {"inbox": DIR, "inbox/scan1.pdf": b"%PDF one", "inbox/scan2.pdf": b"%PDF two"},
        {"Medical/Dr Lee/scan1.pdf": b"%PDF one", "scan2.pdf": b"%PDF two"},
    )
    out = capture(
        changes(
            ("Medical", D),
            ("Medical/Dr Lee", D),
            ("Medical/Dr Lee/scan1.pdf", F),
            ("inbox/scan1.pdf", G),
            ("inbox/scan2.pdf", G),
            ("scan2.pdf", F),
        ),
        sides,
    )
    assert out.operations == [
        mkdir("Medical"),
        mkdir("Medical/Dr Lee"),
        move("inbox/scan1.pdf", "Medical/Dr Lee/scan1.pdf"),
        move("inbox/scan2.pdf", "scan2.pdf"),
    ]
    assert out.bytes_written == 0


def test_a_same_named_source_is_preferred_among_identical_bytes() -> None:
    sides = DictSides(
        {"a": DIR, "a/first.txt": b"same", "b": DIR, "b/report.txt": b"same", "c": DIR},
        {"c/report.txt": b"same"},
    )
    out = capture(changes(("a/first.txt", G), ("b/report.txt", G), ("c/report.txt", F)), sides)
    assert out.operations == [move("b/report.txt", "c/report.txt"), delete("a/first.txt")]


def test_each_deleted_file_is_the_source_of_one_move_only() -> None:
    sides = DictSides({"a.txt": b"dup"}, {"b.txt": b"dup", "c.txt": b"dup"})
    out = capture(changes(("a.txt", G), ("b.txt", F), ("c.txt", F)), sides)
    assert out.operations == [move("a.txt", "b.txt"), write("c.txt", "dup")]


def test_same_size_other_bytes_is_no_move_and_only_same_sizes_are_read() -> None:
    sides = DictSides(
        {"gone1": b"aaaa", "gone2": b"longer bytes"},
        {"new": b"bbbb", "unrelated": b"a size nothing deleted has"},
    )
    out = capture(changes(("gone1", G), ("gone2", G), ("new", F), ("unrelated", F)), sides)
    assert out.operations == [
        delete("gone1"),
        delete("gone2"),
        write("new", "bbbb"),
        write("unrelated", "a size nothing deleted has"),
    ]
    assert sides.digests_read == ["gone1"]


def test_file_replaced_by_a_folder() -> None:
    sides = DictSides({"p": b"was a file"}, {"p/q.txt": b"inside"})
    for replaces in (True, False):  # copy mode marks it; the kind differs either way
        out = capture(changes(("p", D, replaces), ("p/q.txt", F)), sides)
        assert out.operations == [delete("p"), mkdir("p"), write("p/q.txt", "inside")]


def test_file_replaced_by_a_folder_can_still_be_moved_first() -> None:
    sides = DictSides({"p": b"content"}, {"kept.txt": b"content", "p/q": b"new"})
    out = capture(changes(("kept.txt", F), ("p", D, True), ("p/q", F)), sides)
    assert out.operations == [move("p", "kept.txt"), mkdir("p"), write("p/q", "new")]


def test_folder_replaced_by_a_file_deletes_only_the_folder() -> None:
    sides = DictSides({"d": DIR, "d/x": b"1", "d/sub": DIR, "d/sub/y": b"2"}, {"d": b"now a file"})
    out = capture(changes(("d", F)), sides)
    assert out.operations == [delete("d"), write("d", "now a file")]


# A folder that replaces one (``replaces=True`` where the lower side had a folder too) is what
# the old overlay walk made of an opaque folder; the walks no longer produce it (they trust no
# marker, and copy mode marks only a change of kind), but capture still honours it.
def test_opaque_folder_replaces_everything_below_it() -> None:
    lower: Lower = {
        "d": DIR,
        "d/old.txt": b"old",
        "d/sub": DIR,
        "d/sub/kept.txt": b"moved out",
        "d/gone.txt": b"gone",
    }
    upper = {"d/old.txt": b"old", "d/new.txt": b"new", "d/sub2/z": b"z", "out.txt": b"moved out"}
    out = capture(
        changes(
            ("d", D, True),
            ("d/new.txt", F),
            ("d/old.txt", F),  # same bytes as before, but d was emptied: it is written anew
            ("d/sub2", D),
            ("d/sub2/z", F),
            ("out.txt", F),
        ),
        DictSides(lower, upper),
    )
    assert out.operations == [
        move("d/sub/kept.txt", "out.txt"),
        delete("d"),
        mkdir("d"),
        mkdir("d/sub2"),
        write("d/new.txt", "new"),
        write("d/old.txt", "old"),
        write("d/sub2/z", "z"),
    ]


def test_opaque_folder_where_nothing_was_is_a_plain_mkdir() -> None:
    out = capture(changes(("e", D, True), ("e/n", F)), DictSides({}, {"e/n": b"hi"}))
    assert out.operations == [mkdir("e"), write("e/n", "hi")]


def test_deletes_are_for_topmost_paths_only() -> None:
    lower: Lower = {"d": DIR, "d/x": b"x", "d/s": DIR, "d/s/y": b"y", "e": DIR, "e/f": b"f"}
    out = capture(
        changes(("d", G), ("d/s", G), ("d/s/y", G), ("d/x", G), ("e/f", G)), DictSides(lower)
    )
    assert out.operations == [delete("d"), delete("e/f")]


def test_links_and_special_files_are_skipped_with_reasons() -> None:
    sides = DictSides({"was-file": b"keep"}, {"ok.txt": b"fine"})
    out = capture(
        changes(
            ("link", Kind.SYMLINK),
            ("fifo", Kind.SPECIAL),
            ("ok.txt", F),
            ("was-file", Kind.SYMLINK),
        ),
        sides,
    )
    assert out.operations == [write("ok.txt", "fine")]
    assert out.skipped == [
        {
            "path": "fifo",
            "reason": "a special cannot be part of a plan; only files and folders are",
        },
        {
            "path": "link",
            "reason": "a symlink cannot be part of a plan; only files and folders are",
        },
        {
            "path": "was-file",
            "reason": "a symlink cannot be part of a plan; only files and folders are",
        },
    ]


def test_a_file_where_a_link_was_deletes_the_link_first() -> None:
    sides = DictSides({"x": LINK}, {"x": b"real"})
    out = capture(changes(("x", F)), sides)
    assert out.operations == [delete("x"), write("x", "real")]


def test_names_a_plan_cannot_hold_are_skipped_with_a_reason() -> None:
    sides = DictSides({}, {"a\x01b": b"1", "\udcff": b"2", "ok": b"3", "c\\d": b"4"})
    out = capture(
        changes(
            ("a\x01b", F),
            ("\udcff", F),
            ("bad\ndir", D),
            ("bad\ndir/inner.txt", F),
            ("c\\d", F),
            ("ok", F),
        ),
        sides,
    )
    assert out.operations == [write("ok", "3")]
    reasons = {entry["path"]: entry["reason"] for entry in out.skipped}
    assert set(reasons) == {
        repr("a\x01b"),
        repr("\udcff"),
        repr("bad\ndir"),
        repr("bad\ndir/inner.txt"),
        repr("c\\d"),
    }
    assert "control character U+0001" in reasons[repr("a\x01b")]
    assert "control character U+000A" in reasons[repr("bad\ndir/inner.txt")]
    assert "backslash" in reasons[repr("c\\d")]
    assert reasons[repr("\udcff")] == "the name is not valid UTF-8"


def test_a_name_too_long_for_a_plan_is_skipped() -> None:
    name = "n" * 256
    out = capture(changes((name, F)), DictSides({}, {name: b"x"}))
    assert out.operations == []
    assert [entry["reason"] for entry in out.skipped] == [
        "name has a name of 256 bytes; the limit is 255"
    ]


# --- the property: copy, mutate, capture, apply, compare, roll back ---------------------------

SCOPE = "projects/Case"
DIR_NAMES = ("d1", "d2")
FILE_NAMES = ("f1", "f2", "f3")
# Two of the same size, so digests (not sizes) decide moves; an empty file too.
ORIGINALS = (b"orig-0", b"orig-1", b"the original two", b"")

OPS = (
    "write_new",
    "overwrite",
    "touch",
    "delete",
    "rmtree",
    "rename",
    "file_to_dir",
    "dir_to_file",
    "mkdir_new",
    "rename_dir",
    "remake_dir",
)


Step = tuple[str, int, int, int]


def mutate(root: str, steps: list[Step]) -> list[list[str]]:
    """Apply abstract steps (op, a, b, c) to the tree at ``root`` with plain os calls; return
    [original path, path now] for every untouched original file that now lives elsewhere.

    Self-contained (it is also run by source inside an overlay): new names ('g*' files, 'n*'
    folders) and new contents never equal the lower tree's, so a renamed file's destination was
    never a lower path and only renamed originals carry original bytes.
    """
    import errno
    import os
    import shutil

    new_files = ("g1", "g2")
    new_dirs = ("n1", "n2")
    contents = (b"new-A", b"new content B", b"\xff\xfe\x00 binary")

    def full(path: str) -> str:
        return os.path.join(root, path) if path else root

    def join(parent: str, name: str) -> str:
        return f"{parent}/{name}" if parent else name

    def listing() -> tuple[list[str], list[str]]:
        files: list[str] = []
        dirs: list[str] = [""]
        for folder, dnames, fnames in os.walk(root):
            dnames.sort()
            here = os.path.relpath(folder, root)
            here = "" if here == "." else here
            dirs += [join(here, name) for name in dnames]
            files += [join(here, name) for name in sorted(fnames)]
        return files, sorted(dirs)

    def put(path: str, data: bytes) -> None:
        with open(full(path), "wb") as handle:
            handle.write(data)

    def under(path: str, key: str) -> bool:
        return key == path or key.startswith(path + "/")

    def forget(path: str) -> None:
        for key in [k for k in origin if under(path, k)]:
            del origin[key]

    def rename_dir(src: str, dst: str) -> None:
        try:
            os.rename(full(src), full(dst))
        except OSError as exc:  # an overlay cannot rename a lower folder: copy, as mv does
            if exc.errno != errno.EXDEV:
                raise
            shutil.copytree(full(src), full(dst), symlinks=True)
            shutil.rmtree(full(src))

    files, _ = listing()
    origin = {path: path for path in files}
    for op, a, b, c in steps:
        files, dirs = listing()
        data = contents[c % len(contents)]
        if op == "write_new":
            path = join(dirs[a % len(dirs)], new_files[b % 2])
            if not os.path.lexists(full(path)):
                put(path, data)
        elif op == "mkdir_new":
            path = join(dirs[a % len(dirs)], new_dirs[b % 2])
            if not os.path.lexists(full(path)):
                os.mkdir(full(path))
        elif op in ("overwrite", "touch", "delete", "rename", "file_to_dir") and files:
            src = files[a % len(files)]
            if op == "overwrite":
                put(src, data)
                origin.pop(src, None)
            elif op == "touch":  # same bytes, a later time
                st = os.stat(full(src))
                os.utime(full(src), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            elif op == "delete":
                os.unlink(full(src))
                origin.pop(src, None)
            elif op == "file_to_dir":
                os.unlink(full(src))
                os.mkdir(full(src))
                if c % 2:
                    put(join(src, new_files[b % 2]), data)
                origin.pop(src, None)
            else:
                parent = dirs[b % len(dirs)]
                if under(src, parent):
                    continue
                how = c % 3
                if how == 0:  # a new name
                    folders = [parent]
                    dst = join(parent, new_files[b % 2])
                elif how == 1:  # the same name in a new folder
                    folders = [parent, join(parent, new_dirs[b % 2])]
                    dst = join(folders[-1], os.path.basename(src))
                else:  # a new name two new folders down
                    first = join(parent, new_dirs[c % 2])
                    folders = [parent, first, join(first, new_dirs[b % 2])]
                    dst = join(folders[-1], new_files[c % 2])
                if os.path.lexists(full(dst)) or any(
                    os.path.lexists(full(f)) and not os.path.isdir(full(f)) for f in folders
                ):
                    continue
                os.makedirs(full(folders[-1]), exist_ok=True)
                os.rename(full(src), full(dst))
                if src in origin:
                    origin[dst] = origin.pop(src)
        elif op in ("rmtree", "dir_to_file", "rename_dir", "remake_dir") and len(dirs) > 1:
            folder = dirs[1:][a % (len(dirs) - 1)]
            if op == "rmtree":
                shutil.rmtree(full(folder))
                forget(folder)
            elif op == "dir_to_file":
                shutil.rmtree(full(folder))
                put(folder, data)
                forget(folder)
            elif op == "remake_dir":  # emptied and made anew: an opaque folder in an overlay
                shutil.rmtree(full(folder))
                os.mkdir(full(folder))
                if c % 2:
                    put(join(folder, new_files[b % 2]), data)
                forget(folder)
            else:
                dst = join(os.path.dirname(folder), new_dirs[b % 2])
                if os.path.lexists(full(dst)):
                    continue
                rename_dir(folder, dst)
                for key in [k for k in origin if under(folder, k)]:
                    origin[dst + key[len(folder) :]] = origin.pop(key)
    return [[was, now] for now, was in sorted(origin.items()) if was != now]


Tree = dict[str, bytes | None]  # path -> bytes, or None for a folder


@st.composite
def lower_trees(draw: st.DrawFn) -> Tree:
    tree: Tree = {}

    def fill(prefix: str, depth: int) -> None:
        for name in draw(st.lists(st.sampled_from(DIR_NAMES), unique=True, max_size=2 - depth)):
            path = f"{prefix}{name}"
            tree[path] = None
            fill(path + "/", depth + 1)
        files = st.lists(
            st.sampled_from(FILE_NAMES), unique=True, min_size=1 if depth == 0 else 0, max_size=3
        )
        for name in draw(files):
            tree[f"{prefix}{name}"] = draw(st.sampled_from(ORIGINALS))

    fill("", 0)
    return tree


# Renames are what move detection is for: draw them more often.
WEIGHTED_OPS = [op for op in OPS for _ in range(3 if op.startswith("rename") else 1)]
steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(WEIGHTED_OPS), st.integers(0, 59), st.integers(0, 59), st.integers(0, 59)
    ),
    min_size=1,
    max_size=8,
)

# Files of a case are old; a run's changes are not. copy_changes sees a change by size and
# modification time, and also by a change time not older than the copy's marker (so even a
# same-size rewrite within one timestamp tick of the original's creation is seen; see
# test_a_copy_edit_keeping_size_and_mtime_is_still_seen); old times keep the trees realistic.
OLD_NS = 1_000_000_000 * 10**9


def build(scope: Path, tree: Tree) -> None:
    scope.mkdir(parents=True)
    for path, data in sorted(tree.items()):
        if data is None:
            (scope / path).mkdir()
        else:
            (scope / path).write_bytes(data)
            os.utime(scope / path, ns=(OLD_NS, OLD_NS))


def qualifying_moves(
    renames: list[list[str]],
    before: dict[str, str],
    after: dict[str, str],
    replaced: set[str],
) -> set[str]:
    """Destinations of renamed untouched files that capture must show as moves: the original
    is gone (or a folder now), and the destination is new and not inside a folder that replaced
    something (there capture writes, as everything below such a folder is new)."""
    out = set()
    for was, now in renames:
        parents = ["/".join(now.split("/")[:i]) for i in range(1, now.count("/") + 1)]
        if (
            after.get(was, "dir") == "dir"
            and now not in before
            and all(before.get(p, "dir") == "dir" and p not in replaced for p in parents)
        ):
            out.add(now)
    return out


def apply_and_roll_back(
    ws: Workspace, captured: Captured, scope: Path, before: dict[str, str], after: dict[str, str]
) -> None:
    """Submit, validate, approve, apply: the scope must equal ``after``; roll back: ``before``."""
    if not captured.operations:
        assert after == before, "the run changed the scope but capture found nothing"
        return
    record = ws.submit(
        {
            "scope": SCOPE,
            "description": "captured run",
            "author": "agent",
            "operations": captured.operations,
        },
        by=person("agent"),
    )
    record = ws.validate(record.id)
    assert record.validation is not None
    assert record.validation.valid, record.validation.errors
    if record.validation.needs_approval:
        ws.approve(record.id, by=person("reviewer"))
    result = ws.apply(record.id, by=person("agent"))
    assert result.success, result.error
    assert snapshot(scope) == after
    ws.rollback(record.id, by=person("reviewer"))
    assert snapshot(scope) == before


def check_moves(captured: Captured, expected: set[str]) -> None:
    moved = {op["destination"] for op in captured.operations if op["op"] == "move"}
    assert expected <= moved, f"renames captured as writes: {sorted(expected - moved)}"


PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)


@contextlib.contextmanager
def workspace_with(tree: Tree) -> Iterator[tuple[Workspace, Path]]:
    """A fresh workspace in its own temporary folder (hypothesis reuses pytest's tmp_path)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        scope = root / SCOPE
        build(scope, tree)
        ws = Workspace.init(root)
        try:
            yield ws, scope
        finally:
            ws.close()


SCOPE_PATH = tuple(SCOPE.split("/"))


def copy_as_the_launcher_does(original: Path, copy: Path, *, pause: float = 0.0) -> Path:
    """Make ``copy`` as a copy-mode run's launcher does (``cp -a``; when root, ``chown -R`` to
    the sandbox's ids; then a marker touched beside it) and return the marker. ``pause`` waits
    before the marker, so nothing copied can share its timestamp tick."""
    copy.mkdir()
    subprocess.run(["cp", "-a", f"{original}/.", f"{copy}/"], check=True)
    ids = sandbox_ids(original.stat().st_uid)
    if os.geteuid() == 0 and not isinstance(ids, str):
        subprocess.run(
            ["chown", "-R", "-P", f"{ids.host_uid}:{ids.host_gid}", str(copy)], check=True
        )
    time.sleep(pause)
    marker = copy.parent / "copied"
    marker.touch()
    return marker


@PROPERTY
@given(tree=lower_trees(), steps=steps_strategy)
def test_captured_copy_changes_apply_to_exactly_the_result_and_roll_back(
    tree: Tree, steps: list[Step]
) -> None:
    with workspace_with(tree) as (ws, scope):
        copy = scope.parent.parent.parent / "copy"
        marker = copy_as_the_launcher_does(scope, copy)
        before = snapshot(scope)
        assert snapshot(copy) == before
        renames = mutate(str(copy), steps)
        after = snapshot(copy)
        found = copy_changes(scope, copy, marker)
        captured = capture(found.changes, LocalSides(ws.storage, SCOPE_PATH, copy, ws.content))
        note(f"changes {found}")
        note(f"operations {captured.operations}")
        assert found.skipped == [] and captured.skipped == []
        replaced = {"/".join(c.path) for c in found.changes if c.replaces}
        check_moves(captured, qualifying_moves(renames, before, after, replaced))
        apply_and_roll_back(ws, captured, scope, before, after)


# --- the walks on hard trees -------------------------------------------------------------------


def test_a_copy_edit_keeping_size_and_mtime_is_still_seen() -> None:
    """Same size, mtime put back with os.utime: only the change time tells, and it is newer
    than the marker the launcher touched once the copy was made."""
    tree: Tree = {"notes.txt": b"first notes\n", "d": None, "d/other.txt": b"other"}
    with workspace_with(tree) as (ws, scope):
        copy = scope.parent.parent.parent / "copy"
        marker = copy_as_the_launcher_does(scope, copy, pause=0.05)
        edited = copy / "notes.txt"
        st = edited.stat()
        edited.write_bytes(b"FIRST NOTES\n")
        os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
        now, real = edited.stat(), (scope / "notes.txt").stat()
        assert (now.st_size, now.st_mtime_ns) == (real.st_size, real.st_mtime_ns)
        found = copy_changes(scope, copy, marker)
        assert found.changes == [Change(("notes.txt",), F)]  # and nothing untouched
        assert found.skipped == []
        captured = capture(found.changes, LocalSides(ws.storage, SCOPE_PATH, copy, ws.content))
        assert captured.operations == [write("notes.txt", "FIRST NOTES\n", overwrite=True)]


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def nest(root: Path, name: str, depth: int, file: str, file_depth: int | None = None) -> None:
    """``depth`` folders ``name``, one in the other, under ``root``, made by descriptor (the
    path may pass PATH_MAX), with an empty ``file`` in the one ``file_depth`` deep (default:
    the deepest)."""
    file_depth = depth if file_depth is None else file_depth
    fd = os.open(root, _DIR_FLAGS)
    try:
        for level in range(depth + 1):
            if level == file_depth:
                os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd))
            if level == depth:
                break
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """rm -rf: shutil.rmtree recurses once per level (Python 3.11) and would overflow."""
    subprocess.run(["rm", "-rf", "--", str(path)], check=True)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder others may traverse (for walks run as nobody), removed by rm -rf."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        remove(folder)


def both_walks(root: Path, build: Callable[[Path], None]) -> dict[str, Callable[[], Found]]:
    """The overlay walk and the copy walk over what ``build`` made new beside a scope of one
    file: an upper layer with a merged view as an overlay would show it (the scope's file and
    the upper's), and a copy made as the launcher makes one."""
    scope, upper, merged, copy = root / "scope", root / "upper", root / "merged", root / "copy"
    scope.mkdir()
    (scope / "kept.txt").write_bytes(b"kept")
    upper.mkdir()
    build(upper)
    copy_as_the_launcher_does(scope, merged)  # the scope's file, as the view shows it
    build(merged)
    # Paused, so the copied file is provably older than the marker and not reported: within one
    # tick it would be (a change time not older than the marker), and capture would find its
    # bytes unchanged.
    marker = copy_as_the_launcher_does(scope, copy, pause=0.05)
    build(copy)
    return {
        "overlay": lambda: upper_changes(upper, merged, scope),
        "copy": lambda: copy_changes(scope, copy, marker),
    }


def test_walks_go_down_1500_nested_folders_without_recursion() -> None:
    depth = 1500
    with scratch_dir() as root:
        walks = both_walks(root, lambda result: nest(result, "d", depth, "f.txt"))
        deepest = ("d",) * depth
        expected = [Change(deepest[:i], D) for i in range(1, depth + 1)]
        expected.append(Change((*deepest, "f.txt"), F))
        for mode, walk in walks.items():
            found = walk()
            assert found.changes == expected, mode
            assert found.skipped == [], mode


def test_a_path_past_path_max_is_skipped_with_a_reason_not_raised() -> None:
    name = "n" * 100
    depth = PATH_MAX_BYTES // (len(name) + 1) + 3  # 43 levels, 4,342 bytes
    # The first folder whose path is too long, and a file beside it whose path is too long too
    # (in a folder whose own path is not).
    fits = PATH_MAX_BYTES // (len(name) + 1)
    too_long = (name,) * (fits + 1)
    long_file = (*too_long[:-1], "f" * 100)
    assert len(render(too_long)) > PATH_MAX_BYTES >= len(render(too_long[:-1]))
    assert len(render(long_file)) > PATH_MAX_BYTES
    with scratch_dir() as root:
        walks = both_walks(root, lambda result: nest(result, name, depth, "f" * 100, fits))
        for mode, walk in walks.items():
            found = walk()
            assert {
                "path": render(too_long),
                "reason": f"the path is longer than {PATH_MAX_BYTES} bytes; a plan cannot hold it",
            } in found.skipped, mode
            assert all(len(c.path) <= len(too_long) for c in found.changes), mode  # not entered
            assert [c.path for c in found.changes if len(c.path) < len(too_long)] == [
                too_long[:i] for i in range(1, fits + 1)
            ], mode
            # Capture names no path a plan cannot hold, and says why for each one.
            sides = DictSides({}, {render(long_file): b""})
            captured = capture(found.changes, sides)
            assert captured.operations == [mkdir(render(too_long[:i])) for i in range(1, fits + 1)]
            reasons = {entry["path"]: entry["reason"] for entry in found.skipped}
            reasons.update({entry["path"]: entry["reason"] for entry in captured.skipped})
            for path in (too_long, long_file):
                reason = reasons.get(render(path)) or reasons.get(repr(render(path)), "")
                assert f"longer than {PATH_MAX_BYTES} bytes" in reason, (mode, path)


def as_nobody(walk: Callable[[], Found]) -> Found:
    """``walk`` run as a user that may not open a mode-000 folder: nobody, in a child process,
    when Airlock's tests run as root (root reads any folder); else as this user."""
    if os.geteuid() != 0:
        return walk()
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            found = walk()
            out = {
                "changes": [[list(c.path), c.kind.value, c.replaces] for c in found.changes],
                "skipped": found.skipped,
            }
        except BaseException:
            out, code = {"error": traceback.format_exc()}, 1
        with os.fdopen(write_end, "w") as pipe:
            json.dump(out, pipe)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read) as pipe:
        result = json.load(pipe)
    os.waitpid(pid, 0)
    assert "error" not in result, result["error"]
    return Found(
        [Change(tuple(path), Kind(kind), replaces) for path, kind, replaces in result["changes"]],
        result["skipped"],
    )


def test_a_folder_of_mode_000_is_reported_never_raised() -> None:
    def build(result: Path) -> None:
        (result / "locked").mkdir()
        (result / "locked" / "inside.txt").write_bytes(b"secret")
        (result / "locked").chmod(0)
        (result / "new.txt").write_bytes(b"new")

    with scratch_dir() as root:
        walks = both_walks(root, build)
        for mode, walk in walks.items():
            if os.geteuid() == 0:  # root opens it like any other folder: everything is a change
                found = walk()
                assert sorted(found.changes, key=lambda c: c.path) == [
                    Change(("locked",), D),
                    Change(("locked", "inside.txt"), F),
                    Change(("new.txt",), F),
                ], mode
                assert found.skipped == [], mode
            # A reader it shuts out gets the folder, what is beside it, and why the rest is not.
            found = as_nobody(walk)
            changed = sorted(found.changes, key=lambda c: c.path)
            assert changed == [Change(("locked",), D), Change(("new.txt",), F)], mode
            assert found.skipped == [
                {"path": "locked", "reason": "the run left a folder Airlock cannot open"}
            ], mode
