"""End-to-end agent runs: a scripted chat model makes real tool calls through a plain LangGraph
agent (``langchain.agents.create_agent``) and through ``deepagents.create_deep_agent`` with
Airlock as its backend, over a real workspace, database, audit log and sandbox.

The case: inventory it (ls, glob), write an index, run the firm's script in the sandbox to file
the medical records into provider folders, show the diff, submit; the run pauses for approval;
resume with approve (or, in other runs, reject, or edit); apply; check the real tree; roll back;
the tree is byte-identical to the start. The firm's policy asks a person to approve moves.

The model is scripted (``ScriptedChatModel``, LangChain's ``GenericFakeChatModel``): no model can
run here. Everything else is real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deepagents import create_deep_agent
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentkit import ScriptedChatModel, Turn, call, needs_sandbox, tool_answers, with_plan
from airlock.agents.deepagents import AirlockBackend
from airlock.agents.deepagents import airlock_tools as deepagents_tools
from airlock.agents.langchain import airlock_tools
from airlock.agents.session import AgentSession
from airlock.paths import STATE_DIR
from airlock.policy import DEFAULT_POLICY_TOML
from airlock.tokens import Role, authenticate, create_token
from airlock.workspace import Workspace
from support import snapshot

pytestmark = needs_sandbox

CASE = "projects/Abby-Sitgraves-MVA-7-13-2024"
ROOT = f"/workspace/{CASE}"
RECORDS = {
    "2024-07-13 ER visit - St Marys Hospital.pdf": b"%PDF-1.4 ER visit, 13 July",
    "2024-08-05 MRI lumbar - Riverside Imaging.pdf": b"%PDF-1.4 MRI lumbar spine",
    "2024-09-02 MRI follow-up - Riverside Imaging.pdf": b"%PDF-1.4 MRI follow-up",
    "2024-09-20 PT notes - Lakeside Physical Therapy.pdf": b"%PDF-1.4 PT notes",
}
FILED = {
    "St Marys Hospital/2024-07-13 ER visit.pdf": b"%PDF-1.4 ER visit, 13 July",
    "Riverside Imaging/2024-08-05 MRI lumbar.pdf": b"%PDF-1.4 MRI lumbar spine",
    "Riverside Imaging/2024-09-02 MRI follow-up.pdf": b"%PDF-1.4 MRI follow-up",
    "Lakeside Physical Therapy/2024-09-20 PT notes.pdf": b"%PDF-1.4 PT notes",
}
INDEX = "# Abby Sitgraves MVA 7-13-2024\n\n- Medical Records/: by provider\n- Police Report.pdf\n"
ORGANIZE = r"""#!/bin/sh
# File each medical record "<date> <what> - <Provider>.pdf" into a folder named after its provider.
set -eu
cd "${1:-Medical Records}"
for record in *" - "*.pdf; do
    [ -e "$record" ] || continue
    provider=${record##* - }
    provider=${provider%.pdf}
    mkdir -p "$provider"
    mv "$record" "$provider/${record% - *}.pdf"
    echo "filed $record under $provider"
done
"""
FIRM_POLICY = DEFAULT_POLICY_TOML.replace(
    'approval_required_for = ["delete", "overwrite"]',
    'approval_required_for = ["delete", "overwrite", "move"]',
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    case = root / CASE
    (case / "Medical Records").mkdir(parents=True)
    for name, body in RECORDS.items():
        (case / "Medical Records" / name).write_bytes(body)
    (case / "Police Report.pdf").write_bytes(b"%PDF-1.4 police report")
    (root / "Tools").mkdir()
    (root / "Tools" / "organize_medical_subfolders.sh").write_text(ORGANIZE)
    (root / STATE_DIR).mkdir()
    (root / STATE_DIR / "policy.toml").write_text(FIRM_POLICY)
    assert FIRM_POLICY != DEFAULT_POLICY_TOML
    return root


@pytest.fixture
def approver(ws: Workspace) -> str:
    return create_token(ws, "jane-attorney", Role.APPROVER)[1]


@pytest.fixture
def session(ws: Workspace) -> AgentSession:
    principal = authenticate(ws, create_token(ws, "paralegal-agent", Role.AGENT)[1])
    assert principal is not None
    return AgentSession(ws, CASE, principal)


def reorganisation(*after_submit: Turn) -> list[Turn]:
    """The model's work up to the submit, then ``after_submit``."""
    return [
        call("ls", path=ROOT),
        call("glob", pattern="*.pdf", path=ROOT),
        call("write_file", file_path=f"{ROOT}/INDEX.md", content=INDEX),
        call(
            "execute",
            command="sh /workspace/Tools/organize_medical_subfolders.sh 'Medical Records'",
        ),
        call("show_diff"),
        call("submit_plan", description="File the medical records by provider; add an index"),
        *after_submit,
    ]


def make_agent(kind: str, session: AgentSession, script: list[Turn]) -> Any:
    model = ScriptedChatModel(script=script)
    if kind == "deepagents":
        backend = AirlockBackend(session)
        return create_deep_agent(
            model=model,
            backend=backend,
            tools=deepagents_tools(backend),
            checkpointer=InMemorySaver(),
        )
    return create_agent(model, airlock_tools(session), checkpointer=InMemorySaver())


def decide(agent: Any, config: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = agent.invoke(Command(resume={"decisions": [decision]}), config)
    return result


def start(agent: Any, config: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = agent.invoke(
        {"messages": [("user", "Organise the Sitgraves case: file the medical records.")]},
        config,
    )
    return result


def check_paused_at_submit(result: dict[str, Any], root: Path, before: dict[str, str]) -> str:
    """The run is paused for approval with the plan's report; nothing real changed yet."""
    answers = {m.name: m.text for m in tool_answers(result)}
    assert "Medical Records" in answers["ls"]
    assert answers["glob"].count(".pdf") == 5
    assert (
        "filed 2024-07-13 ER visit - St Marys Hospital.pdf under St Marys Hospital"
        in (answers["execute"])
    )
    diff = answers["show_diff"]
    assert "+ create    INDEX.md" in diff
    assert (
        "→ move      Medical Records/2024-08-05 MRI lumbar - Riverside Imaging.pdf → "
        "Medical Records/Riverside Imaging/2024-08-05 MRI lumbar.pdf" in diff
    )
    [pause] = result["__interrupt__"]
    request = pause.value
    assert request["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    assert request["airlock"]["needs_approval"] == ["4 move(s)"]
    assert "→ move" in request["action_requests"][0]["description"]
    assert snapshot(root) == before
    plan_id: str = request["airlock"]["plan_id"]
    return plan_id


def check_filed(root: Path, *, index: bool = True) -> None:
    records = root / CASE / "Medical Records"
    for path, body in FILED.items():
        assert (records / path).read_bytes() == body
    assert not any((records / name).exists() for name in RECORDS)
    assert (
        ((root / CASE / "INDEX.md").read_text() == INDEX)
        if index
        else (not (root / CASE / "INDEX.md").exists())
    )


@pytest.mark.parametrize("kind", ["langgraph", "deepagents"])
def test_approve_apply_and_roll_back(
    kind: str, session: AgentSession, ws: Workspace, root: Path, approver: str
) -> None:
    before = snapshot(root)
    script = reorganisation(
        with_plan("apply_plan"),
        with_plan("rollback_plan"),
        AIMessage(content="Filed, then undone as asked."),
    )
    agent, config = make_agent(kind, session, script), {"configurable": {"thread_id": kind}}
    plan_id = check_paused_at_submit(start(agent, config), root, before)

    result = decide(agent, config, {"type": "approve", "token": approver, "name": "Forged"})
    [pause] = result["__interrupt__"]  # paused again: the agent asks to roll back
    answers = tool_answers(result)
    assert f"Plan {plan_id} was approved by jane-attorney" in answers[-2].text
    assert answers[-1].text.startswith(f"Applied plan {plan_id}: 8 operation(s)")
    check_filed(root)
    assert pause.value["action_requests"][0]["name"] == "rollback_plan"

    result = decide(agent, config, {"type": "approve", "token": approver})
    assert "the files are exactly as before" in tool_answers(result)[-1].text
    assert result["messages"][-1].content == "Filed, then undone as asked."
    assert snapshot(root) == before
    kinds = [(e["kind"], e["actor"]) for e in ws.audit_events(plan_id)]
    assert ("approved", "jane-attorney") in kinds
    assert ("applied", "paralegal-agent") in kinds
    assert ("rolled_back", "jane-attorney") in kinds
    assert "Forged" not in repr(ws.audit_events())
    assert ws.audit_verify().ok


@pytest.mark.parametrize("kind", ["langgraph", "deepagents"])
def test_reject(kind: str, session: AgentSession, ws: Workspace, root: Path, approver: str) -> None:
    before = snapshot(root)
    script = reorganisation(with_plan("apply_plan"), AIMessage(content="The reviewer said no."))
    agent, config = make_agent(kind, session, script), {"configurable": {"thread_id": kind}}
    plan_id = check_paused_at_submit(start(agent, config), root, before)
    reason = "Do not rename the records: keep the providers' file names"
    result = decide(agent, config, {"type": "reject", "message": reason, "token": approver})
    answers = tool_answers(result)
    assert f"Plan {plan_id} was rejected by jane-attorney: {reason}" in answers[-2].text
    assert answers[-1].status == "error" and "rejected" in answers[-1].text
    assert ws.get(plan_id).status == "rejected"
    assert "No pending changes" in session.diff()
    assert snapshot(root) == before


@pytest.mark.parametrize("kind", ["langgraph", "deepagents"])
def test_edit(kind: str, session: AgentSession, ws: Workspace, root: Path, approver: str) -> None:
    before = snapshot(root)
    script = reorganisation(with_plan("apply_plan"), AIMessage(content="Applied as edited."))
    agent, config = make_agent(kind, session, script), {"configurable": {"thread_id": kind}}
    plan_id = check_paused_at_submit(start(agent, config), root, before)
    operations = [
        op.model_dump(mode="json", exclude_none=True)
        for op in ws.get(plan_id).plan.operations
        if getattr(op, "path", "") != "INDEX.md"  # the reviewer drops the index
    ]
    edit = {
        "type": "edit",
        "edited_action": {
            "name": "submit_plan",
            "args": {
                "description": "File the medical records by provider",
                "operations": operations,
            },
        },
        "token": approver,
    }
    result = decide(agent, config, edit)
    [pause] = result["__interrupt__"]  # asked again, with the edited plan's own report
    edited = pause.value["airlock"]["plan_id"]
    assert edited != plan_id and "INDEX.md" not in pause.value["action_requests"][0]["description"]
    assert snapshot(root) == before
    result = decide(agent, config, {"type": "approve", "token": approver})
    answers = tool_answers(result)
    assert f"Plan {edited} was approved by jane-attorney" in answers[-2].text
    assert answers[-1].text.startswith(f"Applied plan {edited}")
    check_filed(root, index=False)
    assert ws.get(plan_id).status == "rejected"
    assert ws.get(edited).plan.description == "File the medical records by provider"
    jane = authenticate(ws, approver)
    assert ws.rollback(edited, by=jane).success
    assert snapshot(root) == before
