"""Unit tests of validation (the dry run) on the in-memory backend, plus a few real-disk cases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import InputError, PlanFormatError, UnsafePathError
from airlock.paths import RelPath
from airlock.plan import Plan, parse_plan
from airlock.policy import Limits, Policy
from airlock.storage.base import Storage
from airlock.storage.local import LocalStorage
from airlock.storage.memory import MemoryStorage
from airlock.validate import Validation, stale_paths, validate

SCOPE = "projects/Case"
S: RelPath = ("projects", "Case")


def p(text: str) -> RelPath:
    """A scope-relative path as a workspace RelPath."""
    return (*S, *text.split("/"))


def w(text: str) -> str:
    """A scope-relative path as rendered workspace-relative text (as in reports)."""
    return f"{SCOPE}/{text}"


def make_storage(
    files: dict[str, bytes] | None = None,
    dirs: tuple[str, ...] = (),
    symlinks: dict[str, str] | None = None,
    specials: tuple[str, ...] = (),
) -> MemoryStorage:
    """A memory workspace with the default areas, the scope folder, and the given entries."""
    storage = MemoryStorage()
    for area in ("projects", "Tools", "Database", "Reports"):
        storage.mkdir((area,))
    storage.mkdir(S)
    storage.mkdir(("Tools", "scripts"))
    for folder in dirs:
        storage.mkdir(p(folder))
    for name, data in (files or {}).items():
        storage.create(p(name), [data])
    for name, target in (symlinks or {}).items():
        storage.add_symlink(p(name), target)
    for name in specials:
        storage.add_special(p(name))
    return storage


def plan(*ops: dict[str, Any], scope: str = SCOPE) -> Plan:
    return parse_plan({"scope": scope, "author": "agent", "operations": list(ops)})


def run(
    storage: Storage, *ops: dict[str, Any], policy: Policy | None = None, scope: str = SCOPE
) -> Validation:
    return validate(plan(*ops, scope=scope), storage, policy or Policy())


def error_codes(report: Validation) -> list[str]:
    return [issue.code for issue in report.errors]


def warning_codes(report: Validation) -> list[str]:
    return [issue.code for issue in report.warnings]


def only_error(report: Validation, code: str) -> str:
    """The single error's message, after checking it has ``code`` and the report is invalid."""
    assert not report.valid
    assert error_codes(report) == [code], report.errors
    assert report.changes == []
    assert report.needs_approval == []
    return report.errors[0].message


def mkdir(path: str) -> dict[str, Any]:
    return {"op": "mkdir", "path": path}


def write(path: str, text: str = "x", overwrite: bool = False) -> dict[str, Any]:
    return {"op": "write", "path": path, "text": text, "overwrite": overwrite}


def copy(source: str, destination: str, overwrite: bool = False) -> dict[str, Any]:
    return {"op": "copy", "source": source, "destination": destination, "overwrite": overwrite}


def move(source: str, destination: str, overwrite: bool = False) -> dict[str, Any]:
    return {"op": "move", "source": source, "destination": destination, "overwrite": overwrite}


def delete(path: str) -> dict[str, Any]:
    return {"op": "delete", "path": path}


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [move("nope", "there"), copy("nope", "there"), delete("nope"), delete("d/nope")],
    ids=["move", "copy", "delete", "delete-in-folder"],
)
def test_missing_source(op: dict[str, Any]) -> None:
    storage = make_storage(dirs=("d",))
    message = only_error(run(storage, op), "missing-source")
    assert "does not exist" in message
    assert message.startswith(f"operation 1 ({op['op']})")


@pytest.mark.parametrize(
    "op",
    [write("f.txt"), copy("g.txt", "f.txt"), move("g.txt", "f.txt")],
    ids=["write", "copy", "move"],
)
def test_destination_collision_without_overwrite(op: dict[str, Any]) -> None:
    storage = make_storage(files={"f.txt": b"old", "g.txt": b"new"})
    message = only_error(run(storage, op), "exists")
    assert "overwrite" in message
    report = run(storage, {**op, "overwrite": True})
    assert report.valid, report.errors
    assert report.changes[-1].replaces
    assert report.changes[-1].path == w("f.txt")


