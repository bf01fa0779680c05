"""Airlock's agent tools over the Model Context Protocol (``airlock mcp``), on the official MCP
Python SDK (2.x, :class:`mcp.server.mcpserver.MCPServer`).

The tools carry the names of the reference filesystem server (:data:`FILE_TOOLS`) with
Airlock's meaning: a write, edit, move, copy or delete becomes a change in the agent's *pending
plan*, never a change of a real file, and reads see those pending changes. Beside them are the
plan's tools (:data:`PLAN_TOOLS`): review the pending changes, drop them, submit them for
approval, validate, follow, apply and roll back a plan, run a command in Airlock's sandbox.

Each tool is a thin call into :class:`~airlock.agents.session.AgentSession`; every decision
(paths, scope, roles, approval) is the core's. Each answer says what happened and what the
model may do next. An Airlock error is an answer too: a tool result with ``isError`` carrying
the error's message and hint (and :meth:`~airlock.errors.AirlockError.to_dict` as structured
content), never a protocol error that would end the agent's run.

Two ways to serve it:

* :func:`server_for`: every call acts as one principal (``airlock mcp`` over stdio, or a
  client in the same process);
* :func:`http_app`: streamable HTTP, where every request must carry an Airlock token
  (``Authorization: Bearer alk_...``, checked by :func:`airlock.tokens.authenticate` through the
  SDK's bearer middleware) and acts as its principal, with DNS-rebinding protection on: only
  the bound ``host:port`` (and names given as ``allowed_host``) are answered, in Host and Origin.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import posixpath
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from wcmatch import glob as wcglob

from airlock.agents.session import AgentSession, Item, Session, report_text
from airlock.errors import (
    AirlockError,
    AuthenticationError,
    InputError,
    InternalError,
    NotFoundError,
    StorageError,
)
from airlock.permissions import Principal, Role
from airlock.tokens import authenticate

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from airlock.records import ApplyResult, PlanRecord
    from airlock.workspace import Workspace

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Airlock gives you the files of one scope (list_allowed_directories names it) and keeps every \
change you make as a pending plan: write_file, edit_file, create_directory, move_file, \
copy_file, delete_file and whatever run_in_sandbox changes never touch a real file, and reads \
show your pending changes. When the work is done: show_pending_changes, then submit_plan; a \
person approves it if the policy asks for one, apply_plan makes it real, and rollback_plan \
undoes it. Paths are absolute, under /workspace/."""

FILE_TOOLS = (
    "read_text_file",
    "write_file",
    "edit_file",
    "create_directory",
    "list_directory",
    "directory_tree",
    "move_file",
    "search_files",
    "get_file_info",
    "list_allowed_directories",
)
"""The reference filesystem server's tools that Airlock offers, under their names."""

PLAN_TOOLS = (
    "copy_file",
    "delete_file",
    "show_pending_changes",
    "discard_pending_changes",
    "submit_plan",
    "validate_plan",
    "plan_status",
    "apply_plan",
    "rollback_plan",
    "run_in_sandbox",
)
"""Airlock's own tools: the changes the reference server lacks, the plan and the sandbox."""

TOOL_NAMES = FILE_TOOLS + PLAN_TOOLS

_READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
# A proposal changes only the pending plan: nothing real, and it can be discarded.
_PROPOSE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
_REAL = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)
ANNOTATIONS: dict[str, ToolAnnotations] = {
    **dict.fromkeys(
        ("read_text_file", "list_directory", "directory_tree", "search_files", "get_file_info"),
        _READ,
    ),
    **dict.fromkeys(("list_allowed_directories", "show_pending_changes", "plan_status"), _READ),
    **dict.fromkeys(("write_file", "edit_file", "create_directory", "move_file"), _PROPOSE),
    **dict.fromkeys(("copy_file", "delete_file", "submit_plan", "validate_plan"), _PROPOSE),
    "run_in_sandbox": _PROPOSE,
    **dict.fromkeys(("discard_pending_changes", "apply_plan", "rollback_plan"), _REAL),
}

_NEXT = (
    "Next: go on working, show_pending_changes to review, submit_plan to ask for approval, "
    "or discard_pending_changes to drop every pending change."
)
_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.DOTGLOB

PathArg = Annotated[
    str, Field(description="An absolute path under /workspace/ (see list_allowed_directories).")
]
PlanId = Annotated[str, Field(description="The plan's id (submit_plan answers it).")]
Reason = Annotated[
    str, Field(description="Why, in a sentence for the person who reviews it (optional).")
]
# The SDK passes each argument under its name in the schema, so the reference server's
# camelCase names (excludePatterns, dryRun) are the parameters' own names.
Patterns = Annotated[
    list[str],
    Field(
        default_factory=list,
        description="Globs of paths (relative to `path`) or names to leave out.",
    ),
]


