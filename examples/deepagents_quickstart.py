"""Airlock for deepagents users: a deep agent files a case's medical records, safely.

    python examples/deepagents_quickstart.py            # in a temporary folder
    python examples/deepagents_quickstart.py ./demo-ws  # or in a folder you name (made anew)

What it shows (docs/agents-deepagents.md explains each step):

1. ``AirlockBackend.open(...)`` instead of ``FilesystemBackend(...)``: one line.
2. The agent inventories the case, writes an index and runs a script in Airlock's sandbox that
   files the records into provider folders. Every change is pending: the real files do not move.
3. It shows the diff and submits the plan; the run pauses (a LangGraph interrupt) until a person
   decides. The approval is recorded in Airlock's audit by the approver's *token*, never by a
   name in the resume payload.
4. Resumed, the agent applies the plan: now the real files move.
5. The agent asks to roll back; an approver approves that too, and the case is byte-identical to
   how it started.

The chat model is scripted (LangChain's fake chat model emitting real tool calls) so that the
example runs anywhere without a network or an API key; swap in any tool-calling model.
Needs Airlock's sandbox (bubblewrap) for ``execute``: ``make sandbox-tools``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from deepagents import create_deep_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from airlock.agents.deepagents import AirlockBackend, airlock_tools
from airlock.agents.scripted import ScriptedChatModel, call, with_plan
from airlock.permissions import Role
from airlock.tokens import create_token
from airlock.workspace import Workspace

SCOPE = "projects/Smith-v-Jones"
CASE = f"/workspace/{SCOPE}"

RECORDS = {
    "inbox/2023-03-02 visit.txt": "Provider: Dr Lee\nKnee examination.\n",
    "inbox/2023-04-17 imaging.txt": "Provider: Dr Kim\nMRI, left knee.\n",
    "inbox/2023-05-09 follow-up.txt": "Provider: Dr Lee\nFollow-up visit.\n",
    "notes.txt": "Client meeting on 2023-06-01.\n",
}

FILE_BY_PROVIDER = r"""
for f in inbox/*.txt; do
  provider=$(sed -n 's/^Provider: Dr //p' "$f")
  mkdir -p "medical/$provider"
  mv "$f" "medical/$provider/"
done
ls -R medical
"""


# -- a scripted chat model ---------------------------------------------------------------------

# -- the walk-through ------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``: a folder's kind, a file's SHA-256."""
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def answer(result: dict[str, Any], tool: str | None = None) -> str:
    """What the last call of ``tool`` (or of any tool) answered the model."""
    said = [
        m
        for m in result["messages"]
        if isinstance(m, ToolMessage) and (tool is None or m.name == tool)
    ]
    return str(said[-1].content) if said else ""


def main(root: Path) -> None:
    # The firm's side: a workspace, the case, and two Airlock tokens (`airlock token create`).
    case = root / SCOPE
    for name, text in RECORDS.items():
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).write_text(text)
    with Workspace.init(root) as ws:
        _, agent_token = create_token(ws, "paralegal-agent", Role.AGENT)
        _, approver_token = create_token(ws, "m.jones (partner)", Role.APPROVER)
    before = snapshot(case)

    # The developer's side: the one line that replaces FilesystemBackend(root_dir=...).
    backend = AirlockBackend.open(root, scope=SCOPE, token=agent_token)

    model = ScriptedChatModel(
        script=[
            call("ls", path=CASE),
            call("glob", pattern="*.txt", path=f"{CASE}/inbox"),
            call(
                "write_file",
                file_path=f"{CASE}/INDEX.md",
                content="# Smith v Jones\n\nMedical records, filed by provider under medical/.\n",
            ),
            call("execute", command=FILE_BY_PROVIDER),
            call("show_diff"),
            call("submit_plan", description="File the medical records by provider; add INDEX.md"),
            with_plan("apply_plan"),
            with_plan("rollback_plan"),
            AIMessage(content="The records were filed, then put back as they were."),
        ]
    )
    agent = create_deep_agent(
        model=model,
        backend=backend,
        tools=airlock_tools(backend, ask_approval="always"),
        system_prompt=f"You organise the case at {CASE}. Every change is reviewed.",
        checkpointer=InMemorySaver(),
    )
    thread: RunnableConfig = {"configurable": {"thread_id": "smith-v-jones-1"}}

    result = agent.invoke({"messages": [HumanMessage("File the records.")]}, thread)
    print("execute answered:\n" + answer(result, "execute") + "\n")
    print("show_diff answered:\n" + answer(result, "show_diff") + "\n")
    assert snapshot(case) == before, "nothing real changes before approval"
    [paused] = result["__interrupt__"]
    airlock = paused.value["airlock"]
    print(f"The run paused on submit_plan; the approver sees plan {airlock['plan_id']}:")
    print(paused.value["action_requests"][0]["description"] + "\n")

    # A person approves. Who approved comes from the token, checked by Airlock.
    approve: Command[Any] = Command(
        resume={"decisions": [{"type": "approve", "token": approver_token, "message": "Fine."}]}
    )
    result = agent.invoke(approve, thread)
    print(answer(result, "submit_plan") + "\n" + answer(result, "apply_plan") + "\n")
    after = snapshot(case)
    assert "medical/Lee/2023-03-02 visit.txt" in after and "inbox/2023-03-02 visit.txt" not in after
    print("The real case now:\n  " + "\n  ".join(after) + "\n")

    # The agent asked to roll back; an agent cannot alone, so the run paused again.
    [paused] = result["__interrupt__"]
    print("The run paused on rollback_plan.\n")
    result = agent.invoke(approve, thread)
    print(answer(result, "rollback_plan") + "\n")
    assert snapshot(case) == before, "the case is byte-identical to how it started"
    print(result["messages"][-1].content)

    with Workspace(root) as ws:
        events = ws.audit_events(airlock["plan_id"])
    print("Audit of the plan: " + ", ".join(f"{e['kind']} by {e['actor']}" for e in events))
    backend.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        target = Path(sys.argv[1]).absolute()
        shutil.rmtree(target, ignore_errors=True)
        main(target)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "ws")
