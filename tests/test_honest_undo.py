"""What Airlock says after a failure is true (issue 9: F5, F6, F7, F12).

Real faults, as the red team made them: a disk that fills exactly at the final database commit,
a journal cursor on a full filesystem, `airlock gc` killed with kill -9 part-way through a purge,
and another writer renaming a folder, or swapping it for a symbolic link, during an undo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from airlock.errors import RollbackConflictError, StorageError
from airlock.workspace import Workspace
from crashkit import APPROVER, SCOPE, Mounts, make_tree, prepare, take_snapshot
from servicekit import serve_app

S = SCOPE + "/"


def airlock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airlock", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def fill(folder: Path) -> None:
    """Use up every free byte of the filesystem holding ``folder``."""
    fd = os.open(folder / "filler.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


MOVE_PLAN = {
    "scope": SCOPE,
    "author": "agent",
    "operations": [
        {"op": "mkdir", "path": "Filed"},
        {"op": "move", "source": "inbox/a.txt", "destination": "Filed/a.txt"},
        {"op": "write", "path": "Filed/index.txt", "text": "index\n"},
    ],
}


# --- F6: the disk fills exactly at the final commit ---------------------------------------


def test_a_disk_full_at_the_final_commit_says_what_is_true(mounts: Mounts, tmp_path: Path) -> None:
    mnt = mounts.tmpfs(tmp_path / "mnt", "4m")
    root = mnt / "ws"
    with Workspace.init(root) as ws:
        make_tree(root, {S + "inbox/a.txt": "a"})
        prepare(ws, "full", MOVE_PLAN)
        pre = take_snapshot(root)

        def after_each_step(done: int, total: int) -> None:
            if done == total:  # every step has run: the next write is the database's commit
                fill(mnt)

        with pytest.raises(StorageError) as failed:
            ws.apply("full", by=APPROVER, progress=after_each_step)
        said = str(failed.value)
        assert "unchanged" not in said
        assert "every change of the apply of plan 'full' was made on disk" in said
        assert "`airlock recover`" in said and "restoring the state before the plan" in said
        assert (root / SCOPE / "Filed" / "a.txt").exists()  # what is true: it is all applied

        # The service's health check reports the unfinished transaction.
        (mnt / "filler.bin").unlink()
        with serve_app(ws) as url:
            health = httpx.get(url + "/health").json()
        assert health["status"] == "degraded"
        assert len(health["unfinished_transactions"]) == 1
        assert "plan full" in health["unfinished_transactions"][0]
        assert ws.get("full").status == "applying"

    listed = airlock("recover", "--workspace", str(root), "--check", "--json")
    assert listed.returncode == 8 and "plan full" in listed.stdout, listed
    recovered = airlock("recover", "--workspace", str(root), "--json")
    assert recovered.returncode == 0, recovered.stderr
    with Workspace(root) as ws:
        assert ws.get("full").status == "failed"
        assert take_snapshot(root) == pre
        assert ws.unfinished() == []


# --- F12: the journal cursor cannot be written --------------------------------------------


def test_a_journal_cursor_on_a_full_disk_fails_cleanly_with_exit_8(
    mounts: Mounts, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    Workspace.init(root).close()
    make_tree(root, {S + "inbox/a.txt": "a"})
    with Workspace(root) as ws:
        prepare(ws, "cursor", MOVE_PLAN)
    journal = root / ".airlock" / "journal"
    mounts.tmpfs(journal, "64k")
    fill(journal)
    pre = take_snapshot(root)

    done = airlock("plan", "apply", "cursor", "--workspace", str(root))

    assert done.returncode == 8, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "journal cursor" in done.stderr and "the workspace is unchanged" in done.stderr
    assert take_snapshot(root) == pre
    with Workspace(root) as ws:
        assert ws.get("cursor").status == "failed"


# --- F5: gc killed part-way ---------------------------------------------------------------

FILES = 20_000


def test_gc_killed_mid_purge_leaves_no_rollback_over_half_the_files(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root).close()
    policy = root / ".airlock" / "policy.toml"
    policy.write_text(policy.read_text().replace("max_deletions = 1000", "max_deletions = 50000"))
    folder = root / SCOPE / "Scans"
    folder.mkdir(parents=True)
    for n in range(FILES):
        (folder / f"{n:05}.pdf").write_bytes(b"%PDF")
    with Workspace(root) as ws:
        prepare(
            ws,
            "purge",
            {"scope": SCOPE, "author": "agent", "operations": [{"op": "delete", "path": "Scans"}]},
        )
        result = ws.apply("purge", by=APPROVER)
        assert result.success
        trash = root / ".airlock" / "trash" / str(result.transaction_id) / "0"

    gc = subprocess.Popen(
        [sys.executable, "-m", "airlock", "gc", "--workspace", str(root), "--older-than", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            left = len(os.listdir(trash))
        except FileNotFoundError:
            left = 0
        if left < FILES:
            break
    gc.send_signal(signal.SIGKILL)
    gc.wait()
    assert 0 < left < FILES, f"gc was not caught part-way ({left} files left); retry"

    with Workspace(root) as ws:
        assert [e for e in ws.audit_events("purge") if e["kind"] == "purged"]
        with pytest.raises(Exception, match="purged"):
            ws.rollback("purge", by=APPROVER)
        assert not (root / SCOPE / "Scans").exists()
        ws.gc(older_than_days=0)  # a later gc finishes the purge
        assert not trash.exists()


def test_a_rollback_refuses_when_kept_aside_files_are_missing(ws: Workspace, root: Path) -> None:
    folder = root / SCOPE / "Scans"
    folder.mkdir()
    for n in range(5):
        (folder / f"{n}.pdf").write_bytes(b"PDF-1.4 " + str(n).encode())
    operations = [{"op": "delete", "path": "Scans"}, {"op": "delete", "path": "notes.txt"}]
    prepare(ws, "gone", {"scope": SCOPE, "author": "agent", "operations": operations})
    result = ws.apply("gone", by=APPROVER)
    trash = root / ".airlock" / "trash" / str(result.transaction_id)
    (trash / "0" / "3.pdf").unlink()  # removed by hand, or by a purge cut short
    (trash / "1").unlink()
    for force in (False, True):
        with pytest.raises(RollbackConflictError, match="kept aside are gone") as refused:
            ws.rollback("gone", by=APPROVER, force=force)
        assert refused.value.details == [
            f"{S}Scans: its kept-aside folder holds 4 file(s), 36 bytes; the plan removed "
            "5 file(s), 45 bytes",
            f"{S}notes.txt: its kept-aside copy '.airlock/trash/{result.transaction_id}/1' is gone",
        ]
    assert ws.get("gone").status == "applied"
    assert not folder.exists()


# --- F7: another writer during an undo ----------------------------------------------------


def _raced(ws: Workspace, root: Path, swap_for_link: bool) -> None:
    """Apply MOVE_PLAN; just before its last step (writing Filed/index.txt) someone renames the
    folder Filed, and maybe puts a symlink in its place, so that step fails and is undone."""
    case = root / SCOPE

    def hook(index: int) -> None:
        if index == 3:  # steps: mkdir trash, mkdir Filed, rename a.txt, create index.txt
            (case / "Filed").rename(case / "Filed-renamed")
            if swap_for_link:
                (case / "Filed").symlink_to("Filed-renamed")

    make_tree(root, {S + "inbox/a.txt": "a"})
    prepare(ws, "raced", MOVE_PLAN)
    result = ws.apply("raced", by=APPROVER, hook=hook)
    assert not result.success
    assert result.differs == [f"{S}inbox/a.txt: disappeared since validation"]


def test_an_undo_over_a_renamed_folder_reports_exactly_what_differs(
    ws: Workspace, root: Path
) -> None:
    _raced(ws, root, swap_for_link=False)
    failed = [e for e in ws.audit_events("raced") if e["kind"] == "failed"][-1]["payload"]
    assert failed["workspace"] == "restored except the paths listed"
    assert failed["differs"] == [f"{S}inbox/a.txt: disappeared since validation"]
    assert "not as they were before the apply" in str(ws.get("raced").reason)


def test_an_undo_blocked_by_a_symlink_is_resolved_by_an_operator_command(
    ws: Workspace, root: Path
) -> None:
    with pytest.raises(StorageError, match="could not undo"):
        _raced(ws, root, swap_for_link=True)
    ws.close()
    for _ in range(2):  # it keeps failing: the link stays in the way
        again = airlock("recover", "--workspace", str(root))
        assert again.returncode == 8, again.stdout + again.stderr
        assert "airlock recover --resolve" in " ".join(again.stderr.split())

    resolved = airlock("recover", "--workspace", str(root), "--resolve", "--json")

    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    (item,) = json.loads(resolved.stdout)["recovered"]
    assert len(item["skipped"]) == 1 and "rename" in item["skipped"][0]
    assert f"{S}inbox/a.txt: disappeared since validation" in item["differs"]
    assert f"{S}Filed: appeared since validation" in item["differs"]
    with Workspace(root) as reopened:
        assert reopened.get("raced").status == "failed"
        assert reopened.unfinished() == [] and reopened.recovery_failures == []
        assert (root / SCOPE / "Filed-renamed" / "a.txt").read_text() == "a"  # nothing deleted
        event = [e for e in reopened.audit_events("raced") if e["kind"] == "recovered"][-1]
        assert event["actor"].startswith("os:")
        assert "resolved by an operator" in event["payload"]["result"]
