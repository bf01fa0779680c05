"""The LangChain tools (``airlock.agents.langchain``) over a real workspace: what each answers,
that nothing real changes before apply, that errors are answers, the firm's two tools, and
approval through LangGraph interrupts with the approver taken from Airlock authentication.

The chat model is LangChain's ``GenericFakeChatModel``, scripted (:class:`ScriptedChatModel`):
no model can run here, and a script makes the runs exact. Everything else is real: the
workspace, its database and audit log, LangGraph's agent loop and checkpointer.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import BaseModel

from agentkit import ScriptedChatModel, Turn, call, plan_named, tool_answers, with_plan
from airlock.agents.langchain import FILE_TOOLS, PLAN_TOOLS, airlock_tools, session_tools
from airlock.agents.session import AgentSession
from airlock.tokens import Role, authenticate, create_token
from airlock.workspace import Workspace
from support import snapshot

CASE_NAME = "Abby-Sitgraves-MVA-7-13-2024"
CASE = f"projects/{CASE_NAME}"
ROOT = f"/workspace/{CASE}"
ER = "Medical Records/2024-07-13 ER - St Marys Hospital.pdf"
MRI = "Medical Records/2024-08-05 MRI - Riverside Imaging.pdf"
NOTES = "notes from call w client.txt"

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    case = root / CASE
    (case / "Medical Records").mkdir(parents=True)
    (case / ER).write_bytes(b"%PDF-1.4 ER visit")
    (case / MRI).write_bytes(b"%PDF-1.4 MRI")
    (case / NOTES).write_text("Client called on 7/14 about the MRI.\n")
    (case / "Thumbs.db").write_bytes(b"\x00\x01junk")
    (root / "projects" / "Other-Client").mkdir(parents=True)
    (root / "projects" / "Other-Client" / "secret.txt").write_text("privileged\n")
    (root / "Tools").mkdir()
    (root / "Tools" / "create_file_inventory.py").write_text("print('inventory')\n")
    return root


@pytest.fixture
def tokens(ws: Workspace) -> dict[str, str]:
    return {
        "agent": create_token(ws, "paralegal-agent", Role.AGENT)[1],
        "other agent": create_token(ws, "other-agent", Role.AGENT)[1],
        "approver": create_token(ws, "jane-attorney", Role.APPROVER)[1],
    }


@pytest.fixture
def session(ws: Workspace, tokens: dict[str, str]) -> AgentSession:
    principal = authenticate(ws, tokens["agent"])
    assert principal is not None
    return AgentSession(ws, CASE, principal)


def schema_of(tool: BaseTool) -> dict[str, Any]:
    """The arguments' JSON schema the model sees."""
    schema = tool.tool_call_schema
    assert isinstance(schema, type) and issubclass(schema, BaseModel)
    return schema.model_json_schema()


def tools_by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {tool.name: tool for tool in tools}


def use(tool: BaseTool, **args: Any) -> ToolMessage:
    """Call a tool the way an agent's tool node does (a tool call in, a tool message out)."""
    message = tool.invoke(
        {"name": tool.name, "args": args, "id": "call_direct", "type": "tool_call"}
    )
    assert isinstance(message, ToolMessage)
    return message


def agent_run(
    session: AgentSession, script: list[Turn], **options: Any
) -> tuple[Any, dict[str, Any]]:
    """A LangGraph agent (``create_agent``) over the tools, with a checkpointer."""
    model = ScriptedChatModel(script=list(script))
    agent = create_agent(model, airlock_tools(session, **options), checkpointer=InMemorySaver())
    return agent, {"configurable": {"thread_id": "case-thread"}}


def audit_of(ws: Workspace, plan_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in ws.audit_events(plan_id) if e["kind"] == kind]


# -- the tools and their shapes ---------------------------------------------------------------


def test_the_tool_sets(session: AgentSession) -> None:
    assert [t.name for t in airlock_tools(session)] == [*FILE_TOOLS, *PLAN_TOOLS]
    assert [t.name for t in session_tools(session)] == list(PLAN_TOOLS)
    tools = tools_by_name(airlock_tools(session))
    # the firm's tools keep their names and arguments, so their prompts keep working
    reorganize = schema_of(tools["reorganize_case_files"])
    assert list(reorganize["properties"]) == ["case_name", "operations", "description"]
    assert reorganize["required"] == ["case_name", "operations", "description"]
    execute = schema_of(tools["execute_mutation_plan"])
    assert list(execute["properties"]) == ["plan_id", "auto_approve"]
    assert execute["properties"]["auto_approve"]["default"] is False
    # deepagents' argument names, so its prompts carry over
    edit = schema_of(tools["edit_file"])
    assert list(edit["properties"]) == [
        "file_path",
        "old_string",
        "new_string",
        "replace_all",
        "reason",  # Airlock's own, optional: why the change is there, for the reviewer
    ]
    assert "reason" not in edit["required"]
    # the injected tool-call id is not the model's to give
    submit = schema_of(tools["submit_plan"])
    assert list(submit["properties"]) == ["description"]


