"""``airlock mcp``: the SDK's own MCP client lists and calls every tool, in memory, over stdio
(``airlock mcp`` as a child process) and over streamable HTTP (a real uvicorn server on
127.0.0.1); HTTP refuses a missing, invalid or revoked token and a foreign Host or Origin; and
the reference filesystem server's path-validation cases are all refused.

The tests are plain functions that run their async part with ``anyio.run`` (the SDK's client
is async), so they do not depend on a pytest async plugin's mode. Nothing is faked: a real
workspace, real tokens, the real sandbox when bubblewrap is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, TextContent

from airlock.agents.mcp import TOOL_NAMES, allowed_hosts, http_app, server_for
from airlock.agents.session import AgentSession
from airlock.permissions import Principal, Role
from airlock.tokens import authenticate, create_token, revoke_token
from airlock.workspace import Workspace
from servicekit import _ThreadServer
from support import snapshot

SCOPE = "projects/Smith"
ROOT = "/workspace/projects/Smith"
SANDBOX = shutil.which("bwrap") is not None
REPO = Path(__file__).parent.parent
MARK = "OUTSIDE-ONLY-4711"


@dataclass
class Case:
    """A workspace with the case ``projects/Smith``, neighbours whose names start the same, and
    a folder outside the workspace; one agent token and one approver token."""

    root: Path
    ws: Workspace
    outside: Path
    agent_token: str
    approver_token: str

    def principal(self, token: str) -> Principal:
        found = authenticate(self.ws, token)
        assert found is not None
        return found

    @property
    def agent(self) -> Principal:
        return self.principal(self.agent_token)

    @property
    def approver(self) -> Principal:
        return self.principal(self.approver_token)


@contextmanager
def making_case(tmp: Path) -> Iterator[Case]:
    root = tmp / "ws"
    smith = root / SCOPE
    (smith / "inbox").mkdir(parents=True)
    (smith / "notes.txt").write_text("first notes\nsecond line\n")
    (smith / "inbox" / "scan1.pdf").write_bytes(b"%PDF-1.4 one")
    (smith / "inbox" / "scan2.pdf").write_bytes(b"%PDF-1.4 two")
    for neighbour in ("Smith_evil", "Smith2", "Smith-old", "Smith.bak", "Smithile", "Other"):
        (root / "projects" / neighbour).mkdir(parents=True)
        (root / "projects" / neighbour / "secret.txt").write_text(f"{MARK} {neighbour}\n")
    (root / "Tools").mkdir()
    (root / "Tools" / "inventory.sh").write_text("#!/bin/sh\nls -R\n")
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(MARK + "\n")
    ws = Workspace.init(root)
    _, agent = create_token(ws, "paralegal-agent", Role.AGENT)
    _, approver = create_token(ws, "jane-approver", Role.APPROVER)
    try:
        yield Case(root, ws, outside, agent, approver)
    finally:
        ws.close()


@pytest.fixture
def case(tmp_path: Path) -> Iterator[Case]:
    with making_case(tmp_path) as made:
        yield made


Call = Callable[[str, dict[str, Any]], Awaitable[CallToolResult]]


def text(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent), result
    return result.content[0].text


async def ok(call: Call, tool: str, **args: Any) -> str:
    result = await call(tool, args)
    assert not result.is_error, f"{tool}({args}) was refused: {text(result)}"
    return text(result)


async def refused(call: Call, tool: str, error: str | None = None, **args: Any) -> str:
    """The tool's answer, which must be a refusal (isError), of the ``error`` class if given."""
    result = await call(tool, args)
    assert result.is_error, f"{tool}({args}) was not refused: {text(result)}"
    assert result.structured_content is not None
    if error is not None:
        assert result.structured_content["error"] == error, text(result)
    assert text(result).startswith("Refused (") and "Next: " in text(result)
    return text(result)


def plan_of(submitted: str) -> str:
    match = re.search(r"Submitted plan (\S+)\.", submitted)
    assert match, submitted
    return match.group(1)


