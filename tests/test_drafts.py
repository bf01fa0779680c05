"""Pending plans and the agent session over them (airlock.drafts, airlock.agents.session):
every change lands in the pending plan, never in a real file; reads see the pending changes;
a sandboxed run sees them too and adds what it changed; the ethical wall holds for reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airlock.agents.session import AgentSession, open_session
from airlock.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotFoundError,
    NotPermittedError,
)
from airlock.permissions import Role
from airlock.tokens import create_token
from airlock.workspace import Workspace
from support import person, snapshot

SCOPE = "projects/Smith"
ROOT = "/workspace/projects/Smith"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    case = workspace.root / SCOPE
    (case / "Medical").mkdir(parents=True)
    (case / "Medical" / "er.txt").write_text("ER visit\nDr. Adams\n")
    (case / "notes.txt").write_text("hello\n")
    other = workspace.root / "projects" / "Jones"
    other.mkdir()
    (other / "secret.txt").write_text("another client's file\n")
    (workspace.root / "Tools" / "inventory.sh").write_text("#!/bin/sh\nls -R\n")
    return workspace


@pytest.fixture
def agent(ws: Workspace) -> AgentSession:
    return AgentSession(ws, SCOPE, person("agent-7", Role.AGENT))


def test_changes_are_pending_and_read_back(ws: Workspace, agent: AgentSession) -> None:
    before = snapshot(ws.root / SCOPE)
    agent.write(f"{ROOT}/index.md", "# Index\n")
    assert agent.edit(f"{ROOT}/index.md", "Index", "Case index") == 1
    agent.move(f"{ROOT}/notes.txt", f"{ROOT}/Notes/notes.txt")
    agent.delete(f"{ROOT}/Medical/er.txt")
    assert agent.read_bytes(f"{ROOT}/index.md") == b"# Case index\n"
    assert agent.read_bytes(f"{ROOT}/Notes/notes.txt") == b"hello\n"
    assert agent.stat(f"{ROOT}/notes.txt") is None
    assert [item.path for item in agent.ls(ROOT)] == [
        f"{ROOT}/Medical",
        f"{ROOT}/Notes",
        f"{ROOT}/index.md",
    ]
    assert [m.path for m in agent.grep("Case")] == [f"{ROOT}/index.md"]
    assert [item.path for item in agent.glob("**/*.txt")] == [f"{ROOT}/Notes/notes.txt"]
    # two writes of one file are one change; nothing real changed
    assert [op["op"] for op in agent.pending()] == ["write", "move", "delete"]
    assert snapshot(ws.root / SCOPE) == before
    diff = agent.diff()
    assert "→ move      notes.txt → Notes/notes.txt" in diff
    assert "nothing real has changed" in diff


def test_pending_plan_is_shared_by_sessions_of_the_principal(
    ws: Workspace, agent: AgentSession
) -> None:
    agent.write(f"{ROOT}/a.txt", "a")
    again = AgentSession(ws, SCOPE, person("agent-7", Role.AGENT))
    assert again.read_bytes(f"{ROOT}/a.txt") == b"a"
    other = AgentSession(ws, SCOPE, person("agent-8", Role.AGENT))
    assert other.stat(f"{ROOT}/a.txt") is None
    assert agent.discard() == 1
    assert again.stat(f"{ROOT}/a.txt") is None


def test_refusals_name_the_problem_and_keep_the_pending_plan(agent: AgentSession) -> None:
    agent.write(f"{ROOT}/a.txt", "a")
    with pytest.raises(ConflictError, match="already exists") as exc:
        agent.move(f"{ROOT}/a.txt", f"{ROOT}/notes.txt")  # a move never overwrites
    assert "overwrite" not in exc.value.message
    with pytest.raises(ConflictError, match="exists already"):
        agent.write(f"{ROOT}/notes.txt", "x", overwrite=False)
    with pytest.raises(NotFoundError):
        agent.delete(f"{ROOT}/missing.txt")
    with pytest.raises(InputError, match="appears 2 times"):
        agent.write(f"{ROOT}/b.txt", "x x")
        agent.edit(f"{ROOT}/b.txt", "x", "y")
    with pytest.raises(InputError, match="not found"):
        agent.edit(f"{ROOT}/b.txt", "zzz", "y")
    assert agent.edit(f"{ROOT}/b.txt", "x", "y", replace_all=True) == 2
    assert [op["path"] for op in agent.pending()] == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    "path",
    [
        "relative.txt",
        "/etc/passwd",
        f"{ROOT}/../Jones/secret.txt",
        "/workspace/projects/Jones/secret.txt",
        "/workspace/projects/Smith_evil/x.txt",  # a prefix sibling of the scope
        "/workspace/.airlock/policy.toml",
    ],
)
def test_nothing_outside_the_scope_and_read_areas(agent: AgentSession, path: str) -> None:
    with pytest.raises((InputError, NotFoundError, NotPermittedError)):
        agent.read_bytes(path)
    with pytest.raises((InputError, NotFoundError, NotPermittedError)):
        agent.write(path, "x")


def test_the_ethical_wall_in_listings(agent: AgentSession) -> None:
    assert [i.path for i in agent.ls("/workspace/projects")] == [ROOT]
    assert agent.read_bytes("/workspace/Tools/inventory.sh").startswith(b"#!/bin/sh")
    with pytest.raises(NotPermittedError, match="outside the scope"):
        agent.write("/workspace/Tools/inventory.sh", "changed")
    walked = [i.path for i in agent.walk("/workspace")]
    assert not any("Jones" in path for path in walked)
    assert f"{ROOT}/Medical/er.txt" in walked


def test_a_symlink_is_not_a_door(ws: Workspace, agent: AgentSession) -> None:
    (ws.root / SCOPE / "escape").symlink_to(ws.root / "projects" / "Jones")
    (ws.root / SCOPE / "passwd").symlink_to("/etc/passwd")
    with pytest.raises((InputError, NotFoundError)):
        agent.read_bytes(f"{ROOT}/escape/secret.txt")
    with pytest.raises(InputError, match="symlink"):
        agent.read_bytes(f"{ROOT}/passwd")


def test_submit_makes_a_plan_and_empties_the_pending_one(
    ws: Workspace, agent: AgentSession
) -> None:
    agent.write(f"{ROOT}/index.md", "# Index\n")
    record = agent.submit("write an index")
    assert record.status == "validated" and record.author == "agent-7"
    assert agent.pending() == []
    with pytest.raises(InputError, match="no pending changes"):
        agent.submit("again")
    assert agent.apply(record.id).success
    assert (ws.root / SCOPE / "index.md").read_text() == "# Index\n"


def test_open_session_needs_a_valid_token(ws: Workspace) -> None:
    with pytest.raises(AuthenticationError):
        open_session(ws.root, scope=SCOPE, token="al_not-a-token")  # noqa: S106
    _id, secret = create_token(ws, "paralegal-agent", Role.AGENT)
    session = open_session(ws.root, scope=SCOPE, token=secret)
    assert session.by.name == "paralegal-agent" and session.by.role is Role.AGENT
    session.ws.close()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_code_sees_the_pending_changes_and_its_changes_join_them(
    ws: Workspace, agent: AgentSession
) -> None:
    before = snapshot(ws.root / SCOPE)
    agent.write(f"{ROOT}/index.md", "# Index\n")
    agent.move(f"{ROOT}/notes.txt", f"{ROOT}/Notes/notes.txt")
    ran = agent.execute(
        "cat index.md Notes/notes.txt && mkdir -p Medical/Adams"
        " && mv Medical/er.txt Medical/Adams/er.txt && ls /workspace/projects"
    )
    assert ran.exit_code == 0, ran.output
    assert "# Index\nhello\n" in ran.output
    assert "Jones" not in ran.output  # the run sees only its scope
    assert ran.changes == 2
    ops = agent.pending()
    assert (
        ops[-1]
        == {
            "op": "move",
            "source": "Medical/er.txt",
            "destination": "Medical/Adams/er.txt",
            "overwrite": False,
        }
        or ops[-1]["op"] == "move"
    )
    assert agent.read_bytes(f"{ROOT}/Medical/Adams/er.txt") == b"ER visit\nDr. Adams\n"
    assert snapshot(ws.root / SCOPE) == before  # still nothing real


def test_a_session_needs_a_case_folder_and_closes_what_it_opened(ws: Workspace) -> None:
    _id, secret = create_token(ws, "paralegal-agent", Role.AGENT)
    with pytest.raises(NotFoundError, match="not a folder"):
        open_session(ws.root, scope="projects/Nope", token=secret)
    with pytest.raises((InputError, NotPermittedError)):
        open_session(ws.root, scope="../x", token=secret)
    with pytest.raises(NotPermittedError):
        AgentSession(ws, "Tools", person("agent-7", Role.AGENT))  # a read-only area


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_what_a_run_could_not_keep_is_said(agent: AgentSession) -> None:
    ran = agent.execute("ln -s /etc/passwd link && echo done")
    assert ran.exit_code == 0 and "done" in ran.output
    assert ran.changes == 0
    assert [item["path"] for item in ran.skipped] == ["link"]
    assert "symlink" in ran.skipped[0]["reason"] and "could not join" not in ran.summary
    assert "nothing it changed could join the pending plan" in ran.summary


def test_changes_made_at_once_are_all_kept(ws: Workspace) -> None:
    """Two processes of one agent (here two workspaces, each its own database connection, in
    two threads) change the pending plan at the same moment: no change is lost."""
    import threading

    def work(worker: int) -> None:
        with Workspace(ws.root) as mine:
            session = AgentSession(mine, SCOPE, person("agent-7", Role.AGENT))
            for index in range(15):
                session.write(f"{ROOT}/w{worker}/{index}.txt", f"{worker}/{index}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    agent = AgentSession(ws, SCOPE, person("agent-7", Role.AGENT))
    assert sorted(op["path"] for op in agent.pending()) == sorted(
        f"w{n}/{i}.txt" for n in range(2) for i in range(15)
    )


def test_each_change_may_say_why(ws: Workspace, agent: AgentSession) -> None:
    agent.move(f"{ROOT}/notes.txt", f"{ROOT}/Notes/notes.txt", reason="notes go under Notes/")
    agent.write(f"{ROOT}/index.md", "# Index\n", reason="an index of the case")
    agent.edit(f"{ROOT}/index.md", "Index", "Case index")  # the reason of the write stays
    agent.delete(f"{ROOT}/Medical/er.txt")
    assert [op.get("reason") for op in agent.pending()] == [
        "notes go under Notes/",
        "an index of the case",
        None,
    ]
    record = agent.submit("organise")
    reasons = [op.reason for op in record.plan.operations]
    assert reasons == ["notes go under Notes/", "an index of the case", ""]
    # an operation without a reason digests as it did before the field existed
    assert '"reason"' not in record.plan.operations[2].model_dump_json()
    from airlock.report import record_lines

    text = "\n".join(record_lines(record))
    assert "→ move      notes.txt → Notes/notes.txt\n      why: notes go under Notes/" in text
    assert "+ create    index.md (13 B)\n      why: an index of the case" in text


def test_the_seed_format_carries_reasons() -> None:
    from airlock.seed_format import SeedPlan, to_core_plan

    seed = SeedPlan.model_validate(
        {
            "case_name": "Smith",
            "operations": [
                {
                    "type": "move",
                    "source": "a.pdf",
                    "destination": "B/a.pdf",
                    "reason": "by provider",
                },
                {"type": "delete", "source": "c.pdf"},
            ],
        }
    )
    ops = to_core_plan(seed, "agent")["operations"]
    assert ops[0]["reason"] == "by provider" and "reason" not in ops[1]
