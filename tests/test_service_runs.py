"""``POST /runs`` and ``POST /api/v1/runs`` against the real server and the real bwrap sandbox:
an agent's code changes a case, the answer names the plan, the plan goes the usual way; bad
requests get a 4xx that says what to fix; roles are enforced."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.tokens import Role
from servicekit import TOKEN_NAMES, Service, json_of, running_service
from support import snapshot

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

CASE = "Runs-Case"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("runs") / "ws") as running:
        folder = running.root / "projects" / CASE
        folder.mkdir()
        (folder / "scan_0001.pdf").write_bytes(b"%PDF-1.4 mercy hospital")
        (folder / "notes.txt").write_text("first\n")
        yield running


def case_files(root: Path) -> dict[str, str]:
    prefix = f"projects/{CASE}"
    return {k: v for k, v in snapshot(root).items() if k.startswith(prefix)}


def test_run_makes_a_plan_that_applies(service: Service) -> None:
    agent = service.client(Role.AGENT)
    before = case_files(service.root)
    script = "import os; os.mkdir('Medical'); os.rename('scan_0001.pdf', 'Medical/scan_0001.pdf')"
    response = agent.post("/runs", json={"case_name": CASE, "command": ["python3", "-c", script]})
    assert response.status_code == 200, response.text
    result = json_of(response)
    assert result["exit_code"] == 0, (result["summary"], result["stderr"])
    assert result["capture"] == "overlay"
    assert case_files(service.root) == before  # nothing real changes before apply
    plan = json_of(agent.get(f"/api/v1/plans/{result['plan_id']}"))
    assert plan["author"] == TOKEN_NAMES[Role.AGENT]
    assert [op["op"] for op in plan["operations"]] == ["mkdir", "move"]
    events = json_of(agent.get("/api/v1/audit/events", params={"plan_id": result["plan_id"]}))
    ran = [e for e in events if e["kind"] == "ran"]
    assert ran and ran[0]["payload"]["command"] == ["python3", "-c", script]
    applied = agent.post(f"/plans/{result['plan_id']}/apply")
    assert applied.status_code == 200, applied.text
    assert json_of(applied)["success"] is True
    assert (service.root / "projects" / CASE / "Medical" / "scan_0001.pdf").is_file()


def test_native_path_and_output_without_changes(service: Service) -> None:
    agent = service.client(Role.AGENT)
    response = agent.post(
        "/api/v1/runs", json={"scope": f"projects/{CASE}", "command": ["sh", "-c", "echo hello"]}
    )
    assert response.status_code == 200, response.text
    result = json_of(response)
    assert result["stdout"] == "hello\n"
    assert result["plan_id"] is None
    assert "no changes" in result["summary"]


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"case_name": CASE, "command": []}, 422, "command"),
        ({"command": ["true"]}, 422, "scope"),
        ({"scope": "projects/x", "case_name": "x", "command": ["true"]}, 422, "scope"),
        ({"case_name": "No-Such-Case", "command": ["true"]}, 404, "not a folder"),
        ({"scope": "../etc", "command": ["true"]}, 400, ".."),
        ({"scope": ".airlock", "command": ["true"]}, 400, "state"),
        ({"scope": "Tools/x", "command": ["true"]}, 403, "read-only"),
        ({"case_name": CASE, "command": ["a\x00b"]}, 400, "NUL"),
        ({"case_name": CASE, "command": ["true"], "sandbox": "docker"}, 422, "sandbox"),
        ({"case_name": CASE, "command": ["true"], "timeout": 0}, 422, "timeout"),
    ],
)
def test_bad_requests_say_what_to_fix(
    service: Service, body: dict[str, object], status: int, word: str
) -> None:
    response = service.client(Role.AGENT).post("/runs", json=body)
    assert response.status_code == status, response.text
    assert word in response.text


def test_roles(service: Service) -> None:
    body = {"case_name": CASE, "command": ["true"]}
    assert service.client().post("/runs", json=body).status_code == 401
    bad = service.client(token="alk_nope_nope")  # noqa: S106 - a made-up, invalid token
    assert bad.post("/runs", json=body).status_code == 401
    for role in (Role.AGENT, Role.APPROVER, Role.ADMIN):
        assert service.client(role).post("/runs", json=body).status_code == 200