async def exercise(call: Call, approve: Callable[[str], None]) -> str:
    """Every tool, as an agent reorganising the case: reads, proposals (read back), a refused
    overwrite, undo, a sandboxed run, submit, the approval gate, apply and a refused rollback.
    Returns the applied plan's id."""
    called: set[str] = set()

    async def tool(name: str, args: dict[str, Any]) -> CallToolResult:
        called.add(name)
        return await call(name, args)

    allowed = await ok(tool, "list_allowed_directories")
    assert f"{ROOT} (your scope" in allowed and "/workspace/Tools (read-only)" in allowed
    assert (await ok(tool, "list_directory", path=ROOT)).splitlines() == [
        "[DIR] inbox",
        "[FILE] notes.txt",
    ]
    tree = json.loads(await ok(tool, "directory_tree", path=ROOT))
    assert [entry["name"] for entry in tree] == ["inbox", "notes.txt"]
    assert [child["name"] for child in tree[0]["children"]] == ["scan1.pdf", "scan2.pdf"]
    assert json.loads(await ok(tool, "directory_tree", path=ROOT, excludePatterns=["*.pdf"]))[
        0
    ] == {
        "name": "inbox",
        "type": "directory",
        "children": [],
    }
    assert (await ok(tool, "search_files", path=ROOT, pattern="*.pdf")).splitlines() == [
        f"{ROOT}/inbox/scan1.pdf",
        f"{ROOT}/inbox/scan2.pdf",
    ]
    assert "No file" in await ok(tool, "search_files", path=ROOT, pattern="*.doc")
    info = await ok(tool, "get_file_info", path=f"{ROOT}/notes.txt")
    assert "type: file" in info and "size: 24" in info
    assert (
        await ok(tool, "read_text_file", path=f"{ROOT}/notes.txt") == "first notes\nsecond line\n"
    )
    assert await ok(tool, "read_text_file", path=f"{ROOT}/notes.txt", tail=1) == "second line\n"

    # A change, read back, then undone.
    assert "Pending: creating" in await ok(
        tool, "write_file", path=f"{ROOT}/scratch.txt", content="x"
    )
    assert await ok(tool, "read_text_file", path=f"{ROOT}/scratch.txt") == "x"
    assert "Dropped 1 pending change" in await ok(tool, "discard_pending_changes")
    assert "No pending changes" in await ok(tool, "show_pending_changes")
    await refused(tool, "read_text_file", "NotFoundError", path=f"{ROOT}/scratch.txt")

    # The reorganisation.
    answer = await ok(tool, "write_file", path=f"{ROOT}/index.md", content="# Index\n")
    assert "Pending: creating" in answer and "1 change;" in answer and "submit_plan" in answer
    preview = await ok(
        tool,
        "edit_file",
        path=f"{ROOT}/notes.txt",
        edits=[{"oldText": "first", "newText": "1st"}],
        dryRun=True,
    )
    assert preview.startswith("Dry run") and "-first notes" in preview and "+1st notes" in preview
    edited = await ok(
        tool,
        "edit_file",
        path=f"{ROOT}/notes.txt",
        edits=[{"oldText": "first", "newText": "1st"}, {"oldText": "second", "newText": "2nd"}],
    )
    assert "+2nd line" in edited and "2 changes;" in edited
    assert await ok(tool, "read_text_file", path=f"{ROOT}/notes.txt") == "1st notes\n2nd line\n"
    await refused(
        tool,
        "edit_file",
        "InputError",
        path=f"{ROOT}/notes.txt",
        edits=[{"oldText": "line", "newText": "row"}, {"oldText": "absent", "newText": "?"}],
    )
    assert await ok(tool, "read_text_file", path=f"{ROOT}/notes.txt") == "1st notes\n2nd line\n"
    await ok(tool, "create_directory", path=f"{ROOT}/Medical Records/Dr Lee")
    assert "exists already" in await ok(tool, "create_directory", path=f"{ROOT}/Medical Records")
    await ok(
        tool,
        "move_file",
        source=f"{ROOT}/inbox/scan1.pdf",
        destination=f"{ROOT}/Medical Records/Dr Lee/scan1.pdf",
    )
    never = await refused(
        tool,
        "move_file",
        "ConflictError",
        source=f"{ROOT}/index.md",
        destination=f"{ROOT}/notes.txt",
    )
    assert "already exists" in never
    await ok(
        tool,
        "copy_file",
        source=f"{ROOT}/inbox/scan2.pdf",
        destination=f"{ROOT}/Medical Records/scan2.pdf",
    )
    await ok(tool, "delete_file", path=f"{ROOT}/inbox/scan2.pdf")
    if SANDBOX:
        ran = await ok(
            tool,
            "run_in_sandbox",
            command="mkdir -p Reports && ls -R > Reports/listing.txt && echo done",
        )
        assert "exit code 0" in ran and "done" in ran and "change" in ran
        assert "Medical Records" in await ok(
            tool, "read_text_file", path=f"{ROOT}/Reports/listing.txt"
        )
    else:  # the tool still answers: no sandbox can run here (bubblewrap is not installed)
        await refused(tool, "run_in_sandbox", "SandboxUnavailableError", command="true")
    pending = await ok(tool, "show_pending_changes")
    assert "inbox/scan1.pdf → Medical Records/Dr Lee/scan1.pdf" in pending
    assert "overwrite notes.txt" in pending

    submitted = await ok(tool, "submit_plan", description="File the scans by provider")
    plan_id = plan_of(submitted)
    assert "waits for a person to approve" in submitted
    assert "No pending changes" in await ok(tool, "show_pending_changes")
    assert f"Plan {plan_id} is validated." in await ok(tool, "plan_status", plan_id=plan_id)
    assert f"Validated plan {plan_id}." in await ok(tool, "validate_plan", plan_id=plan_id)
    await refused(tool, "apply_plan", "NotPermittedError", plan_id=plan_id)
    await refused(tool, "plan_status", "NotFoundError", plan_id="pl_nosuchplan")

    approve(plan_id)
    assert "approved by jane-approver" in await ok(tool, "plan_status", plan_id=plan_id)
    applied = await ok(tool, "apply_plan", plan_id=plan_id)
    assert f"Applied plan {plan_id}" in applied and "rollback_plan" in applied
    await refused(tool, "rollback_plan", "NotPermittedError", plan_id=plan_id)
    assert called == set(TOOL_NAMES)
    return plan_id