class Edit(BaseModel):
    """One replacement of ``edit_file``."""

    model_config = ConfigDict(populate_by_name=True)

    old_text: str = Field(alias="oldText", description="Text to find: it must occur once, exactly.")
    new_text: str = Field(alias="newText", description="Text to put in its place.")


def _refusal(error: AirlockError) -> CallToolResult:
    lines = [f"Refused ({type(error).__name__}): {error.message}"]
    lines += [f"  - {line}" for line in error.details]
    if error.hint:
        lines.append(f"Next: {error.hint}")
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content=dict(error.to_dict()),
        is_error=True,
    )


def _answering(tool: Callable[..., str]) -> Callable[..., CallToolResult]:
    """``tool`` (same signature, for the schema) answering a tool result: its text, or the
    Airlock error it raised with ``isError`` (anything else as an :class:`InternalError`, whose
    text hides the cause; the log has it)."""

    @functools.wraps(tool)
    def answer(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            text = tool(*args, **kwargs)
        except AirlockError as error:
            return _refusal(error)
        except Exception as exc:
            log.exception("the MCP tool %s failed unexpectedly", tool.__name__)
            return _refusal(InternalError.of(exc))
        return CallToolResult(content=[TextContent(type="text", text=text)])

    return answer


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _pending_line(session: Session) -> str:
    n = len(session.pending())
    return f"Your pending plan has {_count(n, 'change')}; no real file has changed."


def _excluded(relative: str, patterns: list[str]) -> bool:
    """Whether ``relative`` (a path below the searched folder) is left out by ``patterns``: a
    pattern with ``/`` matches the path or a folder above it, one without matches a name in it."""
    parts = relative.split("/")
    for raw in patterns:
        pattern = raw.strip("/")
        if "/" in pattern:
            above = ("/".join(parts[:n]) for n in range(1, len(parts) + 1))
            if any(wcglob.globmatch(p, pattern, flags=_GLOB_FLAGS) for p in above):
                return True
        elif any(wcglob.globmatch(part, pattern, flags=_GLOB_FLAGS) for part in parts):
            return True
    return False


def _text_of(session: Session, path: str) -> str:
    data = session.read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path!r} is not UTF-8 text ({_count(len(data), 'byte')})",
            hint="run_in_sandbox can look into it (e.g. `file` or `pdftotext`)",
        ) from None


def _folder(session: Session, path: str) -> Item:
    item = session.stat(path)
    if item is None:
        raise NotFoundError(f"no such folder {path!r}", hint="list_directory its parent")
    if not item.is_dir:
        raise InputError(f"{path!r} is a file, not a folder", hint="pass a folder's path")
    return item


def _relative(base: str, path: str) -> str:
    return path[len(base) :].lstrip("/")


def _failed(what: str, plan_id: str, result: ApplyResult) -> AirlockError:
    """The error for an apply or rollback that failed (and was undone), of the failure's class."""
    cause = result.failure or StorageError(result.error or "it failed")
    details = [f"not as before (changed meanwhile): {path}" for path in result.differs]
    return type(cause)(
        f"the {what} of plan {plan_id} failed and was undone: {cause.message}",
        cause.hint or f"plan_status({plan_id!r}), validate_plan, then try again",
        details or ["the files are exactly as before"],
    )


