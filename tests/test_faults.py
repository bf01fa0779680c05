"""Real filesystem faults during an apply: a full disk, a read-only mount, a denied permission.

These need root (to mount a tmpfs and to run a child as user ``nobody``); without it, or where
mounting is not allowed (an unprivileged container), they are skipped with the reason.

Linux refuses ``mount -o remount,ro`` while any file on the filesystem is open for writing (the
SQLite database, the journal cursor, the scope lock). So the read-only-mid-plan scenario keeps
Airlock's database, ``.airlock/journal`` and ``.airlock/locks`` on another filesystem (bind
mounts), and turns read-only exactly the filesystem holding the files and the trash.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.db import sqlite_url
from airlock.errors import StorageError
from airlock.workspace import Workspace
from crashkit import (
    APPROVER,
    OPERATIONS,
    PLAN,
    PLAN_ID,
    PRE_FILES,
    PRE_FOLDERS,
    PRE_LINKS,
    SCOPE,
    Mounts,
    apply_step_count,
    assert_clean_state,
    assert_same,
    events_of,
    expected_after,
    make_tree,
    prepare,
    run_child,
    take_snapshot,
)

pytestmark = pytest.mark.root

NOBODY = 65534


# --- disk full ----------------------------------------------------------------------------

BIG = 256 * 1024


@pytest.mark.parametrize("last", ["write", "copy"])
def test_disk_full_fails_cleanly_and_leaves_the_workspace_unchanged(
    mounts: Mounts, tmp_path: Path, last: str
) -> None:
    mnt = mounts.tmpfs(tmp_path / "mnt", "4m")
    root = mnt / "ws"
    s = SCOPE + "/"
    operations: list[dict[str, object]] = [
        {"op": "mkdir", "path": "Filed"},
        {"op": "move", "source": "inbox/a.txt", "destination": "Filed/a.txt"},
        {"op": "write", "path": "Filed/index.txt", "text": "index\n"},
        {"op": "write", "path": "notes.txt", "text": "notes v2\n", "overwrite": True},
        {"op": "delete", "path": "old.txt"},
        {"op": "write", "path": "Filed/big.txt", "text": "x" * BIG}
        if last == "write"
        else {"op": "copy", "source": "big-source.bin", "destination": "Filed/big-copy.bin"},
    ]
    plan = {"scope": SCOPE, "author": "agent", "operations": operations}
    with Workspace.init(root) as ws:
        make_tree(
            root,
            {
                s + "notes.txt": "notes v1\n",
                s + "inbox/a.txt": "a",
                s + "old.txt": "old",
                s + "big-source.bin": os.urandom(BIG) if last == "copy" else b"",
            },
        )
        prepare(ws, "full", plan)
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        assert free > BIG, f"the tmpfs is too small for this test ({free} bytes free)"
        filler = mnt / "filler.bin"  # outside the workspace, on the same filesystem
        filler.write_bytes(b"\0" * (free - BIG // 2))
        pre = take_snapshot(root)

        try:
            result = ws.apply("full", by=APPROVER)
        except StorageError as exc:
            # The plan's 256 KiB of text live in its database row, on the same full disk: the
            # undo ran, but the database could not record the failure. Only the write case.
            assert last == "write", exc
            assert "the workspace was restored" in exc.message, exc
            error, recorded = str(exc), False
        else:
            assert not result.success
            assert result.error is not None
            error, recorded = result.error, True
        assert "the disk is full" in error, error
        assert_same(take_snapshot(root), pre, "after a disk-full apply")
        filler.unlink()  # even reading the database may need space (its WAL index grows)
        if recorded:
            assert ws.get("full").status == "failed"
            assert events_of(ws, "full", "failed")

    with Workspace(root) as ws:  # reopening finishes whatever could not be recorded
        assert ws.get("full").status == "failed"
        assert_clean_state(ws)
        prepare(ws, "full")
        result = ws.apply("full", by=APPROVER)
        assert result.success, result.error
        assert_same(take_snapshot(root), expected_after(pre, SCOPE, operations), "space freed")
        assert_clean_state(ws)


# --- read-only filesystem -----------------------------------------------------------------


def read_only_capable(mounts: Mounts, tmp_path: Path) -> tuple[Path, Path, str]:
    """A workspace on its own tmpfs whose database, journal and locks live elsewhere."""
    mnt = mounts.tmpfs(tmp_path / "mnt", "8m")
    root = mnt / "ws"
    state = tmp_path / "state"
    for sub in ("journal", "locks"):
        (state / sub).mkdir(parents=True)
    url = sqlite_url(state / "airlock.db")
    Workspace.init(root, database_url=url).close()
    for sub in ("journal", "locks"):
        mounts.bind(state / sub, root / ".airlock" / sub)
    return mnt, root, url


@pytest.mark.parametrize("at", [0, 1, 7, -1])
def test_filesystem_turns_read_only_mid_plan(mounts: Mounts, tmp_path: Path, at: int) -> None:
    mnt, root, url = read_only_capable(mounts, tmp_path)
    with Workspace(root, database_url=url) as ws:
        make_tree(root, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
        steps = apply_step_count(prepare(ws, PLAN_ID, PLAN))
        step = at % steps
        pre = take_snapshot(root)

        def hook(index: int) -> None:
            if index == step:
                mounts.remount(mnt, "ro")

        if step == 0:
            # Nothing had happened yet: the apply fails cleanly.
            result = ws.apply(PLAN_ID, by=APPROVER, hook=hook)
            assert not result.success
            assert result.error is not None and "read-only" in result.error, result.error
            assert ws.get(PLAN_ID).status == "failed"
            mounts.remount(mnt, "rw")
            assert ws.recover() == []
        else:
            # Steps had happened and cannot be undone on a read-only filesystem.
            with pytest.raises(StorageError) as failure:
                ws.apply(PLAN_ID, by=APPROVER, hook=hook)
            assert "read-only" in failure.value.message, failure.value
            assert "airlock recover" in failure.value.hint
            assert ws.get(PLAN_ID).status == "applying"
            # Still read-only: recovery changes nothing and says why (without failing the open).
            assert ws.recover() == []
            assert len(ws.recovery_failures) == 1
            assert "read-only" in ws.recovery_failures[0], ws.recovery_failures
            mounts.remount(mnt, "rw")
            recovered = ws.recover()
            assert [(r.plan_id, r.kind) for r in recovered] == [(PLAN_ID, "apply")]
            assert ws.get(PLAN_ID).status == "failed"
            assert events_of(ws, PLAN_ID, "recovered")
        assert_same(take_snapshot(root), pre, f"read-only from step {step} of {steps}, recovered")
        assert_clean_state(ws)

        prepare(ws, PLAN_ID)
        assert ws.apply(PLAN_ID, by=APPROVER).success
        assert_same(take_snapshot(root), expected_after(pre, SCOPE, OPERATIONS), "re-applied")
        assert_clean_state(ws)


def test_read_only_from_the_start_with_state_elsewhere(mounts: Mounts, tmp_path: Path) -> None:
    mnt, root, url = read_only_capable(mounts, tmp_path)
    with Workspace(root, database_url=url) as ws:
        make_tree(root, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
        prepare(ws, PLAN_ID, PLAN)
        pre = take_snapshot(root)
        mounts.remount(mnt, "ro")
        result = ws.apply(PLAN_ID, by=APPROVER)
        assert not result.success
        assert result.error is not None and "read-only" in result.error, result.error
        assert ws.get(PLAN_ID).status == "failed"
        assert_same(take_snapshot(root), pre, "read-only from the start")
        mounts.remount(mnt, "rw")
        assert_clean_state(ws)


def test_read_only_from_the_start_with_only_the_database_elsewhere(
    mounts: Mounts, tmp_path: Path
) -> None:
    """The database can still be written, the workspace and its ``.airlock`` folder cannot."""
    mnt = mounts.tmpfs(tmp_path / "mnt", "8m")
    root = mnt / "ws"
    url = sqlite_url(tmp_path / "airlock.db")
    with Workspace.init(root, database_url=url) as ws:
        make_tree(root, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
        prepare(ws, PLAN_ID, PLAN)
        pre = take_snapshot(root)
        mounts.remount(mnt, "ro")
        with pytest.raises(StorageError, match="read-only") as failure:
            ws.apply(PLAN_ID, by=APPROVER)
        assert "read-write" in failure.value.hint
        assert ws.get(PLAN_ID).status == "approved"
        assert_same(take_snapshot(root), pre, "read-only workspace, database elsewhere")
        mounts.remount(mnt, "rw")
        assert ws.apply(PLAN_ID, by=APPROVER).success
        assert_clean_state(ws)


def test_read_only_from_the_start_with_state_beside_it(mounts: Mounts, tmp_path: Path) -> None:
    """The whole workspace, database included, is read-only: a clear error, nothing changed."""
    mnt = mounts.tmpfs(tmp_path / "mnt", "8m")
    root = mnt / "ws"
    with Workspace.init(root) as ws:
        make_tree(root, PRE_FILES, PRE_FOLDERS, PRE_LINKS)
        prepare(ws, PLAN_ID, PLAN)
    pre = take_snapshot(root)
    mounts.remount(mnt, "ro")
    with pytest.raises(StorageError, match="read-only") as failure:
        Workspace(root)
    assert "read-write" in failure.value.hint
    assert_same(take_snapshot(root), pre, "read-only workspace opened")
    mounts.remount(mnt, "rw")
    with Workspace(root) as ws:
        assert ws.get(PLAN_ID).status == "approved"
        assert ws.apply(PLAN_ID, by=APPROVER).success


# --- permission denied --------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder user nobody can reach (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a child process as user nobody")
    path = Path(tempfile.mkdtemp(prefix="airlock-faults-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def test_permission_denied_mid_plan_fails_cleanly(shared_dir: Path) -> None:
    root = shared_dir / "ws"
    s = SCOPE + "/"
    operations: list[dict[str, object]] = [
        {"op": "mkdir", "path": "Filed"},
        {"op": "move", "source": "inbox/a.txt", "destination": "Filed/a.txt"},
        {"op": "write", "path": "notes.txt", "text": "notes v2\n", "overwrite": True},
        {"op": "delete", "path": "old"},
        {"op": "write", "path": "Filed/index.txt", "text": "index\n"},
        {"op": "move", "source": "inbox/b.txt", "destination": "Locked/b.txt"},
        {"op": "write", "path": "after.txt", "text": "never written\n"},
    ]
    plan = {"scope": SCOPE, "author": "agent", "operations": operations}
    with Workspace.init(root) as ws:
        make_tree(
            root,
            {
                s + "notes.txt": "notes v1\n",
                s + "inbox/a.txt": "a",
                s + "inbox/b.txt": "b",
                s + "old/x.txt": "x",
            },
            folders=[s + "Locked"],
        )
        chown_tree(root, NOBODY)
        locked = root / SCOPE / "Locked"
        os.chown(locked, 0, 0)
        locked.chmod(0o555)
        prepare(ws, "denied", plan)
    chown_tree(root / ".airlock", NOBODY)  # files the database made since
    chown_tree(root / "Tools", NOBODY)
    pre = take_snapshot(root)

    child = run_child(root, "denied", user=NOBODY)

    assert child.returncode == 0, child.describe()
    result = child.result
    assert result is not None, child.describe()
    assert result["success"] is False
    assert "permission denied" in str(result["error"]), result["error"]
    assert "Locked/b.txt" in str(result["error"])
    assert_same(take_snapshot(root), pre, "after a permission-denied apply")
    with Workspace(root) as ws:
        assert ws.recovered == []
        assert ws.get("denied").status == "failed"
        assert_clean_state(ws)
