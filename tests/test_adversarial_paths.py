"""Invariant 4 against a real workspace: no path ever leaves its scope.

Every test runs on a real workspace (``tmp_path / "ws"``) next to a folder ``tmp_path /
"outside"`` full of canaries, and goes through the library exactly as a caller would (submit,
validate, approve, apply). At the end of every test the fixture checks that nothing outside the
workspace, in the sibling case ``projects/Case-A-old`` or in the read-only ``Tools/`` changed:
not a byte, not an mtime, not an entry, and that no plan content landed anywhere outside.

Every refusal must be a clear error that names the problem: an ``InputError`` at submit, or an
error in the validation report.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airlock import journal
from airlock.errors import (
    AirlockError,
    InputError,
    PlanStateError,
    StalePlanError,
)
from airlock.paths import STATE_DIR
from airlock.records import ApplyResult, PlanRecord
from airlock.validate import Issue
from airlock.workspace import Workspace
from support import person

CASE = "projects/Case-A"
OLD = "projects/Case-A-old"
SECRET = b"outside secret: never copied in, never changed"
MARK = "AIRLOCK-PLAN-PAYLOAD"
"""Every byte a plan writes carries this, so a stray write anywhere outside can be found."""
PAST_NS = 1_000_000_000 * 1_000_000_000  # 2001-09-09: a write would move the mtime
DEADLINE = 30.0

NFC_NAME = unicodedata.normalize("NFC", "Résumé.txt")
NFD_NAME = unicodedata.normalize("NFD", "Résumé.txt")


# --- the world --------------------------------------------------------------------------------


Tree = dict[str, tuple[str, bytes, int, int]]


def tree(folder: Path) -> Tree:
    """Every entry under ``folder`` (never following a link): kind, bytes or target, mtime, mode."""
    st = folder.lstat()
    found: Tree = {".": ("dir", b"", st.st_mtime_ns, st.st_mode)}
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            st = path.lstat()
            if path.is_symlink():
                entry = ("link", os.readlink(path).encode(), st.st_mtime_ns, st.st_mode)
            elif path.is_dir():
                entry = ("dir", b"", st.st_mtime_ns, st.st_mode)
            elif path.is_file():
                entry = ("file", path.read_bytes(), st.st_mtime_ns, st.st_mode)
            else:
                entry = ("special", b"", st.st_mtime_ns, st.st_mode)
            found[str(path.relative_to(folder))] = entry
    return found


def files_with_payload(folder: Path) -> list[Path]:
    hits = []
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(parent) / name
            if path.is_file() and not path.is_symlink() and MARK.encode() in path.read_bytes():
                hits.append(path)
    return hits


def age(folder: Path) -> None:
    """Set every mtime under ``folder`` far in the past, so any write shows."""
    for parent, dirs, files in os.walk(folder, topdown=False):
        for name in [*files, *dirs]:
            os.utime(Path(parent) / name, ns=(PAST_NS, PAST_NS), follow_symlinks=False)
    os.utime(folder, ns=(PAST_NS, PAST_NS))


@dataclass
class World:
    ws: Workspace
    root: Path
    case: Path
    old: Path
    outside: Path
    elsewhere: Path
    """A second folder outside the workspace, not a canary: racers may move things into it."""

    def link(self, name: str, target: str | Path) -> Path:
        path = self.case / name
        os.symlink(target, path)
        return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    outside = tmp_path / "outside"
    (outside / "dir" / "sub").mkdir(parents=True)
    (outside / "canary.txt").write_bytes(SECRET)
    (outside / "dir" / "inner.txt").write_bytes(b"inner canary")
    (outside / "dir" / "sub" / "deep.txt").write_bytes(b"deep canary")
    (outside / "hard.txt").write_bytes(b"hard-linked canary")
    (outside / "Case-A-old-lookalike").mkdir()
    age(outside)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    ws = Workspace.init(tmp_path / "ws")
    case = ws.root / CASE
    (case / "docs" / "sub").mkdir(parents=True)
    (case / "docs" / "a.txt").write_text("a in docs\n")
    (case / "plain.txt").write_text("plain\n")
    (case / "notes.txt").write_text("notes\n")
    (case / NFC_NAME).write_text("cv\n")
    (case / "final.txt").write_text("final\n")
    old = ws.root / OLD
    (old / "docs").mkdir(parents=True)
    (old / "keep.txt").write_text("Case-A-old keeps this\n")
    (old / "docs" / "old.txt").write_text("old docs\n")
    (ws.root / "Tools" / "organize.sh").write_text("#!/bin/sh\necho tools\n")
    (ws.root / "Tools" / "scripts").mkdir()
    for folder in (old, ws.root / "Tools"):
        age(folder)
    guarded = {folder: tree(folder) for folder in (outside, old, ws.root / "Tools")}
    policy = (ws.state_dir / "policy.toml").read_bytes()

    yield World(ws, ws.root, case, old, outside, elsewhere)

    ws.close()
    for folder, before in guarded.items():
        assert tree(folder) == before, f"{folder} changed"
    assert (ws.state_dir / "policy.toml").read_bytes() == policy
    assert files_with_payload(outside) + files_with_payload(elsewhere) == []


# --- helpers ----------------------------------------------------------------------------------


def make_plan(*operations: dict[str, Any], scope: str = CASE) -> dict[str, Any]:
    return {
        "scope": scope,
        "description": "adversarial",
        "author": "agent",
        "operations": list(operations),
    }


def write(path: str, *, overwrite: bool = False, text: str = "") -> dict[str, Any]:
    return {"op": "write", "path": path, "text": f"{MARK} {text}", "overwrite": overwrite}


def refused_at_submit(w: World, data: dict[str, Any], *fragments: str) -> InputError:
    with pytest.raises(InputError) as caught:
        w.ws.submit(data)
    text = str(caught.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert caught.value.hint, "a refusal says how to fix it"
    assert w.ws.list_plans() == []
    return caught.value


def refused(w: World, data: dict[str, Any], code: str, *fragments: str) -> list[Issue]:
    record = w.ws.validate(w.ws.submit(data).id)
    assert record.status == "invalid"
    assert record.validation is not None
    errors = record.validation.errors
    assert errors and record.validation.changes == []
    matching = [
        issue
        for issue in errors
        if issue.code == code and all(fragment in issue.message for fragment in fragments)
    ]
    assert matching, f"no {code!r} error naming {fragments}: {[e.model_dump() for e in errors]}"
    with pytest.raises(PlanStateError):
        w.ws.approve(record.id, by=person("jane"))
    with pytest.raises(PlanStateError):
        w.ws.apply(record.id, by=person("jane"))
    return errors


def validated(w: World, data: dict[str, Any]) -> PlanRecord:
    record = w.ws.validate(w.ws.submit(data).id)
    assert record.validation is not None
    assert record.status == "validated", [e.model_dump() for e in record.validation.errors]
    if record.validation.needs_approval:
        record = w.ws.approve(record.id, by=person("jane"), comment="reviewed")
    return record


def applied(w: World, data: dict[str, Any]) -> ApplyResult:
    result = w.ws.apply(validated(w, data).id, by=person("jane"))
    assert result.success, result.error
    return result


# --- strings that try to leave the scope: refused at submit --------------------------------------

PATH_FIELDS = [
    "mkdir.path",
    "write.path",
    "copy.source",
    "copy.destination",
    "move.source",
    "move.destination",
    "delete.path",
]


def refused_in_every_field(w: World, value: str, *fragments: str) -> list[InputError]:
    """``value`` as each path of each operation in turn: refused at submit every time."""
    errors = []
    for field in PATH_FIELDS:
        try:
            errors.append(refused_at_submit(w, make_plan(op_with(field, value)), *fragments))
        except AssertionError as exc:
            raise AssertionError(f"{value!r} as {field}: {exc}") from exc
        except pytest.fail.Exception as exc:
            raise AssertionError(f"{value!r} as {field}: {exc}") from exc
    return errors


def op_with(field: str, value: str) -> dict[str, Any]:
    kind, name = field.split(".")
    if kind == "mkdir":
        return {"op": "mkdir", "path": value}
    if kind == "write":
        return write(value)
    if kind == "delete":
        return {"op": "delete", "path": value}
    op = {"op": kind, "source": "plain.txt", "destination": "fresh.txt"}
    op[name] = value
    return op


TRAVERSALS = [
    ("..", "contains '..'"),
    ("../x", "contains '..'"),
    ("../Case-A-old/keep.txt", "contains '..'"),
    ("a/../../x", "contains '..'"),
    ("a/b/../../../x", "contains '..'"),
    ("a/b/../../../../../outside/canary.txt", "contains '..'"),
    ("docs/..", "contains '..'"),
    (".", "contains '.'"),
    ("./plain.txt", "contains '.'"),
    ("docs/./a.txt", "contains '.'"),
]


@pytest.mark.parametrize(("path", "problem"), TRAVERSALS, ids=[t[0] for t in TRAVERSALS])
def test_traversal_at_every_depth_is_refused(world: World, path: str, problem: str) -> None:
    refused_in_every_field(world, path, path, problem)


@pytest.mark.parametrize(
    "scope",
    [
        "projects/..",
        "projects/../Tools",
        "projects/Case-A/../Case-A-old",
        "../outside",
        "projects/Case-A/..",
        "projects/./Case-A",
    ],
)
def test_traversal_in_the_scope_is_refused(world: World, scope: str) -> None:
    refused_at_submit(world, make_plan(write("x.txt"), scope=scope), "contains")


ABSOLUTES = ["/etc/passwd", "/", "//server/share", "/projects/Case-A-old/keep.txt"]


@pytest.mark.parametrize("path", [*ABSOLUTES, "OUTSIDE"])
def test_absolute_paths_are_refused(world: World, path: str) -> None:
    if path == "OUTSIDE":
        path = str(world.outside / "canary.txt")
    refused_in_every_field(world, path, "is absolute")


def test_absolute_scope_is_refused(world: World) -> None:
    for scope in (str(world.outside), str(world.old), "/projects/Case-A"):
        refused_at_submit(world, make_plan(write("x.txt"), scope=scope), "absolute")


BACKSLASHES = [
    "..\\outside",
    "..\\..\\..\\outside\\canary.txt",
    "a\\b",
    "C:\\Windows",
    "\\\\srv\\x",
]


@pytest.mark.parametrize("path", BACKSLASHES)
def test_backslashes_are_refused(world: World, path: str) -> None:
    refused_in_every_field(world, path, "contains a backslash")
    refused_at_submit(world, make_plan(write("x"), scope=f"projects\\{path}"), "backslash")


CONTROLS = [
    "\x00",
    "a\x00b",
    "x.txt\x00.pdf",
    "a\nb",
    "a\rb",
    "a\tb",
    "\x1b[31mred",
    "a\x7f",
    "a\x85b",
]


@pytest.mark.parametrize("path", CONTROLS, ids=[repr(c) for c in CONTROLS])
def test_control_characters_are_refused(world: World, path: str) -> None:
    bad = next(ch for ch in path if unicodedata.category(ch) == "Cc")
    problem = f"contains the control character U+{ord(bad):04X}"
    for error in refused_in_every_field(world, path, problem):
        shown = [error.message, *error.details]
        assert not any(bad in line for line in shown), "the message shows the character escaped"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a//b", "has an empty component"),
        ("docs/", "has an empty component"),
        ("docs//a.txt", "has an empty component"),
        ("", "at least 1 character"),
    ],
)
def test_empty_components_are_refused(world: World, path: str, problem: str) -> None:
    refused_in_every_field(world, path, problem)


@pytest.mark.parametrize("scope", ["", "projects//Case-A", "projects/Case-A/"])
def test_empty_scope_components_are_refused(world: World, scope: str) -> None:
    refused_at_submit(world, make_plan(write("x"), scope=scope))


@pytest.mark.parametrize(
    "scope", [".airlock", ".airlock/trash", ".airlock/journal", ".airlock/locks/x"]
)
def test_scopes_in_airlock_state_are_refused(world: World, scope: str) -> None:
    refused_at_submit(world, make_plan(write("x.txt"), scope=scope), "'.airlock'", "own state")


def test_airlock_lookalike_scope_is_refused(world: World) -> None:
    refused_at_submit(
        world, make_plan(write("x.txt"), scope=".AIRLOCK/trash"), "Airlock's own state folder"
    )


@pytest.mark.parametrize("name", [STATE_DIR, ".AIRLOCK", "sub/.airlock", "sub/.Airlock/x"])
def test_a_folder_named_airlock_inside_the_scope_is_refused(world: World, name: str) -> None:
    # It would hide its files from the review page's trees, which leave Airlock's state out.
    refused_in_every_field(world, name, "Airlock's own state folder")


LONG_NAMES = [
    ("n" * 256, 256),
    ("é" * 128, 256),
    ("😀" * 64, 256),
    ("x" * 250 + ".pdf.txt", 258),
]


@pytest.mark.parametrize(("name", "size"), LONG_NAMES, ids=["ascii", "accents", "emoji", "ext"])
def test_over_long_names_are_refused(world: World, name: str, size: int) -> None:
    refused_in_every_field(world, f"docs/{name}", f"has a name of {size} bytes; the limit is 255")


def test_over_long_paths_are_refused(world: World) -> None:
    path = "/".join(["d" * 200] * 21)  # 4220 bytes, every name short enough
    refused_at_submit(world, make_plan(write(path)), "longer than 4096 bytes")
    refused_at_submit(world, make_plan(write("x"), scope=f"projects/{'c' * 300}"), "300 bytes")


def test_a_name_of_exactly_255_bytes_applies(world: World) -> None:
    name = "é" * 125 + "x.txt"  # 250 + 5 bytes
    assert len(name.encode()) == 255
    applied(world, make_plan(write(f"docs/{name}")))
    assert MARK in (world.case / "docs" / name).read_text()


# --- areas and scopes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "problem"),
    [
        ("Tools", "read-only"),
        ("Tools/scripts", "read-only"),
        ("projects", "whole area"),
        ("Reports", "whole area"),
        ("outside", "not inside a workspace area"),
        ("etc/passwd", "not inside a workspace area"),
        ("tools/x", "not inside a workspace area"),
        ("Projects/Case-A", "not inside a workspace area"),
        ("PROJECTS/Case-A", "not inside a workspace area"),
    ],
)
def test_read_only_tools_and_areas_outside_the_policy_are_refused(
    world: World, scope: str, problem: str
) -> None:
    data = make_plan(write("x.txt"), {"op": "delete", "path": "organize.sh"}, scope=scope)
    refused(world, data, "scope", problem)


def test_tools_cannot_be_reached_through_a_link_either(world: World) -> None:
    world.link("tools-link", world.root / "Tools")
    refused(world, make_plan(write("tools-link/evil.sh")), "symlink-in-path", "symbolic link")
    refused(
        world,
        make_plan({"op": "delete", "path": "tools-link/organize.sh"}),
        "symlink-in-path",
        "symbolic link",
    )
    os.symlink(world.root / "Tools", world.root / "projects" / "Case-T")
    refused(world, make_plan(write("evil.sh"), scope="projects/Case-T"), "scope", "symlink")


def test_a_missing_scope_is_refused_even_when_a_sibling_shares_its_prefix(world: World) -> None:
    refused(world, make_plan(write("x.txt"), scope="projects/Case"), "scope", "does not exist")
    refused(world, make_plan(write("x.txt"), scope="projects/Case-A-"), "scope", "does not exist")


# --- sibling-prefix scopes ----------------------------------------------------------------------


def test_a_plan_on_case_a_never_touches_case_a_old(world: World) -> None:
    """Delete, move and overwrite everything in Case-A; Case-A-old is untouched (fixture)."""
    data = make_plan(
        {"op": "move", "source": "docs", "destination": "docs-moved"},
        write("plain.txt", overwrite=True),
        {"op": "delete", "path": "notes.txt"},
        {"op": "mkdir", "path": "Case-A-old"},
        write("Case-A-old/keep.txt"),
        {"op": "copy", "source": "final.txt", "destination": "keep.txt"},
    )
    result = applied(world, data)
    assert (world.case / "Case-A-old" / "keep.txt").exists()
    assert (world.case / "keep.txt").read_text() == "final\n"
    record = world.ws.rollback(result.plan_id, by=person("jane"))
    assert record.success
    assert not (world.case / "Case-A-old").exists()


def test_a_link_to_the_sibling_case_is_never_a_door(world: World) -> None:
    world.link("old", "../Case-A-old")
    world.link("old-abs", world.old)
    for link in ("old", "old-abs"):
        for op in (
            write(f"{link}/new.txt"),
            write(f"{link}/keep.txt", overwrite=True),
            {"op": "delete", "path": f"{link}/keep.txt"},
            {"op": "move", "source": f"{link}/keep.txt", "destination": "stolen.txt"},
            {"op": "move", "source": "plain.txt", "destination": f"{link}/plain.txt"},
            {"op": "copy", "source": "plain.txt", "destination": f"{link}/docs/plain.txt"},
            {"op": "mkdir", "path": f"{link}/docs/new"},
        ):
            refused(world, make_plan(op), "symlink-in-path", link, "symbolic link")


def test_a_scope_that_is_a_link_to_the_sibling_case_is_refused(world: World) -> None:
    os.symlink("Case-A-old", world.root / "projects" / "Case-A-new")
    refused(
        world,
        make_plan(write("x.txt"), scope="projects/Case-A-new"),
        "scope",
        "'projects/Case-A-new' is a symlink, not a folder",
    )


# --- symlinks inside the scope that point out ----------------------------------------------------


def plant_links(w: World) -> None:
    w.link("file_link", w.outside / "canary.txt")
    w.link("dir_link", w.outside / "dir")
    w.link("rel_link", os.path.relpath(w.outside / "dir", w.case))
    w.link("chain_b", "dir_link")
    w.link("chain_a", "chain_b")
    w.link("dangling_file", w.outside / "new-file.txt")
    w.link("dangling_dir", w.outside / "new-dir")
    os.symlink(w.outside / "dir", w.case / "docs" / "sub" / "door")
    (w.case / "bundle").mkdir()
    (w.case / "bundle" / "keep.txt").write_text("bundle\n")
    os.symlink(w.outside / "dir", w.case / "bundle" / "door")
    os.symlink(w.outside / "canary.txt", w.case / "bundle" / "canary-link")


def links_of(w: World) -> dict[str, str]:
    found = {}
    for parent, dirs, files in os.walk(w.case):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            if path.is_symlink():
                found[str(path.relative_to(w.case))] = os.readlink(path)
    return found


SYMLINK_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "write-over-file-link",
        write("file_link", overwrite=True),
        "exists",
        "already exists as a symlink",
    ),
    ("write-on-file-link", write("file_link"), "exists", "already exists as a symlink"),
    (
        "write-on-dangling",
        write("dangling_file", overwrite=True),
        "exists",
        "already exists as a symlink",
    ),
    (
        "write-on-dir-link",
        write("dir_link", overwrite=True),
        "exists",
        "already exists as a symlink",
    ),
    ("write-into-dir-link", write("dir_link/x.txt"), "symlink-in-path", "is a symbolic link"),
    ("write-into-rel-link", write("rel_link/x.txt"), "symlink-in-path", "is a symbolic link"),
    ("write-into-chain", write("chain_a/x.txt"), "symlink-in-path", "is a symbolic link"),
    ("write-into-dangling-dir", write("dangling_dir/x.txt"), "symlink-in-path", "symbolic link"),
    (
        "write-over-inner",
        write("dir_link/inner.txt", overwrite=True),
        "symlink-in-path",
        "symbolic link",
    ),
    ("write-beyond-link", write("dir_link/sub/x.txt"), "symlink-in-path", "symbolic link"),
    ("write-deep-link", write("docs/sub/door/x.txt"), "symlink-in-path", "symbolic link"),
    (
        "write-deeper",
        write("docs/sub/door/sub/deep.txt", overwrite=True),
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "mkdir-into-dir-link",
        {"op": "mkdir", "path": "dir_link/new"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "mkdir-into-dangling",
        {"op": "mkdir", "path": "dangling_dir/new"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "mkdir-on-dangling",
        {"op": "mkdir", "path": "dangling_dir"},
        "exists",
        "already exists as a symlink",
    ),
    (
        "copy-file-link",
        {"op": "copy", "source": "file_link", "destination": "stolen.txt"},
        "copy-link",
        "is a symlink",
    ),
    (
        "copy-chain",
        {"op": "copy", "source": "chain_a", "destination": "stolen"},
        "copy-link",
        "is a symlink",
    ),
    (
        "copy-dangling",
        {"op": "copy", "source": "dangling_file", "destination": "x"},
        "copy-link",
        "is a symlink",
    ),
    (
        "copy-through-link",
        {"op": "copy", "source": "dir_link/inner.txt", "destination": "x"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "copy-folder-with-links",
        {"op": "copy", "source": "bundle", "destination": "bundle2"},
        "copy-link",
        "is a symlink",
    ),
    (
        "copy-into-link",
        {"op": "copy", "source": "plain.txt", "destination": "dir_link/p.txt"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "copy-over-link",
        {"op": "copy", "source": "plain.txt", "destination": "file_link", "overwrite": True},
        "exists",
        "already exists as a symlink",
    ),
    (
        "move-into-link",
        {"op": "move", "source": "plain.txt", "destination": "dir_link/p.txt"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "move-into-rel-link",
        {"op": "move", "source": "docs", "destination": "rel_link/docs"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "move-into-dangling",
        {"op": "move", "source": "plain.txt", "destination": "dangling_dir/p"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "move-out-of-link",
        {"op": "move", "source": "dir_link/inner.txt", "destination": "x"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "move-over-link",
        {"op": "move", "source": "plain.txt", "destination": "file_link", "overwrite": True},
        "exists",
        "already exists as a symlink",
    ),
    (
        "delete-through-link",
        {"op": "delete", "path": "dir_link/inner.txt"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "delete-through-chain",
        {"op": "delete", "path": "chain_a/sub"},
        "symlink-in-path",
        "symbolic link",
    ),
    (
        "delete-deep",
        {"op": "delete", "path": "docs/sub/door/sub/deep.txt"},
        "symlink-in-path",
        "symbolic link",
    ),
]


@pytest.mark.parametrize(
    ("op", "code", "problem"),
    [case[1:] for case in SYMLINK_REFUSALS],
    ids=[case[0] for case in SYMLINK_REFUSALS],
)
def test_a_symlink_pointing_out_is_never_a_door(
    world: World, op: dict[str, Any], code: str, problem: str
) -> None:
    plant_links(world)
    links = links_of(world)
    errors = refused(world, make_plan(op), code, problem)
    assert any(f"'{CASE}/{link}'" in error.message for error in errors for link in links), (
        "the error names the link"
    )
    assert links_of(world) == links
    assert not (world.outside / "new-file.txt").exists()
    assert not (world.outside / "new-dir").exists()


def test_a_symlink_reached_later_in_the_plan_is_refused_too(world: World) -> None:
    """A link moved to a new name, then written through, is still a link."""
    plant_links(world)
    refused(
        world,
        make_plan(
            {"op": "move", "source": "dir_link", "destination": "looks-like-a-folder"},
            write("looks-like-a-folder/x.txt"),
        ),
        "symlink-in-path",
        "looks-like-a-folder",
    )
    refused(
        world,
        make_plan(
            {"op": "move", "source": "bundle", "destination": "b2"},
            {"op": "copy", "source": "b2/canary-link", "destination": "stolen.txt"},
        ),
        "copy-link",
        "is a symlink",
    )


def test_a_scope_through_a_link_is_refused(world: World) -> None:
    plant_links(world)
    for scope, problem in (
        (f"{CASE}/dir_link", "is a symlink, not a folder"),
        (f"{CASE}/dir_link/sub", "'projects/Case-A/dir_link' is a symlink"),
        (f"{CASE}/docs/sub/door", "is a symlink, not a folder"),
    ):
        refused(world, make_plan(write("x.txt"), scope=scope), "scope", problem)


def test_an_area_replaced_by_a_link_is_refused(world: World) -> None:
    (world.root / "Reports").rmdir()
    os.symlink(world.outside, world.root / "Reports")
    refused(
        world, make_plan(write("x.txt"), scope="Reports/dir"), "scope", "'Reports' is a symlink"
    )


@pytest.mark.parametrize(
    "link", ["file_link", "dir_link", "rel_link", "chain_a", "dangling_file", "dangling_dir"]
)
def test_moving_a_symlink_moves_the_entry_only(world: World, link: str) -> None:
    plant_links(world)
    target = os.readlink(world.case / link)
    result = applied(
        world,
        make_plan(
            {"op": "mkdir", "path": "links"},
            {"op": "move", "source": link, "destination": "links/moved"},
        ),
    )
    moved = world.case / "links" / "moved"
    assert moved.is_symlink() and os.readlink(moved) == target
    assert not (world.case / link).is_symlink()
    assert world.ws.rollback(result.plan_id, by=person("jane")).success
    assert os.readlink(world.case / link) == target
    assert not (world.case / "links").exists()


@pytest.mark.parametrize(
    "link", ["file_link", "dir_link", "rel_link", "chain_a", "dangling_file", "docs/sub/door"]
)
def test_deleting_a_symlink_deletes_the_entry_only(world: World, link: str) -> None:
    plant_links(world)
    target = os.readlink(world.case / link)
    result = applied(world, make_plan({"op": "delete", "path": link}))
    assert not os.path.lexists(world.case / link)
    assert world.ws.rollback(result.plan_id, by=person("jane")).success
    assert os.readlink(world.case / link) == target
    # Delete it again and purge the trash: the purge removes the link, never its target.
    applied(world, make_plan({"op": "delete", "path": link}))
    world.ws.gc(older_than_days=0)
    assert not os.path.lexists(world.case / link)


def test_deleting_and_purging_a_folder_of_links_never_follows_them(world: World) -> None:
    plant_links(world)
    result = applied(world, make_plan({"op": "delete", "path": "bundle"}))
    assert not (world.case / "bundle").exists()
    assert world.ws.rollback(result.plan_id, by=person("jane")).success
    assert os.readlink(world.case / "bundle" / "door") == str(world.outside / "dir")
    applied(
        world,
        make_plan(
            {"op": "move", "source": "bundle", "destination": "docs/bundle"},
            {"op": "delete", "path": "docs"},
        ),
    )
    assert world.ws.gc(older_than_days=0)
    trash = world.ws.state_dir / "trash"
    assert not any(files for _p, _d, files in os.walk(trash))


# --- hard links ---------------------------------------------------------------------------------


def test_overwriting_a_hard_link_never_changes_the_outside_file(world: World) -> None:
    os.link(world.outside / "hard.txt", world.case / "hard.txt")
    record = world.ws.validate(world.ws.submit(make_plan(write("hard.txt", overwrite=True))).id)
    assert record.validation is not None
    warnings = [w for w in record.validation.warnings if w.code == "hard-link"]
    assert warnings and "2 hard links" in warnings[0].message
    world.ws.approve(record.id, by=person("jane"))
    assert world.ws.apply(record.id, by=person("jane")).success
    assert MARK in (world.case / "hard.txt").read_text()
    assert (world.outside / "hard.txt").read_bytes() == b"hard-linked canary"
    assert world.ws.rollback(record.id, by=person("jane")).success
    assert (world.case / "hard.txt").read_bytes() == b"hard-linked canary"
    assert os.path.samefile(world.case / "hard.txt", world.outside / "hard.txt")


def test_deleting_or_moving_a_hard_link_never_changes_the_outside_file(world: World) -> None:
    os.link(world.outside / "hard.txt", world.case / "hard.txt")
    os.link(world.outside / "hard.txt", world.case / "hard2.txt")
    applied(
        world,
        make_plan(
            {"op": "delete", "path": "hard.txt"},
            {"op": "move", "source": "hard2.txt", "destination": "docs/hard2.txt"},
            write("docs/hard2.txt", overwrite=True),
        ),
    )
    world.ws.gc(older_than_days=0)
    assert (world.outside / "hard.txt").read_bytes() == b"hard-linked canary"
    assert os.stat(world.outside / "hard.txt").st_nlink == 1


# --- look-alike names -----------------------------------------------------------------------------


TWINS: list[tuple[str, dict[str, Any], str]] = [
    ("nfd-write", write(NFD_NAME), NFC_NAME),
    ("nfd-overwrite", write(NFD_NAME, overwrite=True), NFC_NAME),
    ("case-write", write("RÉSUMÉ.TXT"), NFC_NAME),
    ("nfd-upper", write(unicodedata.normalize("NFD", "RÉSUMÉ.txt")), NFC_NAME),
    ("case-mkdir", {"op": "mkdir", "path": "DOCS"}, "docs"),
    ("case-mkdir-2", {"op": "mkdir", "path": "Docs"}, "docs"),
    ("case-nested", write("docs/A.TXT"), "a.txt"),
    ("ligature", write("ﬁnal.txt"), "final.txt"),
    ("fullwidth", write("ｐｌａｉｎ.txt"), "plain.txt"),
    ("move-twin", {"op": "move", "source": "notes.txt", "destination": "Plain.txt"}, "plain.txt"),
    ("copy-twin", {"op": "copy", "source": "notes.txt", "destination": NFD_NAME}, NFC_NAME),
    ("copy-folder-twin", {"op": "copy", "source": "docs", "destination": "DOCS"}, "docs"),
]


@pytest.mark.parametrize(("op", "existing"), [t[1:] for t in TWINS], ids=[t[0] for t in TWINS])
def test_look_alike_twins_of_existing_names_are_refused(
    world: World, op: dict[str, Any], existing: str
) -> None:
    refused(world, make_plan(op), "name-collision", f"the existing {existing!r}")
    assert sorted(os.listdir(world.case)) == sorted(
        ["docs", "plain.txt", "notes.txt", NFC_NAME, "final.txt"]
    )


def test_look_alike_twins_within_one_plan_are_refused(world: World) -> None:
    refused(world, make_plan(write("new.txt"), write("NEW.txt")), "name-collision", "operation 2")
    refused(
        world,
        make_plan(
            {"op": "mkdir", "path": "x"},
            write("x/Café.txt"),
            write(unicodedata.normalize("NFD", "x/café.txt")),
        ),
        "name-collision",
        "operation 3",
    )
    assert not (world.case / "new.txt").exists()
    assert not (world.case / "x").exists()


# --- FIFOs --------------------------------------------------------------------------------------


def within_deadline(call: Callable[[], object], fifos: list[Path]) -> object:
    """Run ``call`` in a thread; if it blocks (on a FIFO), unblock it and fail."""
    outcome: list[object] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                assert exc.errno in (errno.ENXIO, errno.ENOENT)
        thread.join(DEADLINE)
        pytest.fail(f"hung on a FIFO: {call}")
    if failure:
        raise failure[0]
    return outcome[0]


FIFO_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("delete", {"op": "delete", "path": "pipe"}, "special-file", "FIFO"),
    ("copy", {"op": "copy", "source": "pipe", "destination": "x"}, "special-file", "FIFO"),
    ("move", {"op": "move", "source": "pipe", "destination": "x"}, "special-file", "FIFO"),
    ("overwrite", write("pipe", overwrite=True), "exists", "already exists as a special"),
    ("write", write("pipe"), "exists", "already exists as a special"),
    ("mkdir", {"op": "mkdir", "path": "pipe"}, "exists", "already exists as a special"),
    ("into", write("pipe/x.txt"), "not-a-folder", "is a special, not a folder"),
    ("copy-folder", {"op": "copy", "source": "docs", "destination": "d2"}, "copy-link", "special"),
    (
        "copy-over",
        {"op": "copy", "source": "plain.txt", "destination": "pipe", "overwrite": True},
        "exists",
        "already exists as a special",
    ),
]


@pytest.mark.parametrize(
    ("op", "code", "problem"), [f[1:] for f in FIFO_REFUSALS], ids=[f[0] for f in FIFO_REFUSALS]
)
def test_fifos_are_refused_without_hanging(
    world: World, op: dict[str, Any], code: str, problem: str
) -> None:
    fifos = [world.case / "pipe", world.case / "docs" / "pipe"]
    for fifo in fifos:
        os.mkfifo(fifo)
    within_deadline(lambda: refused(world, make_plan(op), code, problem), fifos)
    assert all(fifo.is_fifo() for fifo in fifos)


def test_a_folder_holding_a_fifo_moves_and_deletes_without_opening_it(world: World) -> None:
    fifos = [world.case / "docs" / "pipe"]
    os.mkfifo(fifos[0])
    data = make_plan(
        {"op": "move", "source": "docs", "destination": "docs-moved"},
        {"op": "delete", "path": "docs-moved"},
    )
    result = within_deadline(lambda: applied(world, data), fifos)
    assert isinstance(result, ApplyResult)
    assert not os.path.lexists(world.case / "docs")
    assert within_deadline(lambda: world.ws.rollback(result.plan_id, by=person("jane")), fifos)
    assert (world.case / "docs" / "pipe").is_fifo()


# --- races --------------------------------------------------------------------------------------


class Racer:
    """A thread that does one thing to the workspace when told, and says when it is done."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.go = threading.Event()
        self.done = threading.Event()
        self.error: list[BaseException] = []
        self._action = action
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if not self.go.wait(DEADLINE):
            return
        try:
            self._action()
        except BaseException as exc:
            self.error.append(exc)
        finally:
            self.done.set()

    def race(self) -> None:
        """Let it act now and wait (with a deadline) until it has."""
        self.go.set()
        assert self.done.wait(DEADLINE), "the racer did not finish"
        self._thread.join(DEADLINE)
        assert not self.error, self.error


