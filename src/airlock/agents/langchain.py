"""Airlock as LangChain tools, for any LangChain or LangGraph agent (extra ``airlock[langchain]``).

    from airlock.agents.langchain import airlock_tools
    from airlock.agents.session import open_session

    session = open_session("/srv/ws", scope="projects/Smith", token="alk_...")   # an agent token
    agent = create_agent(model, airlock_tools(session), checkpointer=InMemorySaver())

Every tool is a thin door onto :class:`~airlock.agents.session.AgentSession` (one scope, one
principal): file tools (deepagents' names, ``ls`` ... ``execute``) whose changes go into the
scope's pending plan, the plan tools (move, copy, mkdir, diff, discard, submit, validate, status,
apply, roll back), and the firm's own ``reorganize_case_files`` and ``execute_mutation_plan``,
names and arguments unchanged. Every answer says what happened and what the model can do next;
an Airlock refusal is an answer too (a tool message with ``status="error"``), never an exception
that ends the run.

**Approval through interrupts.** ``submit_plan`` (and ``reorganize_case_files``) submit the plan
and, inside a LangGraph run, pause it with :func:`langgraph.types.interrupt` and the plan's report,
shaped like ``HumanInTheLoopMiddleware``'s request (``action_requests``/``review_configs``; the
decisions approve, edit, reject). The run resumes with ``Command(resume={"decisions": [...]})``:

* ``{"type": "approve", "token": "alk_..."}`` records the approval in Airlock, by the principal of
  that token (or of the ``approver_token`` the tools were built with). Who approved comes only
  from Airlock authentication: a ``name`` or ``user`` in the decision is ignored, an agent's
  token is refused by the core, and without an authenticated approver nothing is recorded and
  the plan waits for approval on the review page or the command line (``airlock plan approve``);
  whatever Airlock says when the run resumes (approved there, say) is what the model is told.
* ``{"type": "reject", "message": "...", "token": ...}`` records the rejection, with the message.
* ``{"type": "edit", "edited_action": {"name": ..., "args": {...}}}`` resubmits the plan with the
  edited arguments (a description, an operation list) and asks again, with the new plan's report:
  an approval is always of the report the approver saw. The plan it replaces is rejected (by the
  authenticated approver; without one it is left, unapproved).

LangGraph runs a tool again from its start when the run resumes, so submitting is idempotent:
the plan's id is derived from the session, the thread and the tool call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException
from langgraph.config import get_config
from langgraph.types import interrupt
from pydantic import BaseModel, Field, ValidationError

from airlock.agents.session import Item, Session, report_text
from airlock.errors import (
    AirlockError,
    AuthenticationError,
    InputError,
    NotFoundError,
    NotPermittedError,
    PlanStateError,
    as_airlock_error,
)
from airlock.lifecycle import Status
from airlock.permissions import Action, Principal, refusal
from airlock.plan import new_plan_id
from airlock.records import ApplyResult, PlanRecord
from airlock.seed_format import SeedOperation, SeedPlan, to_core_plan

__all__ = ["FILE_TOOLS", "PLAN_TOOLS", "AskApproval", "airlock_tools", "session_tools"]

AskApproval = Literal["when_needed", "always", "never"]
"""When a submit pauses the run for a person: when the policy needs one, for every plan, never."""

FILE_TOOLS = ("ls", "read_file", "write_file", "edit_file", "delete", "glob", "grep", "execute")
"""The file and code tools, named and shaped like deepagents' (which has them already)."""

PLAN_TOOLS = (
    "move_file",
    "copy_file",
    "create_directory",
    "show_diff",
    "discard_changes",
    "submit_plan",
    "validate_plan",
    "plan_status",
    "apply_plan",
    "rollback_plan",
    "reorganize_case_files",
    "execute_mutation_plan",
)
"""The tools any agent needs beside its file tools."""

CONFIG_KEY_SCRATCHPAD = "__pregel_scratchpad"
"""What LangGraph puts in the configuration of a task that an interrupt can pause (the key of
``langgraph._internal._constants``; private there, so named here)."""

DECISIONS = ("approve", "edit", "reject")
_DECIDED_OR_NOT = frozenset({Status.VALIDATED, Status.APPROVED, Status.REJECTED})
"""A submitted plan's states while a person is asked about it (and after they decide)."""
MAX_EDITS = 10
"""How many times a reviewer may edit one submission before the tool stops asking."""
READ_LINES = 100
"""What ``read_file`` shows by default (deepagents' default too)."""


