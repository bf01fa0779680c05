"""The native HTTP API (``/api/v1``) against the real server: lifecycle, roles, hostile input.

* the lifecycle: submit, list (filters), show, validate, approve, reject, apply (202 + polling
  ``GET /jobs/{id}``, and the server-sent events of ``/jobs/{id}/events``), rollback with
  conflicts (409, then ``force``), audit events and verification;
* the full role matrix: every route x {no token, bad token, revoked token, agent, approver,
  admin};
* the core's adversarial paths sent through HTTP (``..``, absolute, NUL, backslash, control
  characters, planted symlinks, NFC/NFD twins, over-long names, scopes outside the areas,
  ``.airlock``): a 4xx or an invalid report, never a 5xx, nothing outside the scope touched;
* request bodies over the limit (sized and chunked) and malformed JSON;
* applies on one scope run one at a time, on different scopes in parallel.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from airlock.db import TransactionRow
from airlock.locks import scope_lock
from airlock.service.settings import Settings
from airlock.tokens import Role
from servicekit import (
    ROLES,
    TOKEN_NAMES,
    Service,
    json_of,
    poll_until,
    running_service,
    serve_app,
)
from support import person, snapshot

AGENT = TOKEN_NAMES[Role.AGENT]
API = "/api/v1"
_names = itertools.count()


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One server for the module; each test works in case folders of its own."""
    with running_service(tmp_path_factory.mktemp("api") / "ws") as running:
        yield running


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the workspace that no plan may ever reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("attorney-client privileged\n")
    return folder


