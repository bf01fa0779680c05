"""``airlock mcp``: Airlock's agent tools as an MCP server (stdio, or streamable HTTP)."""

import sys
from typing import Annotated

import typer

from airlock.cli.context import acting_as, raise_missing_workspace
from airlock.cli.options import TokenOpt, WorkspaceOpt
from airlock.cli.output import guard
from airlock.errors import InputError

DEFAULT_PORT = 8125


def mcp(
    workspace: WorkspaceOpt = None,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            envvar="AIRLOCK_SCOPE",
            help="The scope the agent works in, e.g. projects/Smith (or set AIRLOCK_SCOPE).",
            show_default=False,
        ),
    ] = None,
    token: TokenOpt = None,
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Serve streamable HTTP instead of stdio: every request must then carry an "
            "Airlock token (Authorization: Bearer ...), and acts as that token's principal "
            "(--token is not used).",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="With --http: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --http: the port.")] = DEFAULT_PORT,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="With --http: a Host name answered besides the bound address (e.g. the name "
            "a proxy forwards); repeat for several. Any other Host or Origin is refused.",
        ),
    ] = None,
) -> None:
    """Serve Airlock's agent tools over MCP: the reference filesystem server's tool names, whose
    changes become a pending plan, plus the plan's tools (submit, apply, roll back, run code)."""
    with guard(False):
        if workspace is None:
            raise_missing_workspace()
        if not scope:
            raise InputError(
                "no scope given",
                hint="pass --scope, e.g. --scope projects/Smith, or set AIRLOCK_SCOPE",
            )
        from airlock.agents.session import AgentSession
        from airlock.workspace import Workspace

        ws = Workspace(workspace)
        try:
            by = acting_as(ws, None if http else token)
            AgentSession(ws, scope, by)  # refuses a scope that is not a case folder at once
        except BaseException:
            ws.close()
            raise
    try:
        # The SDK is loaded only now: a wrong token or scope is refused without waiting for it.
        from airlock.agents.mcp import http_app, server_for

        if http:
            import uvicorn

            app = http_app(ws, scope, host=host, port=port, allowed_host=tuple(allowed_host or ()))
            url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/mcp"
            sys.stderr.write(f"airlock mcp: streamable HTTP on {url} (scope {scope})\n")
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        else:
            # stdout carries the protocol: anything else goes to stderr.
            server_for(ws, scope, by).run("stdio")
    except KeyboardInterrupt:
        sys.exit(0)
    finally:
        ws.close()