def airlock_tools(
    session: Session,
    *,
    approver_token: str | None = None,
    ask_approval: AskApproval = "when_needed",
    files: bool = True,
) -> list[BaseTool]:
    """The tools for a LangChain or LangGraph agent over ``session``.

    ``approver_token``: an Airlock token whose principal approves what a resumed run approves
    when the decision carries no token of its own (the application vouches that whoever
    resumes is that person). ``ask_approval``: see :data:`AskApproval`. ``files``: include the
    file and code tools (:data:`FILE_TOOLS`; leave them out for deepagents, which has its own).
    """
    tools = _Tools(session, approver_token, ask_approval)
    return tools.file_tools() + tools.plan_tools() if files else tools.plan_tools()


def session_tools(
    session: Session,
    *,
    approver_token: str | None = None,
    ask_approval: AskApproval = "when_needed",
) -> list[BaseTool]:
    """The plan tools only (:data:`PLAN_TOOLS`): what deepagents' protocol lacks."""
    return airlock_tools(
        session, approver_token=approver_token, ask_approval=ask_approval, files=False
    )


# -- argument schemas (what the model sees) ---------------------------------------------------


class _Path(BaseModel):
    path: str = Field(description="Absolute path, e.g. /workspace/projects/<case>/Notes")
    reason: str = Field("", description="Why, in a sentence for the reviewer (optional)")


class _LsArgs(BaseModel):
    path: str = Field(description="Absolute path of a folder, e.g. /workspace/projects/<case>")


class _ReadArgs(BaseModel):
    file_path: str = Field(description="Absolute path of the file")
    offset: int = Field(0, ge=0, description="First line to show, counting from 0")
    limit: int = Field(READ_LINES, ge=1, description="How many lines to show")


class _WriteArgs(BaseModel):
    file_path: str = Field(description="Absolute path of the file")
    content: str = Field(description="The whole new content")
    reason: str = Field("", description="Why, in a sentence for the reviewer (optional)")


class _EditArgs(BaseModel):
    file_path: str = Field(description="Absolute path of the file")
    old_string: str = Field(description="The exact text to replace")
    new_string: str = Field(description="The text to put instead")
    replace_all: bool = Field(False, description="Replace every occurrence, not just one")
    reason: str = Field("", description="Why, in a sentence for the reviewer (optional)")


class _DeleteArgs(BaseModel):
    file_path: str = Field(description="Absolute path of the file or folder")
    reason: str = Field("", description="Why, in a sentence for the reviewer (optional)")


class _GlobArgs(BaseModel):
    pattern: str = Field(description="e.g. '*.pdf' (names at any depth) or 'Medical/**/*.pdf'")
    path: str | None = Field(None, description="Folder to search (default: the case folder)")


class _GrepArgs(BaseModel):
    pattern: str = Field(description="The literal text to find (not a regular expression)")
    path: str | None = Field(None, description="Folder or file to search (default: the case)")
    glob: str | None = Field(None, description="Only files matching this, e.g. '*.txt'")
    max_count: int | None = Field(None, ge=1, description="Stop after this many matches")


class _ExecuteArgs(BaseModel):
    command: str = Field(description="A shell command; it runs in the case folder")
    timeout: int | None = Field(None, ge=1, description="Seconds before it is stopped")


class _MoveArgs(BaseModel):
    source: str = Field(description="Absolute path of the file or folder to move or rename")
    destination: str = Field(description="Its new absolute path (must not exist yet)")
    reason: str = Field("", description="Why, in a sentence for the reviewer (optional)")


class _Nothing(BaseModel):
    pass


class _SubmitArgs(BaseModel):
    description: str = Field(description="What the changes do and why, for the reviewer")
    tool_call_id: Annotated[str, InjectedToolCallId]


class _PlanId(BaseModel):
    plan_id: str = Field(description="The plan's id, as a submit answered")


class _RollbackArgs(BaseModel):
    plan_id: str = Field(description="The id of the applied plan to undo")
    tool_call_id: Annotated[str, InjectedToolCallId]


class _ReorganizeArgs(BaseModel):
    case_name: str = Field(description="The case folder's name (the folder under projects/)")
    operations: list[SeedOperation] = Field(
        description="In order; paths relative to the case folder. type is move, rename, copy "
        "(source, destination), delete (source), create_dir (destination) or write_file "
        "(destination, content). Missing parent folders are created."
    )
    description: str = Field(description="What the reorganisation does and why")
    tool_call_id: Annotated[str, InjectedToolCallId]