class _Tools:
    """The tools, each one call into the session that ``session`` opens for the
    caller (a fixed principal, or the one the HTTP request's token names). The signatures and
    docstrings are what the model sees: the SDK makes each tool's schema from them."""

    def __init__(self, session: Callable[[], Session]) -> None:
        self._session = session

    # -- reading (the pending view) ----------------------------------------------------------

    def read_text_file(
        self,
        path: PathArg,
        head: Annotated[int | None, Field(description="Only the first N lines.")] = None,
        tail: Annotated[int | None, Field(description="Only the last N lines.")] = None,
    ) -> str:
        """Read a file as UTF-8 text, as your pending plan leaves it (your own pending writes,
        edits and moves included). head or tail give only the first or last N lines."""
        if head is not None and tail is not None:
            raise InputError("pass head or tail, not both", hint="drop one of them")
        lines = _text_of(self._session(), path).splitlines(keepends=True)
        if head is not None:
            return "".join(lines[: max(head, 0)])
        if tail is not None:
            return "".join(lines[-tail:]) if tail > 0 else ""
        return "".join(lines)

    def list_directory(self, path: PathArg) -> str:
        """List a folder's entries, each marked [DIR] or [FILE], as your pending plan leaves
        them."""
        items = self._session().ls(path)
        if not items:
            return f"{path} is empty."
        return "\n".join(
            f"{'[DIR]' if item.is_dir else '[FILE]'} {posixpath.basename(item.path)}"
            for item in items
        )

    def directory_tree(self, path: PathArg, excludePatterns: Patterns) -> str:  # noqa: N803
        """A folder's tree as JSON: each entry has 'name', 'type' (file or directory) and, for a
        directory, 'children' (maybe empty). Pending changes included."""
        session = self._session()
        base = _folder(session, path).path
        tree: dict[str, list[dict[str, Any]]] = {"": []}
        for item in session.walk(base):
            relative = _relative(base, item.path)
            parent, _, name = relative.rpartition("/")
            if parent not in tree or _excluded(relative, excludePatterns):
                continue  # excluded, or below an excluded folder
            entry: dict[str, Any] = {"name": name, "type": "directory" if item.is_dir else "file"}
            if item.is_dir:
                entry["children"] = tree[relative] = []
            tree[parent].append(entry)
        return json.dumps(tree[""], indent=2, ensure_ascii=False)

    def search_files(
        self,
        path: PathArg,
        pattern: Annotated[
            str,
            Field(
                description="A glob: without '/' it matches file names at any depth ('*.pdf' "
                "finds every PDF); with '/' paths relative to `path` ('inbox/*.pdf', "
                "'**/2024/*'). '**' spans folders, '{a,b}' is either."
            ),
        ],
        excludePatterns: Patterns,  # noqa: N803
    ) -> str:
        """Find the files below a folder that match a glob; answers their full paths, one a
        line. Pending changes included."""
        session = self._session()
        base = _folder(session, path).path
        found = [
            item.path
            for item in session.glob(pattern, base)
            if not _excluded(_relative(base, item.path), excludePatterns)
        ]
        return "\n".join(found) if found else f"No file under {base} matches {pattern!r}."

    def get_file_info(self, path: PathArg) -> str:
        """A file's or folder's type, size and last modification ('pending' for what your
        pending plan makes)."""
        item = self._session().stat(path)
        if item is None:
            raise NotFoundError(
                f"no such file or folder {path!r}", hint="list_directory its parent"
            )
        kind = "directory" if item.is_dir else "file"
        return (
            f"path: {item.path}\ntype: {kind}\nsize: {item.size}\n"
            f"modified: {item.modified_at or 'pending (your pending plan makes it)'}\n"
            f"isDirectory: {str(item.is_dir).lower()}\nisFile: {str(not item.is_dir).lower()}"
        )

    def list_allowed_directories(self) -> str:
        """The folders you may read. The first is your scope: your changes to it go into a
        pending plan; the others are read-only. Nothing else exists for you."""
        session = self._session()
        lines = ["Allowed directories:"]
        for root in session.readable_roots():
            what = (
                "your scope: changes become a pending plan" if root == session.root else "read-only"
            )
            lines.append(f"{root} ({what})")
        return "\n".join(lines)

    # -- proposing changes (into the pending plan) -------------------------------------------

    def write_file(
        self,
        path: PathArg,
        content: Annotated[str, Field(description="The whole text.")],
        reason: Reason = "",
    ) -> str:
        """Create or replace a file, as a change in your pending plan (no real file changes
        until the plan is approved and applied). Missing folders are made."""
        session = self._session()
        verb = "replacing" if session.stat(path) is not None else "creating"
        session.write(path, content, reason=reason)
        size = _count(len(content.encode("utf-8")), "byte")
        return f"Pending: {verb} {path} ({size}). {_pending_line(session)} {_NEXT}"

    def edit_file(
        self,
        path: PathArg,
        edits: Annotated[list[Edit], Field(description="Replacements, made in order.")],
        dryRun: Annotated[bool, Field(description="Only show the diff.")] = False,  # noqa: N803
        reason: Reason = "",
    ) -> str:
        """Replace exact text in a text file, as one change in your pending plan; answers a
        git-style diff. Each oldText must occur exactly once (add neighbouring lines if not);
        all the edits are made or none."""
        session = self._session()
        before = _text_of(session, path)
        after = before
        for number, edit in enumerate(edits, start=1):
            found = after.count(edit.old_text) if edit.old_text else 0
            if found != 1:
                how = "is empty" if not edit.old_text else f"occurs {found} times"
                raise InputError(
                    f"edit {number}: its oldText {how} in {path}",
                    hint="read_text_file, then give an oldText that occurs exactly once",
                )
            after = after.replace(edit.old_text, edit.new_text, 1)
        diff = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True), path, path
            )
        )
        shown = f"```diff\n{diff}```" if diff else "(no difference)"
        if dryRun:
            return (
                f"Dry run, nothing changed:\n{shown}\nCall edit_file without dryRun to propose it."
            )
        if after != before:
            session.write(path, after, reason=reason)
        return f"Pending: an edit of {path}.\n{shown}\n{_pending_line(session)} {_NEXT}"

    def create_directory(self, path: PathArg, reason: Reason = "") -> str:
        """Create a folder (and missing parents) in your pending plan; one that exists is fine."""
        session = self._session()
        item = session.stat(path)
        if item is not None and item.is_dir:
            return f"{path} exists already: nothing to do. {_pending_line(session)}"
        session.mkdir(path, reason=reason)
        return f"Pending: creating the folder {path}. {_pending_line(session)} {_NEXT}"

    def move_file(self, source: PathArg, destination: PathArg, reason: Reason = "") -> str:
        """Move or rename a file or folder, in your pending plan. Never overwrites: refused if
        the destination exists (delete it first if that is what you mean)."""
        session = self._session()
        session.move(source, destination, reason=reason)
        return f"Pending: moving {source} to {destination}. {_pending_line(session)} {_NEXT}"

    def copy_file(self, source: PathArg, destination: PathArg, reason: Reason = "") -> str:
        """Copy a file or folder, in your pending plan; refused if the destination exists."""
        session = self._session()
        session.copy(source, destination, reason=reason)
        return f"Pending: copying {source} to {destination}. {_pending_line(session)} {_NEXT}"

    def delete_file(self, path: PathArg, reason: Reason = "") -> str:
        """Delete a file or a folder (with all it holds), in your pending plan. Applied, its
        bytes are kept aside: a rollback restores them."""
        session = self._session()
        session.delete(path, reason=reason)
        return f"Pending: deleting {path}. {_pending_line(session)} {_NEXT}"

    # -- the plan ------------------------------------------------------------------------------

    def show_pending_changes(self) -> str:
        """Your pending changes, compactly: one line per change, and what needs approval."""
        return self._session().diff()

    def discard_pending_changes(self) -> str:
        """Drop every pending change (undo all you proposed since the last submit_plan)."""
        dropped = self._session().discard()
        return f"Dropped {_count(dropped, 'pending change')}: nothing is pending, no real file changed."

    def submit_plan(
        self,
        description: Annotated[
            str, Field(description="What the plan does and why, for the person who reviews it.")
        ],
    ) -> str:
        """Submit your pending changes as one plan. It is validated at once: the answer is its
        report (every change, and whether a person must approve it). Nothing is pending after."""
        record = self._session().submit(description)
        return f"Submitted plan {record.id}.\n\n{report_text(record)}"

    def validate_plan(self, plan_id: PlanId) -> str:
        """Check a plan again against the files as they are now (a dry run); answers its
        report. If its world changed, an approval given before no longer counts."""
        record = self._session().validate(plan_id)
        return f"Validated plan {record.id}.\n\n{report_text(record)}"

    def plan_status(self, plan_id: PlanId) -> str:
        """A plan's status (validated, approved, rejected, applied, ...) and report."""
        record: PlanRecord = self._session().status(plan_id)
        decided = "".join(
            f"\n{d.get('decision')} by {d.get('actor')}: {d.get('comment') or '(no comment)'}"
            for d in record.decisions
        )
        return f"Plan {record.id} is {record.status}.{decided}\n\n{report_text(record)}"

    def apply_plan(self, plan_id: PlanId) -> str:
        """Apply a plan to the real files, all or nothing: one that is approved, or that the
        policy lets apply without a person. Refused while it waits for an approver."""
        result = self._session().apply(plan_id)
        if not result.success:
            raise _failed("apply", plan_id, result)
        return (
            f"Applied plan {plan_id}: {_count(result.operations_completed, 'operation')} done, "
            f"the real files are changed (and audited). rollback_plan({plan_id!r}) would "
            "restore them exactly."
        )

    def rollback_plan(self, plan_id: PlanId) -> str:
        """Undo an applied plan: the exact prior files come back. Refused if they changed since,
        or if your role may not roll back."""
        result = self._session().rollback(plan_id)
        if not result.success:
            raise _failed("rollback", plan_id, result)
        return f"Rolled back plan {plan_id}: the files are as they were before it."

    def run_in_sandbox(
        self,
        command: Annotated[str, Field(description="A shell command, run in your scope's folder.")],
        timeout: Annotated[int | None, Field(description="Seconds before it is stopped.")] = None,
    ) -> str:
        """Run a shell command in Airlock's sandbox: it sees your scope with your pending
        changes (writable), the read-only areas, and no network. What it changes is added to
        your pending plan, never to the real files."""
        session = self._session()
        ran = session.execute(command, timeout=timeout)
        lines = [f"Ran in the sandbox: {ran.summary}.", ran.output or "(no output)"]
        if ran.truncated:
            lines.append("(the output was cut short)")
        if ran.changes:
            lines.append(f"{_pending_line(session)} {_NEXT}")
        return "\n".join(lines)