def swap_for_link(folder: Path, target: Path, keep: Path | None = None) -> Callable[[], None]:
    """Move ``folder`` (a file or folder) away to ``keep`` and put a symlink to ``target`` there."""

    def action() -> None:
        os.rename(folder, keep or folder.with_name(folder.name + ".real"))
        os.symlink(target, folder)

    return action


def assert_clean(w: World, plan_id: str, result: ApplyResult | None) -> None:
    """The apply left no transaction running: it succeeded or failed as one unit."""
    status = w.ws.get(plan_id).status
    if result is not None:
        assert status == ("applied" if result.success else "failed"), status
    assert w.ws.recover() == []


Swap = Callable[[World], Callable[[], None]]

STALE_RACES: dict[str, tuple[list[dict[str, Any]], Swap, str]] = {
    "parent-folder-to-link": (
        [write("docs/b.txt")],
        lambda w: swap_for_link(w.case / "docs", w.outside / "dir"),
        "docs",
    ),
    "overwrite-target-to-link": (
        [write("docs/a.txt", overwrite=True)],
        lambda w: swap_for_link(w.case / "docs" / "a.txt", w.outside / "canary.txt"),
        "is now a symlink",
    ),
    "copy-source-to-link": (
        [{"op": "copy", "source": "docs/a.txt", "destination": "copy.txt"}],
        lambda w: swap_for_link(w.case / "docs" / "a.txt", w.outside / "canary.txt"),
        "is now a symlink",
    ),
    "scope-to-sibling": (
        [write("x.txt"), {"op": "delete", "path": "notes.txt"}],
        lambda w: swap_for_link(w.case, w.old),
        "projects/Case-A",
    ),
    "deep-parent-to-link": (
        [{"op": "mkdir", "path": "docs/sub/new"}],
        lambda w: swap_for_link(w.case / "docs" / "sub", w.outside / "dir"),
        "symbolic link",
    ),
    "delete-target-to-link": (
        [{"op": "delete", "path": "docs"}],
        lambda w: swap_for_link(w.case / "docs", w.outside / "dir"),
        "is now a symlink",
    ),
}


