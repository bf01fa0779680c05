"""Quickstart: a LangGraph agent that reorganises a case through Airlock, with a person's approval.

Run it as it is: ``.venv/bin/python examples/langgraph_quickstart.py``. It makes a small workspace
in a temporary folder, an agent token and an approver token, and drives the agent with a scripted
chat model (no network, no API key): put your own chat model where ``ScriptedModel`` is.

What happens: the agent lists the case, writes an index and files a medical record into a
provider folder (pending changes: nothing real changes), shows the diff and submits. The run
pauses (a LangGraph interrupt) with the plan's report; we resume it with an approval that
carries the approver's Airlock token, so the audit log records who approved. The agent applies
the plan, then asks to roll it back, which pauses again for the approver; afterwards the case is
exactly as it was.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from airlock.agents.langchain import airlock_tools
from airlock.agents.scripted import ScriptedChatModel, call, with_plan
from airlock.agents.session import open_session
from airlock.tokens import Role, create_token
from airlock.workspace import Workspace

CASE = "projects/Abby-Sitgraves-MVA-7-13-2024"
ROOT = f"/workspace/{CASE}"  # the agent's paths: the ones code sees in Airlock's sandbox
ER = "Medical Records/2024-07-13 ER visit - St Marys Hospital.pdf"


# -- a scripted chat model (replace it with yours, e.g. ChatAnthropic(...)) ---------------------

SCRIPT = [
    call("ls", path=f"{ROOT}/Medical Records"),
    call("write_file", file_path=f"{ROOT}/INDEX.md", content="# Index\n\n- Medical Records\n"),
    call(
        "move_file",
        source=f"{ROOT}/{ER}",
        destination=f"{ROOT}/Medical Records/St Marys Hospital/2024-07-13 ER visit.pdf",
    ),
    call("show_diff"),
    call("submit_plan", description="File the ER record under its provider; add an index"),
    with_plan("apply_plan"),
    with_plan("rollback_plan"),
    AIMessage(content="Done: filed, applied, and rolled back as you asked."),
]


# -- the quickstart ---------------------------------------------------------------------------


def make_workspace(root: Path) -> tuple[str, str]:
    """A workspace with one case; returns (an agent token, an approver token)."""
    (root / CASE / "Medical Records").mkdir(parents=True)
    (root / CASE / ER).write_bytes(b"%PDF-1.4 ER visit")
    with Workspace.init(root) as ws:
        # The firm asks a person to approve moves (the default policy: deletes and overwrites).
        policy = ws.state_dir / "policy.toml"
        text = policy.read_text().replace('"overwrite"]', '"overwrite", "move"]')
        policy.write_text(text)
        agent_token = create_token(ws, "paralegal-agent", Role.AGENT)[1]
        approver_token = create_token(ws, "jane-attorney", Role.APPROVER)[1]
    return agent_token, approver_token


def tree(root: Path) -> list[str]:
    case = root / CASE
    return sorted(str(p.relative_to(case)) for p in case.rglob("*"))


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "workspace"
        agent_token, approver_token = make_workspace(root)
        before = tree(root)

        # The principal comes from Airlock authentication (the agent's token), never the model.
        session = open_session(root, scope=CASE, token=agent_token)
        agent = create_agent(
            ScriptedChatModel(script=list(SCRIPT)),
            airlock_tools(session),
            checkpointer=InMemorySaver(),  # an interrupt needs one
        )
        config: RunnableConfig = {"configurable": {"thread_id": "sitgraves-1"}}

        ask = HumanMessage("File the Sitgraves records.")
        result = agent.invoke({"messages": [ask]}, config)
        request = result["__interrupt__"][0].value
        print("The run paused for approval:\n")
        print(request["action_requests"][0]["description"], "\n")
        assert tree(root) == before, "nothing real changes before approval"

        # A person approves; their Airlock token says who they are (a name here would be ignored).
        approve: Command[Any] = Command(
            resume={"decisions": [{"type": "approve", "token": approver_token}]}
        )
        result = agent.invoke(approve, config)
        for message in result["messages"]:
            if isinstance(message, ToolMessage) and message.name in ("submit_plan", "apply_plan"):
                print(f"[{message.name}] {message.content}\n")
        print("The case now:", *tree(root), sep="\n  ")

        # The agent asked to roll back: an agent cannot, so the run paused for the approver.
        result = agent.invoke(approve, config)
        print(f"\n[rollback_plan] {result['messages'][-2].content}")
        print(f"\n{result['messages'][-1].content}")
        assert tree(root) == before, "the rollback restores the case exactly"

        approvals = [e for e in session.ws.audit_events() if e["kind"] == "approved"]
        print(f"\nAudit: approved by {approvals[0]['actor']} (from the token)")
        session.ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
