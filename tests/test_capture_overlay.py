"""Capture through a real kernel overlay, as an overlay-mode run does (without a sandbox backend).

The launcher (:func:`airlock.sandbox.runner.launch`) mounts a size-limited tmpfs and an overlay of
the real scope in its own mount namespace; a plain ``sh``/``python3`` command changes the view;
inside the ``with`` block the upper layer is read through ``/proc/<launcher>/root``, turned into
operations and, after the namespace is gone, applied to the real scope through a workspace. The
scope must then equal the view the command left, and a rollback must restore it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, note

from airlock.capture import Captured, Change, Kind, capture
from airlock.runs import overlay_problem
from airlock.sandbox.changes import LocalSides, upper_changes
from airlock.sandbox.runner import Layout, Outcome, launch
from airlock.workspace import Workspace
from support import snapshot
from test_capture import (
    PROPERTY,
    SCOPE,
    Step,
    Tree,
    apply_and_roll_back,
    check_moves,
    lower_trees,
    mutate,
    qualifying_moves,
    steps_strategy,
    workspace_with,
)

SCOPE_PATH = tuple(SCOPE.split("/"))

TREE: Tree = {
    "inbox": None,
    "inbox/scan1.pdf": b"%PDF one",
    "inbox/scan2.pdf": b"%PDF two",
    "notes.txt": b"first notes\n",
    "old": None,
    "old/a.txt": b"a",
    "old/sub": None,
    "old/sub/b.txt": b"b",
}


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless this host can mount the run's overlay (the probe runs do too)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): overlay runs cannot start here")
    probe = tmp_path_factory.mktemp("probe")
    for name in ("lower", "upper", "view"):
        (probe / name).mkdir()
    layout = Layout(probe / "upper", probe / "lower", probe / "view", 1 << 20, os.geteuid() != 0)
    problem = overlay_problem(layout)
    if problem is not None:
        pytest.skip(f"no overlay can be mounted here: {problem}")


@contextlib.contextmanager
def in_overlay(
    scope: Path, scratch: Path, argv: list[str], write_limit: int = 1 << 20
) -> Iterator[tuple[Outcome, Path, Path]]:
    """Run ``argv`` (``{view}`` in it is replaced) over an overlay of ``scope``; yield how it
    ended, the upper layer and the view, both readable while the block runs."""
    layout = Layout(
        upper_mount=scratch / "upper",
        lower=scope,
        view=scratch / "view",
        write_limit=write_limit,
        userns=os.geteuid() != 0,
    )
    layout.upper_mount.mkdir(parents=True)
    layout.view.mkdir()
    argv = [part.replace("{view}", str(layout.view)) for part in argv]
    with launch(argv, layout, timeout=30, output_limit=1 << 20, cgroup=None) as (out, running):
        assert running is not None, out
        root = running.root()
        yield (
            out,
            root / str(layout.upper_mount).lstrip("/") / "upper",
            root / str(layout.view).lstrip("/"),
        )
    # Nothing of the overlay is left on the host.
    assert not any(layout.upper_mount.iterdir()) and not any(layout.view.iterdir())


def sh(script: str) -> list[str]:
    return ["sh", "-c", f'set -eu; cd "$1"; {script}', "sh", "{view}"]


def run_and_capture(
    ws: Workspace, scope: Path, argv: list[str], write_limit: int = 1 << 20, *, view: bool = True
) -> tuple[Outcome, list[Change], Captured, dict[str, str]]:
    """Run over an overlay; return the outcome, the upper layer's changes, what capture made of
    them and (unless ``view`` is False: snapshot would block on a FIFO) the view it left."""
    scratch = scope.parents[2] / "scratch"
    with in_overlay(scope, scratch, argv, write_limit) as (out, upper, result):
        found = upper_changes(upper)
        captured = capture(found, LocalSides(ws.storage, SCOPE_PATH, upper))
        after = snapshot(result) if view else {}
    return out, found, captured, after


@pytest.fixture
def case(overlay: None) -> Iterator[tuple[Workspace, Path]]:
    with workspace_with(TREE) as (ws, scope):
        yield ws, scope


def test_whiteouts_become_deletes(case: tuple[Workspace, Path]) -> None:
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws, scope, sh("rm notes.txt inbox/scan2.pdf; rm -r old")
    )
    assert out.exit_code == 0, out.stderr
    assert {c.path: c.kind for c in found if c.kind is Kind.GONE} == {
        ("notes.txt",): Kind.GONE,
        ("inbox", "scan2.pdf"): Kind.GONE,
        ("old",): Kind.GONE,
    }
    assert captured.operations == [
        {"op": "delete", "path": "inbox/scan2.pdf"},
        {"op": "delete", "path": "notes.txt"},
        {"op": "delete", "path": "old"},
    ]
    assert snapshot(scope) == before  # the run never touched the real scope
    apply_and_roll_back(ws, captured, scope, before, after)


def test_a_folder_emptied_and_made_anew_is_opaque_and_replaces(
    case: tuple[Workspace, Path],
) -> None:
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws, scope, sh("rm -r old; mkdir old; printf new > old/n.txt; printf a > old/a.txt")
    )
    assert out.exit_code == 0, out.stderr
    assert Change(("old",), Kind.DIR, replaces=True) in found
    assert captured.operations == [
        {"op": "delete", "path": "old"},
        {"op": "mkdir", "path": "old"},
        # old/a.txt has its old bytes again, but everything below an opaque folder is new.
        {"op": "write", "path": "old/a.txt", "overwrite": False, "text": "a"},
        {"op": "write", "path": "old/n.txt", "overwrite": False, "text": "new"},
    ]
    apply_and_roll_back(ws, captured, scope, before, after)


RENAME_FOLDER = """
import errno, os, subprocess, sys
os.chdir(sys.argv[1])
try:
    os.rename("old", "moved")
