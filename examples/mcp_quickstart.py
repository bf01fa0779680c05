"""Quickstart for MCP clients: an agent reorganises a case through ``airlock mcp``.

    python examples/mcp_quickstart.py [WORKSPACE]

It makes a small workspace (default: a temporary folder) with one case, creates an agent token,
starts ``airlock mcp`` over stdio with the MCP Python SDK's client (as Claude Desktop or any MCP
host would), and calls the tools a model would: look around, write an index, file a scan,
review the pending plan, submit it. The plan overwrites nothing, so the policy lets the agent
apply it at once; the real files change only then, and a rollback would undo it.
(tests/test_agents_mcp.py runs this file.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import TextContent

from airlock.tokens import Role, create_token
from airlock.workspace import Workspace

SCOPE = "projects/Smith"
CASE = "/workspace/projects/Smith"  # the scope, as the agent's tools name it


def make_workspace(root: Path) -> str:
    """A firm share with one case, prepared for Airlock; returns an agent token for it."""
    (root / SCOPE / "inbox").mkdir(parents=True)
    (root / SCOPE / "inbox" / "lee-2024-03-01.pdf").write_bytes(b"%PDF-1.4 visit")
    (root / SCOPE / "notes.txt").write_text("Client: J. Smith\n")
    ws = Workspace.init(root)
    try:
        _, token = create_token(ws, "quickstart-agent", Role.AGENT)
    finally:
        ws.close()
    return token


async def main(root: Path) -> None:
    token = make_workspace(root)
    # What an MCP host's configuration says: the command, its arguments, the token.
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "airlock", "mcp", "--workspace", str(root), "--scope", SCOPE],
        env={"AIRLOCK_TOKEN": token},
    )
    async with Client(server) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))

        async def call(name: str, **arguments: object) -> str:
            result = await client.call_tool(name, arguments)
            block = result.content[0]
            answer = block.text if isinstance(block, TextContent) else repr(block)
            print(f"\n> {name} {arguments}\n{answer}")
            return answer

        await call("list_allowed_directories")
        await call("directory_tree", path=CASE)
        await call("write_file", path=f"{CASE}/index.md", content="# Index\n- inbox: 1 scan\n")
        await call("create_directory", path=f"{CASE}/Medical Records/Dr Lee")
        await call(
            "move_file",
            source=f"{CASE}/inbox/lee-2024-03-01.pdf",
            destination=f"{CASE}/Medical Records/Dr Lee/lee-2024-03-01.pdf",
        )
        await call("show_pending_changes")
        submitted = await call("submit_plan", description="File Dr Lee's visit; add an index")
        plan_id = submitted.split()[2].rstrip(".")
        await call("apply_plan", plan_id=plan_id)

    print("\nreal files now:")
    for path in sorted((root / SCOPE).rglob("*")):
        print("  ", path.relative_to(root))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            anyio.run(main, Path(folder) / "ws")