def test_changes_are_pending_and_the_real_files_never_change(
    session: AgentSession, root: Path
) -> None:
    before = snapshot(root)
    tools = tools_by_name(airlock_tools(session))
    listing = use(tools["ls"], path=ROOT).text
    assert f"{ROOT}/Medical Records/" in listing and f"{ROOT}/{NOTES}  (37 bytes)" in listing
    assert "MRI" in use(tools["read_file"], file_path=f"{ROOT}/{NOTES}").text
    answers = [
        use(tools["create_directory"], path=f"{ROOT}/Medical Records/St Marys Hospital"),
        use(
            tools["move_file"],
            source=f"{ROOT}/{ER}",
            destination=f"{ROOT}/Medical Records/St Marys Hospital/2024-07-13 ER.pdf",
        ),
        use(tools["copy_file"], source=f"{ROOT}/{NOTES}", destination=f"{ROOT}/notes copy.txt"),
        use(tools["write_file"], file_path=f"{ROOT}/INDEX.md", content="# Index\n"),
        use(
            tools["edit_file"],
            file_path=f"{ROOT}/{NOTES}",
            old_string="7/14",
            new_string="2024-07-14",
        ),
        use(tools["delete"], file_path=f"{ROOT}/Thumbs.db"),
    ]
    for answer in answers:
        assert answer.status == "success", answer.text
        assert "Pending" in answer.text and "nothing real has changed" in answer.text
        assert "Next:" in answer.text
    assert "6 change(s) pending" in answers[-1].text
    # read-your-writes: the tools see what is pending
    assert use(tools["read_file"], file_path=f"{ROOT}/{NOTES}").text.count("2024-07-14") == 1
    assert f"{ROOT}/INDEX.md" in use(tools["glob"], pattern="*.md").text
    assert "2024-07-14" in use(tools["grep"], pattern="2024-07-14").text
    diff = use(tools["show_diff"]).text
    assert "→ move      Medical Records/2024-07-13 ER - St Marys Hospital.pdf" in diff
    assert "- delete    Thumbs.db" in diff
    assert snapshot(root) == before
    assert use(tools["discard_changes"]).text.startswith("Discarded 6 pending change(s)")
    assert "No pending changes" in use(tools["show_diff"]).text
    assert snapshot(root) == before


@pytest.mark.parametrize(
    ("tool", "args", "error", "said"),
    [
        (
            "move_file",
            {"source": f"{ROOT}/{ER}", "destination": f"{ROOT}/{MRI}"},
            "ConflictError",
            "choose another name",
        ),
        ("read_file", {"file_path": f"{ROOT}/missing.txt"}, "NotFoundError", "missing.txt"),
        ("ls", {"path": "/workspace/projects/Other-Client"}, "NotFoundError", "does not exist"),
        ("read_file", {"file_path": "notes.txt"}, "InputError", "not an absolute path"),
        ("delete", {"file_path": "/etc/passwd"}, "NotPermittedError", "outside the workspace"),
        ("apply_plan", {"plan_id": "no-such-plan"}, "NotFoundError", "no-such-plan"),
        ("submit_plan", {"description": "nothing"}, "InputError", "no pending changes"),
    ],
)
def test_refusals_are_answers(
    session: AgentSession, tool: str, args: dict[str, Any], error: str, said: str
) -> None:
    answer = use(tools_by_name(airlock_tools(session))[tool], **args)
    assert answer.status == "error"
    assert answer.text.startswith(f"Airlock refused ({error}):"), answer.text
    assert said in answer.text
    assert "Next:" in answer.text
    assert "privileged" not in answer.text


