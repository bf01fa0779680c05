"""See what would be lost: each delete and overwrite says, from content hashes, whether identical
bytes stay elsewhere in the case after the plan; an only copy is flagged, and so is a plan that
calls an only copy a duplicate. On a real workspace on disk; the report lines as the CLI prints
them (and once through the CLI itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock import losses
from airlock.paths import RelPath
from airlock.plan import parse_plan
from airlock.policy import Policy
from airlock.records import PlanRecord
from airlock.report import change_line, record_lines
from airlock.simulate import validate
from airlock.storage.local import LocalStorage
from airlock.validation import Change, Validation
from airlock.workspace import Workspace
from support import CASE, make_plan, person

REPORT = b"%PDF-1.4 incident report, 2024-07-13"


def checked(
    ws: Workspace, *operations: dict[str, Any], description: str = "test plan"
) -> PlanRecord:
    data = make_plan(*operations)
    data["description"] = description
    record = ws.validate(ws.submit(data, by=person("agent")).id)
    assert record.validation is not None and record.validation.valid, record.validation
    return record


def report(record: PlanRecord) -> Validation:
    assert record.validation is not None
    return record.validation


def change(record: PlanRecord, op: int) -> Change:
    (found,) = [c for c in report(record).changes if c.op == op and c.action != "mkdir"]
    return found


def codes(record: PlanRecord) -> list[str]:
    return [issue.code for issue in report(record).warnings]


def lines(record: PlanRecord) -> str:
    return "\n".join(record_lines(record))


@pytest.fixture
def case(root: Path) -> Path:
    """The shared fixture's case, with an incident report and, in another folder, two
    identical ER records."""
    (root / CASE / "Incident").mkdir()
    (root / CASE / "Incident" / "incident report.pdf").write_bytes(REPORT)
    (root / CASE / "Medical Records").mkdir()
    for name in ("2024-07-13 ER.pdf", "ER copy.pdf"):
        (root / CASE / "Medical Records" / name).write_bytes(b"%PDF-1.4 ER visit")
    (root / CASE / "same size.pdf").write_bytes(b"%PDF-1.4 ER vis!")  # same size, other bytes
    return root


def test_deleting_the_only_incident_report_is_flagged_and_so_is_calling_it_a_duplicate(
    ws: Workspace, case: Path
) -> None:
    record = checked(
        ws,
        {"op": "delete", "path": "Incident/incident report.pdf"},
        description="Remove the duplicate",
    )

    assert change(record, 0).copies == []
    assert codes(record) == ["only-copy", "claimed-duplicate"]
    only, claimed = report(record).warnings
    assert only.op == 0 and claimed.op is None
    assert only.message == (
        f"'{CASE}/Incident/incident report.pdf' is the only copy of these bytes in the case"
    )
    assert claimed.message.startswith("claimed duplicate, no identical copy found")
    text = lines(record)
    assert "- delete    Incident/incident report.pdf (36 B; kept aside)   (!) only copy" in text
    assert "warning: operation 1: " in text and "claimed duplicate" in text
    # Stored with the plan: the report read back says the same.
    again = ws.get(record.id)
    assert again.validation is not None and again.validation.changes[0].copies == []

    # Without the claim, the only copy is still flagged, the claim is not.
    plain = checked(ws, {"op": "delete", "path": "Incident/incident report.pdf"})
    assert codes(plain) == ["only-copy"]

    # A delete's own reason may make the claim too.
    said = checked(ws, {"op": "delete", "path": "Incident/incident report.pdf", "reason": "a dupe"})
    assert codes(said) == ["only-copy", "claimed-duplicate"]


@pytest.mark.parametrize(
    ("description", "claims"),
    [
        ("Remove the duplicate", True),
        ("delete DUPLICATES", True),
        ("drop the dupe", True),
        ("dup", True),
        ("Delete copy of incident report", True),
        ("duplicated scans", True),
        ("deduplicate the inbox", False),  # whole words only
        ("copy offline", False),
        ("tidy the inbox", False),
    ],
)
def test_what_counts_as_claiming_a_duplicate(description: str, claims: bool) -> None:
    assert losses.claims_duplicate(description) is claims


def test_deleting_one_of_two_identical_files_names_where_the_copy_stays(
    ws: Workspace, case: Path
) -> None:
    record = checked(
        ws,
        {"op": "delete", "path": "Medical Records/ER copy.pdf"},
        description="remove the duplicate",
    )
    assert change(record, 0).copies == [f"{CASE}/Medical Records/2024-07-13 ER.pdf"]
    assert codes(record) == []  # neither only-copy nor claimed-duplicate
    assert (
        "- delete    Medical Records/ER copy.pdf (17 B; kept aside)   identical copy stays at "
        "Medical Records/2024-07-13 ER.pdf"
    ) in lines(record)

    # Deleting both: neither stays, both are flagged.
    both = checked(
        ws,
        {"op": "delete", "path": "Medical Records/ER copy.pdf"},
        {"op": "delete", "path": "Medical Records/2024-07-13 ER.pdf"},
    )
    assert [change(both, op).copies for op in (0, 1)] == [[], []]
    assert codes(both) == ["only-copy", "only-copy"]


def test_overwriting_an_only_copy_is_flagged(ws: Workspace, case: Path) -> None:
    record = checked(
        ws, {"op": "write", "path": "notes.txt", "text": "new notes\n", "overwrite": True}
    )
    found = change(record, 0)
    assert (found.action, found.copies) == ("overwrite", [])
    assert codes(record) == ["only-copy"]
    assert "replaces it" in report(record).warnings[0].message
    assert "~ overwrite notes.txt (10 B; old file kept aside)   (!) only copy" in lines(record)

    # A copy onto one of the two ER records replaces bytes that stay at the other.
    onto = checked(
        ws,
        {
            "op": "copy",
            "source": "same size.pdf",
            "destination": "Medical Records/ER copy.pdf",
            "overwrite": True,
        },
    )
    assert change(onto, 0).copies == [f"{CASE}/Medical Records/2024-07-13 ER.pdf"]
    assert codes(onto) == []


def test_a_folder_delete_says_which_of_its_files_are_only_copies(ws: Workspace, case: Path) -> None:
    (case / CASE / "Medical Records" / "sub").mkdir()
    (case / CASE / "Medical Records" / "sub" / "bill.pdf").write_bytes(b"bill")
    record = checked(ws, {"op": "delete", "path": "Medical Records"})
    assert change(record, 0).copies == []
    assert codes(record) == ["delete-folder", "only-copy"]
    message = report(record).warnings[1].message
    assert message.startswith("3 files in folder")  # both ER records and the bill: none stays
    assert "(!) holds the only copy of some files" in lines(record)

    # A folder whose every file stays elsewhere: not flagged, and says where.
    (case / CASE / "Backup").mkdir()
    (case / CASE / "Backup" / "incident report.pdf").write_bytes(REPORT)
    backed = checked(ws, {"op": "delete", "path": "Backup"})
    assert change(backed, 0).copies == [f"{CASE}/Incident/incident report.pdf"]
    assert codes(backed) == ["delete-folder"]
    assert "every file has a copy that stays, e.g. at Incident/incident report.pdf" in lines(backed)


def test_a_copy_made_by_the_same_plan_counts_as_surviving(ws: Workspace, case: Path) -> None:
    record = checked(
        ws,
        {"op": "copy", "source": "Incident/incident report.pdf", "destination": "Archive.pdf"},
        {"op": "delete", "path": "Incident/incident report.pdf"},
        description="remove the duplicate",
    )
    assert change(record, 1).copies == [f"{CASE}/Archive.pdf"]
    assert codes(record) == []


def test_a_moved_file_is_not_a_loss_and_a_moved_copy_stays_where_it_lands(
    ws: Workspace, case: Path
) -> None:
    moved = checked(ws, {"op": "move", "source": "notes.txt", "destination": "Notes.md"})
    assert [c.copies for c in report(moved).changes] == [None]
    assert codes(moved) == []

    record = checked(
        ws,
        {
            "op": "move",
            "source": "Medical Records/2024-07-13 ER.pdf",
            "destination": "ER.pdf",
        },
        {"op": "delete", "path": "Medical Records/ER copy.pdf"},
    )
    assert change(record, 0).copies is None
    assert change(record, 1).copies == [f"{CASE}/ER.pdf"]
    assert codes(record) == []


def test_files_outside_the_case_are_not_copies(ws: Workspace, case: Path) -> None:
    (case / "projects" / "Case-B").mkdir()
    (case / "projects" / "Case-B" / "incident report.pdf").write_bytes(REPORT)
    record = checked(ws, {"op": "delete", "path": "Incident/incident report.pdf"})
    assert change(record, 0).copies == [] and codes(record) == ["only-copy"]


def test_what_is_looked_at_for_copies_is_not_a_precondition(ws: Workspace, case: Path) -> None:
    record = checked(ws, {"op": "delete", "path": "Medical Records/ER copy.pdf"})
    seen = report(record).preconditions
    assert f"{CASE}/Medical Records/2024-07-13 ER.pdf" not in seen
    assert f"{CASE}/notes.txt" not in seen
    # A file added elsewhere in the case since validation does not make the plan stale.
    (case / CASE / "new.txt").write_text("later")
    ws.approve(record.id, by=person("dana"))
    assert ws.apply(record.id).success
    assert not (case / CASE / "Medical Records" / "ER copy.pdf").exists()


def test_the_cli_report_says_only_copy(root: Path, case: Path) -> None:
    def airlock(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airlock", *args, "-w", str(root)],
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=120,
        )

    assert airlock("init").returncode == 0
    data = make_plan({"op": "delete", "path": "Incident/incident report.pdf"})
    data["description"] = "remove the duplicate"
    done = airlock("plan", "submit", "-", "--id", "dupe", stdin=json.dumps(data))
    assert done.returncode == 0, done.stderr
    assert "(!) only copy in the case" in done.stdout
    assert "claimed duplicate, no identical copy found" in done.stdout
    shown = airlock("plan", "show", "dupe", "--json")
    assert json.loads(shown.stdout)["validation"]["changes"][0]["copies"] == []


# --- the cost -----------------------------------------------------------------------------


class CountingStorage(LocalStorage):
    """The real local storage, counting what it hashes and reads. Not a mock: every call goes
    to the disk. Counting is the only way to show that looking for copies reads nothing it
    need not: the answers alone would be the same if every file were hashed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.hashed: list[RelPath] = []
        self.reads = 0

    def sha256(self, path: RelPath) -> str:
        self.hashed.append(path)
        return super().sha256(path)

    def read(self, path: RelPath) -> Iterator[bytes]:
        self.reads += 1
        return super().read(path)


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """A case of 1,000 files of 1,000 different sizes."""
    root = tmp_path / "many"
    (root / "projects" / "Big" / "in").mkdir(parents=True)
    (root / "projects" / "Big" / "out").mkdir()
    for n in range(1000):
        (root / "projects" / "Big" / "in" / f"f{n:04d}.txt").write_bytes(b"x" * (n + 1))
    return root