def test_overwrite_never_replaces_a_folder_or_symlink() -> None:
    storage = make_storage(files={"g.txt": b"new"}, dirs=("d",), symlinks={"ln": "g.txt"})
    for target in ("d", "ln"):
        message = only_error(run(storage, write(target, overwrite=True)), "exists")
        assert "only files can be overwritten" in message
    # A folder onto a file is refused too.
    storage.create(p("f.txt"), [b"x"])
    only_error(run(storage, copy("d", "f.txt", overwrite=True)), "exists")


def test_mkdir_over_a_file_is_an_error() -> None:
    storage = make_storage(files={"f": b"x"})
    assert "already exists as a file" in only_error(run(storage, mkdir("f")), "exists")


def test_area_outside_policy() -> None:
    storage = make_storage()
    storage.mkdir(("elsewhere",))
    storage.mkdir(("elsewhere", "x"))
    message = only_error(run(storage, mkdir("a"), scope="elsewhere/x"), "scope")
    assert "not inside a workspace area" in message


def test_read_only_area() -> None:
    storage = make_storage()
    message = only_error(run(storage, mkdir("a"), scope="Tools/scripts"), "scope")
    assert "read-only" in message


def test_whole_area_scope() -> None:
    storage = make_storage()
    message = only_error(run(storage, mkdir("a"), scope="projects"), "scope")
    assert "whole area" in message


def test_scope_folder_must_exist_and_be_a_folder() -> None:
    storage = make_storage(files={"file": b"x"})
    message = only_error(run(storage, mkdir("a"), scope="projects/Other"), "scope")
    assert "does not exist" in message
    message = only_error(run(storage, mkdir("a"), scope=f"{SCOPE}/file"), "scope")
    assert "is a file, not a folder" in message
    storage.add_symlink(("projects", "Link"), "Case")
    message = only_error(run(storage, mkdir("a"), scope="projects/Link"), "scope")
    assert "is a symlink" in message


@pytest.mark.parametrize("path", ["../Other/x", "/etc/passwd", "a/../../x", "a//b", "a\\b", "."])
def test_paths_out_of_scope_are_refused_before_validation(path: str) -> None:
    # Refused while parsing (as an UnsafePathError or as a field error of the plan format).
    with pytest.raises((UnsafePathError, PlanFormatError)) as caught:
        plan(write(path))
    assert isinstance(caught.value, InputError)


def test_state_folder_cannot_be_a_scope() -> None:
    with pytest.raises(PlanFormatError):
        plan(mkdir("x"), scope=".airlock/trash")


def test_nothing_goes_through_a_symlink() -> None:
    storage = make_storage(dirs=("real",), symlinks={"link": "real"})
    message = only_error(run(storage, write("link/x.txt")), "symlink-in-path")
    assert "never followed" in message
    only_error(run(storage, write("link/deeper/x.txt")), "symlink-in-path")
    only_error(run(storage, move("link/x", "y")), "symlink-in-path")


def test_a_file_is_not_a_folder() -> None:
    storage = make_storage(files={"f.txt": b"x"})
    assert "not a folder" in only_error(run(storage, write("f.txt/x")), "not-a-folder")


def test_protected_path_pattern() -> None:
    policy = Policy(protected=(f"{SCOPE}/secret*",))
    storage = make_storage(files={"secret.txt": b"s", "plain.txt": b"p"}, dirs=("d",))
    storage.create(p("d/secret-inside"), [b"x"])
    for op in (
        write("secret.txt", overwrite=True),
        write("secret-new.txt"),
        delete("secret.txt"),
        move("plain.txt", "secret2"),
        move("secret.txt", "plain2.txt"),
    ):
        message = only_error(run(storage, op, policy=policy), "protected")
        assert "protected by policy" in message
    # A pattern protects what is below it, and so what is inside a folder being deleted.
    policy = Policy(protected=(f"{SCOPE}/d",))
    only_error(run(storage, write("d/new"), policy=policy), "protected")
    deep = Policy(protected=(f"{SCOPE}/d/secret-*",))
    message = only_error(run(storage, delete("d"), policy=deep), "protected")
    assert "inside is protected" in message
    assert run(storage, delete("plain.txt"), policy=deep).valid


def test_limit_operations() -> None:
    policy = Policy(limits=Limits(max_operations=2))
    storage = make_storage()
    assert run(storage, mkdir("a"), mkdir("b"), policy=policy).valid
    message = only_error(
        run(storage, mkdir("a"), mkdir("b"), mkdir("c"), policy=policy), "limit-operations"
    )
    assert "3 operations" in message and "allows 2" in message


