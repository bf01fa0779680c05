"""``airlock trash``: what applies and rollbacks kept aside, and putting it back (as a plan)."""

from typing import Annotated

import typer

from airlock.cli.context import acting_as, open_workspace
from airlock.cli.options import ActorOpt, JsonOpt, TokenOpt, WorkspaceOpt
from airlock.cli.output import emit, guard, out, print_report
from airlock.cli.typer_light import App

app = App(
    help="What applies and rollbacks kept aside (deleted and overwritten files, what a rollback "
    "removed), and restoring it as a plan.",
    no_args_is_help=True,
)


@app.command("list")
def trash_list(
    workspace: WorkspaceOpt = None,
    scope: Annotated[
        str | None, typer.Option(help="Only what plans over this scope kept aside.")
    ] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List what is kept aside: where it was, its plan, since when, and the days left before
    `airlock gc` may purge it."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.report import human_bytes
        from airlock.trash import kept_aside

        found = kept_aside(ws, scope=scope, by=acting_as(ws, token))

        def human() -> None:
            if not found:
                out.print("Nothing is kept aside.")
            for item in found:
                what = "folder " if item.entry == "dir" else ""
                out.print(
                    f"{item.id}  {what}{item.path} ({human_bytes(item.size)})  "
                    f"plan {item.plan_id} ({item.kind}), kept since {item.kept_since[:16]}, "
                    f"{item.days_left:g} day(s) left"
                )
            if found:
                out.print("[dim]Restore one with `airlock trash restore ID` (a plan).[/dim]")

        emit(as_json, [item.to_dict() for item in found], human)


@app.command("restore")
def trash_restore(
    item: Annotated[str, typer.Argument(help="What to restore: its id from `airlock trash list`.")],
    to: Annotated[
        str | None,
        typer.Option(help="Restore it here instead (a workspace path in the same scope)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Submit (and validate) a plan that puts a kept-aside file or folder back; it is
    approved and applied like any other plan."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.trash import restore

        record = restore(ws, item, to=to, by=acting_as(ws, token, actor))
        emit(as_json, record.to_dict(), lambda: print_report(record))