@pytest.mark.parametrize("race", list(STALE_RACES))
def test_a_link_swapped_in_after_validation_makes_the_plan_stale(world: World, race: str) -> None:
    operations, make_action, named = STALE_RACES[race]
    racer = Racer(make_action(world))
    record = validated(world, make_plan(*operations))
    racer.race()
    with pytest.raises(StalePlanError) as stale:
        world.ws.apply(record.id, by=person("jane"))
    assert named in str(stale.value)
    assert world.ws.get(record.id).status in ("validated", "approved")
    assert_clean(world, record.id, None)


DURING_APPLY: dict[str, tuple[list[dict[str, Any]], tuple[str, str], Swap]] = {
    # name: (operations, the step the racer acts before, what it does)
    "created-folder": (
        [{"op": "mkdir", "path": "new"}, write("new/a.txt")],
        ("create", "new/a.txt"),
        lambda w: swap_for_link(w.case / "new", w.outside / "dir"),
    ),
    "created-folder-of-folder": (
        [{"op": "mkdir", "path": "new"}, {"op": "mkdir", "path": "new/inner"}],
        ("mkdir", "new/inner"),
        lambda w: swap_for_link(w.case / "new", w.outside / "dir"),
    ),
    "created-folder-move-into": (
        [
            {"op": "mkdir", "path": "new"},
            {"op": "move", "source": "plain.txt", "destination": "new/plain.txt"},
        ],
        ("rename", "plain.txt"),
        lambda w: swap_for_link(w.case / "new", w.outside / "dir"),
    ),
    "created-folder-copy-into": (
        [
            {"op": "mkdir", "path": "new"},
            {"op": "copy", "source": "docs", "destination": "new/docs"},
        ],
        ("copy", "docs"),
        lambda w: swap_for_link(w.case / "new", w.outside / "dir"),
    ),
    "existing-parent": (
        [write("docs/b.txt"), write("plain2.txt")],
        ("create", "docs/b.txt"),
        lambda w: swap_for_link(w.case / "docs", w.outside / "dir"),
    ),
    "move-destination-parent": (
        [{"op": "move", "source": "plain.txt", "destination": "docs/plain.txt"}],
        ("rename", "plain.txt"),
        lambda w: swap_for_link(w.case / "docs", w.outside / "dir"),
    ),
    "copy-source-file": (
        [{"op": "copy", "source": "docs/a.txt", "destination": "copy.txt"}],
        ("copy", "docs/a.txt"),
        lambda w: swap_for_link(w.case / "docs" / "a.txt", w.outside / "canary.txt"),
    ),
    "copy-source-folder": (
        [{"op": "copy", "source": "docs", "destination": "docs-copy"}],
        ("copy", "docs"),
        lambda w: swap_for_link(w.case / "docs", w.outside / "dir"),
    ),
    "overwrite-target": (
        [write("docs/a.txt", overwrite=True)],
        ("rename", "docs/a.txt"),
        lambda w: swap_for_link(w.case / "docs" / "a.txt", w.outside / "canary.txt"),
    ),
    "delete-target": (
        [{"op": "delete", "path": "docs/a.txt"}],
        ("rename", "docs/a.txt"),
        lambda w: swap_for_link(w.case / "docs" / "a.txt", w.outside / "canary.txt"),
    ),
    "scope-to-sibling": (
        [{"op": "mkdir", "path": "fresh"}, write("fresh/x.txt")],
        ("mkdir", "fresh"),
        lambda w: swap_for_link(w.case, w.old),
    ),
}


