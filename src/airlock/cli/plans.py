"""``airlock plan``: submit, show, list, validate, approve, reject, apply and roll back plans."""

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from airlock.cli.context import acting_as, load_json_file, open_workspace
from airlock.cli.options import ActorOpt, JsonOpt, PlanId, TokenOpt, WorkspaceOpt
from airlock.cli.output import (
    EXIT_APPLY_FAILED,
    EXIT_PLAN_INVALID,
    emit,
    err,
    guard,
    out,
    print_report,
    progress_bar,
)
from airlock.cli.typer_light import App

if TYPE_CHECKING:
    from airlock.store import ValidationSummary

app = App(help="Submit, review, approve, apply and roll back plans.", no_args_is_help=True)

ValidationOpt = Annotated[
    int | None,
    typer.Option(
        "--validation",
        help="The validation id you reviewed (`plan show --json`: validation_id); refused if "
        "the plan was checked again since.",
    ),
]
CommentOpt = Annotated[str, typer.Option(help="Why.")]


@app.command("submit")
def plan_submit(
    file: Annotated[Path, typer.Argument(help="A plan as JSON ('-' reads standard input).")],
    workspace: WorkspaceOpt = None,
    plan_id: Annotated[str | None, typer.Option("--id", help="Choose the plan's id.")] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Validate right away.")
    ] = True,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Submit a plan (and validate it, unless --no-validate); you are its author."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        by = acting_as(ws, token, actor)
        data = json.load(sys.stdin) if str(file) == "-" else load_json_file(file)
        record = ws.submit(data, plan_id=plan_id, by=by)
        if validate:
            record = ws.validate(record.id, by=by)
        emit(as_json, record.to_dict(), lambda: print_report(record))
        if record.status == "invalid":
            raise typer.Exit(EXIT_PLAN_INVALID)


DiffOpt = Annotated[
    bool,
    typer.Option(
        "--diff", help="Also show what each overwrite changes inside its file (as `plan diff`)."
    ),
]


def _print_diffs(lines: list[str]) -> None:
    styles = {"+": "green", "-": "red", "@": "cyan", "~": "yellow"}
    for line in lines:
        stripped = line.strip()
        style = "bold yellow" if stripped.startswith("~") else styles.get(line[2:3], "")
        out.print(Text(line, style=style), soft_wrap=True)


@app.command("show")
def plan_show(
    plan_id: PlanId, workspace: WorkspaceOpt = None, diff: DiffOpt = False, as_json: JsonOpt = False
) -> None:
    """Show a plan with its latest validation report and decisions."""
    from airlock import plan_diff  # here, not at the top: `--help` loads nothing heavy

    with open_workspace(workspace, as_json) as ws, guard(as_json):
        record = ws.get(plan_id)
        diffs = plan_diff.record_diffs(ws, record) if diff else []

        def human() -> None:
            print_report(record)
            for d in record.decisions:
                out.print(f"{d['decision']} by {d['actor']} at {d['at']}: {d['comment']}")
            if diff:
                out.print("")
                _print_diffs(plan_diff.diff_lines(diffs, record.plan.scope))

        data = record.to_dict()
        if diff:
            data["diffs"] = [plan_diff.diff_json(d) for d in diffs]
        emit(as_json, data, human)