def _version() -> str:
    try:
        return version("airlock")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return ""


def create_server(
    session: Callable[[], Session],
    *,
    auth: AuthSettings | None = None,
    token_verifier: AirlockTokenVerifier | None = None,
) -> MCPServer[Any]:
    """The MCP server; ``session`` opens the session each tool call acts in: an
    :class:`AgentSession`, or any :class:`~airlock.agents.session.Session` (such as a
    :class:`~airlock.agents.remote.RemoteSession` against a remote ``airlock serve``)."""
    server: MCPServer[Any] = MCPServer(
        "airlock",
        title="Airlock",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level="WARNING",
        auth=auth,
        token_verifier=token_verifier,
    )
    tools = _Tools(session)
    for name in TOOL_NAMES:
        server.add_tool(
            _answering(getattr(tools, name)),
            name=name,
            annotations=ANNOTATIONS[name],
            structured_output=False,
        )
    return server


def server_for(ws: Workspace, scope: str, by: Principal) -> MCPServer[Any]:
    """The server whose every call acts as ``by`` (stdio, or a client in the same process)."""
    return create_server(lambda: AgentSession(ws, scope, by))


class AirlockTokenVerifier:
    """The SDK's ``TokenVerifier`` over Airlock's tokens: a bearer token is valid if
    :func:`airlock.tokens.authenticate` knows it (and it is not revoked). Its principal rides in
    the access token, for :func:`request_principal`."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await anyio.to_thread.run_sync(authenticate, self._ws, token.strip())
        if found is None:
            return None
        return AccessToken(
            token=token,
            client_id=found.name,
            subject=found.name,
            scopes=[str(found.role)],
            claims={"role": str(found.role), "via": found.via},
        )


def request_principal() -> Principal:
    """The principal the current HTTP request's token names (the SDK's bearer middleware has
    refused any request without a valid one before a tool runs)."""
    token = get_access_token()
    if token is None or not token.claims:
        raise AuthenticationError(
            "this request carries no valid Airlock token",
            hint="send `Authorization: Bearer <token>` (`airlock token create --role agent`)",
        )
    claims = token.claims
    return Principal(name=token.client_id, role=Role(claims["role"]), via=str(claims["via"]))


def allowed_hosts(host: str, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The Host headers answered: the bound ``host:port`` (on a loopback address, also its
    loopback names with that port) and each of ``extra`` (``name`` or ``name:port``)."""
    names = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if host in ("127.0.0.1", "localhost"):
        names += [f"127.0.0.1:{port}", f"localhost:{port}"]
    elif host == "::1":
        names.append(f"localhost:{port}")
    names += [name if ":" in name else f"{name}:{port}" for name in extra]
    return list(dict.fromkeys(names))


def http_app(
    ws: Workspace,
    scope: str,
    *,
    host: str,
    port: int,
    allowed_host: tuple[str, ...] = (),
    path: str = "/mcp",
) -> Starlette:
    """The streamable-HTTP app at ``path`` (serve it on ``host:port``): every request must
    carry an Airlock token and acts as its principal; Host and Origin must name one of
    :func:`allowed_hosts` (DNS-rebinding protection)."""
    hosts = allowed_hosts(host, port, allowed_host)
    server = create_server(
        lambda: AgentSession(ws, scope, request_principal()),
        # Airlock issues its tokens itself: neither an OAuth provider nor a resource_server_url
        # is given, so no OAuth route or metadata is served; the SDK only checks each bearer
        # token with the verifier (401 without a valid one).
        auth=AuthSettings(issuer_url=AnyHttpUrl(f"http://{hosts[0]}"), resource_server_url=None),
        token_verifier=AirlockTokenVerifier(ws),
    )
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{name}" for name in hosts for scheme in ("http", "https")],
    )
    return server.streamable_http_app(
        streamable_http_path=path, transport_security=security, host=host
    )