def new_case(service: Service, files: dict[str, bytes] | None = None, prefix: str = "Case") -> str:
    """A new case folder with a few files; returns its scope ``projects/<name>``."""
    name = f"{prefix}-{next(_names):04}"
    folder = service.root / "projects" / name
    folder.mkdir()
    for rel, content in (files or {"a.txt": b"alpha\n", "b.txt": b"bravo\n"}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    return f"projects/{name}"


def plan(scope: str, *operations: dict[str, Any], author: str = AGENT) -> dict[str, Any]:
    return {
        "scope": scope,
        "description": "a test plan",
        "author": author,
        "operations": list(operations),
    }


def additive(scope: str, name: str = "new.txt") -> dict[str, Any]:
    return plan(scope, {"op": "write", "path": name, "text": f"{name}\n"})


def destructive(scope: str) -> dict[str, Any]:
    return plan(scope, {"op": "delete", "path": "b.txt"})


def lib_validated(service: Service, body: dict[str, Any]) -> str:
    record = service.ws.submit(body, by=person(AGENT, Role.AGENT))
    record = service.ws.validate(record.id, by=person(AGENT, Role.AGENT))
    assert record.status == "validated", record.validation
    return record.id


def lib_applied(service: Service, body: dict[str, Any]) -> str:
    plan_id = lib_validated(service, body)
    result = service.ws.apply(plan_id, by=person(AGENT, Role.AGENT))
    assert result.success, result.error
    return plan_id


def wait_job(client: httpx.Client, job_id: str, deadline: float = 120.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        response = client.get(f"{API}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = json_of(response)
        return job if job["state"] in ("succeeded", "failed") else None

    return poll_until(finished, deadline=deadline, what=f"job {job_id}")


def read_events(
    client: httpx.Client, job_id: str, deadline: float = 120.0
) -> list[tuple[str, dict[str, Any]]]:
    """The job's server-sent events, read until ``event: done``."""
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"{API}/jobs/{job_id}/events", timeout=deadline) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
                if event == "done":
                    break
    assert events and events[-1][0] == "done", events
    return events


def check_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = json_of(response)
    assert set(body) == {"error", "message", "detail", "hint", "details"}, body
    assert body["detail"] == body["message"], body
    assert isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], (word, body)
    return body


def outside_scope(root: Path, scope: str) -> dict[str, str]:
    """The workspace snapshot without the scope's own subtree."""
    return {k: v for k, v in snapshot(root).items() if k != scope and not k.startswith(scope + "/")}


# --- the lifecycle -----------------------------------------------------------------------------


def test_submit_list_show_validate(service: Service) -> None:
    agent = service.client(Role.AGENT)
    scope = new_case(service)
    other = new_case(service)

    response = agent.post(f"{API}/plans", json=additive(scope))
    assert response.status_code == 201, response.text
    record = json_of(response)
    assert record["status"] == "validated"  # validated at once by default
    assert record["scope"] == scope
    assert record["author"] == AGENT
    assert record["digest"].startswith("sha256:")
    assert record["validation"]["valid"] is True
    plan_id = record["plan_id"]

    response = agent.post(f"{API}/plans", params={"validate": "false"}, json=additive(other))
    assert response.status_code == 201, response.text
    unvalidated = json_of(response)
    assert unvalidated["status"] == "submitted"
    assert unvalidated["validation"] is None

    response = agent.post(f"{API}/plans", params={"plan_id": "my-own-id"}, json=destructive(other))
    assert response.status_code == 201, response.text
    assert json_of(response)["plan_id"] == "my-own-id"

    listed = json_of(agent.get(f"{API}/plans"))
    ids = [p["plan_id"] for p in listed]
    assert {plan_id, unvalidated["plan_id"], "my-own-id"} <= set(ids)
    assert ids.index("my-own-id") < ids.index(plan_id), "newest first"

    by_scope = json_of(agent.get(f"{API}/plans", params={"scope": other}))
    assert {p["plan_id"] for p in by_scope} == {unvalidated["plan_id"], "my-own-id"}
    by_status = json_of(agent.get(f"{API}/plans", params={"status": "submitted", "scope": other}))
    assert [p["plan_id"] for p in by_status] == [unvalidated["plan_id"]]
    assert json_of(agent.get(f"{API}/plans", params={"status": "no-such-status"})) == []

    shown = json_of(agent.get(f"{API}/plans/{plan_id}"))
    assert shown["plan_id"] == plan_id
    # The body went to the content store: the plan names it (issue 10: no bodies in the state).
    (written,) = shown["operations"]
    assert written["op"] == "write" and "text" not in written
    assert written["sha256"] == hashlib.sha256(b"new.txt\n").hexdigest() and written["size"] == 8
    assert shown["validation"]["valid"] is True

    response = agent.post(f"{API}/plans/{unvalidated['plan_id']}/validate")
    assert response.status_code == 200, response.text
    assert json_of(response)["status"] == "validated"

    check_error(agent.get(f"{API}/plans/no-such-plan"), 404, "no-such-plan")
    check_error(agent.post(f"{API}/plans/no-such-plan/validate"), 404)


def test_approve_apply_poll_and_rollback_with_events(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    scope = new_case(service)
    folder = service.root / scope
    before = snapshot(service.root)
    body = plan(
        scope,
        {"op": "mkdir", "path": "Filed"},
        {"op": "move", "source": "a.txt", "destination": "Filed/a.txt"},
        {"op": "write", "path": "b.txt", "text": "bravo, revised\n", "overwrite": True},
        {"op": "write", "path": "c.bin", "base64": "AAEC/w=="},
    )
    record = json_of(agent.post(f"{API}/plans", json=body))
    plan_id = record["plan_id"]
    assert record["validation"]["needs_approval"], record["validation"]

    check_error(agent.post(f"{API}/plans/{plan_id}/apply"), 403, "approval")
    response = approver.post(f"{API}/plans/{plan_id}/approve", json={"comment": "looks right"})
    assert response.status_code == 200, response.text
    approved = json_of(response)
    assert approved["status"] == "approved"
    assert approved["decisions"][-1]["actor"] == TOKEN_NAMES[Role.APPROVER]
    assert approved["decisions"][-1]["comment"] == "looks right"

    response = agent.post(f"{API}/plans/{plan_id}/apply")
    assert response.status_code == 202, response.text
    job = json_of(response)
    assert set(job) == {
        "job_id",
        "plan_id",
        "kind",
        "state",
        "steps_done",
        "steps_total",
        "result",
        "error",
    }
    assert job["plan_id"] == plan_id and job["kind"] == "apply"
    done = wait_job(agent, job["job_id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["success"] is True
    assert done["result"]["operations_completed"] == 4
    assert done["steps_done"] == done["steps_total"] > 0
    assert (folder / "Filed" / "a.txt").read_bytes() == b"alpha\n"
    assert (folder / "b.txt").read_bytes() == b"bravo, revised\n"
    assert (folder / "c.bin").read_bytes() == b"\x00\x01\x02\xff"
    assert json_of(agent.get(f"{API}/plans/{plan_id}"))["status"] == "applied"
    # the events of a finished job: its state, then done
    events = read_events(agent, job["job_id"])
    assert events[-1][1]["state"] == "succeeded"

    check_error(agent.post(f"{API}/plans/{plan_id}/apply"), 409)  # applied once only
    assert json_of(agent.get(f"{API}/plans/{plan_id}/rollback-conflicts")) == []

    response = approver.post(f"{API}/plans/{plan_id}/rollback")
    assert response.status_code == 202, response.text
    rollback = json_of(response)
    assert rollback["kind"] == "rollback"
    events = read_events(approver, rollback["job_id"])
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "progress" and kinds[-1] == "done" and kinds.count("done") == 1, kinds
    assert set(kinds) == {"progress", "done"}
    assert events[-1][1]["state"] == "succeeded", events[-1]
    assert events[-1][1] == json_of(approver.get(f"{API}/jobs/{rollback['job_id']}"))
    steps = [data["steps_done"] for _, data in events]
    assert steps == sorted(steps), "progress only moves forward"
    assert snapshot(service.root) == before, "rollback restores the exact prior bytes"
    assert json_of(agent.get(f"{API}/plans/{plan_id}"))["status"] == "rolled_back"

    audit = json_of(agent.get(f"{API}/audit/events", params={"plan_id": plan_id}))
    assert [e["kind"] for e in audit] == [
        "submitted",
        "validated",
        "approved",
        "applied",
        "rolled_back",
    ]
    assert all(e["plan_id"] == plan_id for e in audit)
    applied = next(e for e in audit if e["kind"] == "applied")
    assert applied["actor"] == AGENT
    everything = json_of(agent.get(f"{API}/audit/events"))
    assert len(everything) > len(audit)
    verify = json_of(agent.get(f"{API}/audit/verify"))
    assert verify["ok"] is True, verify
    assert verify["problems"] == []


def test_reject(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    scope = new_case(service)
    plan_id = json_of(agent.post(f"{API}/plans", json=destructive(scope)))["plan_id"]
    response = approver.post(f"{API}/plans/{plan_id}/reject", json={"comment": "keep b.txt"})
    assert response.status_code == 200, response.text
    assert json_of(response)["status"] == "rejected"
    check_error(agent.post(f"{API}/plans/{plan_id}/apply"), 409)
    check_error(approver.post(f"{API}/plans/{plan_id}/approve"), 409)
    assert (service.root / scope / "b.txt").is_file()
    audit = json_of(agent.get(f"{API}/audit/events", params={"plan_id": plan_id}))
    assert audit[-1]["kind"] == "rejected"
    assert audit[-1]["payload"]["comment"] == "keep b.txt"


def test_approve_without_body_and_stale_plan(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    scope = new_case(service)
    plan_id = json_of(agent.post(f"{API}/plans", json=destructive(scope)))["plan_id"]
    assert approver.post(f"{API}/plans/{plan_id}/approve").status_code == 200
    # the file the plan deletes changes after review: applying is refused as stale
    (service.root / scope / "b.txt").write_bytes(b"changed by a person\n")
    response = agent.post(f"{API}/plans/{plan_id}/apply")
    assert response.status_code == 409, response.text  # refused at once, no job started
    error = json_of(response)
    assert error["error"] == "StalePlanError", error
    assert "stale" in error["detail"] and error["hint"]
    assert error["details"] == [f"{scope}/b.txt: modified since validation"]
    assert (service.root / scope / "b.txt").read_bytes() == b"changed by a person\n"
    assert json_of(agent.get(f"{API}/plans/{plan_id}"))["status"] == "approved"


def test_rollback_conflicts_then_force(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    scope = new_case(service)
    folder = service.root / scope
    before = snapshot(service.root)
    body = plan(
        scope,
        {"op": "write", "path": "draft.txt", "text": "draft 1\n"},
        {"op": "move", "source": "a.txt", "destination": "renamed.txt"},
    )
    plan_id = json_of(agent.post(f"{API}/plans", json=body))["plan_id"]
    job = json_of(agent.post(f"{API}/plans/{plan_id}/apply"))
    assert wait_job(agent, job["job_id"])["state"] == "succeeded"

    (folder / "draft.txt").write_text("draft 2, edited by a paralegal\n")
    conflicts = json_of(agent.get(f"{API}/plans/{plan_id}/rollback-conflicts"))
    assert [c["path"] for c in conflicts] == [f"{scope}/draft.txt"], conflicts
    assert conflicts[0]["reason"]

    error = check_error(approver.post(f"{API}/plans/{plan_id}/rollback"), 409, "rolled back")
    assert error["error"] == "RollbackConflictError"
    assert any("draft.txt" in line for line in error["details"]), error
    assert "force" in error["hint"]
    assert (folder / "draft.txt").read_text() == "draft 2, edited by a paralegal\n"

    response = approver.post(f"{API}/plans/{plan_id}/rollback", json={"force": True})
    assert response.status_code == 202, response.text
    done = wait_job(approver, json_of(response)["job_id"])
    assert done["state"] == "succeeded", done
    assert snapshot(service.root) == before
    audit = json_of(agent.get(f"{API}/audit/events", params={"plan_id": plan_id}))
    assert audit[-1]["kind"] == "rolled_back" and audit[-1]["payload"]["forced"] is True
    assert json_of(agent.get(f"{API}/audit/verify"))["ok"] is True


def test_rollback_of_a_plan_never_applied_is_409(service: Service) -> None:
    approver = service.client(Role.APPROVER)
    plan_id = lib_validated(service, additive(new_case(service)))
    check_error(approver.post(f"{API}/plans/{plan_id}/rollback"), 409)
    check_error(approver.get(f"{API}/plans/{plan_id}/rollback-conflicts"), 409)
    check_error(approver.get(f"{API}/jobs/job_nope"), 404, "job_nope")
    check_error(approver.get(f"{API}/jobs/job_nope/events"), 404)


# --- the role matrix ---------------------------------------------------------------------------


Setup = Callable[[Service], dict[str, Any]]


def _none(_service: Service) -> dict[str, Any]:
    return {}


def _seed_body(service: Service) -> dict[str, Any]:
    case = new_case(service).removeprefix("projects/")
    return {
        "json": {
            "plan_id": "",
            "case_name": case,
            "description": "matrix",
            "operations": [{"type": "create_dir", "destination": "New"}],
            "created_by": AGENT,
            "requires_approval": False,
        }
    }


def _native_body(service: Service) -> dict[str, Any]:
    return {"json": additive(new_case(service))}


def _submitted(service: Service) -> dict[str, Any]:
    return {
        "plan_id": service.ws.submit(additive(new_case(service)), by=person(AGENT, Role.AGENT)).id
    }


def _validated(service: Service) -> dict[str, Any]:
    return {"plan_id": lib_validated(service, additive(new_case(service)))}


def _needs_approval(service: Service) -> dict[str, Any]:
    return {
        "plan_id": lib_validated(service, destructive(new_case(service))),
        "json": {"comment": "matrix"},
    }


def _applied(service: Service) -> dict[str, Any]:
    return {"plan_id": lib_applied(service, additive(new_case(service)))}


def _job(service: Service) -> dict[str, Any]:
    admin = service.client(Role.ADMIN)
    plan_id = lib_validated(service, additive(new_case(service)))
    job = json_of(admin.post(f"{API}/plans/{plan_id}/apply"))
    wait_job(admin, job["job_id"])
    return {"job_id": job["job_id"]}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    needs: Role | None
    ok: int
    setup: Setup


ROUTES = [
    Route("seed-submit", "POST", "/plans", Role.AGENT, 200, _seed_body),
    Route("seed-validate", "POST", "/plans/{plan_id}/validate", Role.AGENT, 200, _submitted),
    Route("seed-approve", "POST", "/plans/{plan_id}/approve", Role.APPROVER, 200, _needs_approval),
    Route("seed-apply", "POST", "/plans/{plan_id}/apply", Role.AGENT, 200, _validated),
    Route("seed-rollback", "POST", "/plans/{plan_id}/rollback", Role.APPROVER, 200, _applied),
    Route("health", "GET", "/health", None, 200, _none),
    Route("submit", "POST", f"{API}/plans", Role.AGENT, 201, _native_body),
    Route("list", "GET", f"{API}/plans", Role.AGENT, 200, _none),
    Route("show", "GET", f"{API}/plans/{{plan_id}}", Role.AGENT, 200, _submitted),
    Route("validate", "POST", f"{API}/plans/{{plan_id}}/validate", Role.AGENT, 200, _submitted),
    Route(
        "approve", "POST", f"{API}/plans/{{plan_id}}/approve", Role.APPROVER, 200, _needs_approval
    ),
    Route("reject", "POST", f"{API}/plans/{{plan_id}}/reject", Role.APPROVER, 200, _needs_approval),
    Route("apply", "POST", f"{API}/plans/{{plan_id}}/apply", Role.AGENT, 202, _validated),
    Route(
        "rollback-conflicts",
        "GET",
        f"{API}/plans/{{plan_id}}/rollback-conflicts",
        Role.AGENT,
        200,
        _applied,
    ),
    Route("rollback", "POST", f"{API}/plans/{{plan_id}}/rollback", Role.APPROVER, 202, _applied),
    Route("job", "GET", f"{API}/jobs/{{job_id}}", Role.AGENT, 200, _job),
    Route("job-events", "GET", f"{API}/jobs/{{job_id}}/events", Role.AGENT, 200, _job),
    Route("audit-events", "GET", f"{API}/audit/events", Role.AGENT, 200, _none),
    Route("audit-verify", "GET", f"{API}/audit/verify", Role.AGENT, 200, _none),
]
CALLERS = ["no-token", "bad-token", "revoked-token", *[str(role) for role in ROLES]]


ANONYMOUS = ("no-token", "bad-token", "revoked-token")
UNKNOWN_TOKEN = "alk_0123456789ab_" + "not-a-real-secret"  # well-formed, never issued


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server of its own (the matrix makes many cases; the other tests snapshot theirs)."""
    with running_service(tmp_path_factory.mktemp("matrix") / "ws") as running:
        yield running


@pytest.fixture(scope="module")
def revoked(matrix: Service) -> str:
    return matrix.revoked_token()


@pytest.fixture(scope="module")
def anonymous_setups() -> dict[str, dict[str, Any]]:
    """Callers without a valid token change nothing: they share one setup per route."""
    return {}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_role_matrix(
    matrix: Service,
    revoked: str,
    anonymous_setups: dict[str, dict[str, Any]],
    route: Route,
    caller: str,
) -> None:
    service = matrix
    if caller == "no-token":
        client = service.client()
    elif caller == "bad-token":
        client = service.client(token=UNKNOWN_TOKEN)
    elif caller == "revoked-token":
        client = service.client(token=revoked)
    else:
        client = service.client(Role(caller))
    if caller in ANONYMOUS:
        if route.name not in anonymous_setups:
            anonymous_setups[route.name] = route.setup(service)
        values = anonymous_setups[route.name]
    else:
        values = route.setup(service)
    path = route.path.format(**values)
    status_before = service.ws.get(values["plan_id"]).status if "plan_id" in values else None
    if route.name == "job-events":
        with client.stream(route.method, path) as response:
            response.read()
    else:
        response = client.request(route.method, path, json=values.get("json"))

    if route.needs is None:
        assert response.status_code == route.ok, response.text
        return
    if caller in ANONYMOUS:
        error = check_error(response, 401, "token")
        assert error["error"] == "AuthenticationError"
        assert response.headers["www-authenticate"] == "Bearer"
        expected = "no token" if caller == "no-token" else "not valid"
        assert expected in error["detail"], error
    elif list(Role).index(Role(caller)) < list(Role).index(route.needs):
        error = check_error(response, 403, f"role {caller}", TOKEN_NAMES[Role(caller)])
        assert error["error"] == "NotPermittedError"
        assert str(route.needs) in error["hint"]
    else:
        assert response.status_code == route.ok, response.text
        if route.ok == 202:
            assert wait_job(client, json_of(response)["job_id"])["state"] == "succeeded"
        return
    # refused: nothing happened to the plan
    if "plan_id" in values:
        assert service.ws.get(values["plan_id"]).status == status_before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer \t .",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer alk_",
        "Bearer alk__",
        "Bearer alk_x_y_z",
        "Bearer " + "A" * 5000,
        "Bearer alk_' OR 1=1 --_x",
    ],
)
def test_malformed_authorization_is_401(service: Service, authorization: str) -> None:
    client = httpx.Client(base_url=service.url, headers={"Authorization": authorization})
    with client:
        error = check_error(client.get(f"{API}/plans"), 401, "token")
    assert error["hint"]


def test_the_api_never_reads_cookies(service: Service) -> None:
    """Bearer tokens only: a cookie (a token, a session, garbage) authenticates nothing here."""
    for name in ("airlock_token", "airlock_session"):
        for value in (service.tokens[Role.AGENT], "garbage"):
            with httpx.Client(base_url=service.url) as client:
                client.cookies.set(name, value)
                check_error(client.get(f"{API}/plans"), 401, "no token was sent")


def test_token_revoked_while_in_use(service: Service) -> None:
    from airlock.tokens import create_token, revoke_token

    token_id, token = create_token(service.ws, "short-lived", Role.AGENT)
    client = service.client(token=token)
    assert client.get(f"{API}/plans").status_code == 200
    revoke_token(service.ws, token_id)
    check_error(client.get(f"{API}/plans"), 401, "not valid")


# --- hostile input -----------------------------------------------------------------------------


BAD_PATHS = {
    "dotdot": "../escape.txt",
    "dotdot-deep": "a/../../../../escape.txt",
    "dot": "./a.txt",
    "absolute": "/etc/passwd",
    "nul": "a\x00b.txt",
    "backslash": "..\\..\\escape.txt",
    "newline": "a\nb.txt",
    "tab": "a\tb.txt",
    "escape-sequence": "a\x1b[31mb.txt",
    "del": "a\x7f.txt",
    "c1-control": "a\x85.txt",
    "empty-component": "a//b.txt",
    "trailing-slash": "a.txt/",
    "empty": "",
    "long-name": "n" * 256,
    "long-multibyte-name": "é" * 128,
    "long-path": "/".join(["d" * 200] * 21),
    "lone-surrogate": "a\ud800.txt",
}
PATH_OPS: dict[str, Callable[[str], dict[str, Any]]] = {
    "write": lambda p: {"op": "write", "path": p, "text": "x"},
    "mkdir": lambda p: {"op": "mkdir", "path": p},
    "delete": lambda p: {"op": "delete", "path": p},
    "move-to": lambda p: {"op": "move", "source": "a.txt", "destination": p},
    "copy-from": lambda p: {"op": "copy", "source": p, "destination": "c.txt"},
}


def post_raw(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST ``body`` as JSON text (lone surrogates escaped the way JSON allows)."""
    return client.post(
        path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


SEED_PATH_OPS: dict[str, Callable[[str], dict[str, Any]]] = {
    "write": lambda p: {"type": "write_file", "destination": p, "content": "x"},
    "mkdir": lambda p: {"type": "create_dir", "destination": p},
    "delete": lambda p: {"type": "delete", "source": p},
    "move-to": lambda p: {"type": "move", "source": "a.txt", "destination": p},
    "copy-from": lambda p: {"type": "copy", "source": p, "destination": "c.txt"},
}


@pytest.mark.parametrize("bad", list(BAD_PATHS))
def test_unsafe_operation_paths_are_refused(service: Service, outside: Path, bad: str) -> None:
    """Every operation, through both doors: a 400/422 that says what is wrong, never a 5xx."""
    agent = service.client(Role.AGENT)
    scope = new_case(service)
    before = snapshot(service.root)
    outside_before = snapshot(outside.parent)
    for op in PATH_OPS:
        body = plan(scope, {"op": "mkdir", "path": "ok"}, PATH_OPS[op](BAD_PATHS[bad]))
        response = post_raw(agent, f"{API}/plans", body)
        assert response.status_code in (400, 422), (op, response.status_code, response.text)
        assert json_of(response)["detail"]
        seed = {
            "plan_id": "",
            "case_name": scope.removeprefix("projects/"),
            "operations": [SEED_PATH_OPS[op](BAD_PATHS[bad])],
        }
        response = post_raw(agent, "/plans", seed)
        assert response.status_code in (400, 422), (op, response.status_code, response.text)
        assert json_of(response)["detail"]
    assert service.ws.list_plans(scope=scope) == []
    assert snapshot(service.root) == before
    assert snapshot(outside.parent) == outside_before


BAD_SCOPES = {
    "dotdot": "../outside",
    "dotdot-inside": "projects/../Tools",
    "absolute": "/etc",
    "state": ".airlock",
    "state-sub": ".airlock/trash",
    "backslash": "projects\\Case",
    "nul": "projects/Case\x00",
    "read-only-area": "Tools",
    "no-area": "Elsewhere",
    "whole-area": "projects",
    "missing-case": "projects/No-Such-Case",
    "empty": "",
}


@pytest.mark.parametrize("bad", list(BAD_SCOPES))
def test_unsafe_scopes_are_refused(service: Service, bad: str) -> None:
    agent = service.client(Role.AGENT)
    before = snapshot(service.root)
    body = plan(BAD_SCOPES[bad], {"op": "write", "path": "x.txt", "text": "x"})
    response = post_raw(agent, f"{API}/plans", body)
    assert response.status_code < 500, response.text
    if response.status_code == 201:
        record = json_of(response)
        assert record["status"] == "invalid", record
        assert record["validation"]["errors"], record
        check_error(agent.post(f"{API}/plans/{record['plan_id']}/apply"), 409)
    else:
        assert response.status_code in (400, 422), response.text
    assert snapshot(service.root) == before


@pytest.mark.parametrize(
    "case_name",
    ["..", ".", "../Tools", "/etc", "Case/../..", "a\\b", "x\x00", "", "n" * 300],
)
def test_unsafe_case_names_are_refused(service: Service, case_name: str) -> None:
    before = snapshot(service.root)
    body = {
        "plan_id": "",
        "case_name": case_name,
        "operations": [{"type": "create_dir", "destination": "x"}],
    }
    response = post_raw(service.client(Role.AGENT), "/plans", body)
    assert response.status_code in (400, 422), response.text
    assert json_of(response)["detail"]
    assert snapshot(service.root) == before


@pytest.fixture
def doors(service: Service, outside: Path) -> str:
    """A case with symlinks planted on disk that point out of it."""
    scope = new_case(service, prefix="Doors")
    folder = service.root / scope
    os.symlink(outside, folder / "door")
    os.symlink(outside / "secret.txt", folder / "secret-link.txt")
    os.symlink("../../Tools", folder / "tools-door")
    os.symlink("loop", folder / "loop")
    return scope


SYMLINK_PLANS: dict[str, list[dict[str, Any]]] = {
    "write-through-dir-link": [{"op": "write", "path": "door/evil.txt", "text": "x"}],
    "mkdir-through-dir-link": [{"op": "mkdir", "path": "door/sub"}],
    "move-out-through-link": [
        {"op": "move", "source": "door/secret.txt", "destination": "stolen.txt"}
    ],
    "copy-out-through-link": [
        {"op": "copy", "source": "door/secret.txt", "destination": "stolen.txt"}
    ],
    "move-in-through-link": [{"op": "move", "source": "a.txt", "destination": "door/a.txt"}],
    "overwrite-file-link": [
        {"op": "write", "path": "secret-link.txt", "text": "x", "overwrite": True}
    ],
    "copy-file-link": [{"op": "copy", "source": "secret-link.txt", "destination": "c.txt"}],
    "copy-dir-link": [{"op": "copy", "source": "tools-door", "destination": "tools-copy"}],
    "write-through-relative-link": [
        {"op": "write", "path": "tools-door/evil.sh", "text": "rm -rf /"}
    ],
    "delete-through-link": [{"op": "delete", "path": "tools-door/tool.sh"}],
    "write-through-loop": [{"op": "write", "path": "loop/x", "text": "x"}],
    "move-over-link": [
        {"op": "move", "source": "a.txt", "destination": "secret-link.txt", "overwrite": True}
    ],
}


@pytest.mark.parametrize("name", list(SYMLINK_PLANS))
def test_planted_symlinks_are_never_doors(
    service: Service, outside: Path, doors: str, name: str
) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    before = snapshot(service.root)
    outside_before = snapshot(outside.parent)
    response = agent.post(f"{API}/plans", json=plan(doors, *SYMLINK_PLANS[name]))
    assert response.status_code in (201, 400, 422), response.text
    if response.status_code == 201:
        record = json_of(response)
        assert record["status"] == "invalid", record["validation"]
        assert any(
            "symlink" in e["message"] or "symbolic link" in e["message"]
            for e in record["validation"]["errors"]
        ), record["validation"]
        check_error(agent.post(f"{API}/plans/{record['plan_id']}/apply"), 409)
        approver.post(f"{API}/plans/{record['plan_id']}/approve")
        check_error(agent.post(f"{API}/plans/{record['plan_id']}/apply"), 409)
    assert snapshot(service.root) == before
    assert snapshot(outside.parent) == outside_before


def test_symlink_is_an_entry_to_move_or_delete(service: Service, outside: Path, doors: str) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    folder = service.root / doors
    outside_before = snapshot(outside.parent)
    body = plan(
        doors,
        {"op": "delete", "path": "door"},
        {"op": "move", "source": "secret-link.txt", "destination": "moved-link.txt"},
    )
    record = json_of(agent.post(f"{API}/plans", json=body))
    assert record["status"] == "validated", record["validation"]
    assert approver.post(f"{API}/plans/{record['plan_id']}/approve").status_code == 200
    job = json_of(agent.post(f"{API}/plans/{record['plan_id']}/apply"))
    assert wait_job(agent, job["job_id"])["state"] == "succeeded"
    assert not (folder / "door").exists() and not (folder / "door").is_symlink()
    assert os.readlink(folder / "moved-link.txt") == str(outside / "secret.txt")
    assert snapshot(outside.parent) == outside_before, "the link's target is never touched"


def test_symlink_swapped_in_after_review_is_refused(service: Service, outside: Path) -> None:
    agent = service.client(Role.AGENT)
    scope = new_case(service, {"sub/a.txt": b"alpha\n"})
    folder = service.root / scope
    record = json_of(agent.post(f"{API}/plans", json=additive(scope, "sub/new.txt")))
    assert record["status"] == "validated"
    # between review and apply, someone swaps the folder for a door out of the workspace
    (folder / "sub").rename(folder / "sub-real")
    os.symlink(outside, folder / "sub")
    outside_before = snapshot(outside.parent)
    response = agent.post(f"{API}/plans/{record['plan_id']}/apply")
    if response.status_code == 202:
        job = wait_job(agent, json_of(response)["job_id"])
        assert job["state"] == "failed", job
    else:
        check_error(response, 409, "stale")
    assert snapshot(outside.parent) == outside_before
    assert not (outside / "new.txt").exists()


def test_unicode_twins_collide(service: Service) -> None:
    agent = service.client(Role.AGENT)
    nfc = unicodedata.normalize("NFC", "Café notes.txt")
    nfd = unicodedata.normalize("NFD", "Café notes.txt")
    assert nfc != nfd
    scope = new_case(service, {nfc: b"nfc\n"})
    before = snapshot(service.root)
    for body in (
        plan(scope, {"op": "write", "path": nfd, "text": "nfd"}),
        plan(scope, {"op": "copy", "source": nfc, "destination": nfd.upper()}),
        plan(
            scope,
            {"op": "mkdir", "path": "Résumé"},
            {"op": "mkdir", "path": unicodedata.normalize("NFD", "Résumé")},
        ),
    ):
        record = json_of(agent.post(f"{API}/plans", json=body))
        assert record["status"] == "invalid", record["validation"]
        assert any("collide" in e["message"] for e in record["validation"]["errors"])
    assert snapshot(service.root) == before


def test_state_folder_named_inside_a_scope_is_never_airlocks(service: Service) -> None:
    agent = service.client(Role.AGENT)
    scope = new_case(service)
    state_before = sorted(p.name for p in (service.root / ".airlock").iterdir())
    response = agent.post(
        f"{API}/plans", json=plan(scope, {"op": "write", "path": ".airlock/x", "text": "x"})
    )
    assert response.status_code < 500, response.text
    assert sorted(p.name for p in (service.root / ".airlock").iterdir()) == state_before
    assert not (service.root / ".airlock" / "x").exists()


@pytest.mark.parametrize(
    "plan_id",
    ["..", "...", "a/b", "a%2Fb", "%00", "x" * 101, "é", "a b", "<script>"],
)
def test_hostile_plan_ids(service: Service, plan_id: str) -> None:
    agent = service.client(Role.AGENT)
    scope = new_case(service)
    before = snapshot(service.root)
    response = agent.post(f"{API}/plans", params={"plan_id": plan_id}, json=additive(scope))
    assert response.status_code in (400, 422), response.text
    response = agent.post(
        "/plans",
        json={
            "plan_id": plan_id,
            "case_name": scope.removeprefix("projects/"),
            "operations": [{"type": "create_dir", "destination": "x"}],
        },
    )
    assert response.status_code in (400, 422), response.text
    for url in (f"{API}/plans/{plan_id}", f"{API}/plans/{plan_id}/rollback-conflicts"):
        response = agent.get(url)
        assert response.status_code in (400, 404, 422), (url, response.text)
    assert snapshot(service.root) == before


# --- request bodies ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server that accepts bodies of at most 20,000 bytes."""
    root = tmp_path_factory.mktemp("small") / "ws"
    with running_service(root, Settings(workspace=root, max_body_bytes=20_000)) as running:
        yield running


def _big_plan(size: int) -> bytes:
    body = plan("projects/Big", {"op": "write", "path": "big.txt", "text": "x" * size})
    return json.dumps(body).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", [f"{API}/plans", "/plans", f"{API}/plans/x/approve"])
def test_body_over_the_limit_is_413(small: Service, path: str, chunked: bool) -> None:
    agent = small.client(Role.ADMIN)
    data = _big_plan(50_000)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    content: bytes | Iterator[bytes] = pieces() if chunked else data
    response = agent.post(path, content=content, headers={"content-type": "application/json"})
    if chunked:
        assert response.request.headers.get("transfer-encoding") == "chunked"
    else:
        assert response.request.headers["content-length"] == str(len(data))
    error = check_error(response, 413, "larger than 20000 bytes")
    assert error["hint"]
    assert small.client().get("/health").status_code == 200  # and it stays up


def test_body_under_the_limit_is_accepted(small: Service) -> None:
    (small.root / "projects" / "Big").mkdir(exist_ok=True)
    data = _big_plan(15_000)
    assert len(data) < 20_000
    for chunked in (False, True):
        content: bytes | Iterator[bytes] = iter([data[:7000], data[7000:]]) if chunked else data
        response = small.client(Role.AGENT).post(
            f"{API}/plans", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text


MALFORMED = {
    "truncated": b'{"scope": "projects/x", "operations": [',
    "not-json": b"scope=projects/x",
    "trailing-garbage": b'{"scope": "projects/x"} trailing',
    "single-quotes": b"{'scope': 'projects/x'}",
    "array": b"[]",
    "string": b'"a plan"',
    "null": b"null",
    "number": b"12",
    "invalid-utf8": b'{"scope": "\xff\xfe"}',
    "nan": b'{"scope": NaN}',
    "deeply-nested": b"[" * 5000 + b"]" * 5000,
    "empty": b"",
    "wrong-types": b'{"scope": 1, "operations": {"op": "mkdir"}, "author": []}',
    "unknown-op": b'{"scope": "projects/x", "operations": [{"op": "chmod", "path": "a"}]}',
    "extra-field": b'{"scope": "projects/x", "operations": [{"op": "mkdir", "path": "a"}], "sudo": true}',
}


NOT_AN_OBJECT = {
    "truncated",
    "not-json",
    "trailing-garbage",
    "single-quotes",
    "array",
    "string",
    "number",
    "invalid-utf8",
    "deeply-nested",
}


@pytest.mark.parametrize(
    "route",
    [
        f"{API}/plans",
        "/plans",
        f"{API}/plans/{{plan_id}}/approve",
        f"{API}/plans/{{plan_id}}/reject",
        f"{API}/plans/{{plan_id}}/rollback",
    ],
    ids=["native-submit", "seed-submit", "approve", "reject", "rollback"],
)
def test_malformed_json_is_4xx_not_500(service: Service, route: str) -> None:
    approver = service.client(Role.APPROVER)
    plan_id = lib_validated(service, destructive(new_case(service)))
    for name, content in MALFORMED.items():
        response = approver.post(
            route.format(plan_id=plan_id),
            content=content,
            headers={"content-type": "application/json"},
        )
        if route.endswith("/plans") or name in NOT_AN_OBJECT:
            assert response.status_code in (400, 422), (name, response.status_code, response.text)
            assert json_of(response)["detail"]
        else:
            # an optional body that is absent, null or an object: it may act (or be a 409)
            assert response.status_code in (200, 202, 409, 422), (name, response.text)
        assert service.ws.get(plan_id).status in ("validated", "approved", "rejected")


# --- one scope at a time, different scopes in parallel ---------------------------------------


def _transactions(service: Service, plan_ids: list[str]) -> list[TransactionRow]:
    with service.ws.session() as session:
        return list(
            session.scalars(
                select(TransactionRow)
                .where(TransactionRow.plan_id.in_(plan_ids))
                .order_by(TransactionRow.created_at)
            )
        )


def _one_at_a_time(rows: list[TransactionRow]) -> None:
    for earlier, later in itertools.pairwise(rows):
        assert earlier.finished_at is not None and later.created_at >= earlier.finished_at, (
            earlier.plan_id,
            later.plan_id,
        )


def test_scope_waits_while_other_scopes_proceed(service: Service) -> None:
    """Hold case A's lock: A's applies wait (in order), case B's goes through meanwhile."""
    agent = service.client(Role.AGENT)
    case_a, case_b = new_case(service), new_case(service)
    first = lib_validated(service, additive(case_a, "first.txt"))
    second = lib_validated(service, additive(case_a, "second.txt"))
    elsewhere = lib_validated(service, additive(case_b, "elsewhere.txt"))
    with scope_lock(service.ws.state_dir / "locks", tuple(case_a.split("/")), timeout=10):
        job_1 = json_of(agent.post(f"{API}/plans/{first}/apply"))
        job_2 = json_of(agent.post(f"{API}/plans/{second}/apply"))
        job_b = json_of(agent.post(f"{API}/plans/{elsewhere}/apply"))
        assert wait_job(agent, job_b["job_id"])["state"] == "succeeded"
        assert (service.root / case_b / "elsewhere.txt").is_file()
        waiting_1 = json_of(agent.get(f"{API}/jobs/{job_1['job_id']}"))
        waiting_2 = json_of(agent.get(f"{API}/jobs/{job_2['job_id']}"))
        assert waiting_1["state"] in ("queued", "running"), waiting_1
        assert waiting_2["state"] == "queued", waiting_2
        assert not (service.root / case_a / "first.txt").exists()
    assert wait_job(agent, job_1["job_id"])["state"] == "succeeded"
    assert wait_job(agent, job_2["job_id"])["state"] == "succeeded"
    _one_at_a_time(_transactions(service, [first, second]))
    assert json_of(agent.get(f"{API}/audit/verify"))["ok"] is True


def test_many_applies_at_once(service: Service) -> None:
    agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
    scopes = [new_case(service, prefix="Busy") for _ in range(3)]
    files = {f"f{i:03}.txt": f"file {i}\n".encode() for i in range(60)}
    for scope in scopes:
        for rel, content in files.items():
            (service.root / scope / rel).write_bytes(content)
    plans: dict[str, list[str]] = {scope: [] for scope in scopes}
    for scope in scopes:
        for n in range(3):
            ops = [{"op": "mkdir", "path": f"batch-{n}"}] + [
                {"op": "move", "source": rel, "destination": f"batch-{n}/{rel}"}
                for rel in list(files)[n * 20 : (n + 1) * 20]
            ]
            plans[scope].append(lib_validated(service, plan(scope, *ops)))
    everything = [p for ids in plans.values() for p in ids]
    start = threading.Barrier(len(everything))

    def apply(plan_id: str) -> dict[str, Any]:
        client = service.client(Role.AGENT)
        start.wait(timeout=30)
        if plan_id == everything[0]:
            # one of them through the seed door, which waits for the result
            response = client.post(f"/plans/{plan_id}/apply")
            assert response.status_code == 200, response.text
            result: dict[str, Any] = json_of(response)
            assert result["success"] is True, result
            return {"state": "succeeded"}
        response = client.post(f"{API}/plans/{plan_id}/apply")
        assert response.status_code == 202, response.text
        return wait_job(client, json_of(response)["job_id"])

    with ThreadPoolExecutor(len(everything)) as pool:
        results = list(pool.map(apply, everything))
    assert [r["state"] for r in results] == ["succeeded"] * len(everything), results
    for scope, ids in plans.items():
        _one_at_a_time(_transactions(service, ids))
        for n in range(3):
            assert len(list((service.root / scope / f"batch-{n}").iterdir())) == 20
    verify = json_of(agent.get(f"{API}/audit/verify"))
    assert verify["ok"] is True, verify
    # and they all roll back, again all at once
    with ThreadPoolExecutor(len(everything)) as pool:
        jobs = list(
            pool.map(lambda p: json_of(approver.post(f"{API}/plans/{p}/rollback")), everything)
        )
    assert all(wait_job(agent, j["job_id"])["state"] == "succeeded" for j in jobs)
    for scope in scopes:
        assert sorted(p.name for p in (service.root / scope).iterdir()) == sorted(
            ["a.txt", "b.txt", *files]
        )
    assert json_of(agent.get(f"{API}/audit/verify"))["ok"] is True


def test_one_server_per_workspace_object_shares_state(service: Service) -> None:
    """A second app over the same Workspace sees the same plans (state lives in the store)."""
    plan_id = lib_validated(service, additive(new_case(service)))
    with (
        serve_app(service.ws) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {service.tokens[Role.AGENT]}"}
        ) as client,
    ):
        assert json_of(client.get(f"{API}/plans/{plan_id}"))["status"] == "validated"