except OSError as exc:
    print(errno.errorcode[exc.errno])
subprocess.run(["mv", "old", "moved"], check=True)
"""


def test_a_renamed_folder_is_copied_by_mv_and_captured_as_moves(
    case: tuple[Workspace, Path],
) -> None:
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws, scope, [sys.executable, "-c", RENAME_FOLDER, "{view}"]
    )
    assert out.exit_code == 0, out.stderr
    assert out.stdout == b"EXDEV\n"  # overlay (redirect_dir=off) refuses; mv copies instead
    assert Change(("old",), Kind.GONE) in found
    assert captured.operations == [
        {"op": "mkdir", "path": "moved"},
        {"op": "mkdir", "path": "moved/sub"},
        {"op": "move", "source": "old/a.txt", "destination": "moved/a.txt"},
        {"op": "move", "source": "old/sub/b.txt", "destination": "moved/sub/b.txt"},
        {"op": "delete", "path": "old"},
    ]
    apply_and_roll_back(ws, captured, scope, before, after)


def test_a_change_of_mode_or_time_only_is_no_operation(case: tuple[Workspace, Path]) -> None:
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws,
        scope,
        sh("chmod 600 notes.txt; chmod 700 inbox; touch -d 2020-01-01 inbox/scan1.pdf"),
    )
    assert out.exit_code == 0, out.stderr
    # The overlay copied them up, so they are in the upper layer ...
    assert {c.path for c in found} >= {("notes.txt",), ("inbox",), ("inbox", "scan1.pdf")}
    # ... but their bytes are the same: nothing to plan.
    assert captured.operations == [] and captured.skipped == []
    assert after == before


def test_writing_past_the_write_limit_fails_inside_with_no_space(
    case: tuple[Workspace, Path],
) -> None:
    ws, scope = case
    limit = 256 * 1024
    out, found, captured, _ = run_and_capture(
        ws, scope, sh(f"head -c {4 * limit} /dev/zero > big.bin"), write_limit=limit
    )
    assert out.exit_code not in (None, 0)
    assert b"No space left on device" in out.stderr
    assert Change(("big.bin",), Kind.FILE) in found
    (write,) = captured.operations
    assert write["path"] == "big.bin" and captured.bytes_written <= limit
    assert not (scope / "big.bin").exists()


def test_links_special_files_and_unplannable_names_are_skipped(
    case: tuple[Workspace, Path],
) -> None:
    ws, scope = case
    out, found, captured, _ = run_and_capture(
        ws,
        scope,
        sh(
            "ln -s /etc x; mkfifo fifo; printf 1 > \"$(printf 'a\\001b')\"; "
            "rm notes.txt; ln -s /etc/passwd notes.txt; printf ok > ok.txt"
        ),
        view=False,
    )
    assert out.exit_code == 0, out.stderr
    assert {c.path: c.kind for c in found} == {
        ("x",): Kind.SYMLINK,
        ("fifo",): Kind.SPECIAL,
        ("a\x01b",): Kind.FILE,
        ("notes.txt",): Kind.SYMLINK,
        ("ok.txt",): Kind.FILE,
    }
    assert captured.operations == [
        {"op": "write", "path": "ok.txt", "overwrite": False, "text": "ok"}
    ]
    reasons = {entry["path"]: entry["reason"] for entry in captured.skipped}
    assert reasons == {
        "fifo": "a special cannot be part of a plan; only files and folders are",
        "notes.txt": "a symlink cannot be part of a plan; only files and folders are",
        "x": "a symlink cannot be part of a plan; only files and folders are",
        repr("a\x01b"): "name 'a\\x01b' contains the control character U+0001",
    }


MUTATE_SCRIPT = "\n".join(
    [
        "from __future__ import annotations",
        "import json, sys",
        textwrap.dedent(inspect.getsource(mutate)),
        "print(json.dumps(mutate(sys.argv[1], json.loads(sys.argv[2]))))",
    ]
)


@PROPERTY
@given(tree=lower_trees(), steps=steps_strategy)
def test_captured_overlay_changes_apply_to_exactly_the_result_and_roll_back(
    overlay: None, tree: Tree, steps: list[Step]
) -> None:
    with workspace_with(tree) as (ws, scope):
        before = snapshot(scope)
        argv = [sys.executable, "-c", MUTATE_SCRIPT, "{view}", json.dumps(steps)]
        out, found, captured, after = run_and_capture(ws, scope, argv)
        note(f"changes {found}")
        note(f"operations {captured.operations}")
        assert out.exit_code == 0, out.stderr
        assert snapshot(scope) == before
        assert captured.skipped == []
        renames = json.loads(out.stdout)
        replaced = {"/".join(c.path) for c in found if c.replaces}
        check_moves(captured, qualifying_moves(renames, before, after, replaced))
        apply_and_roll_back(ws, captured, scope, before, after)