def test_an_agent_cannot_apply_what_needs_a_person(session: AgentSession, root: Path) -> None:
    before = snapshot(root)
    tools = tools_by_name(airlock_tools(session))
    use(tools["delete"], file_path=f"{ROOT}/Thumbs.db")
    # outside a LangGraph run there is nothing to pause: the plan waits for the review page
    submitted = use(tools["submit_plan"], description="Drop scanner junk").text
    plan_id = re.findall(r"plan (pl_\w+)", submitted)[0]
    assert "Needs a person's approval: 1 delete(s)" in submitted
    assert "an agent cannot approve it" in submitted
    applied = use(tools["apply_plan"], plan_id=plan_id)
    assert applied.status == "error" and "needs a person's approval" in applied.text
    asked = use(tools["execute_mutation_plan"], plan_id=plan_id, auto_approve=True).text
    assert "auto_approve was asked, but it is a request the policy decides" in asked
    assert "was not applied" in asked
    status = use(tools["plan_status"], plan_id=plan_id).text
    assert f"Plan {plan_id} — validated" in status and "waits for a person" in status
    assert snapshot(root) == before


def test_execute_mutation_plan_applies_what_the_policy_allows(
    session: AgentSession, root: Path
) -> None:
    tools = tools_by_name(airlock_tools(session))
    use(tools["write_file"], file_path=f"{ROOT}/Summaries/summary.txt", content="All good.\n")
    plan_id = plan_named([use(tools["submit_plan"], description="Add a summary")])
    applied = use(tools["execute_mutation_plan"], plan_id=plan_id).text
    assert applied.startswith(f"Applied plan {plan_id}: 2 operation(s)")
    assert (root / CASE / "Summaries" / "summary.txt").read_text() == "All good.\n"
    again = use(tools["execute_mutation_plan"], plan_id=plan_id)
    assert again.status == "error" and "applied" in again.text


def test_reorganize_case_files_uses_the_seed_format(
    session: AgentSession, ws: Workspace, root: Path
) -> None:
    tools = tools_by_name(airlock_tools(session))
    operations = [
        {"type": "create_dir", "destination": "Medical Records/Riverside Imaging"},
        {
            "type": "rename",
            "source": MRI,
            "destination": "Medical Records/Riverside Imaging/MRI.pdf",
        },
        {"type": "write_file", "destination": "INDEX.md", "content": "# Index\n"},
    ]
    answer = use(
        tools["reorganize_case_files"],
        case_name=CASE_NAME,
        operations=operations,
        description="File the MRI; add an index",
    ).text
    # purely additive and moves: the default policy lets it apply at once, as the firm's tool did
    assert "Applied plan" in answer, answer
    plan_id = plan_named([ToolMessage(content=answer, tool_call_id="x")])
    assert (
        root / CASE / "Medical Records/Riverside Imaging/MRI.pdf"
    ).read_bytes() == b"%PDF-1.4 MRI"
    record = ws.get(plan_id)
    # the seed door's own mapping: parents made as needed, author from the token
    assert record.author == "paralegal-agent"
    assert [op.op for op in record.plan.operations] == ["mkdir", "move", "write"]
    assert all(getattr(op, "parents", False) for op in record.plan.operations)


def test_reorganize_case_files_refusals(session: AgentSession, root: Path) -> None:
    before = snapshot(root)
    tools = tools_by_name(airlock_tools(session))
    other = use(
        tools["reorganize_case_files"],
        case_name="Other-Client",
        operations=[{"type": "delete", "source": "secret.txt"}],
        description="peek",
    )
    assert other.status == "error" and "is not this agent's case" in other.text
    climbing = use(
        tools["reorganize_case_files"],
        case_name=CASE_NAME,
        operations=[{"type": "move", "source": NOTES, "destination": "../Other-Client/x.txt"}],
        description="escape",
    )
    assert climbing.status == "error" and "Airlock refused" in climbing.text
    waits = use(
        tools["reorganize_case_files"],
        case_name=CASE_NAME,
        operations=[{"type": "delete", "source": "Thumbs.db"}],
        description="Drop scanner junk",
    ).text
    assert "Needs a person's approval: 1 delete(s)" in waits
    assert "Once it is approved, apply it with execute_mutation_plan(plan_id=" in waits
    assert snapshot(root) == before


# -- approval through interrupts --------------------------------------------------------------


def propose(session: AgentSession, **options: Any) -> tuple[Any, dict[str, Any], str]:
    """Run an agent until it submits a plan that deletes a file; returns the interrupted
    agent, its config and the plan's id."""
    agent, config = agent_run(
        session,
        [
            call("delete", file_path=f"{ROOT}/Thumbs.db"),
            call("submit_plan", description="Drop scanner junk"),
            with_plan("apply_plan"),
            AIMessage(content="Done."),
        ],
        **options,
    )
    result = agent.invoke({"messages": [("user", "tidy the case")]}, config)
    [pause] = result["__interrupt__"]
    request = pause.value
    return agent, config, request["airlock"]["plan_id"]