def test_limit_bytes() -> None:
    policy = Policy(limits=Limits(max_bytes_written=10))
    storage = make_storage(files={"six": b"123456"})
    assert run(storage, write("a", "1234567890"), policy=policy).valid
    assert "11 bytes" in only_error(
        run(storage, write("a", "12345678901"), policy=policy), "limit-bytes"
    )
    # Copies count: 6 + 6 > 10.
    only_error(run(storage, copy("six", "c1"), copy("six", "c2"), policy=policy), "limit-bytes")


def test_limit_deletions() -> None:
    policy = Policy(limits=Limits(max_deletions=1))
    storage = make_storage(files={"a": b"", "b": b""})
    assert run(storage, delete("a"), policy=policy).valid
    message = only_error(run(storage, delete("a"), delete("b"), policy=policy), "limit-deletions")
    assert "deletes 2 files" in message


def test_missing_parent_hints_to_mkdir() -> None:
    storage = make_storage()
    message = only_error(run(storage, write("a/b/c.txt")), "missing-parent")
    assert w("a/b") in message
    assert "add a mkdir" in message
    only_error(run(storage, mkdir("a/b")), "missing-parent")
    assert run(storage, mkdir("a"), mkdir("a/b"), write("a/b/c.txt")).valid


@pytest.mark.parametrize("op_name", ["move", "copy"])
def test_folder_into_itself(op_name: str) -> None:
    storage = make_storage(dirs=("d", "d/sub"))
    op = {"op": op_name, "source": "d", "destination": "d/sub/d"}
    assert "into itself" in only_error(run(storage, op), "into-itself")
    op = {"op": op_name, "source": "d", "destination": "d/x"}
    only_error(run(storage, op), "into-itself")
    # 'd2' is a sibling, not inside 'd'.
    storage.mkdir(p("d2"))
    assert run(storage, {"op": op_name, "source": "d", "destination": "d2/d"}).valid


def test_move_onto_itself() -> None:
    storage = make_storage(files={"f": b"x"})
    only_error(run(storage, move("f", "f")), "same-path")


def test_copy_of_symlink() -> None:
    storage = make_storage(dirs=("d",), symlinks={"ln": "anything"})
    storage.add_symlink(p("d/inner"), "../ln")
    assert "can be moved, not copied" in only_error(run(storage, copy("ln", "ln2")), "copy-link")
    message = only_error(run(storage, copy("d", "d2")), "copy-link")
    assert w("d/inner") in message
    # Moving (and deleting) a symlink or a folder holding one is fine: it is an entry.
    assert run(storage, move("ln", "ln2"), move("d", "d2"), delete("d2")).valid


def test_special_file() -> None:
    storage = make_storage(dirs=("d",), specials=("fifo",))
    storage.add_special(p("d/fifo"))
    for op in (copy("fifo", "x"), move("fifo", "x")):
        assert "FIFO" in only_error(run(storage, op), "special-file")
    only_error(run(storage, copy("d", "d2")), "copy-link")


def test_name_collision_after_case_folding_and_normalisation() -> None:
    storage = make_storage(files={"Report.txt": b"x", "caf\u00e9": b"y"})
    message = only_error(run(storage, write("report.TXT")), "name-collision")
    assert "'Report.txt'" in message
    only_error(run(storage, write("cafe\u0301")), "name-collision")
    # Names the plan itself creates collide too.
    only_error(run(storage, mkdir("New"), mkdir("NEW")), "name-collision")


def test_name_too_long_for_the_store() -> None:
    class ShortNames(MemoryStorage):
        def name_max(self) -> int:
            return 8

    storage = ShortNames()
    storage.mkdir(("projects",))
    storage.mkdir(S)
    assert "this filesystem allows 8" in only_error(
        run(storage, write("123456789")), "name-too-long"
    )
    assert run(storage, write("12345678")).valid


def test_errors_are_reported_per_operation() -> None:
    storage = make_storage()
    report = run(storage, write("ok"), delete("gone"), write("a/b"))
    assert error_codes(report) == ["missing-source", "missing-parent"]
    assert [issue.op for issue in report.errors] == [1, 2]


