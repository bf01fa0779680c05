"""The seed-compatible HTTP API, driven the way the firm's agent tools drive it.

``reorganize_case_files``: POST /plans (empty plan_id) -> validate -> (approve) -> apply.
``execute_mutation_plan``: POST /plans (the tool's own plan_id) -> validate -> apply.
Shapes and field names are the ones in PRODUCT.md ("The seed-compatible HTTP API"); every
effect is checked on disk, against the real server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.tokens import Role
from servicekit import DEMO_CASE, TOKEN_NAMES, Service, json_of, running_service
from support import snapshot

CASE_DIR = f"projects/{DEMO_CASE}"

VALIDATE_FIELDS = {
    "plan_id",
    "valid",
    "warnings",
    "errors",
    "operation_count",
    "estimated_size_change_mb",
    "dry_run_summary",
}
APPLY_FIELDS = {
    "plan_id",
    "success",
    "operations_completed",
    "operations_failed",
    "audit_log_path",
    "error_details",
}
SUBMIT_FIELDS = {
    "plan_id",
    "case_name",
    "description",
    "operations",
    "created_by",
    "requires_approval",
}
HEALTH_FIELDS = {"status", "workspace_mounted", "projects_accessible"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path / "ws") as running:
        yield running


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reorganisation(plan_id: str = "", requires_approval: bool = False) -> dict[str, Any]:
    """What ``reorganize_case_files`` sends: one operation of every seed type."""
    return {
        "plan_id": plan_id,
        "case_name": DEMO_CASE,
        "description": "File the police report and an MRI; drop scanner junk; add an index.",
        "operations": [
            {"type": "create_dir", "destination": "Police Report"},
            {
                "type": "move",
                "source": "Police Report FINAL final.pdf",
                "destination": "Police Report/2024-07-13 Police report.pdf",
            },
            {"type": "create_dir", "destination": "Imaging"},
            {"type": "copy", "source": "MRI lumbar.pdf", "destination": "Imaging/MRI lumbar.pdf"},
            {
                "type": "rename",
                "source": "Imaging/MRI lumbar.pdf",
                "destination": "Imaging/2024-08-05 MRI lumbar.pdf",
            },
            {"type": "delete", "source": "Thumbs.db"},
            {
                "type": "write_file",
                "destination": "INDEX.md",
                "content": "# Index\n\nPolice report\n",
            },
        ],
        "created_by": TOKEN_NAMES[Role.AGENT],
        "requires_approval": requires_approval,
    }


def additive(plan_id: str, requires_approval: bool = False) -> dict[str, Any]:
    """What ``execute_mutation_plan`` sends for a purely additive change."""
    return {
        "plan_id": plan_id,
        "case_name": DEMO_CASE,
        "description": "Add a summary note.",
        "operations": [
            {"type": "create_dir", "destination": "Summaries"},
            {
                "type": "write_file",
                "destination": "Summaries/summary.txt",
                "content": "All good.\n",
            },
        ],
        "created_by": TOKEN_NAMES[Role.AGENT],
        "requires_approval": requires_approval,
    }


def check_validation(body: Any, plan_id: str) -> None:
    assert set(body) == VALIDATE_FIELDS, body
    assert body["plan_id"] == plan_id
    assert isinstance(body["valid"], bool)
    assert isinstance(body["warnings"], list)
    assert all(isinstance(w, str) for w in body["warnings"])
    assert isinstance(body["errors"], list)
    assert all(isinstance(e, str) for e in body["errors"])
    assert isinstance(body["operation_count"], int)
    assert isinstance(body["estimated_size_change_mb"], float | int)
    assert isinstance(body["dry_run_summary"], str)
    assert body["dry_run_summary"].strip()


def check_apply(body: Any, plan_id: str) -> None:
    assert set(body) == APPLY_FIELDS, body
    assert body["plan_id"] == plan_id
    assert isinstance(body["success"], bool)
    assert isinstance(body["operations_completed"], int)
    assert isinstance(body["operations_failed"], int)
    assert isinstance(body["audit_log_path"], str)
    assert body["error_details"] is None or isinstance(body["error_details"], str)


def test_reorganize_case_files(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    case = service.root / CASE_DIR
    before = snapshot(service.root)
    police = sha(case / "Police Report FINAL final.pdf")
    mri = sha(case / "MRI lumbar.pdf")
    thumbs = (case / "Thumbs.db").read_bytes()

    # 1. submit with an empty plan_id: the service assigns one
    sent = reorganisation()
    response = agent.post("/plans", json=sent)
    assert response.status_code == 200, response.text
    plan = json_of(response)
    assert set(plan) >= SUBMIT_FIELDS, plan
    plan_id = plan["plan_id"]
    assert isinstance(plan_id, str) and plan_id
    assert plan["case_name"] == DEMO_CASE
    assert plan["description"] == sent["description"]
    assert plan["created_by"] == TOKEN_NAMES[Role.AGENT]
    assert len(plan["operations"]) == len(sent["operations"])
    for got, want in zip(plan["operations"], sent["operations"], strict=True):
        assert set(got) <= {"type", "source", "destination", "content"}
        kind = "move" if want["type"] == "rename" else want["type"]
        assert got["type"] == kind
    assert snapshot(service.root) == before, "submitting must not touch the workspace"

    # 2. validate: the dry run
    response = agent.post(f"/plans/{plan_id}/validate")
    assert response.status_code == 200, response.text
    report = json_of(response)
    check_validation(report, plan_id)
    assert report["valid"] is True
    assert report["errors"] == []
    assert report["operation_count"] == 7
    assert "Thumbs.db" in report["dry_run_summary"]
    assert "approval" in report["dry_run_summary"].lower()  # a delete needs a person
    assert snapshot(service.root) == before, "validating must not touch the workspace"

    # 3. apply without approval: refused, with a message that says why
    response = agent.post(f"/plans/{plan_id}/apply")
    assert response.status_code == 403, response.text
    assert "approval" in json_of(response)["detail"]
    assert snapshot(service.root) == before

    # 4. approve (an approver; approved_by is the seed's query parameter)
    response = approver.post(f"/plans/{plan_id}/approve", params={"approved_by": "Jane Attorney"})
    assert response.status_code == 200, response.text
    assert json_of(response) == {"status": "approved", "plan_id": plan_id}

    # 5. apply: every operation lands
    response = agent.post(f"/plans/{plan_id}/apply")
    assert response.status_code == 200, response.text
    result = json_of(response)
    check_apply(result, plan_id)
    assert result["success"] is True
    assert result["operations_completed"] == 7
    assert result["operations_failed"] == 0
    assert result["error_details"] is None
    assert sha(case / "Police Report" / "2024-07-13 Police report.pdf") == police
    assert not (case / "Police Report FINAL final.pdf").exists()
    assert sha(case / "MRI lumbar.pdf") == mri
    assert sha(case / "Imaging" / "2024-08-05 MRI lumbar.pdf") == mri
    assert not (case / "Imaging" / "MRI lumbar.pdf").exists()
    assert not (case / "Thumbs.db").exists()
    assert (case / "INDEX.md").read_text() == "# Index\n\nPolice report\n"
    changed = {k for k in set(before) | set(snapshot(service.root)) if not k.startswith(CASE_DIR)}
    assert {k: before.get(k) for k in changed} == {
        k: snapshot(service.root).get(k) for k in changed
    }, "nothing outside the case changed"

    # the audit log it points to exists and records this plan's story
    audit_path = Path(result["audit_log_path"])
    events = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert events, audit_path
    kinds = [e.get("kind") or e.get("event") or e.get("action") for e in events]
    assert {"submitted", "validated", "approved", "applied"} <= set(kinds), kinds

    # 6. roll back: the exact prior bytes come back
    response = approver.post(f"/plans/{plan_id}/rollback")
    assert response.status_code == 200, response.text
    undone = json_of(response)
    assert undone["plan_id"] == plan_id
    assert undone["success"] is True
    assert snapshot(service.root) == before
    assert (case / "Thumbs.db").read_bytes() == thumbs


def test_execute_mutation_plan(service: Service) -> None:
    agent = service.client(Role.AGENT)
    case = service.root / CASE_DIR
    response = agent.post("/plans", json=additive("mutation-0001"))
    assert response.status_code == 200, response.text
    assert json_of(response)["plan_id"] == "mutation-0001"

    response = agent.post("/plans/mutation-0001/validate")
    assert response.status_code == 200, response.text
    report = json_of(response)
    check_validation(report, "mutation-0001")
    assert report["valid"] is True
    assert report["operation_count"] == 2
    assert report["estimated_size_change_mb"] == pytest.approx(
        len(b"All good.\n") / 1_048_576, abs=1e-6
    )

    # purely additive, no approval asked: the policy lets it apply at once
    response = agent.post("/plans/mutation-0001/apply")
    assert response.status_code == 200, response.text
    result = json_of(response)
    check_apply(result, "mutation-0001")
    assert result["success"] is True
    assert result["operations_completed"] == 2
    assert (case / "Summaries" / "summary.txt").read_text() == "All good.\n"
    assert Path(result["audit_log_path"]).is_file()

    # applying again is a clear conflict, not a second application
    response = agent.post("/plans/mutation-0001/apply")
    assert response.status_code == 409, response.text
    assert json_of(response)["detail"]


def test_requires_approval_true_is_honoured(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    assert agent.post("/plans", json=additive("asks-for-review", True)).status_code == 200
    assert json_of(agent.post("/plans/asks-for-review/validate"))["valid"] is True
    response = agent.post("/plans/asks-for-review/apply")
    assert response.status_code == 403, response.text
    assert not (service.root / CASE_DIR / "Summaries").exists()
    response = approver.post("/plans/asks-for-review/approve", params={"approved_by": "jane"})
    assert response.status_code == 200, response.text
    response = agent.post("/plans/asks-for-review/apply")
    assert response.status_code == 200 and json_of(response)["success"] is True


def test_requires_approval_false_never_bypasses_policy(service: Service) -> None:
    agent = service.client(Role.AGENT)
    case = service.root / CASE_DIR
    before = snapshot(service.root)
    body = {
        "plan_id": "sneaky-delete",
        "case_name": DEMO_CASE,
        "description": "just tidying",
        "operations": [{"type": "delete", "source": "notes from call w client.txt"}],
        "created_by": TOKEN_NAMES[Role.AGENT],
        "requires_approval": False,
    }
    assert agent.post("/plans", json=body).status_code == 200
    report = json_of(agent.post("/plans/sneaky-delete/validate"))
    assert report["valid"] is True
    response = agent.post("/plans/sneaky-delete/apply")
    assert response.status_code == 403, response.text
    error = json_of(response)
    assert "approval" in error["detail"]
    assert error["hint"]
    assert (case / "notes from call w client.txt").is_file()
    assert snapshot(service.root) == before


@pytest.mark.parametrize("approved_by", [TOKEN_NAMES[Role.AGENT], "Jane Attorney", None])
def test_agent_cannot_approve_even_naming_itself(service: Service, approved_by: str | None) -> None:
    agent = service.client(Role.AGENT)
    body = reorganisation("self-approve")
    assert agent.post("/plans", json=body).status_code == 200
    assert json_of(agent.post("/plans/self-approve/validate"))["valid"] is True
    params = {"approved_by": approved_by} if approved_by is not None else {}
    response = agent.post("/plans/self-approve/approve", params=params)
    assert response.status_code == 403, response.text
    assert "agent" in json_of(response)["detail"]
    # still not applyable
    response = agent.post("/plans/self-approve/apply")
    assert response.status_code == 403
    assert (service.root / CASE_DIR / "Thumbs.db").is_file()


def test_approval_is_recorded_as_the_token_not_the_query(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    assert agent.post("/plans", json=reorganisation("who-approved")).status_code == 200
    agent.post("/plans/who-approved/validate")
    response = approver.post(
        "/plans/who-approved/approve", params={"approved_by": TOKEN_NAMES[Role.AGENT]}
    )
    assert response.status_code == 200, response.text
    shown = json_of(agent.get("/api/v1/plans/who-approved"))
    assert [d["actor"] for d in shown["decisions"]] == [TOKEN_NAMES[Role.APPROVER]]


def test_approving_your_own_plan_is_refused(service: Service) -> None:
    approver = service.client(Role.APPROVER)
    body = reorganisation("own-plan")
    body["created_by"] = TOKEN_NAMES[Role.APPROVER]
    assert approver.post("/plans", json=body).status_code == 200
    approver.post("/plans/own-plan/validate")
    response = approver.post("/plans/own-plan/approve")
    assert response.status_code == 403, response.text
    assert "cannot approve" in json_of(response)["detail"]


def test_resubmitting_is_idempotent_and_changes_conflict(service: Service) -> None:
    agent = service.client(Role.AGENT)
    first = agent.post("/plans", json=additive("retry-me"))
    again = agent.post("/plans", json=additive("retry-me"))
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert json_of(first)["digest"] == json_of(again)["digest"]
    assert json_of(first)["plan_id"] == json_of(again)["plan_id"] == "retry-me"
    listed = json_of(agent.get("/api/v1/plans"))
    assert [p["plan_id"] for p in listed].count("retry-me") == 1

    changed = additive("retry-me")
    changed["operations"][1]["content"] = "Something else.\n"
    response = agent.post("/plans", json=changed)
    assert response.status_code == 409, response.text
    error = json_of(response)
    assert "already exists" in error["detail"]
    assert error["error"] == "PlanStateError"
    assert error["hint"]
    # the original is untouched
    shown = json_of(agent.get("/api/v1/plans/retry-me"))
    assert shown["digest"] == json_of(first)["digest"]


def test_empty_plan_ids_are_distinct(service: Service) -> None:
    agent = service.client(Role.AGENT)
    one = json_of(agent.post("/plans", json=additive("")))["plan_id"]
    two = json_of(agent.post("/plans", json=additive("")))["plan_id"]
    assert one and two and one != two


def test_invalid_plan_reports_errors_and_cannot_apply(service: Service) -> None:
    agent = service.client(Role.AGENT)
    before = snapshot(service.root)
    body = additive("broken")
    body["operations"] = [
        {"type": "move", "source": "no such file.pdf", "destination": "x.pdf"},
        {"type": "write_file", "destination": "ok.txt", "content": "fine"},
    ]
    assert agent.post("/plans", json=body).status_code == 200
    report = json_of(agent.post("/plans/broken/validate"))
    check_validation(report, "broken")
    assert report["valid"] is False
    assert report["errors"] and any("no such file.pdf" in e for e in report["errors"])
    response = agent.post("/plans/broken/apply")
    assert response.status_code == 409, response.text
    assert json_of(response)["detail"]
    assert snapshot(service.root) == before


def test_health(service: Service) -> None:
    response = service.client().get("/health")  # no token needed
    assert response.status_code == 200
    health = json_of(response)
    assert set(health) >= HEALTH_FIELDS, health
    assert health["status"] == "healthy"
    assert health["workspace_mounted"] is True
    assert health["projects_accessible"] is True
    assert health["recovered_transactions"] == 0


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"plan_id": "", "operations": [{"type": "create_dir", "destination": "x"}]}, 422, ""),
        ({"plan_id": "", "case_name": DEMO_CASE, "operations": []}, 422, ""),
        (
            {"plan_id": "", "case_name": DEMO_CASE, "operations": [{"type": "explode"}]},
            422,
            "",
        ),
        (
            {
                "plan_id": "",
                "case_name": DEMO_CASE,
                "operations": [{"type": "move", "source": "a"}],
            },
            400,
            "destination",
        ),
        (
            {
                "plan_id": "",
                "case_name": "",
                "operations": [{"type": "create_dir", "destination": "x"}],
            },
            400,
            "case_name",
        ),
        (
            {
                "plan_id": "",
                "case_name": f"{DEMO_CASE}/Police Report",
                "operations": [{"type": "create_dir", "destination": "x"}],
            },
            400,
            "case_name",
        ),
        (
            {
                "plan_id": "",
                "case_name": "..",
                "operations": [{"type": "create_dir", "destination": "x"}],
            },
            400,
            "case_name",
        ),
        (
            {
                "plan_id": "",
                "case_name": DEMO_CASE,
                "operations": [{"type": "write_file", "destination": "../../Tools/evil.sh"}],
            },
            400,
            "..",
        ),
        (
            {
                "plan_id": "../../etc",
                "case_name": DEMO_CASE,
                "operations": [{"type": "create_dir", "destination": "x"}],
            },
            400,
            "plan id",
        ),
    ],
    ids=[
        "no-case",
        "no-operations",
        "unknown-type",
        "move-without-destination",
        "empty-case",
        "nested-case",
        "dotdot-case",
        "escaping-path",
        "bad-plan-id",
    ],
)
def test_bad_seed_input_is_a_clear_4xx(
    service: Service, body: dict[str, Any], status: int, words: str
) -> None:
    before = snapshot(service.root)
    response = service.client(Role.AGENT).post("/plans", json=body)
    assert response.status_code == status, response.text
    error = json_of(response)
    assert error["detail"]
    if words:
        assert words in json.dumps(error), error
    assert snapshot(service.root) == before


def test_unknown_plan_is_404(service: Service) -> None:
    agent = service.client(Role.AGENT)
    for path in ("/plans/nope/validate", "/plans/nope/apply"):
        response = agent.post(path)
        assert response.status_code == 404, (path, response.text)
        assert "nope" in json_of(response)["detail"]


def test_seed_translation_author_is_the_caller_and_write_file_overwrites() -> None:
    from airlock.seed_format import SeedOperation, SeedPlan, to_core_plan

    seed = SeedPlan(
        case_name="Case-A",
        created_by="dana-the-approver",
        operations=[
            SeedOperation(type="write_file", destination="notes.txt", content="v2"),
            SeedOperation(type="rename", source="a.pdf", destination="b.pdf"),
        ],
    )
    core = to_core_plan(seed, "paralegal-agent")
    assert core["author"] == "paralegal-agent"
    assert core["scope"] == "projects/Case-A"
    # "parents": every operation creates the folders it needs, as in the seed service.
    assert core["operations"] == [
        {"op": "write", "path": "notes.txt", "text": "v2", "overwrite": True, "parents": True},
        {"op": "move", "source": "a.pdf", "destination": "b.pdf", "parents": True},
    ]