def step_index(record: PlanRecord, kind: str, path: str) -> int:
    assert record.validation is not None
    steps = journal.compile_apply(record.validation.changes, "probe")
    for index, step in enumerate(steps):
        if step.kind == kind and "/".join(step.path) == f"{CASE}/{path}":
            return index
    raise AssertionError(f"no {kind} step for {path}: {[s.describe() for s in steps]}")


@pytest.mark.parametrize("race", list(DURING_APPLY))
def test_a_link_swapped_in_during_apply_never_lets_a_write_out(world: World, race: str) -> None:
    operations, (kind, path), make_action = DURING_APPLY[race]
    record = validated(world, make_plan(*operations))
    at = step_index(record, kind, path)
    racer = Racer(make_action(world))

    def hook(index: int) -> None:
        if index == at:
            racer.race()

    try:
        result: ApplyResult | None = world.ws.apply(record.id, by=person("jane"), hook=hook)
    except AirlockError as exc:
        pytest.fail(f"the apply did not fail cleanly: {type(exc).__name__}: {exc}")
    assert racer.done.is_set()
    assert result is not None
    if not result.success:  # refused cleanly, naming the link that got in the way
        assert result.error and re.search("symlink|symbolic link", result.error), result.error
    assert_clean(world, record.id, result)
    # Nothing the plan wrote is outside (checked by the fixture), and nothing from outside
    # was copied in.
    for parent, _dirs, files in os.walk(world.root):
        for name in files:
            file = Path(parent) / name
            if not file.is_symlink() and file.is_file():
                assert SECRET not in file.read_bytes(), f"{file} holds outside bytes"


def test_a_folder_moved_out_of_the_workspace_during_apply_takes_no_write_with_it(
    world: World,
) -> None:
    """The racer moves a folder the plan writes into out of the workspace, mid-apply."""
    record = validated(world, make_plan(write("plain2.txt"), write("docs/b.txt")))
    at = step_index(record, "create", "docs/b.txt")
    racer = Racer(
        swap_for_link(world.case / "docs", world.outside / "dir", keep=world.elsewhere / "docs")
    )

    def hook(index: int) -> None:
        if index == at:
            racer.race()

    result = world.ws.apply(record.id, by=person("jane"), hook=hook)
    escaped = files_with_payload(world.elsewhere)
    shutil.rmtree(world.elsewhere / "docs")  # keep the fixture's own check about the rest
    assert escaped == [], "a write followed the folder out of the workspace"
    assert not result.success
    assert_clean(world, record.id, result)