# --- warnings -----------------------------------------------------------------------------


def test_mkdir_of_existing_folder_warns_and_is_skipped() -> None:
    storage = make_storage(dirs=("d",))
    report = run(storage, mkdir("d"))
    assert report.valid
    assert warning_codes(report) == ["exists"]
    assert "already exists; skipped" in report.warnings[0].message
    assert report.changes == []
    assert report.counts == {}
    # A folder made earlier in the same plan counts as existing too.
    report = run(storage, mkdir("e"), mkdir("e"))
    assert warning_codes(report) == ["exists"]
    assert [c.action for c in report.changes] == ["mkdir"]


def test_folder_delete_warns_with_counts() -> None:
    storage = make_storage(dirs=("d", "d/sub"), files={"d/a": b"12345", "d/sub/b": b"123"})
    storage.add_symlink(p("d/ln"), "a")
    report = run(storage, delete("d"))
    assert report.valid
    assert warning_codes(report) == ["delete-folder", "only-copy"]  # its files have no copy
    assert "with 2 file(s), 8 bytes" in report.warnings[0].message
    (change,) = report.changes
    assert (change.action, change.kind, change.size) == ("delete", "dir", 8)
    assert change.sha256_before is not None and change.sha256_before.startswith("tree:")
    assert report.bytes_removed == 8


def test_hard_link_warning(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "projects" / "Case").mkdir(parents=True)
    (root / "projects" / "Case" / "f.txt").write_bytes(b"shared")
    os.link(root / "projects" / "Case" / "f.txt", root / "projects" / "Case" / "twin.txt")
    storage = LocalStorage(root)
    try:
        report = run(storage, write("f.txt", "new", overwrite=True))
        assert report.valid
        assert warning_codes(report) == ["hard-link"]
        assert "2 hard links" in report.warnings[0].message
    finally:
        storage.close()


def test_non_nfc_and_space_warnings() -> None:
    storage = make_storage()
    report = run(storage, write("cafe\u0301.txt"), mkdir(" padded"))
    assert report.valid
    assert warning_codes(report) == ["not-nfc", "spaces"]
    assert [issue.op for issue in report.warnings] == [0, 1]
    assert warning_codes(run(storage, write("caf\u00e9.txt"))) == []


# --- each operation sees the ones before it ----------------------------------------------


def test_mkdir_then_write_inside() -> None:
    storage = make_storage()
    report = run(storage, mkdir("a"), mkdir("a/b"), write("a/b/c.txt", "hi"))
    assert report.valid, report.errors
    assert [(c.action, c.path) for c in report.changes] == [
        ("mkdir", w("a")),
        ("mkdir", w("a/b")),
        ("create", w("a/b/c.txt")),
    ]


def test_move_then_write_at_old_name() -> None:
    storage = make_storage(files={"f": b"old"})
    report = run(storage, move("f", "g"), write("f", "new"))
    assert report.valid, report.errors
    assert [(c.action, c.path, c.replaces) for c in report.changes] == [
        ("move", w("g"), False),
        ("create", w("f"), False),
    ]
    assert report.needs_approval == []
    # The new name is taken now.
    only_error(run(storage, move("f", "g"), write("g", "new")), "exists")
    # And the old one is gone.
    only_error(run(storage, move("f", "g"), delete("f")), "missing-source")


def test_delete_then_write_at_same_name() -> None:
    storage = make_storage(files={"f": b"old"}, dirs=("d",))
    report = run(storage, delete("f"), write("f", "new"), delete("d"), mkdir("d"))
    assert report.valid, report.errors
    assert [(c.action, c.replaces) for c in report.changes] == [
        ("delete", False),
        ("create", False),
        ("delete", False),
        ("mkdir", False),
    ]
    assert report.counts == {"delete": 2, "write": 1, "mkdir": 1}


def test_move_folder_then_move_a_file_inside_by_its_new_path() -> None:
    storage = make_storage(dirs=("d", "d/sub"), files={"d/sub/x": b"x"})
    report = run(storage, move("d", "e"), move("e/sub/x", "e/y"), write("e/sub/z", "z"))
    assert report.valid, report.errors
    assert [(c.action, c.source, c.path) for c in report.changes] == [
        ("move", w("d"), w("e")),
        ("move", w("e/sub/x"), w("e/y")),
        ("create", None, w("e/sub/z")),
    ]
    only_error(run(storage, move("d", "e"), move("d/sub/x", "y")), "missing-parent")
    only_error(run(storage, move("d", "e"), move("e/sub/nope", "y")), "missing-source")