@app.command("diff")
def plan_diff_command(
    plan_id: PlanId, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Show what each overwrite of a plan changes inside its file: a line diff, with the words
    removed in [-…-] and added in {+…+}."""
    from airlock import plan_diff

    with open_workspace(workspace, as_json) as ws, guard(as_json):
        record = ws.get(plan_id)
        diffs = plan_diff.record_diffs(ws, record)
        emit(
            as_json,
            [plan_diff.diff_json(d) for d in diffs],
            lambda: _print_diffs(plan_diff.diff_lines(diffs, record.plan.scope)),
        )


@app.command("list")
def plan_list(
    workspace: WorkspaceOpt = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only plans with this status (submitted, validated, applied, ...)."),
    ] = None,
    scope: Annotated[str | None, typer.Option(help="Only plans for this scope.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List plans, newest first, each with its latest validation's verdict (no changes: see
    `plan show`)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        if status is not None:
            from airlock.lifecycle import parse_status

            parse_status(status)  # a status no plan can have would list nothing, silently
        records = ws.list_plans(status=status, scope=scope)
        summaries = ws.plan_summaries(status=status, scope=scope)
        listed = [_listed(r.to_dict(), summaries.get(r.id)) for r in records]

        def human() -> None:
            if not records:
                out.print("No plans.")
            for r, entry in zip(records, listed, strict=True):
                out.print(
                    Text(
                        f"{r.id}  {r.status:<12} {_verdict(r.status, entry['validation'])}  "
                        f"{r.plan.scope}  {len(r.plan.operations)} op(s)  "
                        f"by {r.plan.author}  {r.plan.description[:60]}"
                    ),
                    soft_wrap=True,
                )

        emit(as_json, listed, human)


def _listed(data: dict[str, Any], summary: "ValidationSummary | None") -> dict[str, Any]:
    """A plan as `plan list --json` gives it: as `plan show --json`, but its ``validation``
    without ``changes`` and ``preconditions`` (with ``error_count`` and ``warning_count``)."""
    if summary is not None:
        data["validation_id"] = summary["validation_id"]
        data["validation"] = {k: v for k, v in summary.items() if k != "validation_id"}
    return data


def _verdict(status: str, validation: dict[str, Any] | None) -> str:
    """A listed plan's latest validation in a few words."""
    if validation is None:
        return "not validated"
    if not validation["valid"]:
        return f"{validation['error_count']} error(s)"
    waiting = status == "validated" and validation["needs_approval"]
    words = "needs approval" if waiting else "valid"
    if validation["warning_count"]:
        words += f", {validation['warning_count']} warning(s)"
    return words


@app.command("validate")
def plan_validate(
    plan_id: PlanId,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Dry-run a plan against the workspace now and print its report (exit 5 if invalid)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        record = ws.validate(plan_id, by=acting_as(ws, token, actor))
        emit(as_json, record.to_dict(), lambda: print_report(record))
        if record.status == "invalid":
            raise typer.Exit(EXIT_PLAN_INVALID)


def _decide(
    kind: str,
    plan_id: str,
    workspace: Path | None,
    token: str | None,
    actor: str,
    comment: str,
    as_json: bool,
    validation: int | None = None,
) -> None:
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        by = acting_as(ws, token, actor)
        method = ws.approve if kind == "approve" else ws.reject
        record = method(plan_id, by=by, comment=comment, validation_id=validation)
        emit(
            as_json,
            {
                "plan_id": record.id,
                "status": record.status,
                "digest": record.digest,
                "actor": by.name,
                "note": by.note,
            },
            lambda: out.print(
                f"Plan {record.id} {record.status} by {by.name} (digest {record.digest})."
            ),
        )


@app.command("approve")
def plan_approve(
    plan_id: PlanId,
    comment: CommentOpt = "",
    validation: ValidationOpt = None,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a validated plan; the approval is bound to its digest and that validation.

    You approve as your token's principal (--token) or as your OS account; nobody approves a
    plan they submitted."""
    _decide("approve", plan_id, workspace, token, actor, comment, as_json, validation)


@app.command("reject")
def plan_reject(
    plan_id: PlanId,
    comment: CommentOpt = "",
    validation: ValidationOpt = None,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a validated plan; it can never be applied."""
    _decide("reject", plan_id, workspace, token, actor, comment, as_json, validation)


@app.command("apply")
def plan_apply(
    plan_id: PlanId,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Apply a plan all-or-nothing (with a progress bar on a terminal)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        by = acting_as(ws, token, actor)
        bar, update = progress_bar(as_json, "applying")
        if bar is not None:
            with bar:
                result = ws.apply(plan_id, by=by, progress=update)
        else:
            result = ws.apply(plan_id, by=by)

        def human() -> None:
            if result.success:
                out.print(
                    f"[green]Applied plan {plan_id}: {result.operations_completed} operation(s).[/green] "
                    f"Undo with `airlock plan rollback {plan_id}`."
                )
            elif not result.differs:
                err.print(
                    f"[red]Plan {plan_id} failed; the workspace is unchanged.[/red]\n{result.error}"
                )
            else:
                err.print(
                    f"[red]Plan {plan_id} failed and was undone, but {len(result.differs)} "
                    "path(s) are not as they were before it (someone else changed them "
                    f"meanwhile):[/red]\n{result.error}"
                )
                for line in result.differs:
                    err.print(Text(f"  {line}", style="yellow"))

        emit(as_json, result.to_dict(), human)
        if not result.success:
            raise typer.Exit(EXIT_APPLY_FAILED)


@app.command("rollback")
def plan_rollback(
    plan_id: PlanId,
    force: Annotated[
        bool,
        typer.Option(
            help="Roll back even over changes made since the apply (they are set aside, not lost)."
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    token: TokenOpt = None,
    actor: ActorOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Restore the exact bytes from before an applied plan."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        by = acting_as(ws, token, actor)
        if force and not as_json:
            conflicts = ws.rollback_conflicts(plan_id)
            for conflict in conflicts:
                err.print(f"[yellow]--force sets aside (kept in trash): {conflict}[/yellow]")
        bar, update = progress_bar(as_json, "rolling back")
        if bar is not None:
            with bar:
                result = ws.rollback(plan_id, by=by, force=force, progress=update)
        else:
            result = ws.rollback(plan_id, by=by, force=force)
        emit(
            as_json,
            result.to_dict(),
            lambda: out.print(f"[green]Rolled back plan {plan_id}.[/green]"),
        )
