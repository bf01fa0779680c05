"""Validating moves reads no file; what a move carries is checked at rollback by identity.

Validation hashes only what a plan deletes, overwrites (keeps aside) or copies; a moved file or
folder is recorded by its identity (inode, size, modification time; a folder's entries' full
fingerprints), from stats alone. A rollback still refuses when what it would move back was
changed after the apply. Bytes read are counted by a memory backend whose ``read`` counts them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airlock import journal
from airlock.paths import RelPath
from airlock.permissions import Role
from airlock.plan import parse_plan
from airlock.policy import Policy
from airlock.rollback import find_conflicts
from airlock.storage.base import Storage
from airlock.storage.local import LocalStorage
from airlock.storage.memory import MemoryStorage
from airlock.validate import Validation, validate
from airlock.workspace import Workspace
from support import CASE, make_plan, person

SCOPE = "projects/Case"
S: RelPath = ("projects", "Case")


class CountingStorage(MemoryStorage):
    """The memory backend, counting the bytes its ``read`` hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def read(self, path: RelPath) -> Iterator[bytes]:
        for chunk in super().read(path):
            self.bytes_read += len(chunk)
            yield chunk


def p(text: str) -> RelPath:
    return (*S, *text.split("/"))


def case(storage: MemoryStorage, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> None:
    for made in ((".airlock",), (".airlock", "trash"), ("projects",), S):
        storage.mkdir(made)
    for folder in dirs:
        storage.mkdir(p(folder))
    for name, data in files.items():
        storage.create(p(name), [data])


def run(storage: Storage, *ops: dict[str, Any]) -> Validation:
    plan = parse_plan({"scope": SCOPE, "author": "agent", "operations": list(ops)})
    report = validate(plan, storage, Policy())
    assert report.valid, report.errors
    return report


def apply(storage: Storage, report: Validation, tmp: Path, txn: str = "t1") -> list[journal.Step]:
    """Run the report's steps; every file written holds b"written"."""
    steps = journal.compile_apply(report.changes, txn)
    cursor = journal.Cursor(tmp / f"{txn}.cursor")
    journal.run_steps(storage, steps, cursor, lambda _op: b"written")
    cursor.remove()
    return steps


def conflicts(storage: Storage, report: Validation) -> list[str]:
    return [str(c) for c in find_conflicts(storage, report.changes)]


def edit_in_memory(storage: MemoryStorage, path: RelPath, data: bytes, *, keep_mtime: bool) -> None:
    """Change a file's bytes in place, as a writer would (same inode); optionally put its
    modification time back afterwards, as `touch -r` would (its ctime still moves)."""
    node = storage._get(path)
    mtime = node.mtime
    node.data = data
    node.touch()
    if keep_mtime:
        node.mtime = mtime


# --- bytes read ---------------------------------------------------------------------------


def test_validating_a_thousand_moves_reads_no_file() -> None:
    storage = CountingStorage()
    files = {
        f"in/{i // 100}/doc-{i:04d}.pdf": b"%PDF " + bytes([i % 256]) * 500 for i in range(900)
    }
    files.update({f"folders/f{i}/x.pdf": b"inside" * 100 for i in range(100)})
    folders = ("folders", *(f"folders/f{i}" for i in range(100)))
    case(storage, files, dirs=("in", *(f"in/{n}" for n in range(9)), *folders))
    ops: list[dict[str, Any]] = [
        {
            "op": "move",
            "source": f"in/{i // 100}/doc-{i:04d}.pdf",
            "destination": f"out/{i % 10}/doc-{i:04d}.pdf",
            "parents": True,
        }
        for i in range(900)
    ]
    ops += [
        {"op": "move", "source": f"folders/f{i}", "destination": f"moved/f{i}", "parents": True}
        for i in range(99)
    ]
    ops.append({"op": "move", "source": "folders/f99", "destination": "folders/renamed"})
    assert len(ops) == 1000
    report = run(storage, *ops)
    assert storage.bytes_read == 0
    moves = [c for c in report.changes if c.action == "move"]
    assert len(moves) == 1000
    assert all(c.sha256_after is None and c.identity for c in moves)
    assert moves[0].identity is not None and moves[0].identity.startswith("id:file:")
    assert moves[-1].identity is not None and moves[-1].identity.startswith("tree-id:")
    # Preconditions of moved files are their stat fingerprints (no content).
    entry = storage.stat(p("in/0/doc-0000.pdf"))
    assert entry is not None
    assert report.preconditions[f"{SCOPE}/in/0/doc-0000.pdf"] == entry.fingerprint()


def test_a_move_of_what_the_plan_made_reads_nothing_either() -> None:
    storage = CountingStorage()
    case(storage, {"a.pdf": b"a" * 100, "src/b.pdf": b"b" * 100}, dirs=("src",))
    report = run(
        storage,
        {"op": "move", "source": "a.pdf", "destination": "New/a.pdf", "parents": True},
        {"op": "write", "path": "New/note.txt", "text": "note"},
        {"op": "move", "source": "New", "destination": "Renamed"},
        {"op": "move", "source": "Renamed/note.txt", "destination": "note.txt"},
    )
    assert storage.bytes_read == 0
    made_folder = report.changes[-2]
    assert made_folder.identity is not None and made_folder.identity.startswith("tree-new:")
    assert report.changes[-1].sha256_after == hashlib.sha256(b"note").hexdigest()
    assert report.changes[-1].identity is None


def test_what_is_deleted_overwritten_or_copied_is_still_hashed() -> None:
    storage = CountingStorage()
    case(
        storage,
        {"old.txt": b"o" * 10, "keep.txt": b"k" * 20, "copy.pdf": b"c" * 30, "d/x": b"x" * 40},
        dirs=("d",),
    )
    report = run(
        storage,
        {"op": "delete", "path": "old.txt"},
        {"op": "write", "path": "keep.txt", "text": "new", "overwrite": True},
        {"op": "copy", "source": "copy.pdf", "destination": "copy2.pdf"},
        {"op": "delete", "path": "d"},
    )
    assert storage.bytes_read == 10 + 20 + 30 + 40
    deleted, overwritten, copied, folder = report.changes
    assert deleted.sha256_before == hashlib.sha256(b"o" * 10).hexdigest()
    assert overwritten.sha256_before == hashlib.sha256(b"k" * 20).hexdigest()
    assert copied.sha256_after == hashlib.sha256(b"c" * 30).hexdigest()
    assert folder.sha256_before is not None and folder.sha256_before.startswith("tree:")


def test_a_move_over_a_file_hashes_only_the_file_kept_aside() -> None:
    storage = CountingStorage()
    case(storage, {"new.pdf": b"n" * 1000, "old.pdf": b"o" * 7})
    report = run(
        storage, {"op": "move", "source": "new.pdf", "destination": "old.pdf", "overwrite": True}
    )
    assert storage.bytes_read == 7
    assert report.changes[0].sha256_before == hashlib.sha256(b"o" * 7).hexdigest()


# --- rollback still sees what changed after the apply ---------------------------------------


def test_rollback_sees_a_moved_file_edited_replaced_or_removed(tmp_path: Path) -> None:
    for change in ("edit", "replace", "remove", "none"):
        storage = MemoryStorage()
        case(storage, {"a.pdf": b"original"})
        report = run(
            storage, {"op": "move", "source": "a.pdf", "destination": "b/a.pdf", "parents": True}
        )
        apply(storage, report, tmp_path)
        assert conflicts(storage, report) == []
        moved = p("b/a.pdf")
        if change == "edit":
            edit_in_memory(storage, moved, b"tampered", keep_mtime=False)
        elif change == "replace":
            storage.unlink(moved)
            storage.create(moved, [b"original"])  # same bytes, another file
        elif change == "remove":
            storage.unlink(moved)
        expected = {
            "edit": [f"{SCOPE}/b/a.pdf: was modified since the apply"],
            "replace": [f"{SCOPE}/b/a.pdf: was modified since the apply"],
            "remove": [f"{SCOPE}/b/a.pdf: was removed since the apply"],
            "none": [],
        }[change]
        assert conflicts(storage, report) == expected, change


def test_rollback_sees_any_change_inside_a_moved_folder(tmp_path: Path) -> None:
    def moved_folder() -> tuple[MemoryStorage, Validation]:
        storage = MemoryStorage()
        case(storage, {"d/x.pdf": b"x", "d/sub/y.pdf": b"y"}, dirs=("d", "d/sub"))
        report = run(
            storage,
            {"op": "write", "path": "d/placed.txt", "text": "written"},  # as apply() writes
            {"op": "move", "source": "d", "destination": "Filed/d", "parents": True},
        )
        apply(storage, report, tmp_path)
        assert conflicts(storage, report) == []
        return storage, report

    storage, report = moved_folder()
    # Even an edit that puts the modification time back is seen: inside a moved folder the
    # ctime is compared too (renaming the folder leaves its entries' ctimes alone).
    edit_in_memory(storage, p("Filed/d/sub/y.pdf"), b"Y", keep_mtime=True)
    assert conflicts(storage, report) == [f"{SCOPE}/Filed/d: was modified since the apply"]
    storage, report = moved_folder()
    storage.create(p("Filed/d/sub/late.pdf"), [b"late"])
    assert conflicts(storage, report) == [f"{SCOPE}/Filed/d: was modified since the apply"]
    storage, report = moved_folder()
    storage.unlink(p("Filed/d/x.pdf"))
    assert conflicts(storage, report) == [f"{SCOPE}/Filed/d: was modified since the apply"]
    storage, report = moved_folder()
    edit_in_memory(storage, p("Filed/d/placed.txt"), b"edited", keep_mtime=True)
    assert conflicts(storage, report) == [
        f"{SCOPE}/Filed/d/placed.txt: was modified since the apply"
    ]


def test_rollback_sees_a_change_in_a_moved_folder_the_plan_made(tmp_path: Path) -> None:
    storage = MemoryStorage()
    case(storage, {"src/a.pdf": b"a", "b.pdf": b"b"}, dirs=("src",))
    report = run(
        storage,
        {"op": "copy", "source": "src", "destination": "copy"},
        {"op": "move", "source": "b.pdf", "destination": "copy/b.pdf"},
        {"op": "move", "source": "copy", "destination": "moved"},
    )
    apply(storage, report, tmp_path)
    assert conflicts(storage, report) == []
    edit_in_memory(storage, p("moved/a.pdf"), b"A", keep_mtime=True)
    assert conflicts(storage, report) == [f"{SCOPE}/moved: was modified since the apply"]


def test_on_disk_an_edit_after_the_move_is_a_rollback_conflict(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for folder in (".airlock/trash", f"{SCOPE}/d"):
        (root / folder).mkdir(parents=True)
    (root / SCOPE / "a.pdf").write_bytes(b"original a")
    (root / SCOPE / "d" / "x.pdf").write_bytes(b"original x")
    storage = LocalStorage(root)
    try:
        report = run(
            storage,
            {"op": "move", "source": "a.pdf", "destination": "Filed/a.pdf", "parents": True},
            {"op": "move", "source": "d", "destination": "Filed/d"},
        )
        apply(storage, report, tmp_path)
        assert conflicts(storage, report) == []
        inner = root / SCOPE / "Filed" / "d" / "x.pdf"
        before = os.stat(inner)
        with inner.open("r+b") as handle:  # the same inode, the same size
            handle.write(b"ORIGINAL")
        os.utime(inner, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime back
        assert conflicts(storage, report) == [f"{SCOPE}/Filed/d: was modified since the apply"]
        moved = root / SCOPE / "Filed" / "a.pdf"
        with moved.open("ab") as handle:
            handle.write(b" and more")
        assert conflicts(storage, report) == [
            f"{SCOPE}/Filed/a.pdf: was modified since the apply",
            f"{SCOPE}/Filed/d: was modified since the apply",
        ]
    finally:
        storage.close()


# --- the audit ------------------------------------------------------------------------------


def test_the_applied_event_records_a_moves_identity(ws: Workspace, root: Path) -> None:
    record = ws.submit(
        make_plan(
            {
                "op": "move",
                "source": "inbox/scan1.pdf",
                "destination": "Filed/scan1.pdf",
                "parents": True,
            },
            {"op": "move", "source": "inbox", "destination": "Filed/inbox"},
        ),
        by=person("agent", Role.AGENT),
    )
    record = ws.validate(record.id)
    assert ws.apply(record.id, by=person("agent", Role.AGENT)).success
    applied = next(e for e in ws.audit_events(record.id) if e["kind"] == "applied")
    made, moved, folder = applied["payload"]["operations"]
    assert made == {"op": 0, "action": "mkdir", "path": f"{CASE}/Filed", "kind": "dir"}
    stat = os.stat(root / CASE / "Filed" / "scan1.pdf")
    assert moved["identity"] == f"id:file:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    assert "sha256_after" not in moved
    assert folder["identity"].startswith("tree-id:") and folder["files"] == 1
