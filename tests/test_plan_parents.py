"""Plans that create their folders: ``"parents": true`` on mkdir, write, copy and move.

Core-level cases on the memory backend (the report, preconditions, policy), a real workspace on
disk (staleness, apply and rollback), and the seed-compatible door, which sets it on every
operation as the seed service did (its own documented example: ``create_dir "Medical
Records/Provider1"`` in a case without ``Medical Records``, then moves into it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock import journal
from airlock.errors import StalePlanError
from airlock.permissions import Role
from airlock.plan import parse_plan
from airlock.policy import Policy
from airlock.report import report_lines
from airlock.rollback import find_conflicts
from airlock.storage.memory import MemoryStorage
from airlock.validate import Validation, stale_paths, validate
from airlock.workspace import Workspace
from servicekit import DEMO_CASE, TOKEN_NAMES, Service, json_of, running_service
from support import CASE, make_plan, person, snapshot

SCOPE = "projects/Case"
S = ("projects", "Case")


def memory(*files: str, dirs: tuple[str, ...] = ()) -> MemoryStorage:
    storage = MemoryStorage()
    for folder in (("projects",), S, *((*S, *d.split("/")) for d in dirs)):
        storage.mkdir(folder)
    for name in files:
        storage.create((*S, *name.split("/")), [name.encode()])
    return storage


def run(storage: MemoryStorage, *ops: dict[str, Any], policy: Policy | None = None) -> Validation:
    plan = parse_plan({"scope": SCOPE, "author": "agent", "operations": list(ops)})
    return validate(plan, storage, policy or Policy())


def made(report: Validation) -> list[tuple[int, str, str]]:
    prefix = SCOPE + "/"
    return [(c.op, c.action, c.path.removeprefix(prefix)) for c in report.changes]


# --- the format ---------------------------------------------------------------------------


def test_parents_is_false_by_default_and_left_out_of_the_digest() -> None:
    ops = [
        {"op": "mkdir", "path": "a"},
        {"op": "write", "path": "a/x", "text": "t"},
        {"op": "copy", "source": "a/x", "destination": "a/y"},
        {"op": "move", "source": "a/y", "destination": "a/z"},
    ]
    plain = parse_plan({"scope": SCOPE, "operations": ops})
    assert "parents" not in plain.canonical_json()  # plans made before it digest as they did
    explicit = parse_plan({"scope": SCOPE, "operations": [{**op, "parents": False} for op in ops]})
    assert explicit.digest == plain.digest
    asked = parse_plan({"scope": SCOPE, "operations": [{**op, "parents": True} for op in ops]})
    assert asked.digest != plain.digest
    assert all(op.model_dump()["parents"] is True for op in asked.operations)


# --- validation -----------------------------------------------------------------------------


def test_missing_folders_are_created_first_and_reported() -> None:
    storage = memory("in/a.pdf", "in/b.pdf", dirs=("in", "Billing"))
    report = run(
        storage,
        {"op": "mkdir", "path": "Medical Records/Provider1", "parents": True},
        {
            "op": "move",
            "source": "in/a.pdf",
            "destination": "Medical Records/Provider1/a.pdf",
            "parents": True,
        },
        {"op": "copy", "source": "in/b.pdf", "destination": "Billing/2024/b.pdf", "parents": True},
        {"op": "write", "path": "Index/2024/Q3/INDEX.md", "text": "# Index\n", "parents": True},
    )
    assert report.valid, report.errors
    assert report.warnings == []
    assert made(report) == [
        (0, "mkdir", "Medical Records"),
        (0, "mkdir", "Medical Records/Provider1"),
        (1, "move", "Medical Records/Provider1/a.pdf"),
        (2, "mkdir", "Billing/2024"),  # Billing exists: only what is missing is made
        (2, "copy", "Billing/2024/b.pdf"),
        (3, "mkdir", "Index"),
        (3, "mkdir", "Index/2024"),
        (3, "mkdir", "Index/2024/Q3"),
        (3, "create", "Index/2024/Q3/INDEX.md"),
    ]
    assert report.counts == {"mkdir": 6, "move": 1, "copy": 1, "write": 1}
    assert report.needs_approval == []  # creating folders is additive, like any mkdir
    # The topmost missing folder of each chain is recorded as absent (staleness sees it appear).
    for absent in ("Medical Records", "Index", "Billing/2024"):
        assert report.preconditions[f"{SCOPE}/{absent}"] is None
    text = "\n".join(report_lines("p1", SCOPE, "", "agent", "sha256:x", "validated", report))
    assert "+ mkdir     Medical Records/\n" in text
    assert "+ mkdir     Index/2024/Q3/\n" in text
    assert "Plan: 8 to create, 1 to move" in text


def test_without_parents_a_missing_folder_is_refused_with_both_fixes_named() -> None:
    report = run(memory(), {"op": "write", "path": "a/b.txt", "text": "x"})
    assert [issue.code for issue in report.errors] == ["missing-parent"]
    assert "add a mkdir" in report.errors[0].message
    assert '"parents": true' in report.errors[0].message


def test_mkdir_with_parents_of_an_existing_folder_is_nothing_to_do() -> None:
    storage = memory(dirs=("a", "a/b"))
    quiet = run(storage, {"op": "mkdir", "path": "a/b", "parents": True})
    assert quiet.valid and quiet.changes == [] and quiet.warnings == []
    assert quiet.preconditions[f"{SCOPE}/a/b"] is not None  # it must still be there at apply
    loud = run(storage, {"op": "mkdir", "path": "a/b"})
    assert loud.valid and loud.changes == []
    assert [issue.code for issue in loud.warnings] == ["exists"]
    over_file = run(memory("a"), {"op": "mkdir", "path": "a", "parents": True})
    assert [issue.code for issue in over_file.errors] == ["exists"]


def test_a_later_operation_sees_the_folders_an_earlier_one_made() -> None:
    report = run(
        memory(),
        {"op": "write", "path": "x/y/one.txt", "text": "1", "parents": True},
        {"op": "write", "path": "x/y/two.txt", "text": "2", "parents": True},
        {"op": "mkdir", "path": "x/y", "parents": True},
        {"op": "write", "path": "x/z/three.txt", "text": "3", "parents": True},
    )
    assert report.valid, report.errors
    assert [c.path.removeprefix(SCOPE + "/") for c in report.changes if c.action == "mkdir"] == [
        "x",
        "x/y",
        "x/z",
    ]


@pytest.mark.parametrize(
    ("blocker", "code"), [("file", "not-a-folder"), ("symlink", "symlink-in-path")]
)
def test_parents_never_go_through_a_file_or_a_symlink(blocker: str, code: str) -> None:
    storage = memory("in.pdf", dirs=("real",))
    if blocker == "file":
        storage.create((*S, "a"), [b"a file"])
    else:
        storage.add_symlink((*S, "a"), "real")
    for op in (
        {"op": "mkdir", "path": "a/b/c", "parents": True},
        {"op": "write", "path": "a/b/c.txt", "text": "x", "parents": True},
        {"op": "move", "source": "in.pdf", "destination": "a/b/in.pdf", "parents": True},
    ):
        report = run(storage, op)
        assert [issue.code for issue in report.errors] == [code], (op, report.errors)


def test_a_protected_pattern_refuses_a_folder_the_plan_would_create() -> None:
    policy = Policy(protected=(f"{SCOPE}/Sealed",))
    report = run(
        memory("a.pdf"),
        {"op": "move", "source": "a.pdf", "destination": "Sealed/2024/a.pdf", "parents": True},
        policy=policy,
    )
    assert [issue.code for issue in report.errors] == ["protected"]
    assert report.changes == []
    mkdir = run(memory(), {"op": "mkdir", "path": "Sealed/2024", "parents": True}, policy=policy)
    assert [issue.code for issue in mkdir.errors] == ["protected"]


def test_created_folder_names_are_checked_like_any_new_name() -> None:
    report = run(memory(dirs=("Medical",)), {"op": "write", "path": "medical/x", "text": "x"})
    assert [issue.code for issue in report.errors] == ["missing-parent"]
    twin = run(
        memory(dirs=("Medical",)),
        {"op": "write", "path": "MEDICAL/x", "text": "x", "parents": True},
    )
    assert [issue.code for issue in twin.errors] == ["name-collision"]
    spaced = run(memory(), {"op": "write", "path": "New /x.txt", "text": "x", "parents": True})
    assert spaced.valid and [issue.code for issue in spaced.warnings] == ["spaces"]
    assert spaced.warnings[0].message.startswith(f"'{SCOPE}/New ' begins or ends")


def test_a_folder_that_appears_after_validation_makes_the_plan_stale() -> None:
    storage = memory("a.pdf")
    report = run(
        storage,
        {"op": "move", "source": "a.pdf", "destination": "New/Sub/a.pdf", "parents": True},
    )
    assert report.valid and stale_paths(report.preconditions, storage) == []
    storage.mkdir((*S, "New"))
    assert stale_paths(report.preconditions, storage) == [f"{SCOPE}/New: appeared since validation"]


def test_the_journal_makes_undoes_and_rolls_back_the_created_folders(tmp_path: Path) -> None:
    storage = memory("a.pdf")
    storage.mkdir((".airlock",))
    storage.mkdir((".airlock", "trash"))
    report = run(
        storage,
        {"op": "move", "source": "a.pdf", "destination": "New/Sub/a.pdf", "parents": True},
    )
    steps = journal.compile_apply(report.changes, "t1")
    assert [(s.kind, "/".join(s.path[2:])) for s in steps[1:]] == [
        ("mkdir", "New"),
        ("mkdir", "New/Sub"),
        ("rename", "a.pdf"),
    ]
    cursor = journal.Cursor(tmp_path / "c")
    journal.run_steps(storage, steps, cursor, lambda _op: b"")
    assert storage.stat((*S, "New", "Sub", "a.pdf")) is not None
    assert find_conflicts(storage, report.changes) == []
    storage.create((*S, "New", "late.txt"), [b"someone's file"])
    assert [str(c) for c in find_conflicts(storage, report.changes)] == [
        f"{SCOPE}/New/late.txt: was added since the apply"
    ]
    storage.unlink((*S, "New", "late.txt"))
    journal.run_steps(storage, journal.compile_rollback(steps, "t2"), cursor, lambda _op: b"")
    cursor.remove()
    assert storage.listdir(S) == ["a.pdf"]


# --- a real workspace -----------------------------------------------------------------------


def test_apply_of_a_plan_whose_folder_appeared_is_refused_as_stale(
    ws: Workspace, root: Path
) -> None:
    record = ws.submit(
        make_plan(
            {
                "op": "move",
                "source": "inbox/scan1.pdf",
                "destination": "Filed/2024/scan1.pdf",
                "parents": True,
            }
        ),
        by=person("agent", Role.AGENT),
    )
    ws.validate(record.id)
    (root / CASE / "Filed").mkdir()
    before = snapshot(root)
    with pytest.raises(StalePlanError) as caught:
        ws.apply(record.id, by=person("agent", Role.AGENT))
    assert f"{CASE}/Filed: appeared since validation" in caught.value.details
    assert snapshot(root) == before


def test_rollback_removes_the_created_folders_and_only_them(ws: Workspace, root: Path) -> None:
    (root / CASE / "Filed").mkdir()  # exists before: only what is below it is created
    before = snapshot(root)
    record = ws.submit(
        make_plan(
            {
                "op": "move",
                "source": "inbox/scan1.pdf",
                "destination": "Filed/2024/July/scan1.pdf",
                "parents": True,
            },
            {
                "op": "copy",
                "source": "inbox/scan2.pdf",
                "destination": "Copies/scan2.pdf",
                "parents": True,
            },
            {"op": "write", "path": "Index/2024/INDEX.md", "text": "# Index\n", "parents": True},
            {"op": "mkdir", "path": "Filed/2024/August", "parents": True},
        ),
        by=person("agent", Role.AGENT),
    )
    record = ws.validate(record.id)
    assert record.validation is not None and record.validation.valid
    assert record.validation.needs_approval == []
    result = ws.apply(record.id, by=person("agent", Role.AGENT))
    assert result.success, result.error
    case = root / CASE
    assert (case / "Filed/2024/July/scan1.pdf").read_bytes() == b"%PDF-1.4 one"
    assert (case / "Filed/2024/August").is_dir()
    assert (case / "Copies/scan2.pdf").read_bytes() == b"%PDF-1.4 two"
    assert (case / "Index/2024/INDEX.md").read_text() == "# Index\n"
    assert ws.rollback_conflicts(record.id) == []
    ws.rollback(record.id, by=person("dana", Role.APPROVER))
    assert snapshot(root) == before
    assert (case / "Filed").is_dir() and not (case / "Filed/2024").exists()


# --- the seed-compatible door ---------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path / "ws") as running:
        yield running


def _seed_plan(operations: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "plan_id": "",
        "case_name": DEMO_CASE,
        "description": "File records into provider folders.",
        "operations": operations,
        "created_by": TOKEN_NAMES[Role.AGENT],
        "requires_approval": False,
    }


def _apply_and_roll_back(service: Service, sent: dict[str, Any]) -> dict[str, Any]:
    """Submit, validate, apply (no approval is needed) and roll back ``sent`` through the seed
    door, checking the tree comes back exactly; returns the validation answer."""
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    before = snapshot(service.root)
    response = agent.post("/plans", json=sent)
    assert response.status_code == 200, response.text
    plan_id = json_of(response)["plan_id"]
    response = agent.post(f"/plans/{plan_id}/validate")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = json_of(response)
    assert report["valid"] is True, report["errors"]
    assert snapshot(service.root) == before
    response = agent.post(f"/plans/{plan_id}/apply")
    assert response.status_code == 200, response.text
    result = json_of(response)
    assert result["success"] is True, result["error_details"]
    assert result["operations_completed"] >= len(sent["operations"])
    report["applied"] = snapshot(service.root)
    response = approver.post(f"/plans/{plan_id}/rollback")
    assert response.status_code == 200, response.text
    assert json_of(response)["success"] is True, response.text
    assert snapshot(service.root) == before
    return report


def _loose_pdfs(service: Service, count: int) -> list[str]:
    case = service.root / "projects" / DEMO_CASE
    found = sorted(p.name for p in case.iterdir() if p.is_file() and p.suffix == ".pdf")
    assert len(found) >= count, found
    return found[:count]


def test_the_seeds_documented_example_applies_and_rolls_back(service: Service) -> None:
    case = f"projects/{DEMO_CASE}"
    assert not (service.root / case / "Medical Records").exists()
    first, second = _loose_pdfs(service, 2)
    report = _apply_and_roll_back(
        service,
        _seed_plan(
            [
                {"type": "create_dir", "destination": "Medical Records/Provider1"},
                {
                    "type": "move",
                    "source": first,
                    "destination": f"Medical Records/Provider1/{first}",
                },
                {
                    "type": "move",
                    "source": second,
                    "destination": f"Medical Records/Provider1/{second}",
                },
            ]
        ),
    )
    assert report["operation_count"] == 3
    assert "mkdir     Medical Records/\n" in report["dry_run_summary"]
    assert "mkdir     Medical Records/Provider1/" in report["dry_run_summary"]
    applied = report["applied"]
    assert applied[f"{case}/Medical Records"] == "dir"
    assert f"{case}/Medical Records/Provider1/{first}" in applied
    assert f"{case}/{first}" not in applied


def test_moves_copies_and_writes_into_missing_folders_through_the_seed_door(
    service: Service,
) -> None:
    case = f"projects/{DEMO_CASE}"
    one, two, three = _loose_pdfs(service, 3)
    report = _apply_and_roll_back(
        service,
        _seed_plan(
            [
                {"type": "move", "source": one, "destination": f"Billing/2024/{one}"},
                {"type": "rename", "source": two, "destination": f"Imaging/Lumbar/{two}"},
                {"type": "copy", "source": three, "destination": f"Copies/For Counsel/{three}"},
                {"type": "write_file", "destination": "Index/2024/INDEX.md", "content": "# I\n"},
                {"type": "create_dir", "destination": "Billing"},  # made above: nothing to do
            ]
        ),
    )
    assert report["warnings"] == []
    applied = report["applied"]
    for folder in ("Billing/2024", "Imaging/Lumbar", "Copies/For Counsel", "Index/2024"):
        assert applied[f"{case}/{folder}"] == "dir", folder
    assert f"{case}/Billing/2024/{one}" in applied
    assert applied[f"{case}/Copies/For Counsel/{three}"] == applied[f"{case}/{three}"]