def test_a_plan_of_a_thousand_moves_hashes_nothing(many: Path) -> None:
    storage = CountingStorage(many)
    try:
        plan = parse_plan(
            {
                "scope": "projects/Big",
                "author": "agent",
                "description": "move the duplicates",
                "operations": [
                    {"op": "move", "source": f"in/f{n:04d}.txt", "destination": f"out/f{n:04d}.txt"}
                    for n in range(1000)
                ],
            }
        )
        result = validate(plan, storage, Policy())
        assert result.valid and result.warnings == []
        assert all(c.copies is None for c in result.changes)
        assert (storage.hashed, storage.reads) == ([], 0)
    finally:
        storage.close()


def test_a_delete_hashes_only_the_files_of_its_size(many: Path) -> None:
    (many / "projects" / "Big" / "twin.txt").write_bytes(b"y" * 500)  # the size of f0499
    storage = CountingStorage(many)
    try:
        plan = parse_plan(
            {
                "scope": "projects/Big",
                "author": "agent",
                "operations": [{"op": "delete", "path": "in/f0499.txt"}],
            }
        )
        result = validate(plan, storage, Policy())
        assert result.valid and result.changes[0].copies == []
        # The deleted file (for the report's digest) and the one candidate of its size.
        assert sorted(storage.hashed) == [
            ("projects", "Big", "in", "f0499.txt"),
            ("projects", "Big", "twin.txt"),
        ]
    finally:
        storage.close()


def test_past_the_limit_copies_are_not_checked_and_it_says_so(
    many: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(losses, "MAX_FILES", 100)  # 1,000 files: past it (10,000 is slow here)
    storage = LocalStorage(many)
    try:
        plan = parse_plan(
            {
                "scope": "projects/Big",
                "author": "agent",
                "operations": [{"op": "delete", "path": "in/f0001.txt"}],
            }
        )
        result = validate(plan, storage, Policy())
        assert result.valid and result.changes[0].copies is None
        assert [w.code for w in result.warnings] == ["copies-not-checked"]
    finally:
        storage.close()


def test_old_reports_without_copies_still_read() -> None:
    old = {"op": 0, "action": "delete", "path": "projects/C/a.txt", "size": 3}
    change = Change.model_validate(old)
    assert change.copies is None
    assert change_line(change, "projects/C") == "- delete    a.txt (3 B; kept aside)"  # as before