def check_applied(case: Case) -> None:
    smith = case.root / SCOPE
    assert (smith / "index.md").read_text() == "# Index\n"
    assert (smith / "notes.txt").read_text() == "1st notes\n2nd line\n"
    assert (smith / "Medical Records" / "Dr Lee" / "scan1.pdf").read_bytes() == b"%PDF-1.4 one"
    assert (smith / "Medical Records" / "scan2.pdf").read_bytes() == b"%PDF-1.4 two"
    assert sorted(p.name for p in (smith / "inbox").iterdir()) == []


@asynccontextmanager
async def connected(server: Any) -> AsyncIterator[Call]:
    async with Client(server) as client:
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == list(TOOL_NAMES)
        assert all(tool.description and tool.input_schema for tool in tools.tools)

        async def call(name: str, args: dict[str, Any]) -> CallToolResult:
            return await client.call_tool(name, args)

        yield call


def test_in_memory_client_lists_and_calls_every_tool(case: Case) -> None:
    before = snapshot(case.root)

    def approve(plan_id: str) -> None:
        case.ws.approve(plan_id, by=case.approver, comment="looks right")

    async def main() -> None:
        async with connected(server_for(case.ws, SCOPE, case.agent)) as agent:
            plan_id = await exercise(agent, approve)
        check_applied(case)
        async with connected(server_for(case.ws, SCOPE, case.approver)) as approver:
            assert "Rolled back" in await ok(approver, "rollback_plan", plan_id=plan_id)

    anyio.run(main)
    assert snapshot(case.root) == before


def test_tool_schemas_keep_the_reference_servers_argument_names(case: Case) -> None:
    async def main() -> None:
        async with Client(server_for(case.ws, SCOPE, case.agent)) as client:
            schemas = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        # the reference server's arguments, and Airlock's optional "reason" for the reviewer
        assert set(schemas["edit_file"]["properties"]) == {"path", "edits", "dryRun", "reason"}
        assert schemas["edit_file"]["required"] == ["path", "edits"]
        for tool in ("write_file", "create_directory", "move_file", "copy_file", "delete_file"):
            assert "reason" in schemas[tool]["properties"]
            assert "reason" not in schemas[tool].get("required", [])
        edit = schemas["edit_file"]["$defs"]["Edit"]["properties"]
        assert set(edit) == {"oldText", "newText"}
        assert set(schemas["directory_tree"]["properties"]) == {"path", "excludePatterns"}
        assert schemas["search_files"]["required"] == ["path", "pattern"]
        assert set(schemas["read_text_file"]["properties"]) == {"path", "head", "tail"}
        assert schemas["list_allowed_directories"].get("properties", {}) == {}

    anyio.run(main)