class _ExecuteMutationArgs(BaseModel):
    plan_id: str = Field(description="The plan to apply")
    auto_approve: bool = Field(
        False,
        description="Ask to apply without a person's approval. The policy decides: a plan "
        "that needs a person still waits for one.",
    )


# -- the tools --------------------------------------------------------------------------------


Resubmit = Callable[[Mapping[str, Any], str], PlanRecord]
"""Submit a reviewer's edited arguments as a new plan with the given id."""


class _Tools:
    def __init__(self, session: Session, approver_token: str | None, ask: AskApproval) -> None:
        self.s = session
        self.approver_token = approver_token
        self.ask = ask

    # --- building -------------------------------------------------------------------------------

    def _tool(self, func: Callable[..., str], schema: type[BaseModel]) -> BaseTool:
        """``func`` as a tool: its name, its docstring (what the model reads; ``{root}`` is the
        case, ``{reads}`` the read areas) and ``schema``; an Airlock refusal becomes a tool
        message with ``status="error"``."""

        def run(**kwargs: Any) -> str:
            try:
                return func(**kwargs)
            except (AirlockError, OSError) as exc:
                raise ToolException(_refused(as_airlock_error(exc))) from exc

        reads = ", ".join(self.s.readable_roots()[1:]) or "nothing else"
        description = " ".join((func.__doc__ or "").split()).replace("{root}", self.s.root)
        return StructuredTool.from_function(
            run,
            name=func.__name__,
            description=description.replace("{reads}", reads),
            args_schema=schema,
            handle_tool_error=True,
        )

    def file_tools(self) -> list[BaseTool]:
        return [
            self._tool(self.ls, _LsArgs),
            self._tool(self.read_file, _ReadArgs),
            self._tool(self.write_file, _WriteArgs),
            self._tool(self.edit_file, _EditArgs),
            self._tool(self.delete, _DeleteArgs),
            self._tool(self.glob, _GlobArgs),
            self._tool(self.grep, _GrepArgs),
            self._tool(self.execute, _ExecuteArgs),
        ]

    def plan_tools(self) -> list[BaseTool]:
        return [
            self._tool(self.move_file, _MoveArgs),
            self._tool(self.copy_file, _MoveArgs),
            self._tool(self.create_directory, _Path),
            self._tool(self.show_diff, _Nothing),
            self._tool(self.discard_changes, _Nothing),
            self._tool(self.submit_plan, _SubmitArgs),
            self._tool(self.validate_plan, _PlanId),
            self._tool(self.plan_status, _PlanId),
            self._tool(self.apply_plan, _PlanId),
            self._tool(self.rollback_plan, _RollbackArgs),
            self._tool(self.reorganize_case_files, _ReorganizeArgs),
            self._tool(self.execute_mutation_plan, _ExecuteMutationArgs),
        ]

    # --- file tools ---------------------------------------------------------------------------

    def ls(self, path: str) -> str:
        """List a folder: the case is {root} (also readable: {reads}). Pending changes show
        as if they were made."""
        items = self.s.ls(path)
        if not items:
            return f"{path} is empty."
        return "\n".join(_item_line(item) for item in items)

    def read_file(self, file_path: str, offset: int = 0, limit: int = READ_LINES) -> str:
        """Read a text file, with line numbers (pending changes included). Use offset and
        limit to page through a long file."""
        data = self.s.read_bytes(file_path)
        if b"\0" in data[:8192]:
            return f"{file_path} is a binary file of {len(data)} bytes; it cannot be shown as text."
        lines = data.decode("utf-8", "replace").splitlines()
        if not lines:
            return f"{file_path} is empty."
        shown = lines[offset : offset + limit]
        if not shown:
            return f"{file_path} has {len(lines)} lines; offset {offset} is past the end."
        text = "\n".join(f"{offset + n + 1:6}\t{line}" for n, line in enumerate(shown))
        rest = len(lines) - offset - len(shown)
        if rest > 0:
            text += f"\n[{rest} more lines: read on with offset={offset + len(shown)}]"
        return text

    def write_file(self, file_path: str, content: str, reason: str = "") -> str:
        """Create a file or replace it whole. The change is pending (proposed, not made)
        until its plan is approved and applied."""
        existed = self.s.stat(file_path) is not None
        self.s.write(file_path, content, reason=reason)
        what = "replaced (the old file is kept aside)" if existed else "created"
        return f"Pending: {file_path} {what}, {len(content.encode())} bytes. {self._pending()}"

    def edit_file(
        self,
        file_path: str,
        old_string: str,
        new_string: str,
        replace_all: bool = False,
        reason: str = "",
    ) -> str:
        """Replace exact text in a file (a pending change)."""
        count = self.s.edit(
            file_path, old_string, new_string, replace_all=replace_all, reason=reason
        )
        return f"Pending: {count} replacement(s) in {file_path}. {self._pending()}"

    def delete(self, file_path: str, reason: str = "") -> str:
        """Delete a file or a whole folder (a pending change; what is deleted is kept aside
        and can be restored)."""
        self.s.delete(file_path, reason=reason)
        return f"Pending: delete {file_path}. {self._pending()}"

    def glob(self, pattern: str, path: str | None = None) -> str:
        """Find files by pattern ('*' within a name, '**' any depth, '{a,b}')."""
        items = self.s.glob(pattern, path)
        if not items:
            return f"No file matches {pattern!r} under {path or self.s.root}."
        return "\n".join(item.path for item in items)

    def grep(
        self,
        pattern: str,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> str:
        """Find the lines holding a literal text (not a regular expression)."""
        matches = self.s.grep(pattern, path, glob, max_count)
        if not matches:
            return f"No line holds {pattern!r} under {path or self.s.root}."
        return "\n".join(f"{m.path}:{m.line}: {m.text}" for m in matches)

    def execute(self, command: str, timeout: int | None = None) -> str:
        """Run a shell command in Airlock's sandbox, in {root} as the pending changes leave
        it (also readable: {reads}; no network). What it changes becomes pending changes,
        moves included."""
        ran = self.s.execute(command, timeout=timeout)
        lines = [f"Ran in Airlock's sandbox: {ran.summary}."]
        if ran.output:
            lines += ["Output:", ran.output.rstrip("\n")]
            if ran.truncated:
                lines.append("[output truncated]")
        if ran.changes:
            lines.append("Next: show_diff to check them, then submit_plan, or discard_changes.")
        return "\n".join(lines)

    # --- pending changes ----------------------------------------------------------------------

    def move_file(self, source: str, destination: str, reason: str = "") -> str:
        """Move or rename a file or folder (a pending change). Never overwrites: the
        destination must not exist; missing parent folders are made."""
        self.s.move(source, destination, reason=reason)
        return f"Pending: move {source} → {destination}. {self._pending()}"

    def copy_file(self, source: str, destination: str, reason: str = "") -> str:
        """Copy a file or folder (a pending change). The destination must not exist."""
        self.s.copy(source, destination, reason=reason)
        return f"Pending: copy {source} → {destination}. {self._pending()}"

    def create_directory(self, path: str, reason: str = "") -> str:
        """Make a folder (a pending change)."""
        self.s.mkdir(path, reason=reason)
        return f"Pending: make folder {path}. {self._pending()}"

    def show_diff(self) -> str:
        """Show every pending change, one line each, with text diffs."""
        return self.s.diff()

    def discard_changes(self) -> str:
        """Drop every pending change (undo everything not yet submitted)."""
        count = self.s.discard()
        if not count:
            return "There were no pending changes; nothing to discard."
        return f"Discarded {count} pending change(s); nothing real had changed. Start again."

    def _pending(self) -> str:
        count = len(self.s.pending())
        return (
            f"{count} change(s) pending; nothing real has changed. Next: more changes, "
            "show_diff, or submit_plan(description) to ask for approval."
        )

    # --- plans --------------------------------------------------------------------------------

    def submit_plan(self, description: str, tool_call_id: str) -> str:
        """Submit every pending change as one plan for review. If a person must approve it,
        the run may pause here until they decide; the answer says what they decided and what
        to do next."""
        plan_id = self._call_plan_id(tool_call_id)
        record = self._submit_once(plan_id, lambda: self.s.submit(description, plan_id=plan_id))
        shown = {"description": record.plan.description, "operations": _operations(record)}

        def resubmit(args: Mapping[str, Any], new_id: str) -> PlanRecord:
            plan = {
                "scope": self.s.scope,
                "description": str(args.get("description", record.plan.description)),
                "operations": args.get("operations", _operations(record)),
            }
            return self._submit_once(new_id, lambda: self._submit_plan(plan, new_id))

        record, said, _approved = self._decide(record, "submit_plan", shown, resubmit)
        return said

    def validate_plan(self, plan_id: str) -> str:
        """Check a plan again against the files as they are now; shows its change table."""
        return report_text(self.s.validate(plan_id))

    def plan_status(self, plan_id: str) -> str:
        """A plan's status (waiting, approved, applied, ...), who decided, its changes and
        the next step."""
        record = self.s.status(plan_id)
        lines = [_decided_line(record)] if record.decisions else []
        return "\n".join([*lines, report_text(record)])

    def apply_plan(self, plan_id: str) -> str:
        """Apply an approved plan (or one the policy lets apply without a person) to the
        real files, all or nothing."""
        return _applied(self.s.apply(plan_id))

    def rollback_plan(self, plan_id: str, tool_call_id: str) -> str:
        """Undo an applied plan, restoring the exact prior files. An agent cannot roll back
        on its own: the run may pause here for an approver."""
        if refusal(self.s.by, Action.ROLLBACK) is None:
            return _rolled_back(self.s.rollback(plan_id))
        record = self.s.status(plan_id)
        if record.status != Status.APPLIED:
            raise PlanStateError(
                f"plan {plan_id!r} is {record.status}; only an applied plan can be rolled back",
                hint=f"check it with plan_status(plan_id={plan_id!r})",
            )
        if not self._can_ask():
            return (
                f"Rolling back plan {plan_id} needs an approver; an agent cannot do it. "
                f"Ask one to roll it back on the review page (/plans/{plan_id}) or with "
                f"`airlock plan rollback {plan_id}`."
            )
        request = _request(
            "rollback_plan",
            {"plan_id": plan_id},
            f"Roll back plan {plan_id}: restore the files as they were before it was applied.\n"
            + report_text(record),
            ["approve", "reject"],
            record,
        )
        decision = _decision(interrupt(request))
        approver, why = self._approver(decision)
        kind = decision.get("type")
        if kind == "approve" and approver is not None:
            return _rolled_back(approver.rollback(plan_id), approver.by)
        if kind == "approve":
            return (
                f"The rollback of plan {plan_id} was approved in the chat, but {why}, so Airlock "
                "did not roll it back. An approver rolls it back on the review page "
                f"(/plans/{plan_id}) or with `airlock plan rollback {plan_id}`."
            )
        reason = _message(decision)
        return (
            f"The reviewer did not roll back plan {plan_id}{f': {reason}' if reason else ''}. "
            "It stays applied. Do not ask again unless the user does."
        )

    def reorganize_case_files(
        self, case_name: str, operations: list[SeedOperation], description: str, tool_call_id: str
    ) -> str:
        """Reorganise a case's files in one plan: submit the operations, wait for a person's
        approval if the policy needs one, then apply them."""
        args = {
            "case_name": case_name,
            "operations": [op.model_dump(exclude_none=True) for op in operations],
            "description": description,
        }
        plan_id = self._call_plan_id(tool_call_id)

        def resubmit(edited: Mapping[str, Any], new_id: str) -> PlanRecord:
            return self._submit_once(new_id, lambda: self._submit_seed({**args, **edited}, new_id))

        record = self._submit_once(plan_id, lambda: self._submit_seed(args, plan_id))
        record, said, approved = self._decide(record, "reorganize_case_files", args, resubmit)
        if record.status == Status.VALIDATED and not _needs_person(record) and self.ask != "always":
            approved = True  # the policy lets it apply at once, as the firm's tool did
        if not approved:
            return said + (
                f"\nOnce it is approved, apply it with execute_mutation_plan(plan_id={record.id!r})."
                if record.status == Status.VALIDATED
                else ""
            )
        return said + "\n" + _applied(self.s.apply(record.id))

    def execute_mutation_plan(self, plan_id: str, auto_approve: bool = False) -> str:
        """Apply a submitted plan (validating it first if needed). auto_approve asks to skip
        a person's approval; the policy decides."""
        record = self.s.status(plan_id)
        if record.status in (Status.SUBMITTED, Status.FAILED) or record.validation is None:
            record = self.s.validate(plan_id)
        if record.status == Status.VALIDATED and _needs_person(record):
            asked = (
                "auto_approve was asked, but it is a request the policy decides, and the "
                "policy needs a person: "
                if auto_approve
                else ""
            )
            return (
                f"Plan {plan_id} was not applied: {asked}it needs a person's approval "
                f"({', '.join(record.needs_approval)}); "
                f"an agent cannot approve it.\n{report_text(record)}"
            )
        return _applied(self.s.apply(plan_id))

    # --- submitting ---------------------------------------------------------------------------

    def _call_plan_id(self, tool_call_id: str) -> str:
        """The id of the plan a tool call submits: the same each time LangGraph runs the call
        again on resume (session, thread, task and call), new for every other call."""
        configurable = _graph_task()
        if configurable is None:  # not in a graph: nothing will run this call again
            return new_plan_id()
        key = "\0".join(
            [
                self.s.id,
                str(configurable.get("thread_id", "")),
                str(configurable.get("checkpoint_ns", "")),
                tool_call_id,
            ]
        )
        return "pl_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]

    def _submit_once(self, plan_id: str, submit: Callable[[], PlanRecord]) -> PlanRecord:
        """The plan ``plan_id`` if this session submitted it already (the call is running
        again after a resume), else what ``submit`` submits."""
        try:
            record = self.s.status(plan_id)
        except NotFoundError:
            return submit()
        if record.author != self.s.by.name or record.plan.scope != self.s.scope:
            raise InputError(
                f"plan id {plan_id!r} is taken by another plan", hint="call the tool again"
            )
        return self.s.validate(plan_id) if record.status == Status.SUBMITTED else record

    def _submit_plan(self, plan: Mapping[str, Any], plan_id: str) -> PlanRecord:
        return self.s.submit_plan(dict(plan), plan_id)

    def _submit_seed(self, args: Mapping[str, Any], plan_id: str) -> PlanRecord:
        try:
            seed = SeedPlan.model_validate({**args, "created_by": self.s.by.name})
        except ValidationError as exc:
            raise InputError(
                "the operations are not in the expected format",
                hint="each is {type, source?, destination?, content?}; type is move, rename, "
                "copy, delete, create_dir or write_file",
                details=[f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()],
            ) from None
        plan = to_core_plan(seed, self.s.by.name)
        if plan["scope"] != self.s.scope:
            raise NotPermittedError(
                f"case {seed.case_name!r} is not this agent's case",
                hint=f"this agent works on {self.s.scope.removeprefix('projects/')!r} only",
            )
        return self._submit_plan(plan, plan_id)

    # --- deciding -----------------------------------------------------------------------------

    def _can_ask(self) -> bool:
        """Whether this call runs inside a LangGraph run that an interrupt can pause."""
        return self.ask != "never" and _graph_task() is not None

    def _asks(self, record: PlanRecord) -> bool:
        """Whether to pause for a person's decision on ``record``: from its report, not its
        status, so that the call asks again when it runs again on resume (LangGraph hands each
        interrupt its answer in order), whatever was decided since."""
        valid = record.validation is not None and record.validation.valid
        if not valid or record.status not in _DECIDED_OR_NOT or not self._can_ask():
            return False
        return self.ask == "always" or _needs_person(record)

    def _decide(
        self, record: PlanRecord, tool: str, args: Mapping[str, Any], resubmit: Resubmit
    ) -> tuple[PlanRecord, str, bool]:
        """Ask a person about ``record`` through an interrupt and record their decision in
        Airlock: the plan decided on (an edit makes a new one), the answer, and whether it is
        approved."""
        base = record.id
        for edits in range(MAX_EDITS + 1):
            if not self._asks(record):
                return record, self._submitted(record), record.status == Status.APPROVED
            request = _request(tool, args, report_text(record), list(DECISIONS), record)
            decision = _decision(interrupt(request))
            approver, why = self._approver(decision)
            kind = decision.get("type")
            if kind == "edit":
                try:
                    edited = _edited_args(decision)
                    new = resubmit(edited, f"{base}.e{edits + 1}")
                except AirlockError as exc:
                    return record, self._edit_refused(record, exc), False
                self._replaced(record, new, approver)
                record, args = new, {**args, **edited}
                continue
            if approver is None or kind not in ("approve", "reject"):
                return self._unrecorded(record, kind, why, decision)
            comment = _message(decision)
            try:
                if kind == "reject":
                    record = approver.reject(record.id, comment)
                    return record, _rejected(record, approver.by), False
                seen = decision.get("validation_id")
                record = approver.approve(
                    record.id,
                    comment,
                    validation_id=seen if isinstance(seen, int) else record.validation_id,
                )
            except AirlockError as exc:
                why = f"Airlock refused it ({exc.message})"
                return self._unrecorded(record, kind, why, decision)
            return record, _approved(record, approver.by), True
        return record, self._submitted(record), record.status == Status.APPROVED

    def _approver(self, decision: Mapping[str, Any]) -> tuple[Session | None, str]:
        """The session of the approver Airlock authenticates for ``decision`` (its ``token``,
        else the tools' ``approver_token``), or None and why not. Names in the decision are
        never used."""
        token = decision.get("token") or self.approver_token
        if not isinstance(token, str) or not token:
            return None, "no Airlock approver token came with the decision"
        try:
            return self.s.acting_as(token), ""
        except AuthenticationError:
            return None, "the approver token is not valid (unknown, malformed or revoked)"

    def _replaced(self, old: PlanRecord, new: PlanRecord, approver: Session | None) -> None:
        """Reject the plan an edit replaced (once: the call may run again on resume)."""
        if approver is None or new.id == old.id:
            return
        current = self.s.status(old.id)
        if current.status in (Status.VALIDATED, Status.APPROVED):
            approver.reject(old.id, f"replaced by the edited plan {new.id}")

    def _edit_refused(self, record: PlanRecord, exc: AirlockError) -> str:
        return (
            f"The reviewer edited plan {record.id}, but the edit could not be submitted:\n"
            f"{_refused(exc)}\nPlan {record.id} is unchanged and still waits for a person's "
            f"decision. Next: check plan_status(plan_id={record.id!r}) or ask the user."
        )

    def _submitted(self, record: PlanRecord) -> str:
        first = f"Submitted plan {record.id} for case {self.s.root}."
        if record.status == Status.APPROVED and record.decisions:
            first += " " + _decided_line(record)
        return f"{first}\n{report_text(record)}"

    def _unrecorded(
        self, record: PlanRecord, kind: object, why: str, decision: Mapping[str, Any]
    ) -> tuple[PlanRecord, str, bool]:
        """The answer when the resume decided nothing Airlock can record: what Airlock says
        now (an approver may have decided on the review page meanwhile)."""
        current = self.s.status(record.id)
        if current.status != Status.VALIDATED:
            return current, _decided(current), current.status == Status.APPROVED
        if kind == "reject":
            reason = _message(decision)
            said = (
                f"The reviewer declined plan {record.id}{f' ({reason})' if reason else ''}, but "
                f"{why}, so Airlock recorded no decision."
            )
        elif kind == "approve":
            said = f"The approval of plan {record.id} was not recorded: {why}."
        else:
            said = f"The run resumed without a decision Airlock knows ({kind!r})."
        return (
            current,
            f"{said} Nothing was applied. Plan {record.id} waits for a person's approval on the "
            f"review page (/plans/{record.id}) or with `airlock plan approve {record.id}`. "
            f"Next: check plan_status(plan_id={record.id!r}) later; do not resubmit it.",
            False,
        )


# -- answers ----------------------------------------------------------------------------------


def _refused(exc: AirlockError) -> str:
    lines = [f"Airlock refused ({type(exc).__name__}): {exc.message}"]
    lines += [f"  - {detail}" for detail in exc.details[:20]]
    if exc.hint:
        lines.append(f"Next: {exc.hint.rstrip('.')}.")
    return "\n".join(lines)


def _item_line(item: Item) -> str:
    if item.is_dir:
        return f"{item.path}/"
    return f"{item.path}  ({item.size} bytes)"


def _operations(record: PlanRecord) -> list[dict[str, Any]]:
    return [op.model_dump(mode="json", exclude_none=True) for op in record.plan.operations]


def _needs_person(record: PlanRecord) -> bool:
    return bool(record.needs_approval)


def _decided_line(record: PlanRecord) -> str:
    last = record.decisions[-1]
    comment = f": {last['comment']}" if last.get("comment") else ""
    return f"It was {last['decision']} by {last['actor']}{comment}."


def _decided(record: PlanRecord) -> str:
    if record.status == Status.APPROVED:
        return (
            f"Plan {record.id} is approved. {_decided_line(record)} Nothing has changed yet. "
            f"Next: apply_plan(plan_id={record.id!r})."
        )
    if record.status == Status.REJECTED:
        return (
            f"Plan {record.id} is rejected. {_decided_line(record)} Nothing was applied. "
            "Next: change the work as the reviewer asked and submit again, or ask the user."
        )
    return f"Plan {record.id} is {record.status}.\n{report_text(record)}"


def _approved(record: PlanRecord, approver: Principal) -> str:
    return (
        f"Plan {record.id} was approved by {approver.name} (authenticated by Airlock). "
        f"Nothing has changed yet. Next: apply_plan(plan_id={record.id!r})."
    )


def _rejected(record: PlanRecord, approver: Principal) -> str:
    comment = record.decisions[-1].get("comment") if record.decisions else ""
    return (
        f"Plan {record.id} was rejected by {approver.name}"
        f"{f': {comment}' if comment else ' (no reason given)'}. Nothing was applied, and its "
        "changes are no longer pending. Next: do not resubmit the same changes; change the work "
        "as the reviewer asked, or ask the user."
    )


def _applied(result: ApplyResult) -> str:
    if not result.success:
        differs = f" Not as before: {', '.join(result.differs[:20])}." if result.differs else ""
        return (
            f"Applying plan {result.plan_id} failed and was undone: {result.error}.{differs} "
            f"Next: check plan_status(plan_id={result.plan_id!r}), validate it again, or ask "
            "the user."
        )
    return (
        f"Applied plan {result.plan_id}: {result.operations_completed} operation(s) done to the "
        f"real files (transaction {result.transaction_id}). It can be undone with "
        f"rollback_plan(plan_id={result.plan_id!r})."
    )


def _rolled_back(result: ApplyResult, approver: Principal | None = None) -> str:
    by = f", approved by {approver.name} (authenticated by Airlock)" if approver else ""
    return (
        f"Rolled back plan {result.plan_id}{by}: {result.operations_completed} change(s) undone; "
        "the files are exactly as before it was applied."
    )


# -- interrupts -------------------------------------------------------------------------------


def _graph_task() -> Mapping[str, Any] | None:
    """The configuration of the LangGraph task this call runs in (which an interrupt can
    pause), or None outside one (a tool called directly has a configuration, but no task)."""
    try:
        configurable: Mapping[str, Any] = get_config().get("configurable", {})
    except RuntimeError:
        return None
    return configurable if CONFIG_KEY_SCRATCHPAD in configurable else None


def _request(
    tool: str,
    args: Mapping[str, Any],
    description: str,
    allowed: Sequence[str],
    record: PlanRecord,
) -> dict[str, Any]:
    """An interrupt's value: ``HumanInTheLoopMiddleware``'s request, with Airlock's facts."""
    validation = record.validation
    return {
        "action_requests": [{"name": tool, "args": dict(args), "description": description}],
        "review_configs": [{"action_name": tool, "allowed_decisions": list(allowed)}],
        "airlock": {
            "plan_id": record.id,
            "scope": record.plan.scope,
            "status": str(record.status),
            "digest": record.digest,
            "validation_id": record.validation_id,
            "needs_approval": list(validation.needs_approval) if validation else [],
            "review": f"/plans/{record.id}",
            "decide_with": 'Command(resume={"decisions": [{"type": "approve", '
            '"token": "<an Airlock approver token>"}]})',
        },
    }


def _decision(value: object) -> dict[str, Any]:
    """The one decision of a resume value: ``{"decisions": [d]}`` (the middleware's form) or
    ``d`` itself; anything else is an empty decision."""
    if isinstance(value, Mapping) and isinstance(value.get("decisions"), Sequence):
        decisions = value["decisions"]
        value = decisions[0] if decisions else {}
    return dict(value) if isinstance(value, Mapping) else {}


def _edited_args(decision: Mapping[str, Any]) -> dict[str, Any]:
    action = decision.get("edited_action")
    args = action.get("args") if isinstance(action, Mapping) else decision.get("args")
    if not isinstance(args, Mapping):
        raise InputError(
            "the reviewer's edit carries no arguments",
            hint='an edit is {"type": "edit", "edited_action": {"name": ..., "args": {...}}}',
        )
    return {str(key): value for key, value in args.items()}


def _message(decision: Mapping[str, Any]) -> str:
    message = decision.get("message")
    if isinstance(message, str):
        return message.strip()
    return json.dumps(message) if message is not None else ""
