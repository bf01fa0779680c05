"""Finding and restoring what was set aside (airlock.trash, `airlock trash list/restore`): every
deleted or overwritten original, and what a rollback removed, is listed with its plan, time and
retention left; restoring it is a plan, approved and applied like any other, byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airlock.errors import NotFoundError
from airlock.permissions import Role
from airlock.trash import kept_aside, restore
from airlock.workspace import Workspace
from support import person

SCOPE = "projects/Trash-Case"
AGENT = person("agent-7", Role.AGENT)
APPROVER = person("jane", Role.APPROVER)
REPORT = b"%PDF-1.4 the only incident report"


@pytest.fixture
def applied(ws: Workspace) -> tuple[Workspace, str]:
    """A plan that deleted a file and a folder and overwrote one, approved and applied."""
    case = ws.root / SCOPE
    (case / "Reports").mkdir(parents=True)
    (case / "Reports" / "incident.pdf").write_bytes(REPORT)
    (case / "Old").mkdir()
    (case / "Old" / "a.txt").write_text("a\n")
    (case / "Old" / "sub").mkdir()
    (case / "Old" / "sub" / "b.txt").write_text("b\n")
    (case / "notes.txt").write_text("first\n")
    record = ws.submit(
        {
            "scope": SCOPE,
            "description": "remove the duplicate",
            "operations": [
                {"op": "delete", "path": "Reports/incident.pdf"},
                {"op": "delete", "path": "Old"},
                {"op": "write", "path": "notes.txt", "text": "second\n", "overwrite": True},
            ],
        },
        by=AGENT,
    )
    record = ws.validate(record.id, by=AGENT)
    ws.approve(record.id, by=APPROVER)
    assert ws.apply(record.id, by=AGENT).success
    return ws, record.id


def approve_and_apply(ws: Workspace, plan_id: str) -> None:
    record = ws.get(plan_id, by=AGENT)
    if record.validation is not None and record.validation.needs_approval:
        ws.approve(plan_id, by=APPROVER)
    assert ws.apply(plan_id, by=AGENT).success


def test_what_a_plan_kept_aside_is_listed(applied: tuple[Workspace, str]) -> None:
    ws, plan_id = applied
    found = {item.path: item for item in kept_aside(ws, by=AGENT)}
    assert set(found) == {f"{SCOPE}/Reports/incident.pdf", f"{SCOPE}/Old", f"{SCOPE}/notes.txt"}
    report = found[f"{SCOPE}/Reports/incident.pdf"]
    assert report.plan_id == plan_id and report.kind == "apply" and report.entry == "file"
    assert report.size == len(REPORT) and report.stored_at.startswith(".airlock/trash/")
    assert (ws.root / report.stored_at).read_bytes() == REPORT
    assert found[f"{SCOPE}/Old"].entry == "dir" and found[f"{SCOPE}/Old"].size == 4
    assert 29.9 < report.days_left <= 30
    assert kept_aside(ws, scope="projects/Other", by=AGENT) == []


def test_restoring_is_a_plan_that_puts_the_bytes_back(applied: tuple[Workspace, str]) -> None:
    ws, _plan_id = applied
    case = ws.root / SCOPE
    found = {item.path: item for item in kept_aside(ws, by=AGENT)}
    record = restore(ws, found[f"{SCOPE}/Reports/incident.pdf"].id, by=AGENT)
    assert record.status == "validated" and record.author == "agent-7"
    assert not (case / "Reports" / "incident.pdf").exists()  # a plan: nothing until applied
    approve_and_apply(ws, record.id)
    assert (case / "Reports" / "incident.pdf").read_bytes() == REPORT

    folder = restore(ws, found[f"{SCOPE}/Old"].id, by=AGENT)
    approve_and_apply(ws, folder.id)
    assert (case / "Old" / "a.txt").read_text() == "a\n"
    assert (case / "Old" / "sub" / "b.txt").read_text() == "b\n"

    # where something is now, the restore is refused by validation (nothing is overwritten)
    again = restore(ws, found[f"{SCOPE}/notes.txt"].id, by=AGENT)
    assert again.status == "invalid"
    elsewhere = restore(ws, found[f"{SCOPE}/notes.txt"].id, to=f"{SCOPE}/notes (old).txt", by=AGENT)
    approve_and_apply(ws, elsewhere.id)
    assert (case / "notes (old).txt").read_text() == "first\n"


def test_restore_refusals(applied: tuple[Workspace, str]) -> None:
    ws, _plan_id = applied
    with pytest.raises(NotFoundError, match="nothing kept aside"):
        restore(ws, "txn-nope/0", by=AGENT)
    item = kept_aside(ws, by=AGENT)[0]
    with pytest.raises(Exception, match="outside the scope"):
        restore(ws, item.id, to="projects/Other/x.txt", by=AGENT)


def test_a_rollback_moves_them_back_and_keeps_what_it_removed(
    applied: tuple[Workspace, str],
) -> None:
    ws, plan_id = applied
    assert ws.rollback(plan_id, by=APPROVER).success
    found = kept_aside(ws, by=AGENT)
    assert [(item.path, item.kind) for item in found] == [(f"{SCOPE}/notes.txt", "rollback")]
    assert (ws.root / found[0].stored_at).read_text() == "second\n"  # what the plan wrote


def test_the_command_line(applied: tuple[Workspace, str]) -> None:
    ws, plan_id = applied

    def airlock(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airlock", *args, "--workspace", str(ws.root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = airlock("trash", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert {item["plan_id"] for item in items} == {plan_id}
    human = airlock("trash", "list")
    assert f"{SCOPE}/Reports/incident.pdf" in human.stdout and "day(s) left" in human.stdout
    report = next(i for i in items if i["path"].endswith("incident.pdf"))
    restored = airlock("trash", "restore", report["id"], "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["status"] == "validated"
    missing = airlock("trash", "restore", "txn-nope/0")
    assert missing.returncode == 4 and "airlock trash list" in missing.stderr


def test_the_audit_records_each_kept_aside_name(applied: tuple[Workspace, str]) -> None:
    ws, plan_id = applied
    [event] = [e for e in ws.audit_events(plan_id) if e["kind"] == "applied"]
    recorded = {kept["path"]: kept["as"] for kept in event["payload"]["kept_aside"]}
    listed = {item.path: item.stored_at for item in kept_aside(ws, by=AGENT)}
    assert recorded == listed
    assert ws.rollback(plan_id, by=APPROVER).success
    [undone] = [e for e in ws.audit_events(plan_id) if e["kind"] == "rolled_back"]
    assert [k["path"] for k in undone["payload"]["kept_aside"]] == [f"{SCOPE}/notes.txt"]