def test_copy_then_use_the_copy() -> None:
    storage = make_storage(dirs=("d",), files={"d/x": b"abc"})
    report = run(storage, copy("d", "e"), write("e/x", "new", overwrite=True), delete("d"))
    assert report.valid, report.errors
    copied = report.changes[0]
    assert (copied.action, copied.kind, copied.size) == ("copy", "dir", 3)
    assert report.changes[1].replaces
    assert report.changes[1].sha256_before == storage.sha256(p("d/x"))


def test_folder_deleted_then_recreated_has_no_old_children() -> None:
    storage = make_storage(dirs=("d",), files={"d/x": b"abc"})
    only_error(run(storage, delete("d"), mkdir("d"), delete("d/x")), "missing-source")
    assert run(storage, delete("d"), mkdir("d"), write("d/x", "new")).valid


# --- counts, bytes, approval, preconditions ------------------------------------------------


def test_counts_and_bytes() -> None:
    storage = make_storage(files={"old": b"1234", "big": b"1234567890", "src": b"abc"})
    report = run(
        storage,
        mkdir("d"),
        write("d/new", "hello"),
        write("old", "xy", overwrite=True),
        copy("src", "d/src"),
        copy("src", "big", overwrite=True),
        move("d/src", "moved"),
        delete("moved"),
    )
    assert report.valid, report.errors
    assert report.counts == {
        "mkdir": 1,
        "write": 1,
        "overwrite": 2,
        "copy": 2,
        "move": 1,
        "delete": 1,
    }
    assert report.bytes_written == 5 + 2 + 3 + 3
    assert report.bytes_removed == 4 + 10 + 3
    assert sorted(report.needs_approval) == ["1 delete(s)", "2 overwrite(s)"]


def test_needs_approval_under_the_default_policy() -> None:
    storage = make_storage(files={"f": b"x", "g": b"y"}, dirs=("d",))
    assert run(storage, delete("f")).needs_approval == ["1 delete(s)"]
    assert run(storage, write("f", overwrite=True)).needs_approval == ["1 overwrite(s)"]
    assert run(storage, move("g", "f", overwrite=True)).needs_approval == ["1 overwrite(s)"]
    additive = run(storage, mkdir("n"), write("n/a"), copy("d", "n/d"), move("g", "n/g"))
    assert additive.valid and additive.needs_approval == []
    everything = Policy(approval_required_for=("any",))
    assert run(storage, mkdir("n"), policy=everything).needs_approval == ["policy: all plans"]


def test_preconditions_record_present_and_absent_paths() -> None:
    storage = make_storage(files={"f": b"x"}, dirs=("d",))
    report = run(storage, write("d/new"), move("f", "g"), delete("d"))
    assert report.valid, report.errors
    pre = report.preconditions
    for present in ("f", "d"):
        entry = storage.stat(p(present))
        assert entry is not None
        assert pre[w(present)] == entry.fingerprint()
    for absent in ("d/new", "g"):
        assert w(absent) in pre
        assert pre[w(absent)] is None
    assert pre[SCOPE] is not None and pre["projects"] is not None
    assert stale_paths(pre, storage) == []


def test_invalid_plan_still_records_what_it_looked_at() -> None:
    storage = make_storage()
    report = run(storage, delete("nope"))
    assert not report.valid
    assert report.preconditions[w("nope")] is None


# --- stale plans ---------------------------------------------------------------------------


def test_stale_modified_file() -> None:
    storage = make_storage(files={"f": b"old"})
    pre = run(storage, write("f", "x", overwrite=True)).preconditions
    storage.unlink(p("f"))
    storage.create(p("f"), [b"changed"])
    assert stale_paths(pre, storage) == [f"{w('f')}: modified since validation"]


def test_stale_file_appeared_at_an_absent_path() -> None:
    storage = make_storage()
    pre = run(storage, write("new", "x")).preconditions
    storage.create(p("new"), [b"someone else"])
    assert stale_paths(pre, storage) == [f"{w('new')}: appeared since validation"]