def test_submit_interrupts_with_the_plans_report(session: AgentSession, root: Path) -> None:
    before = snapshot(root)
    agent, config = agent_run(
        session,
        [call("delete", file_path=f"{ROOT}/Thumbs.db"), call("submit_plan", description="Tidy")],
    )
    result = agent.invoke({"messages": [("user", "tidy the case")]}, config)
    [pause] = result["__interrupt__"]
    request = pause.value
    # HumanInTheLoopMiddleware's request shape, so HITL UIs can show it
    [action] = request["action_requests"]
    assert action["name"] == "submit_plan"
    assert action["args"]["description"] == "Tidy"
    assert action["args"]["operations"] == [{"op": "delete", "path": "Thumbs.db"}]
    assert "- delete    Thumbs.db" in action["description"]
    assert request["review_configs"] == [
        {"action_name": "submit_plan", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    facts = request["airlock"]
    assert facts["status"] == "validated" and facts["needs_approval"] == ["1 delete(s)"]
    assert facts["review"] == f"/plans/{facts['plan_id']}"
    assert snapshot(root) == before


def test_approve_with_a_token_records_the_authenticated_approver(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    agent, config, plan_id = propose(session)
    forged = {"type": "approve", "token": tokens["approver"], "name": "Forged Partner"}
    forged["user"] = "forged-user"
    result = agent.invoke(Command(resume={"decisions": [forged]}), config)
    answers = tool_answers(result)
    assert f"Plan {plan_id} was approved by jane-attorney (authenticated by Airlock)" in (
        answers[-2].text
    )
    assert answers[-1].text.startswith(f"Applied plan {plan_id}")
    assert not (root / CASE / "Thumbs.db").exists()
    [approved] = audit_of(ws, plan_id, "approved")
    assert approved["actor"] == "jane-attorney"
    everything = repr(ws.audit_events())
    assert "Forged Partner" not in everything and "forged-user" not in everything
    # the tool ran twice (paused, then resumed) and submitted one plan
    assert [p.id for p in ws.list_plans(scope=CASE)] == [plan_id]


def test_a_forged_name_alone_approves_nothing(
    session: AgentSession, ws: Workspace, root: Path
) -> None:
    before = snapshot(root)
    agent, config, plan_id = propose(session)
    forged = {"type": "approve", "name": "jane-attorney", "user": "jane-attorney"}
    result = agent.invoke(Command(resume={"decisions": [forged]}), config)
    answers = tool_answers(result)
    said = answers[-2].text
    assert "was not recorded: no Airlock approver token came with the decision" in said
    assert f"waits for a person's approval on the review page (/plans/{plan_id})" in said
    assert "needs a person's approval" in answers[-1].text  # the model's apply is refused
    assert audit_of(ws, plan_id, "approved") == []
    assert ws.get(plan_id).status == "validated"
    assert snapshot(root) == before


@pytest.mark.parametrize("whose", ["agent", "other agent", "not a token"])
def test_an_agent_token_cannot_approve(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path, whose: str
) -> None:
    before = snapshot(root)
    agent, config, plan_id = propose(session)
    token = tokens.get(whose, "alk_0000_forged")
    result = agent.invoke(
        Command(resume={"decisions": [{"type": "approve", "token": token}]}), config
    )
    said = tool_answers(result)[-2].text
    assert "was not recorded" in said and "waits for a person's approval" in said
    assert audit_of(ws, plan_id, "approved") == []
    assert ws.get(plan_id).status == "validated"
    assert snapshot(root) == before


def test_the_tools_approver_token_stands_for_whoever_resumes(
    session: AgentSession, ws: Workspace, tokens: dict[str, str]
) -> None:
    agent, config, plan_id = propose(session, approver_token=tokens["approver"])
    result = agent.invoke(
        Command(resume={"decisions": [{"type": "approve", "name": "Someone Else"}]}), config
    )
    assert "approved by jane-attorney" in tool_answers(result)[-2].text
    assert [e["actor"] for e in audit_of(ws, plan_id, "approved")] == ["jane-attorney"]


def test_reject_records_the_reason(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    before = snapshot(root)
    agent, config, plan_id = propose(session)
    decision = {"type": "reject", "message": "Keep Thumbs.db", "token": tokens["approver"]}
    result = agent.invoke(Command(resume={"decisions": [decision]}), config)
    said = tool_answers(result)[-2].text
    assert f"Plan {plan_id} was rejected by jane-attorney: Keep Thumbs.db" in said
    assert "do not resubmit the same changes" in said
    [rejected] = audit_of(ws, plan_id, "rejected")
    assert rejected["actor"] == "jane-attorney"
    assert ws.get(plan_id).decisions[-1]["comment"] == "Keep Thumbs.db"
    assert snapshot(root) == before


def test_edit_resubmits_and_asks_again(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    agent, config, plan_id = propose(session)
    edit = {
        "type": "edit",
        "edited_action": {
            "name": "submit_plan",
            "args": {
                "description": "Drop scanner junk; keep a copy of the notes",
                "operations": [
                    {"op": "delete", "path": "Thumbs.db"},
                    {"op": "copy", "source": NOTES, "destination": "notes (copy).txt"},
                ],
            },
        },
        "token": tokens["approver"],
    }
    result = agent.invoke(Command(resume={"decisions": [edit]}), config)
    [pause] = result["__interrupt__"]
    edited = pause.value["airlock"]["plan_id"]
    assert edited == f"{plan_id}.e1"
    assert (
        "+ copy      notes from call w client.txt → notes (copy).txt"
        in (pause.value["action_requests"][0]["description"])
    )
    assert ws.get(plan_id).status == "rejected"
    assert ws.get(plan_id).decisions[-1]["comment"] == f"replaced by the edited plan {edited}"
    result = agent.invoke(
        Command(resume={"decisions": [{"type": "approve", "token": tokens["approver"]}]}), config
    )
    answers = tool_answers(result)
    assert f"Plan {edited} was approved by jane-attorney" in answers[-2].text
    assert answers[-1].text.startswith(f"Applied plan {edited}")
    assert (root / CASE / "notes (copy).txt").is_file() and not (root / CASE / "Thumbs.db").exists()
    record = ws.get(edited)
    assert record.plan.description == "Drop scanner junk; keep a copy of the notes"
    assert record.author == "paralegal-agent"  # the plan stays the agent's; jane approved it
    assert [e["actor"] for e in audit_of(ws, edited, "approved")] == ["jane-attorney"]


def test_an_approval_on_the_review_page_is_what_the_model_hears(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    agent, config, plan_id = propose(session)
    jane = authenticate(ws, tokens["approver"])
    ws.approve(plan_id, by=jane, comment="fine")  # e.g. on the review page, meanwhile
    result = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    answers = tool_answers(result)
    assert f"Plan {plan_id} is approved. It was approved by jane-attorney: fine." in (
        answers[-2].text
    )
    assert answers[-1].text.startswith(f"Applied plan {plan_id}")
    assert not (root / CASE / "Thumbs.db").exists()


def test_rollback_pauses_for_an_approver(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    before = snapshot(root)
    agent, config = agent_run(
        session,
        [
            call("delete", file_path=f"{ROOT}/Thumbs.db"),
            call("submit_plan", description="Drop scanner junk"),
            with_plan("apply_plan"),
            with_plan("rollback_plan"),
            AIMessage(content="Undone."),
        ],
        approver_token=tokens["approver"],
    )
    result = agent.invoke({"messages": [("user", "tidy, then undo it")]}, config)
    approve: Command[Any] = Command(resume={"decisions": [{"type": "approve"}]})
    result = agent.invoke(approve, config)  # the submit
    [pause] = result["__interrupt__"]  # the rollback: an agent may not roll back alone
    assert pause.value["action_requests"][0]["name"] == "rollback_plan"
    assert not (root / CASE / "Thumbs.db").exists()
    result = agent.invoke(approve, config)
    said = tool_answers(result)[-1].text
    assert "approved by jane-attorney (authenticated by Airlock)" in said
    assert "the files are exactly as before" in said
    assert snapshot(root) == before
    plan_id = ws.list_plans(scope=CASE)[0].id
    assert [e["actor"] for e in audit_of(ws, plan_id, "rolled_back")] == ["jane-attorney"]


def test_rollback_outside_a_run_says_who_can(session: AgentSession, root: Path) -> None:
    tools = tools_by_name(airlock_tools(session))
    use(tools["write_file"], file_path=f"{ROOT}/INDEX.md", content="# Index\n")
    plan_id = plan_named([use(tools["submit_plan"], description="Index")])
    assert "Applied" in use(tools["apply_plan"], plan_id=plan_id).text
    said = use(tools["rollback_plan"], plan_id=plan_id).text
    assert f"Rolling back plan {plan_id} needs an approver" in said
    assert f"airlock plan rollback {plan_id}" in said
    assert (root / CASE / "INDEX.md").is_file()


def test_ask_always_pauses_for_additive_plans(
    session: AgentSession, ws: Workspace, tokens: dict[str, str]
) -> None:
    agent, config = agent_run(
        session,
        [
            call("write_file", file_path=f"{ROOT}/INDEX.md", content="# Index\n"),
            call("submit_plan", description="Index"),
            AIMessage(content="ok"),
        ],
        ask_approval="always",
    )
    result = agent.invoke({"messages": [("user", "index it")]}, config)
    [pause] = result["__interrupt__"]
    assert pause.value["airlock"]["needs_approval"] == []
    decision = {"type": "reject", "message": "not now", "token": tokens["approver"]}
    result = agent.invoke(Command(resume={"decisions": [decision]}), config)
    assert "was rejected by jane-attorney: not now" in tool_answers(result)[-1].text


def test_the_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/agents-langgraph.md's example, run as ``python examples/langgraph_quickstart.py``
    runs it (in this process: a new one would spend seconds importing LangChain again)."""
    example = Path(__file__).parent.parent / "examples" / "langgraph_quickstart.py"
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(example), run_name="__main__")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "The run paused for approval" in out
    assert "approved by jane-attorney (authenticated by Airlock)" in out
    assert "the files are exactly as before it was applied" in out
    assert "Audit: approved by jane-attorney" in out


def test_an_approval_of_an_older_report_is_refused(
    session: AgentSession, ws: Workspace, tokens: dict[str, str]
) -> None:
    agent, config, plan_id = propose(session)
    shown = ws.get(plan_id).validation_id
    assert shown is not None
    ws.validate(plan_id)  # checked again meanwhile: the person saw an older report
    decision = {"type": "approve", "token": tokens["approver"], "validation_id": shown}
    result = agent.invoke(Command(resume={"decisions": [decision]}), config)
    said = tool_answers(result)[-2].text
    assert "Airlock refused it (the plan changed since you looked" in said
    assert audit_of(ws, plan_id, "approved") == []


def test_reorganize_case_files_edit_and_apply(
    session: AgentSession, ws: Workspace, tokens: dict[str, str], root: Path
) -> None:
    agent, config = agent_run(
        session,
        [
            call(
                "reorganize_case_files",
                case_name=CASE_NAME,
                operations=[
                    {"type": "delete", "source": "Thumbs.db"},
                    {"type": "create_dir", "destination": "Medical Records/Riverside Imaging"},
                ],
                description="Drop scanner junk; a folder for imaging",
            ),
            AIMessage(content="ok"),
        ],
    )
    result = agent.invoke({"messages": [("user", "reorganise")]}, config)
    [pause] = result["__interrupt__"]
    request = pause.value["action_requests"][0]
    assert request["name"] == "reorganize_case_files"
    assert request["args"]["case_name"] == CASE_NAME
    # the reviewer keeps Thumbs.db: the edited plan needs no person, so it applies at once
    keep = [{"type": "create_dir", "destination": "Medical Records/Riverside Imaging"}]
    edit = {
        "type": "edit",
        "edited_action": {"name": "reorganize_case_files", "args": {"operations": keep}},
        "token": tokens["approver"],
    }
    result = agent.invoke(Command(resume={"decisions": [edit]}), config)
    said = tool_answers(result)[-1].text
    assert "Applied plan" in said
    assert (root / CASE / "Medical Records" / "Riverside Imaging").is_dir()
    assert (root / CASE / "Thumbs.db").is_file()
    first = pause.value["airlock"]["plan_id"]
    assert ws.get(first).status == "rejected"
    assert ws.get(f"{first}.e1").status == "applied"


def test_the_interrupt_check_follows_langgraph() -> None:
    """Whether a call can be paused is read from a key LangGraph keeps private: an upgrade that
    renames it must fail here, not silently stop the interrupts."""
    from langgraph._internal import _constants

    from airlock.agents import langchain

    assert langchain.CONFIG_KEY_SCRATCHPAD == _constants.CONFIG_KEY_SCRATCHPAD