def test_stdio_client_lists_and_calls_every_tool(case: Case) -> None:
    """``airlock mcp`` as a child process, spoken to over its stdin and stdout."""
    before = snapshot(case.root)
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "airlock", "mcp", "--workspace", str(case.root), "--scope", SCOPE],
        env={"AIRLOCK_TOKEN": case.agent_token},
    )

    def approve(plan_id: str) -> None:
        case.ws.approve(plan_id, by=case.approver)

    async def main() -> None:
        async with connected(server) as agent:
            plan_id = await exercise(agent, approve)
        check_applied(case)
        # The plan is the agent's (from its token), recorded by the child process.
        assert case.ws.get(plan_id).author == "paralegal-agent"
        AgentSession(case.ws, SCOPE, case.approver).rollback(plan_id)

    anyio.run(main)
    assert snapshot(case.root) == before


def test_stdio_refuses_an_invalid_token_at_start(case: Case) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "airlock", "mcp", "-w", str(case.root), "--scope", SCOPE],
        env={**os.environ, "AIRLOCK_TOKEN": "alk_nope_nope"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    assert done.returncode == 6, done.stderr
    assert "token is not valid" in done.stderr


# --- streamable HTTP ----------------------------------------------------------------------------


@contextmanager
def serving_http(case: Case) -> Iterator[str]:
    """``http_app`` served by uvicorn on a free loopback port in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = http_app(case.ws, SCOPE, host="127.0.0.1", port=port)
    server = _ThreadServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(30) and server.started, "the MCP test server did not start"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive()


@asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[Call]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        connected(streamable_http_client(url, http_client=http)) as call,
    ):
        yield call


def test_http_client_lists_and_calls_every_tool_as_its_tokens_principal(case: Case) -> None:
    before = snapshot(case.root)

    def approve(plan_id: str) -> None:
        case.ws.approve(plan_id, by=case.approver)

    async def main(url: str) -> None:
        async with http_client(url, case.agent_token) as agent:
            plan_id = await exercise(agent, approve)
            await ok(agent, "write_file", path=f"{ROOT}/draft.txt", content="the agent's")
            check_applied(case)
            assert case.ws.get(plan_id).author == "paralegal-agent"
            # Another token on the same server is another principal: its own pending plan
            # (empty), and its role (an approver may roll back).
            async with http_client(url, case.approver_token) as approver:
                assert "No pending changes" in await ok(approver, "show_pending_changes")
                await refused(approver, "read_text_file", "NotFoundError", path=f"{ROOT}/draft.txt")
                assert "Rolled back" in await ok(approver, "rollback_plan", plan_id=plan_id)
            assert await ok(agent, "read_text_file", path=f"{ROOT}/draft.txt") == "the agent's"

    with serving_http(case) as url:
        anyio.run(main, url)
    assert snapshot(case.root) == before


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_http_refuses_requests_without_a_valid_token(case: Case) -> None:
    revoked_id, revoked = create_token(case.ws, "gone", Role.AGENT)
    revoke_token(case.ws, revoked_id)
    with serving_http(case) as url:
        for authorization in (
            None,
            "Bearer",
            "Bearer alk_nope_nope",
            f"Bearer {case.agent_token}x",
            f"Basic {case.agent_token}",
            f"Bearer {revoked}",
        ):
            headers = dict(MCP_HEADERS)
            if authorization is not None:
                headers["Authorization"] = authorization
            answer = httpx.post(url, json=INITIALIZE, headers=headers)
            assert answer.status_code == 401, (authorization, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer ")
        for method in ("GET", "DELETE"):
            assert httpx.request(method, url, headers=MCP_HEADERS).status_code == 401
        good = httpx.post(
            url,
            json=INITIALIZE,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {case.agent_token}"},
        )
        assert good.status_code == 200, good.text


def test_http_refuses_a_foreign_host_or_origin(case: Case) -> None:
    """DNS-rebinding protection: only the bound host:port (and its loopback names) is answered,
    whatever the token."""
    auth = {**MCP_HEADERS, "Authorization": f"Bearer {case.agent_token}"}
    with serving_http(case) as url:
        port = url.split(":")[2].split("/")[0]
        for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1:1", "10.0.0.1"):
            answer = httpx.post(url, json=INITIALIZE, headers={**auth, "Host": host})
            assert answer.status_code == 421, (host, answer.text)
        for origin in ("http://evil.example.com", f"http://evil.example.com:{port}", "null"):
            answer = httpx.post(url, json=INITIALIZE, headers={**auth, "Origin": origin})
            assert answer.status_code == 403, (origin, answer.text)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            answer = httpx.post(
                url, json=INITIALIZE, headers={**auth, "Host": host, "Origin": f"http://{host}"}
            )
            assert answer.status_code == 200, (host, answer.text)


def test_allowed_hosts() -> None:
    assert allowed_hosts("127.0.0.1", 8125) == ["127.0.0.1:8125", "localhost:8125"]
    assert allowed_hosts("::1", 9) == ["[::1]:9", "localhost:9"]
    assert allowed_hosts("10.1.2.3", 80, ("mcp.firm.example", "proxy:443")) == [
        "10.1.2.3:80",
        "mcp.firm.example:80",
        "proxy:443",
    ]


# --- the reference filesystem server's path-validation cases ------------------------------------

S = ROOT
EVIL = "/workspace/projects/Smith_evil"
# Each case: (what it reproduces, tool, arguments). All must be refused, leak nothing from
# outside the scope and change nothing (modelcontextprotocol/servers src/filesystem/__tests__/
# path-validation.test.ts; CVE-2025-53110 prefix siblings, CVE-2025-53109 symlink escapes).
ESCAPES: list[tuple[str, str, dict[str, Any]]] = [
    # Prefix siblings (CVE-2025-53110): names that start with the scope's name.
    *(
        (
            f"prefix sibling {name}",
            "read_text_file",
            {"path": f"/workspace/projects/{name}/secret.txt"},
        )
        for name in ("Smith_evil", "Smith2", "Smith-old", "Smith.bak", "Smithile")
    ),
    ("prefix sibling: list", "list_directory", {"path": EVIL}),
    ("prefix sibling: tree", "directory_tree", {"path": EVIL}),
    ("prefix sibling: search", "search_files", {"path": EVIL, "pattern": "*"}),
    ("prefix sibling: info", "get_file_info", {"path": f"{EVIL}/secret.txt"}),
    ("prefix sibling: write", "write_file", {"path": f"{EVIL}/planted.txt", "content": "x"}),
    ("prefix sibling: mkdir", "create_directory", {"path": f"{EVIL}/new"}),
    ("prefix sibling: delete", "delete_file", {"path": f"{EVIL}/secret.txt"}),
    (
        "prefix sibling: move out",
        "move_file",
        {"source": f"{S}/notes.txt", "destination": f"{EVIL}/n.txt"},
    ),
    (
        "prefix sibling: move in",
        "move_file",
        {"source": f"{EVIL}/secret.txt", "destination": f"{S}/s.txt"},
    ),
    (
        "prefix sibling: copy in",
        "copy_file",
        {"source": f"{EVIL}/secret.txt", "destination": f"{S}/s.txt"},
    ),
    (
        "another case (ethical wall)",
        "read_text_file",
        {"path": "/workspace/projects/Other/secret.txt"},
    ),
    (
        "another case: search",
        "search_files",
        {"path": "/workspace/projects/Other", "pattern": "**"},
    ),
    (
        "another case: run",
        "run_in_sandbox",
        {"command": "cat ../Other/secret.txt /workspace/projects/Other/secret.txt"},
    ),
    # '..' in every position.
    ("dot-dot", "read_text_file", {"path": f"{S}/../Other/secret.txt"}),
    ("dot-dot to /etc", "read_text_file", {"path": f"{S}/../../../etc/passwd"}),
    ("dot-dot to a sibling", "read_text_file", {"path": f"{S}/../Smith_evil/secret.txt"}),
    ("dot-dot after a folder", "read_text_file", {"path": f"{S}/inbox/../../Other/secret.txt"}),
    ("dot then dot-dot", "read_text_file", {"path": f"{S}/./../../Other/secret.txt"}),
    ("dot-dot back and forth", "read_text_file", {"path": f"{S}/../Smith/../../Other/secret.txt"}),
    ("the scope's parent", "list_directory", {"path": f"{S}/.."}),
    ("dot-dot via /scope", "read_text_file", {"path": "/scope/../Other/secret.txt"}),
    (
        "many dot-dots",
        "read_text_file",
        {"path": f"{S}/" + "a/" * 50 + "../" * 51 + "Other/secret.txt"},
    ),
    (
        "a very long escape",
        "read_text_file",
        {"path": f"{S}/" + "a/" * 1000 + "../" * 1001 + "etc/passwd"},
    ),
    ("dot-dot write", "write_file", {"path": f"{S}/../Other/planted.txt", "content": "x"}),
    (
        "dot-dot move",
        "move_file",
        {"source": f"{S}/notes.txt", "destination": f"{S}/../Other/n.txt"},
    ),
    (
        "dot-dot edit",
        "edit_file",
        {"path": f"{S}/../Other/secret.txt", "edits": [{"oldText": "O", "newText": "X"}]},
    ),
    # Absolute paths elsewhere, relative paths, NUL bytes.
    ("absolute /etc/passwd", "read_text_file", {"path": "/etc/passwd"}),
    ("absolute /", "list_directory", {"path": "/"}),
    ("absolute /tmp", "write_file", {"path": "/tmp/planted.txt", "content": "x"}),
    ("the host's own path", "read_text_file", {"path": "{host}/projects/Smith/notes.txt"}),
    ("the outside folder", "read_text_file", {"path": "{outside}/secret.txt"}),
    ("relative", "read_text_file", {"path": "notes.txt"}),
    ("relative dot-dot", "read_text_file", {"path": "../Other/secret.txt"}),
    ("NUL in a folder", "read_text_file", {"path": f"{S}\x00/etc/passwd"}),
    ("NUL in a name", "write_file", {"path": f"{S}/test\x00.txt", "content": "x"}),
    ("NUL first", "read_text_file", {"path": f"\x00{S}/notes.txt"}),
    # Symlink escapes (CVE-2025-53109): links inside the scope that point outside it.
    ("symlink to a file outside", "read_text_file", {"path": f"{S}/link-out.txt"}),
    ("symlink chain", "read_text_file", {"path": f"{S}/chained.txt"}),
    ("symlink folder outside", "read_text_file", {"path": f"{S}/linkdir/secret.txt"}),
    ("symlink to another case", "read_text_file", {"path": f"{S}/link-other/secret.txt"}),
    ("symlink folder: list", "list_directory", {"path": f"{S}/linkdir"}),
    ("symlink folder: tree", "directory_tree", {"path": f"{S}/linkdir"}),
    ("symlink folder: search", "search_files", {"path": f"{S}/linkdir", "pattern": "*"}),
    ("symlink folder: info", "get_file_info", {"path": f"{S}/linkdir/secret.txt"}),
    (
        "write through a symlinked folder",
        "write_file",
        {"path": f"{S}/linkdir/planted.txt", "content": "x"},
    ),
    ("overwrite through a symlink", "write_file", {"path": f"{S}/link-out.txt", "content": "x"}),
    (
        "edit through a symlink",
        "edit_file",
        {"path": f"{S}/link-out.txt", "edits": [{"oldText": "OUT", "newText": "IN"}]},
    ),
    ("mkdir through a symlink", "create_directory", {"path": f"{S}/linkdir/sub"}),
    (
        "move out through a symlink",
        "move_file",
        {"source": f"{S}/linkdir/secret.txt", "destination": f"{S}/got.txt"},
    ),
    (
        "move into a symlinked folder",
        "move_file",
        {"source": f"{S}/notes.txt", "destination": f"{S}/linkdir/n.txt"},
    ),
    (
        "copy a symlink's target",
        "copy_file",
        {"source": f"{S}/link-out.txt", "destination": f"{S}/copy.txt"},
    ),
    ("delete through a symlink", "delete_file", {"path": f"{S}/linkdir/secret.txt"}),
]


def _links(case: Case) -> None:
    smith = case.root / SCOPE
    os.symlink(case.outside / "secret.txt", smith / "link-out.txt")
    os.symlink(case.outside, smith / "linkdir")
    os.symlink("../Other", smith / "link-other")
    os.symlink(case.outside / "secret.txt", smith / "l1")
    os.symlink(smith / "l1", smith / "l2")
    os.symlink("l2", smith / "chained.txt")


@pytest.fixture(scope="module")
def linked_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    """One case with the symlinks, for every escape (each must leave it as it was)."""
    with making_case(tmp_path_factory.mktemp("escapes")) as made:
        _links(made)
        yield made


@pytest.mark.parametrize(("_what", "tool", "args"), ESCAPES, ids=[c[0] for c in ESCAPES])
def test_reference_path_validation_cases_are_refused(
    linked_case: Case, _what: str, tool: str, args: dict[str, Any]
) -> None:
    if tool == "run_in_sandbox" and not SANDBOX:
        pytest.skip("bubblewrap is not installed: no sandboxed run to try")
    case = linked_case
    args = {
        key: value.format(host=case.root, outside=case.outside) if isinstance(value, str) else value
        for key, value in args.items()
    }
    before = snapshot(case.root), snapshot(case.outside)

    async def main() -> None:
        async with Client(server_for(case.ws, SCOPE, case.agent)) as client:
            result = await client.call_tool(tool, args)
            answer = text(result)
            assert MARK not in answer
            if tool == "run_in_sandbox":  # the command runs; the files outside do not exist
                assert "No such file" in answer
            else:
                assert result.is_error, answer
                assert answer.startswith("Refused (")
            pending = await client.call_tool("show_pending_changes", {})
            assert "No pending changes" in text(pending)

    anyio.run(main)
    assert (snapshot(case.root), snapshot(case.outside)) == before


def test_what_the_scope_may_see_around_it(case: Case) -> None:
    """Safe neighbours of the refused cases: the folders above the scope list only it (and the
    read areas); names with dots are names; a symlink is an entry (listed, deleted), never a
    door, and deleting one leaves its target alone."""
    _links(case)

    async def main() -> None:
        async with connected(server_for(case.ws, SCOPE, case.agent)) as call:
            assert await ok(call, "list_directory", path="/workspace/projects") == "[DIR] Smith"
            assert (await ok(call, "list_directory", path="/workspace")).splitlines() == [
                "[DIR] Tools",
                "[DIR] projects",
            ]
            assert "#!/bin/sh" in await ok(
                call, "read_text_file", path="/workspace/Tools/inventory.sh"
            )
            await refused(call, "write_file", path="/workspace/Tools/planted.sh", content="x")
            await ok(call, "write_file", path=f"{S}/..test", content="dots")
            assert await ok(call, "read_text_file", path=f"{S}/..test") == "dots"
            assert await ok(call, "read_text_file", path="/scope/..test") == "dots"
            info = await ok(call, "get_file_info", path=f"{S}/link-out.txt")
            assert f"size: {len(MARK) + 1}" not in info  # the link's own entry, not its target
            assert "[FILE] linkdir" in await ok(call, "list_directory", path=S)
            await ok(call, "delete_file", path=f"{S}/linkdir")
            plan_id = plan_of(await ok(call, "submit_plan", description="drop a stray link"))
            case.ws.approve(plan_id, by=case.approver)
            assert "Applied" in await ok(call, "apply_plan", plan_id=plan_id)

    anyio.run(main)
    assert not (case.root / SCOPE / "linkdir").is_symlink()
    assert (case.outside / "secret.txt").read_text() == MARK + "\n"


def test_an_unexpected_failure_is_an_answer_without_its_details(case: Case) -> None:
    def broken() -> AgentSession:
        raise RuntimeError("secret internals /srv/ws")

    from airlock.agents.mcp import create_server

    async def main() -> None:
        async with Client(create_server(broken)) as client:
            result = await client.call_tool("list_allowed_directories", {})
            assert result.is_error
            assert "InternalError" in text(result) and "secret internals" not in text(result)

    anyio.run(main)


def test_quickstart_example_runs(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "mcp_quickstart.py"), str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            k: v for k, v in os.environ.items() if k not in ("AIRLOCK_WORKSPACE", "AIRLOCK_TOKEN")
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Applied plan" in done.stdout
    assert (tmp_path / "ws" / "projects" / "Smith" / "index.md").exists()
