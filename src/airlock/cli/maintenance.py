"""Looking after a workspace: ``init``, ``schema``, ``recover`` and ``gc``."""

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from airlock.cli.context import acting_as, open_workspace, raise_missing_workspace
from airlock.cli.options import JsonOpt, TokenOpt, WorkspaceOpt
from airlock.cli.output import EXIT_NOT_RECOVERED, emit, err, guard, out


def init(
    workspace: WorkspaceOpt = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="LOCATION",
            help="Where the files are, when not in the workspace folder: gs://BUCKET or gs://BUCKET/PREFIX "
            "(needs airlock[gcs] and Google credentials, or STORAGE_EMULATOR_HOST). The state "
            "(policy, journal, database) stays in the workspace folder on local disk.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Prepare a folder as an Airlock workspace (state in DIR/.airlock, default policy)."""
    with guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        from airlock.workspace import Workspace

        ws = Workspace.init(workspace, storage=storage)
        ws.close()
    emit(
        as_json,
        {
            "workspace": str(ws.root),
            "files": ws.location,
            "state": str(ws.state_dir),
            "policy": str(ws.state_dir / "policy.toml"),
        },
        lambda: out.print(
            f"Workspace ready at [bold]{ws.root}[/bold]"
            + (f" for the files in [bold]{escape(ws.location)}[/bold]" if storage else "")
            + f"; policy in {ws.state_dir / 'policy.toml'}"
        ),
    )


def schema(as_json: JsonOpt = True) -> None:
    """Print the plan format's JSON Schema."""
    from airlock.plan import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


def recover(
    workspace: WorkspaceOpt = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Only list unfinished transactions (what recovery would undo)."
        ),
    ] = False,
    resolve: Annotated[
        bool,
        typer.Option(
            "--resolve",
            help="For an undo that keeps failing (a folder someone renamed or replaced with a "
            "link): skip the steps that cannot be undone, finish the rest, close the "
            "transaction and list every path not as it was before. Nothing is deleted; "
            "kept-aside files stay in .airlock/trash/<transaction>.",
        ),
    ] = False,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo any apply or rollback a crashed process left half-done (exit 8 if one cannot be)."""
    with guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        from airlock.workspace import Workspace

        ws = Workspace(workspace, recover=False)
    try:
        with guard(as_json):
            if check:
                unfinished = ws.unfinished()
                emit(
                    as_json,
                    {"unfinished": unfinished},
                    lambda: out.print("\n".join(unfinished) or "Nothing to recover."),
                )
                if unfinished:
                    raise typer.Exit(EXIT_NOT_RECOVERED)
                return
            by = acting_as(ws, token)
            done, failures = ws.recover(resolve=resolve, by=by), ws.recovery_failures

        def human() -> None:
            out.print(
                "Nothing to recover." if not done else f"Recovered {len(done)} transaction(s)."
            )
            for item in done:
                for line in item.skipped:
                    err.print(Text(f"skipped {line}", style="yellow"))
                for line in item.differs:
                    err.print(Text(f"not as before: {line}", style="yellow"))
            for failure in failures:
                err.print(Text(f"could not recover: {failure}", style="red"))
            if failures and not resolve:
                err.print(
                    "Fix the cause and run `airlock recover` again; if it cannot be fixed, "
                    "`airlock recover --resolve` skips what cannot be undone (see --help)."
                )

        emit(as_json, {"recovered": [r.to_dict() for r in done], "failures": failures}, human)
        if failures:
            raise typer.Exit(EXIT_NOT_RECOVERED)
    finally:
        ws.close()


def gc(
    workspace: WorkspaceOpt = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Days (default: the policy's retention).")
    ] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Purge kept-aside files older than the retention period (their plans can no longer roll back)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        purged = ws.gc(older_than_days=older_than, by=acting_as(ws, token))

        def human() -> None:
            out.print(f"Purged the kept-aside files of {len(purged)} transaction(s).")
            for kept in ws.gc_kept:
                err.print(Text(f"kept: {kept}", style="yellow"))

        emit(as_json, {"purged": purged, "kept": ws.gc_kept}, human)
