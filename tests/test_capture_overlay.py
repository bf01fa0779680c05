"""Capture through a real overlay, as an overlay-mode run does (without a sandbox backend).

The launcher (:func:`airlock.sandbox.runner.launch`) mounts a size-limited tmpfs (the stage) and a
``fuse-overlayfs`` view of the real scope, every file shown as the sandbox's ids, in its own mount
namespace; a plain ``sh``/``python3`` command changes the view; inside the ``with`` block the
upper layer, the merged view and the real scope are compared (:func:`upper_changes`, through
``/proc/<launcher>/root``), turned into operations and, after the namespace is gone, applied to
the real scope through a workspace. The scope must then equal the view the command left, and a
rollback must restore it.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from airlock.sandbox.changes import LocalSides
from airlock.sandbox.ids import SandboxIds, sandbox_ids
from airlock.sandbox.layers import Found, upper_changes
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


def ids_for(scope: Path) -> SandboxIds:
    """The sandbox's ids for a run over ``scope``, as runs.run picks them (or skip)."""
    ids = sandbox_ids(scope.stat().st_uid)
    if isinstance(ids, str):
        pytest.skip(f"no sandbox ids here: {ids}")
    return ids


def overlay_layout(scope: Path, scratch: Path, size: int) -> Layout:
    """An overlay-mode layout as runs._layout makes one: a stage and a view in ``scratch``."""
    layout = Layout(scratch / "stage", scope, scratch / "view", size, "overlay", ids_for(scope))
    layout.stage.mkdir(parents=True)
    layout.view.mkdir()
    return layout


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless this host can mount the run's overlay (the probe runs do too)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): overlay runs cannot start here")
    probe = tmp_path_factory.mktemp("probe")
    (probe / "lower").mkdir()
    problem = overlay_problem(overlay_layout(probe / "lower", probe / "scratch", 1 << 20))
    if problem is not None:
        pytest.skip(f"no overlay can be mounted here: {problem}")


@contextlib.contextmanager
def in_overlay(
    scope: Path, scratch: Path, argv: list[str], write_limit: int = 1 << 20
) -> Iterator[tuple[Outcome, Path, Path]]:
    """Run ``argv`` (``{view}`` in it is replaced) over an overlay of ``scope``; yield how it
    ended, the upper layer and the merged view, both readable while the block runs."""
    layout = overlay_layout(scope, scratch, write_limit)
    argv = [part.replace("{view}", str(layout.view)) for part in argv]
    with launch(argv, layout, timeout=30, output_limit=1 << 20, cgroup=None) as (out, running):
        assert running is not None, out
        yield out, running.path(layout.result), running.path(layout.view)
    # Nothing of the overlay is left on the host.
    assert not any(layout.stage.iterdir()) and not any(layout.view.iterdir())


def sh(script: str) -> list[str]:
    return ["sh", "-c", f'set -eu; cd "$1"; {script}', "sh", "{view}"]


def run_and_capture(
    ws: Workspace, scope: Path, argv: list[str], write_limit: int = 1 << 20, *, view: bool = True
) -> tuple[Outcome, Found, Captured, dict[str, str]]:
    """Run over an overlay; return the outcome, what the walk found (upper layer, merged view and
    real scope compared), what capture made of its changes and (unless ``view`` is False:
    snapshot would block on a FIFO) the view it left."""
    scratch = scope.parents[2] / "scratch"
    with in_overlay(scope, scratch, argv, write_limit) as (out, upper, merged):
        found = upper_changes(upper, merged, scope)
        captured = capture(found.changes, LocalSides(ws.storage, SCOPE_PATH, upper, ws.content))
        after = snapshot(merged) if view else {}
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
    assert {c.path: c.kind for c in found.changes if c.kind is Kind.GONE} == {
        ("notes.txt",): Kind.GONE,
        ("inbox", "scan2.pdf"): Kind.GONE,
        ("old",): Kind.GONE,
    }
    assert found.skipped == []
    assert captured.operations == [
        {"op": "delete", "path": "inbox/scan2.pdf"},
        {"op": "delete", "path": "notes.txt"},
        {"op": "delete", "path": "old"},
    ]
    assert snapshot(scope) == before  # the run never touched the real scope
    apply_and_roll_back(ws, captured, scope, before, after)


