"""Who may do what is decided once, in the core (issue 10, item 1): the table, and every door.

Each door is driven as its users drive it (the native API and the seed API over HTTP, the
review page as a signed-in browser would post its form, the command line as a process) with an
agent's token; each must be refused by the core's decision, and the audit log must show no
approval. The author of a plan is always who submitted it, whatever the plan says.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.errors import NotPermittedError, PlanStateError
from airlock.lifecycle import TRANSITIONS, Status
from airlock.permissions import (
    PERMITTED,
    Action,
    Principal,
    Role,
    allowed_actions,
    authorize,
    local_operator,
)
from servicekit import TOKEN_NAMES, Service, running_service
from support import make_plan, person
from test_service_security import sign_in

SRC = Path(__file__).parent.parent / "src" / "airlock"


class Facts:
    def __init__(self, status: Status, author: str = "agent") -> None:
        self.id, self.status, self.author = "p1", str(status), author


AGENT = Principal("agent", Role.AGENT, via="token:a")
DANA = Principal("dana", Role.APPROVER, via="token:d")


def test_the_table_and_the_states_decide_every_button() -> None:
    assert allowed_actions(AGENT, Facts(Status.VALIDATED)) == {Action.VALIDATE, Action.APPLY}
    assert allowed_actions(DANA, Facts(Status.VALIDATED)) == {
        Action.VALIDATE,
        Action.APPROVE,
        Action.REJECT,
        Action.APPLY,
    }
    # Nobody approves their own plan, whatever their role.
    assert Action.APPROVE not in allowed_actions(DANA, Facts(Status.VALIDATED, author="dana"))
    assert allowed_actions(DANA, Facts(Status.APPLIED)) == {Action.ROLLBACK}
    assert allowed_actions(AGENT, Facts(Status.APPLIED)) == frozenset()
    assert allowed_actions(DANA, Facts(Status.ROLLED_BACK)) == frozenset()
    with pytest.raises(PlanStateError, match="rejected"):
        authorize(DANA, Action.APPLY, Facts(Status.REJECTED))
    with pytest.raises(NotPermittedError, match="needs the admin role"):
        authorize(DANA, Action.MANAGE_TOKENS)
    assert PERMITTED[Role.ADMIN] == frozenset(Action)


def test_every_state_an_action_starts_from_can_move_where_it_goes() -> None:
    assert TRANSITIONS[Status.APPLYING] == {Status.APPLIED, Status.FAILED}
    assert all(Status.VALIDATED in TRANSITIONS[s] for s in (Status.FAILED, Status.APPROVED))
    assert not TRANSITIONS[Status.REJECTED] and not TRANSITIONS[Status.ROLLED_BACK]


def test_the_local_operator_is_the_os_account() -> None:
    operator = local_operator("on behalf of dana")
    assert operator.name.startswith("os:") and operator.via == "os"
    assert operator.note == "on behalf of dana" and operator.role is Role.ADMIN


def test_the_author_is_always_the_submitter(tmp_path: Path) -> None:
    from airlock.workspace import Workspace

    (tmp_path / "ws" / "projects" / "Case-A").mkdir(parents=True)
    with Workspace.init(tmp_path / "ws") as ws:
        plan = make_plan({"op": "mkdir", "path": "x"}, scope="projects/Case-A", author="dana")
        record = ws.submit(plan, by=person("agent"))
        assert record.author == "agent"
        events = ws.audit_events(record.id)
        assert events[0]["actor"] == "agent"


def test_no_door_checks_a_role_itself() -> None:
    """Doors authenticate and translate; a role or status test in one is a decision made twice."""
    doors = [*sorted((SRC / "service").glob("*.py")), *sorted((SRC / "cli").glob("*.py"))]
    assert doors
    for path in doors:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("require", "allows"):
                pytest.fail(f"{path.name}:{node.lineno} checks a role itself ({node.attr})")
            if isinstance(node, ast.Attribute) and node.attr == "role":
                pytest.fail(f"{path.name}:{node.lineno} reads a principal's role")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("doors") / "ws") as running:
        yield running


def _needs_approval(service: Service, plan_id: str) -> str:
    agent = service.client(Role.AGENT)
    case = "projects/Doors-" + plan_id
    (service.root / case).mkdir(parents=True)
    (service.root / case / "b.txt").write_text("bravo\n")
    body = {"scope": case, "operations": [{"op": "delete", "path": "b.txt"}]}
    answer = agent.post("/api/v1/plans", params={"plan_id": plan_id}, json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["validation"]["needs_approval"]
    return plan_id


def _not_approved(service: Service, plan_id: str) -> None:
    record = service.ws.get(plan_id)
    assert record.status == "validated" and not record.decisions
    assert "approved" not in {e["kind"] for e in service.ws.audit_events(plan_id)}


def test_an_agent_token_cannot_approve_through_the_native_api(service: Service) -> None:
    plan_id = _needs_approval(service, "native")
    answer = service.client(Role.AGENT).post(f"/api/v1/plans/{plan_id}/approve", json={})
    assert answer.status_code == 403 and "role agent" in answer.text
    _not_approved(service, plan_id)


def test_an_agent_token_cannot_approve_through_the_seed_api(service: Service) -> None:
    plan_id = _needs_approval(service, "seed")
    answer = service.client(Role.AGENT).post(f"/plans/{plan_id}/approve")
    assert answer.status_code == 403 and "role agent" in answer.text
    _not_approved(service, plan_id)


def test_an_agent_signed_in_cannot_approve_on_the_review_page(service: Service) -> None:
    plan_id = _needs_approval(service, "page")
    client, csrf = sign_in(service, Role.AGENT)
    page = client.get(f"/ui/plans/{plan_id}").text
    assert f"/ui/plans/{plan_id}/approve" not in page  # no button: allowed_actions said no
    validation = str(service.ws.get(plan_id).validation_id)
    answer = client.post(
        f"/ui/plans/{plan_id}/approve", data={"csrf": csrf, "validation": validation}
    )
    assert answer.status_code == 403 and "role agent" in answer.text
    _not_approved(service, plan_id)


def test_an_agent_token_cannot_approve_through_the_command_line(service: Service) -> None:
    plan_id = _needs_approval(service, "cli")
    done = subprocess.run(
        [sys.executable, "-m", "airlock", "plan", "approve", plan_id, "--json"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AIRLOCK_WORKSPACE": str(service.root),
            "AIRLOCK_TOKEN": service.tokens[Role.AGENT],
        },
        check=False,
        timeout=120,
    )
    assert done.returncode == 6, done.stdout + done.stderr
    assert "role agent" in json.loads(done.stdout)["message"]
    _not_approved(service, plan_id)


def test_an_approver_approves_what_an_agent_wrote_by_every_door(service: Service) -> None:
    """The same decision lets the approver through: the refusals above are the role's."""
    native = _needs_approval(service, "native-ok")
    approver = service.client(Role.APPROVER)
    assert approver.post(f"/api/v1/plans/{native}/approve", json={}).status_code == 200
    seed = _needs_approval(service, "seed-ok")
    assert approver.post(f"/plans/{seed}/approve").status_code == 200
    for plan_id in (native, seed):
        (decision,) = service.ws.get(plan_id).decisions
        assert decision["actor"] == TOKEN_NAMES[Role.APPROVER]
