"""An agent session against a real ``airlock serve`` (RemoteSession over POST /api/v1/agent):
the same answers and the same errors as in process, the caller's token is who acts, and a
client's mistake is a 4xx with the one error body, never a 500."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from airlock.agents import wire
from airlock.agents.remote import RemoteSession
from airlock.agents.session import Item
from airlock.errors import AuthenticationError, ConflictError, NotFoundError, NotPermittedError
from airlock.permissions import Role
from servicekit import Service, running_service
from support import snapshot

CASE = "projects/Remote-Case"
ROOT = f"/workspace/{CASE}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("remote") / "ws") as running:
        folder = running.root / CASE
        folder.mkdir()
        (folder / "scan_0001.pdf").write_bytes(b"%PDF-1.4 mercy hospital")
        (folder / "notes.txt").write_text("first\n")
        yield running


@pytest.fixture
def remote(service: Service) -> Iterator[RemoteSession]:
    session = RemoteSession(service.url, scope=CASE, token=service.tokens[Role.AGENT])
    yield session
    session.discard()
    session.close()


def test_reads_and_pending_changes_over_http(service: Service, remote: RemoteSession) -> None:
    before = snapshot(service.root / CASE)
    assert remote.readable_roots()[0] == ROOT
    assert remote.read_bytes(f"{ROOT}/scan_0001.pdf") == b"%PDF-1.4 mercy hospital"
    remote.write(f"{ROOT}/index.md", b"# Index\n\x00binary ok")
    remote.move(f"{ROOT}/scan_0001.pdf", f"{ROOT}/Medical/scan_0001.pdf")
    assert remote.read_bytes(f"{ROOT}/index.md") == b"# Index\n\x00binary ok"
    listed = remote.ls(ROOT)
    assert all(isinstance(item, Item) for item in listed)
    assert [item.path.rsplit("/", 1)[1] for item in listed] == ["Medical", "index.md", "notes.txt"]
    assert "move      scan_0001.pdf → Medical/scan_0001.pdf" in remote.diff()
    assert snapshot(service.root / CASE) == before


def test_errors_keep_their_class(service: Service, remote: RemoteSession) -> None:
    with pytest.raises(NotFoundError):
        remote.read_bytes(f"{ROOT}/missing.txt")
    with pytest.raises(ConflictError):
        remote.move(f"{ROOT}/notes.txt", f"{ROOT}/scan_0001.pdf")
    with pytest.raises((NotFoundError, NotPermittedError)):
        remote.read_bytes("/workspace/projects/Other/secret.txt")
    bad = RemoteSession(service.url, scope=CASE, token="not-a-token")  # noqa: S106
    with pytest.raises(AuthenticationError):
        bad.ls(ROOT)
    bad.close()


def test_a_clients_mistake_is_a_4xx(service: Service) -> None:
    client = service.client(Role.AGENT)
    wrong_args = client.post("/api/v1/agent/ls", json={"scope": CASE, "args": {"nope": 1}})
    assert wrong_args.status_code == 422, wrong_args.text
    assert "wrong arguments for ls" in wrong_args.json()["message"]
    wrong_type = client.post(
        "/api/v1/agent/write", json={"scope": CASE, "args": {"path": f"{ROOT}/a", "data": 7}}
    )
    assert wrong_type.status_code == 422, wrong_type.text
    for call, args in (("read_bytes", {"path": 7}), ("grep", {"literal": "x", "max_count": "y"})):
        answer = client.post(f"/api/v1/agent/{call}", json={"scope": CASE, "args": args})
        assert answer.status_code == 422, answer.text
    bad_scope = client.post("/api/v1/agent/ls", json={"scope": "../x", "args": {"path": "/"}})
    assert 400 <= bad_scope.status_code < 500, bad_scope.text
    unknown = client.post("/api/v1/agent/approve", json={"scope": CASE, "args": {}})
    assert unknown.status_code in (404, 422), unknown.text
    not_json = client.post("/api/v1/agent/ls", content=b"{", headers={"content-type": "x"})
    assert 400 <= not_json.status_code < 500


def test_submit_and_apply_as_the_token(service: Service, remote: RemoteSession) -> None:
    remote.write(f"{ROOT}/summary.txt", "summary\n")
    record = remote.submit("add a summary")
    assert record.author == "paralegal-agent"  # the token's name, whatever the body said
    assert record.validation is not None and record.validation.valid
    result = remote.apply(record.id)
    assert result.success
    assert (service.root / CASE / "summary.txt").read_text() == "summary\n"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_execute_over_http(service: Service, remote: RemoteSession) -> None:
    remote.write(f"{ROOT}/todo.txt", "file the scan\n")
    ran = remote.execute("cat todo.txt && mkdir Medical && mv scan_0001.pdf Medical/")
    assert ran.exit_code == 0, ran.output
    assert "file the scan" in ran.output and ran.changes >= 1
    assert remote.stat(f"{ROOT}/Medical/scan_0001.pdf") is not None
    assert (service.root / CASE / "scan_0001.pdf").exists()  # nothing real yet


def test_an_unreachable_service_is_a_clear_error() -> None:
    session = RemoteSession("http://127.0.0.1:9", scope=CASE, token="x", timeout=2)  # noqa: S106
    with pytest.raises(Exception, match="could not reach"):
        session.ls(ROOT)
    session.close()


def test_people_decide_as_their_own_token(service: Service, remote: RemoteSession) -> None:
    remote.delete(f"{ROOT}/notes.txt")  # a delete needs a person under the default policy
    record = remote.submit("remove the notes")
    assert record.validation is not None and record.validation.needs_approval
    with pytest.raises(NotPermittedError):
        remote.approve(record.id)  # an agent never approves, whichever door it uses
    with pytest.raises(AuthenticationError):
        remote.acting_as("forged-approver-token")
    approver = remote.acting_as(service.tokens[Role.APPROVER])
    assert approver.by.role is Role.APPROVER and remote.by.role is Role.AGENT
    approved = approver.approve(record.id, "checked", validation_id=record.validation_id)
    assert approved.status == "approved"
    assert approved.decisions[-1]["actor"] == approver.by.name
    approver.close()


@pytest.mark.parametrize("call", wire.CALLS)
def test_no_call_answers_500_to_bad_arguments(service: Service, call: str) -> None:
    client = service.client(Role.AGENT)
    for args in ({}, {"path": 7, "plan_id": [], "data": {"base64": "!!"}}, {"nope": None}):
        answer = client.post(f"/api/v1/agent/{call}", json={"scope": CASE, "args": args})
        assert answer.status_code < 500, (call, args, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["message"], answer.text