def test_a_folder_emptied_and_made_anew_is_compared_entry_by_entry(
    case: tuple[Workspace, Path],
) -> None:
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws, scope, sh("rm -r old; mkdir old; printf new > old/n.txt; printf a > old/a.txt")
    )
    assert out.exit_code == 0, out.stderr
    # The expectation changed with f2b5284: the walk trusts no overlay marker, so the folder the
    # overlay made opaque is no longer a replace (delete old, mkdir old, everything below written
    # anew). 'old' is a folder on both sides, so its entries are compared with the real scope's:
    # what the view no longer shows is deleted, one entry at a time. The scope still ends up
    # equal to the view (apply_and_roll_back checks it).
    assert found.changes == [
        Change(("old",), Kind.DIR),
        Change(("old", "a.txt"), Kind.FILE),
        Change(("old", "n.txt"), Kind.FILE),
        Change(("old", "sub"), Kind.GONE),
    ]
    assert found.skipped == []
    assert captured.operations == [
        {"op": "delete", "path": "old/sub"},
        # old/a.txt has its old bytes again: nothing to write.
        {"op": "write", "path": "old/n.txt", "overwrite": False, "text": "new"},
    ]
    apply_and_roll_back(ws, captured, scope, before, after)


OPAQUE_XATTR = """
import os, sys
os.chdir(sys.argv[1])
for name in ("user.overlay.opaque", "trusted.overlay.opaque"):
    try:
        os.setxattr("inbox", name, b"y")
    except OSError:
        pass  # the overlay may refuse it; the point is that nothing relies on it
with open("inbox/new.txt", "w") as handle:
    handle.write("new")
"""


def test_an_opaque_marker_written_by_the_code_deletes_nothing(
    case: tuple[Workspace, Path],
) -> None:
    """Code can set ``user.overlay.opaque`` itself: the walk must not read it as 'everything
    below was emptied', only what the merged view showed counts."""
    ws, scope = case
    before = snapshot(scope)
    out, found, captured, after = run_and_capture(
        ws, scope, [sys.executable, "-c", OPAQUE_XATTR, "{view}"]
    )
    assert out.exit_code == 0, out.stderr
    assert found.changes == [Change(("inbox",), Kind.DIR), Change(("inbox", "new.txt"), Kind.FILE)]
    assert captured.operations == [
        {"op": "write", "path": "inbox/new.txt", "overwrite": False, "text": "new"}
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
    assert out.stdout == b"EXDEV\n"  # fuse-overlayfs refuses a lower folder; mv copies instead
    assert Change(("old",), Kind.GONE) in found.changes
    assert not any(c.replaces for c in found.changes) and found.skipped == []
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
    assert {c.path for c in found.changes} >= {("notes.txt",), ("inbox",), ("inbox", "scan1.pdf")}
    # ... but their bytes are the same: nothing to plan.
    assert captured.operations == [] and captured.skipped == []
    # The walk says (runs.run reports it as skipped) that a file's new permissions are not kept;
    # a folder's mode and a file's times are not reported.
    assert found.skipped == [
        {
            "path": "notes.txt",
            "reason": "its permissions changed (-rw-r--r-- to -rw-------); a plan carries "
            "contents, not permissions, so that part of the change is not kept",
        }
    ]
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
    assert Change(("big.bin",), Kind.FILE) in found.changes and found.skipped == []
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
    assert {c.path: c.kind for c in found.changes} == {
        ("x",): Kind.SYMLINK,
        ("fifo",): Kind.SPECIAL,
        ("a\x01b",): Kind.FILE,
        ("notes.txt",): Kind.SYMLINK,
        ("ok.txt",): Kind.FILE,
    }
    assert found.skipped == []
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
        assert found.skipped == [] and captured.skipped == []
        renames = json.loads(out.stdout)
        replaced = {"/".join(c.path) for c in found.changes if c.replaces}
        check_moves(captured, qualifying_moves(renames, before, after, replaced))
        apply_and_roll_back(ws, captured, scope, before, after)


def test_a_launcher_that_fails_once_the_overlay_is_up_leaves_no_overlay_daemon(
    overlay: None, tmp_path: Path
) -> None:
    # A read area that cannot be bound makes the launcher give up after fuse-overlayfs is
    # mounted; the daemon must not outlive it (it would hold the namespace, and the real
    # scope, open for good).
    scope = tmp_path / "scope"
    scope.mkdir()
    layout = overlay_layout(scope, tmp_path / "scratch", 1 << 20)
    fd = os.open(tmp_path, os.O_PATH)
    try:
        missing = (fd, tmp_path / "no-such-folder", tmp_path / "mount-point")
        failing = dataclasses.replace(layout, reads=(missing,))
        with launch(["true"], failing, timeout=30, output_limit=1 << 20, cgroup=None) as (
            out,
            running,
        ):
            assert running is None and out.exit_code is None
            assert "mount" in out.launcher_error
    finally:
        os.close(fd)
    daemons = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if str(layout.stage).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                daemons.append(pid)
    assert daemons == [], "fuse-overlayfs outlived its launcher"
