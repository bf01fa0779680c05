"""The library's lifecycle rules: approval binding, staleness, rollback conflicts, gc, recovery."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from airlock.errors import (
    NotFoundError,
    NotPermittedError,
    PlanFormatError,
    PlanStateError,
    RollbackConflictError,
    StalePlanError,
)
from airlock.workspace import Workspace
from support import CASE, make_plan, person, snapshot

MOVE = {"op": "move", "source": "inbox/scan1.pdf", "destination": "scan1-renamed.pdf"}
DELETE = {"op": "delete", "path": "notes.txt"}


def test_additive_plan_applies_without_approval(ws: Workspace, root: Path) -> None:
    record = ws.submit(make_plan({"op": "mkdir", "path": "Medical"}, MOVE))
    record = ws.validate(record.id)
    assert record.status == "validated"
    assert record.validation is not None and record.validation.needs_approval == []
    result = ws.apply(record.id, by=person("agent"))
    assert result.success
    assert (root / CASE / "scan1-renamed.pdf").read_bytes() == b"%PDF-1.4 one"
    assert ws.get(record.id).status == "applied"


def test_destructive_plan_needs_a_person_other_than_its_author(ws: Workspace, root: Path) -> None:
    record = ws.validate(ws.submit(make_plan(DELETE), by=person("agent")).id)
    assert record.validation is not None
    assert record.validation.needs_approval == ["1 delete(s)"]
    with pytest.raises(NotPermittedError, match="needs a person's approval"):
        ws.apply(record.id)
    with pytest.raises(NotPermittedError, match="cannot approve"):
        ws.approve(record.id, by=person("agent"))
    assert (root / CASE / "notes.txt").exists()
    ws.approve(record.id, by=person("dana"), comment="fine")
    assert ws.apply(record.id).success
    assert not (root / CASE / "notes.txt").exists()


def test_rejected_plan_can_never_apply(ws: Workspace) -> None:
    record = ws.validate(ws.submit(make_plan(DELETE)).id)
    ws.reject(record.id, by=person("dana"), comment="keep the notes")
    with pytest.raises(PlanStateError, match="rejected"):
        ws.apply(record.id)
    with pytest.raises(PlanStateError):
        ws.approve(record.id, by=person("dana"))


def test_approval_is_bound_to_the_validation_it_was_given_on(ws: Workspace, root: Path) -> None:
    record = ws.validate(ws.submit(make_plan(DELETE)).id)
    ws.approve(record.id, by=person("dana"))
    # Re-validating produces a new report; the old approval does not carry over to it.
    ws.validate(record.id)
    with pytest.raises(NotPermittedError):
        ws.apply(record.id)
    assert (root / CASE / "notes.txt").exists()


def test_same_id_same_content_is_idempotent_and_different_content_refused(ws: Workspace) -> None:
    first = ws.submit(make_plan(MOVE), plan_id="p-1")
    again = ws.submit(make_plan(MOVE), plan_id="p-1")
    assert again.id == first.id and again.digest == first.digest
    with pytest.raises(PlanStateError, match="different content"):
        ws.submit(make_plan(DELETE), plan_id="p-1")
    assert len([e for e in ws.audit_events() if e["kind"] == "submitted"]) == 1


def test_bad_plans_are_refused_with_what_to_fix(ws: Workspace) -> None:
    with pytest.raises(PlanFormatError) as info:
        ws.submit({"scope": CASE, "operations": [{"op": "explode", "path": "x"}]})
    assert "operation 1: Input tag 'explode'" in str(info.value)  # counted from 1
    with pytest.raises(PlanFormatError, match=r"operation 2 \(move\), source: Field required"):
        ws.submit(make_plan({"op": "mkdir", "path": "a"}, {"op": "move", "destination": "b"}))
    with pytest.raises(PlanFormatError, match="exactly one of 'text' or 'base64'"):
        ws.submit(make_plan({"op": "write", "path": "x.txt"}))
    with pytest.raises(PlanFormatError, match="plan id"):
        ws.submit(make_plan(MOVE), plan_id="../../etc")
    with pytest.raises(NotFoundError, match="airlock plan list"):
        ws.get("no-such-plan")


def test_stale_plan_is_refused_and_names_the_changed_path(ws: Workspace, root: Path) -> None:
    record = ws.validate(
        ws.submit(make_plan({"op": "write", "path": "new.txt", "text": "x"}, MOVE)).id
    )
    (root / CASE / "inbox" / "scan1.pdf").write_bytes(b"changed by someone")
    with pytest.raises(StalePlanError) as info:
        ws.apply(record.id)
    assert any("inbox/scan1.pdf" in line for line in info.value.details)
    assert not (root / CASE / "new.txt").exists()
    (root / CASE / "new.txt").write_text("appeared")
    ws.validate(record.id)  # the new report sees new.txt: now a collision
    assert ws.get(record.id).status == "invalid"


def test_overwrite_keeps_old_bytes_and_rollback_restores_them(ws: Workspace, root: Path) -> None:
    before = snapshot(root)
    plan = make_plan(
        {"op": "write", "path": "notes.txt", "text": "second notes\n", "overwrite": True},
        {"op": "copy", "source": "inbox", "destination": "inbox-copy"},
        MOVE,
        {"op": "delete", "path": "inbox"},
    )
    record = ws.validate(ws.submit(plan).id)
    ws.approve(record.id, by=person("dana"))
    assert ws.apply(record.id).success
    assert (root / CASE / "notes.txt").read_text() == "second notes\n"
    assert not (root / CASE / "inbox").exists()
    ws.rollback(record.id, by=person("dana"))
    assert snapshot(root) == before
    assert ws.get(record.id).status == "rolled_back"
    kinds = [e["kind"] for e in ws.audit_events(record.id)]
    assert kinds == ["submitted", "validated", "approved", "applied", "rolled_back"]


def test_applied_event_records_paths_and_hashes(ws: Workspace, root: Path) -> None:
    record = ws.validate(
        ws.submit(
            make_plan({"op": "write", "path": "notes.txt", "text": "v2", "overwrite": True})
        ).id
    )
    ws.approve(record.id, by=person("dana"))
    ws.apply(record.id, by=person("agent"))
    applied = next(e for e in ws.audit_events(record.id) if e["kind"] == "applied")
    (operation,) = applied["payload"]["operations"]
    import hashlib

    assert operation["path"] == f"{CASE}/notes.txt"
    assert operation["sha256_before"] == hashlib.sha256(b"first notes\n").hexdigest()
    assert operation["sha256_after"] == hashlib.sha256(b"v2").hexdigest()
    assert applied["actor"] == "agent"


def test_rollback_refuses_on_conflict_and_force_sets_changes_aside(
    ws: Workspace, root: Path
) -> None:
    record = ws.validate(
        ws.submit(
            make_plan({"op": "mkdir", "path": "Filed"}, {**MOVE, "destination": "Filed/a.pdf"})
        ).id
    )
    ws.apply(record.id)
    (root / CASE / "Filed" / "added-later.txt").write_text("a person's own file")
    (root / CASE / "inbox" / "scan1.pdf").write_text("new file where the original returns")
    with pytest.raises(RollbackConflictError) as info:
        ws.rollback(record.id, by=person("dana"))
    details = "\n".join(info.value.details)
    assert "added-later.txt: was added since the apply" in details
    assert "inbox/scan1.pdf: something new stands where the rollback restores" in details
    assert (root / CASE / "Filed" / "a.pdf").exists()  # nothing happened
    ws.rollback(record.id, by=person("dana"), force=True)
    assert (root / CASE / "inbox" / "scan1.pdf").read_bytes() == b"%PDF-1.4 one"
    assert not (root / CASE / "Filed").exists()
    set_aside = sorted(
        p.read_text() for p in (root / ".airlock" / "trash").rglob("*") if p.is_file()
    )
    assert set_aside == ["a person's own file", "new file where the original returns"]
    event = next(e for e in ws.audit_events(record.id) if e["kind"] == "rolled_back")
    assert event["payload"]["forced"] is True and len(event["payload"]["set_aside"]) == 2


def test_gc_purges_after_retention_and_then_rollback_says_why_not(
    ws: Workspace, root: Path
) -> None:
    record = ws.validate(ws.submit(make_plan(DELETE)).id)
    ws.approve(record.id, by=person("dana"))
    ws.apply(record.id)
    assert ws.gc() == []  # within the retention period
    trash = root / ".airlock" / "trash"
    assert any(trash.rglob("*"))
    purged = ws.gc(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
    assert len(purged) == 1
    assert not any(trash.rglob("notes*")) and not list((trash).glob(purged[0]))
    with pytest.raises(PlanStateError, match="purged"):
        ws.rollback(record.id, by=person("dana"))
    assert any(e["kind"] == "purged" for e in ws.audit_events())


def test_policy_file_controls_approval_and_protection(root: Path) -> None:
    Workspace.init(root).close()
    policy = root / ".airlock" / "policy.toml"
    text = policy.read_text().replace("protected = []", 'protected = ["projects/*/notes.txt"]')
    policy.write_text(
        text.replace(
            'approval_required_for = ["delete", "overwrite"]', 'approval_required_for = ["any"]'
        )
    )
    with Workspace(root) as ws:
        record = ws.validate(ws.submit(make_plan(MOVE)).id)
        assert record.validation is not None and record.validation.needs_approval
        record = ws.validate(ws.submit(make_plan(DELETE)).id)
        assert record.status == "invalid"
        assert record.validation is not None
        assert "protected by policy" in record.validation.errors[0].message


def test_bad_policy_file_is_a_clear_error(root: Path) -> None:
    Workspace.init(root).close()
    (root / ".airlock" / "policy.toml").write_text("areas = [\n")
    from airlock.errors import InputError

    with pytest.raises(InputError, match="policy file"):
        Workspace(root)


def test_not_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="airlock init"):
        Workspace(tmp_path)


def test_recovery_skips_a_transaction_whose_process_is_alive(ws: Workspace, root: Path) -> None:
    """A running apply in this process holds the scope lock: recovery from another must wait."""
    import threading

    record = ws.validate(ws.submit(make_plan(MOVE, {"op": "mkdir", "path": "later"})).id)
    reached = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def hook(index: int) -> None:
        if index == 2:
            reached.set()
            assert release.wait(30)

    worker = threading.Thread(
        target=lambda: seen.append(int(ws.apply(record.id, hook=hook).success))
    )
    worker.start()
    assert reached.wait(30)
    with Workspace(root) as other:
        assert other.recovered == []  # live: not touched
    release.set()
    worker.join(30)
    assert seen == [1]
    assert os.path.exists(root / CASE / "later")


def test_case_only_rename_is_not_a_collision_with_itself(ws: Workspace, root: Path) -> None:
    record = ws.validate(
        ws.submit(make_plan({"op": "move", "source": "notes.txt", "destination": "Notes.txt"})).id
    )
    assert record.status == "validated", record.validation
    assert ws.apply(record.id).success
    assert sorted(p.name for p in (root / CASE).iterdir()) == ["Notes.txt", "inbox"]
    other = ws.validate(
        ws.submit(make_plan({"op": "write", "path": "NOTES.txt", "text": "twin"})).id
    )
    assert other.status == "invalid"


def test_forced_rollback_over_a_replaced_folder_sets_it_aside_and_finishes(
    ws: Workspace, root: Path
) -> None:
    before = snapshot(root)
    record = ws.validate(
        ws.submit(make_plan({"op": "mkdir", "path": "D"}, {**MOVE, "destination": "D/a.pdf"})).id
    )
    assert ws.apply(record.id).success
    import shutil

    shutil.rmtree(root / CASE / "D")
    (root / CASE / "D").write_text("a person's file where the folder was")
    ws.rollback(record.id, by=person("dana"), force=True)
    after = snapshot(root)
    # The person destroyed D (and the file moved into it) themselves; everything else is back,
    # and their own file is kept aside, not deleted.
    assert {k: v for k, v in before.items() if k != f"{CASE}/inbox/scan1.pdf"} == after
    kept = [p.read_text() for p in (root / ".airlock" / "trash").rglob("*") if p.is_file()]
    assert kept == ["a person's file where the folder was"]
    with Workspace(root) as again:
        assert again.recovery_failures == []


def test_apply_first_recovers_a_dead_transaction_on_its_scope(ws: Workspace, root: Path) -> None:
    before = snapshot(root)
    first = ws.validate(ws.submit(make_plan(DELETE, {"op": "mkdir", "path": "X"})).id)
    ws.approve(first.id, by=person("dana"))

    class Crash(BaseException):
        pass

    def crash(index: int) -> None:
        if index == 2:
            raise Crash

    with pytest.raises(Crash):
        ws.apply(first.id, hook=crash)
    assert not (root / CASE / "notes.txt").exists()  # half-applied, as after a kill
    second = ws.validate(ws.submit(make_plan({"op": "write", "path": "new.txt", "text": "n"})).id)
    result = ws.apply(second.id)
    # The dead transaction was undone first (notes.txt is back), and the second plan, validated
    # on the half-applied tree, is now stale rather than applied on top of it.
    assert (root / CASE / "notes.txt").read_text() == "first notes\n"
    assert ws.get(first.id).status == "failed"
    assert result.success or snapshot(root) == before


def test_gc_never_purges_bytes_an_undo_left_behind(ws: Workspace, root: Path) -> None:
    record = ws.validate(ws.submit(make_plan(DELETE)).id)
    ws.approve(record.id, by=person("dana"))

    def fail(index: int) -> None:
        if index == 1:
            (root / CASE / "notes.txt").rename(root / CASE / "notes.moved")
            (root / CASE / "notes.moved").rename(root / CASE / "notes.txt")
            raise OSError(5, "injected")

    with pytest.raises(OSError):
        ws.apply(record.id, hook=fail)
    ws.recover()
    txn = next(e for e in ws.audit_events(record.id) if e["kind"] == "recovered")
    trash = root / ".airlock" / "trash" / txn["payload"]["transaction"]
    trash.mkdir(exist_ok=True)
    (trash / "0").write_text("bytes a short undo left here")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert ws.gc(now=future) == []
    assert (trash / "0").read_text() == "bytes a short undo left here"
    assert ws.gc_kept and "kept-aside files remain" in ws.gc_kept[0]


def test_rollback_refuses_while_a_later_plan_built_on_it(ws: Workspace, root: Path) -> None:
    first = ws.validate(
        ws.submit(
            make_plan(
                {"op": "copy", "source": "inbox", "destination": "D"},
                {"op": "write", "path": "D/new.txt", "text": "n"},
            )
        ).id
    )
    assert ws.apply(first.id).success
    second = ws.validate(
        ws.submit(make_plan({"op": "write", "path": "D/extra.txt", "text": "e"})).id
    )
    assert ws.apply(second.id).success
    conflicts = ws.rollback_conflicts(first.id)
    assert any(second.id in c.reason for c in conflicts)
    with pytest.raises(RollbackConflictError, match="plans applied after it"):
        ws.rollback(first.id, by=person("dana"), force=True)
    assert (root / CASE / "D" / "extra.txt").read_text() == "e"
    ws.rollback(second.id, by=person("dana"))
    ws.rollback(first.id, by=person("dana"))
    assert not (root / CASE / "D").exists()