def test_stale_file_disappeared() -> None:
    storage = make_storage(files={"f": b"x"})
    pre = run(storage, delete("f")).preconditions
    storage.unlink(p("f"))
    assert stale_paths(pre, storage) == [f"{w('f')}: disappeared since validation"]


def test_stale_folder_replaced_by_symlink() -> None:
    storage = make_storage(dirs=("d",), files={"d/x": b"x"})
    pre = run(storage, write("d/y", "y"), move("d/x", "d/z")).preconditions
    storage.remove_tree(p("d"))
    storage.add_symlink(p("d"), "/tmp")
    stale = stale_paths(pre, storage)
    assert f"{w('d')}: was a dir, is now a symlink" in stale
    assert f"{w('d/y')}: now passes through a symbolic link" in stale
    assert f"{w('d/x')}: now passes through a symbolic link" in stale


def test_stale_ignores_changes_to_other_children_of_a_folder() -> None:
    storage = make_storage(dirs=("d",))
    pre = run(storage, write("d/y", "y")).preconditions
    storage.create(p("d/unrelated"), [b"x"])
    assert stale_paths(pre, storage) == []


def test_stale_in_place_edit_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "projects" / "Case").mkdir(parents=True)
    target = root / "projects" / "Case" / "f.txt"
    target.write_bytes(b"before")
    storage = LocalStorage(root)
    try:
        pre = run(storage, write("f.txt", "x", overwrite=True)).preconditions
        assert stale_paths(pre, storage) == []
        with open(target, "r+b") as handle:  # same inode, same size, new bytes
            handle.write(b"BEFORE")
        assert stale_paths(pre, storage) == [f"{w('f.txt')}: modified since validation"]
    finally:
        storage.close()


@pytest.mark.parametrize(
    "name", ["invoice\u202efdp.exe", "report\u200b.pdf", "\u2066notes\u2069.txt"]
)
def test_names_with_invisible_or_direction_changing_characters_are_flagged(name: str) -> None:
    # A name with U+202E (right-to-left override) reads as "invoiceexe.pdf" on the review page.
    storage = make_storage({"notes.txt": b"n"}, dirs=("inbox",))
    report = run(storage, write(f"inbox/{name}"), mkdir(name), move("notes.txt", f"x{name}"))

    assert report.valid
    assert warning_codes(report) == ["invisible-characters"] * 3
    assert all("U+" in issue.message for issue in report.warnings)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("invоice.pdf", "inv\\u043eice.pdf"),  # a Cyrillic "о" inside a Latin word
        ("Αlaska.txt", "\\u0391laska.txt"),  # a Greek capital alpha
        ("рор.pdf", "\\u0440\\u043e\\u0440.pdf"),  # a whole Cyrillic word that looks Latin
    ],
)
def test_names_mixing_look_alike_scripts_are_flagged_and_shown_escaped(
    name: str, shown: str
) -> None:
    storage = make_storage({"notes.txt": b"n", "a.txt": b"a"}, dirs=("inbox",))
    report = run(
        storage,
        write(f"inbox/{name}"),
        mkdir(name),
        move("notes.txt", f"inbox/x-{name}"),
        copy("a.txt", f"{name}/a.txt"),  # inside the new folder: no new look-alike name
        copy("a.txt", f"inbox/copy {name}"),
    )

    assert report.valid
    assert warning_codes(report) == ["mixed-script"] * 4
    assert [issue.op for issue in report.warnings] == [0, 1, 2, 4]
    assert f"'{shown}'" in report.warnings[1].message
    assert name not in report.warnings[1].message  # never the misleading form itself


@pytest.mark.parametrize(
    "name",
    [
        "Договор contract.pdf",  # Cyrillic and Latin, each word in one script
        "Иванов - case.pdf",  # a Latin word whose letters also exist in Cyrillic
        "東京タワー.txt",  # Japanese: Han and Katakana in one word
        "naïve café.txt",
        "Straße.txt",
        "cafe\u0301.txt",  # a combining accent (not NFC: warned as that, not as a mix)
    ],
)
def test_names_in_ordinary_scripts_and_mixes_are_not_flagged(name: str) -> None:
    report = run(make_storage(), write(name))
    assert report.valid
    assert warning_codes(report) == (["not-nfc"] if "\u0301" in name else [])
