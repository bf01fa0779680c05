"""An approval covers exactly what the approver saw (issue 9, F1, F4, F15, F16).

Written as the red team did it: a folder operation is approved, then the folder's contents are
changed by the agent's own approval-free plan and by a person saving a file straight onto the
share, and the approved plan is applied.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from airlock.errors import PlanFormatError, StalePlanError, UnsafePathError
from airlock.workspace import Workspace
from support import CASE, make_plan, person, snapshot


def _approved(ws: Workspace, *operations: dict[str, object]) -> str:
    record = ws.validate(ws.submit(make_plan(*operations)).id)
    assert record.status == "validated", record.validation
    ws.approve(record.id, by=person("dana"))
    return record.id


@pytest.fixture
def drafts(root: Path) -> Path:
    folder = root / CASE / "Drafts"
    folder.mkdir()
    (folder / "junk.tmp").write_bytes(b"junk")
    for n in range(5):
        (root / CASE / f"brief-{n}.docx").write_bytes(b"brief %d" % n)
    return folder


def test_a_folder_delete_refuses_files_added_after_approval(
    ws: Workspace, root: Path, drafts: Path
) -> None:
    plan_id = _approved(ws, {"op": "delete", "path": "Drafts"})
    report = ws.get(plan_id).validation
    assert report is not None
    assert any("with 1 file(s), 4 bytes" in w.message for w in report.warnings)
    # The agent moves five briefs in (a move needs no approval) and a person saves a letter.
    moves = [
        {"op": "move", "source": f"brief-{n}.docx", "destination": f"Drafts/brief-{n}.docx"}
        for n in range(5)
    ]
    mover = ws.validate(ws.submit(make_plan(*moves)).id)
    assert ws.apply(mover.id, by=person("agent")).success
    (drafts / "client-letter-FINAL.docx").write_bytes(b"the only copy")
    before = snapshot(root)

    with pytest.raises(StalePlanError) as refused:
        ws.apply(plan_id, by=person("agent"))
    named = "\n".join(refused.value.details)
    assert f"{CASE}/Drafts/client-letter-FINAL.docx: added since validation" in named
    assert f"{CASE}/Drafts/brief-3.docx: added since validation" in named
    assert snapshot(root) == before
    assert ws.get(plan_id).status == "approved"


def test_a_file_added_in_a_subfolder_is_seen_too(ws: Workspace, root: Path, drafts: Path) -> None:
    (drafts / "old").mkdir()
    plan_id = _approved(ws, {"op": "delete", "path": "Drafts"})
    (drafts / "old" / "new.txt").write_bytes(b"new")
    with pytest.raises(StalePlanError, match="stale") as refused:
        ws.apply(plan_id, by=person("agent"))
    assert refused.value.details == [
        f"{CASE}/Drafts/old/new.txt: added since validation, inside a folder the plan "
        "deletes, moves or copies"
    ]
    assert (drafts / "old" / "new.txt").exists()


def test_a_folder_copy_refuses_a_big_file_added_after_validation(
    ws: Workspace, root: Path, drafts: Path
) -> None:
    record = ws.validate(
        ws.submit(make_plan({"op": "copy", "source": "Drafts", "destination": "Drafts-copy"})).id
    )
    (drafts / "huge.bin").write_bytes(b"\0" * (3 << 20))
    with pytest.raises(StalePlanError, match="stale"):
        ws.apply(record.id, by=person("agent"))
    assert not (root / CASE / "Drafts-copy").exists()


def test_a_folder_move_refuses_a_file_removed_or_added(
    ws: Workspace, root: Path, drafts: Path
) -> None:
    plan_id = _approved(
        ws,
        {"op": "move", "source": "Drafts", "destination": "Old-Drafts"},
        {"op": "delete", "path": "notes.txt"},
    )
    (drafts / "added.txt").write_bytes(b"x")
    with pytest.raises(StalePlanError, match="added since validation"):
        ws.apply(plan_id, by=person("agent"))
    assert (drafts / "added.txt").exists() and not (root / CASE / "Old-Drafts").exists()


def test_an_unchanged_folder_still_applies_and_the_audit_names_its_digest(
    ws: Workspace, root: Path, drafts: Path
) -> None:
    plan_id = _approved(ws, {"op": "delete", "path": "Drafts"})
    validated = ws.get(plan_id).validation
    assert validated is not None
    assert ws.apply(plan_id, by=person("agent")).success
    applied = next(e for e in ws.audit_events(plan_id) if e["kind"] == "applied")
    assert applied["payload"]["operations"][0]["sha256_before"] == (
        validated.changes[0].sha256_before
    )
    assert not drafts.exists()


def test_a_report_from_before_folder_contents_were_recorded_must_be_validated_again(
    ws: Workspace, root: Path, drafts: Path
) -> None:
    plan_id = _approved(ws, {"op": "delete", "path": "Drafts"})
    # As stored by an Airlock that did not record folder contents.
    with sqlite3.connect(root / ".airlock" / "airlock.db") as db:
        (report,) = db.execute(
            "SELECT report FROM validations WHERE plan_id = ?", (plan_id,)
        ).fetchone()
        old = json.loads(report)
        del old["folder_contents"]
        db.execute(
            "UPDATE validations SET report = ? WHERE plan_id = ?", (json.dumps(old), plan_id)
        )
    with pytest.raises(StalePlanError, match="older Airlock"):
        ws.apply(plan_id, by=person("agent"))
    assert drafts.exists()


# --- F4: protected patterns and folder operations -----------------------------------------


def _protected(root: Path, pattern: str) -> None:
    Workspace.init(root).close()
    policy = root / ".airlock" / "policy.toml"
    policy.write_text(
        policy.read_text().replace("protected = []", f"protected = [{pattern!r}]"),
        encoding="utf-8",
    )


@pytest.mark.parametrize("op", ["move", "copy"])
def test_a_folder_cannot_carry_files_into_a_protected_place(root: Path, op: str) -> None:
    _protected(root, f"{CASE}/Sealed/*.pdf")
    (root / CASE / "Sealed").mkdir()
    (root / CASE / "Staging").mkdir()
    (root / CASE / "Staging" / "forged.pdf").write_bytes(b"%PDF forged")
    with Workspace(root) as ws:
        record = ws.validate(
            ws.submit(
                make_plan({"op": op, "source": "Staging", "destination": "Sealed/Staging"})
            ).id
        )
        assert record.status == "invalid"
        assert record.validation is not None
        (error,) = record.validation.errors
        assert error.code == "protected"
        assert "Sealed/Staging/forged.pdf" in error.message


# --- F15: '.airlock' inside a scope ---------------------------------------------------------


@pytest.mark.parametrize("name", [".airlock", ".Airlock", "Sub/.airlock/x", "\uff0eairlock"])
def test_no_plan_may_name_a_folder_airlock_inside_a_scope(ws: Workspace, name: str) -> None:
    with pytest.raises((PlanFormatError, UnsafePathError), match="Airlock's own state"):
        ws.submit(make_plan({"op": "mkdir", "path": name}))


# --- F16: max_deletions counts files --------------------------------------------------------


def test_max_deletions_counts_the_files_a_folder_delete_removes(root: Path) -> None:
    policy = root / ".airlock"
    folder = root / CASE / "Many"
    folder.mkdir(parents=True)
    for n in range(12):
        (folder / f"{n}.txt").write_bytes(b"x")
    Workspace.init(root).close()
    text = (policy / "policy.toml").read_text()
    (policy / "policy.toml").write_text(text.replace("max_deletions = 1000", "max_deletions = 10"))
    with Workspace(root) as ws:
        record = ws.validate(ws.submit(make_plan({"op": "delete", "path": "Many"})).id)
        assert record.status == "invalid"
        assert record.validation is not None
        (error,) = record.validation.errors
        assert error.code == "limit-deletions"
        assert "deletes 12 files" in error.message


def test_a_plan_stored_before_airlock_names_were_refused_still_lists_and_is_refused(
    ws: Workspace, root: Path
) -> None:
    record = ws.submit(make_plan({"op": "mkdir", "path": "Sub"}))
    stored = json.loads(ws.get(record.id).plan.canonical_json())
    stored["operations"][0]["path"] = "Sub/.airlock"  # as an older Airlock accepted it
    with sqlite3.connect(root / ".airlock" / "airlock.db") as db:
        db.execute("UPDATE plans SET body = ? WHERE id = ?", (json.dumps(stored), record.id))
    with Workspace(root) as reopened:  # as after the upgrade: nothing parsed yet
        assert [p.id for p in reopened.list_plans()] == [record.id]
        operation = reopened.get(record.id).plan.operations[0]
        assert getattr(operation, "path", None) == "Sub/.airlock"
        report = reopened.validate(record.id).validation
    assert report is not None and not report.valid
    assert report.errors[0].code == "unsafe-path"
    assert "Airlock's own state folder" in report.errors[0].message


def test_a_report_whose_commit_failed_is_never_shown_for_another_plan(
    ws: Workspace, root: Path
) -> None:
    """A validation row is flushed, then its commit fails: SQLite hands its id to the next
    validation. The page's parsed-report cache must not show plan A's report as plan B's.
    The failing commit is injected (a real disk cannot be made to fail between a flush and the
    commit on demand); the engine's own error path is real."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from airlock.db import ValidationRow

    a = ws.submit(make_plan({"op": "mkdir", "path": "A-only"})).id
    b = ws.submit(make_plan({"op": "mkdir", "path": "B-only"})).id

    def note(session: Session, *_args: object) -> None:
        if any(isinstance(row, ValidationRow) for row in session.new):
            session.info["validation flushed"] = True

    def fail_once(session: Session) -> None:
        if session.info.get("validation flushed"):
            event.remove(ws.store._writes, "before_commit", fail_once)
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(ws.store._writes, "before_flush", note)
    event.listen(ws.store._writes, "before_commit", fail_once)
    with pytest.raises(Exception, match="state database"):
        ws.validate(a)
    shown = ws.validate(b).validation
    assert shown is not None and [c.path for c in shown.changes] == [f"{CASE}/B-only"]
    again = ws.get(b).validation
    assert again is not None and [c.path for c in again.changes] == [f"{CASE}/B-only"]
