"""``airlock token``: create, list and revoke API tokens (stored only as hashes)."""

from typing import Annotated

import typer

from airlock.cli.context import acting_as, open_workspace
from airlock.cli.options import JsonOpt, TokenOpt, WorkspaceOpt
from airlock.cli.output import emit, guard, out
from airlock.cli.typer_light import App

app = App(help="Create, list and revoke API tokens (stored only as hashes).", no_args_is_help=True)


@app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="agent, approver or admin.")],
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. paralegal-agent.")],
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.tokens import create_token, parse_role

        token_id, made = create_token(ws, name, parse_role(role), acting_as(ws, token))
        emit(
            as_json,
            {"token": made, "id": token_id, "name": name, "role": role},
            lambda: out.print(
                f"{made}\n[dim]id {token_id}, role {role}: store it now, it is not shown again[/dim]"
            ),
        )


@app.command("list")
def token_list(
    workspace: WorkspaceOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List tokens (never their secrets)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.tokens import list_tokens

        rows = list_tokens(ws, acting_as(ws, token))

        def human() -> None:
            for row in rows:
                state = "revoked" if row["revoked"] else "active"
                out.print(
                    f"{row['id']}  {row['role']:<9} {state:<8} {row['name']}  {row['created_at']}"
                )

        emit(as_json, rows, human)


@app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `airlock token list`).")],
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token at once."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.tokens import revoke_token

        revoke_token(ws, token_id, acting_as(ws, token))
        emit(as_json, {"revoked": token_id}, lambda: out.print(f"Revoked token {token_id}."))
