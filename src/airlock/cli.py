"""The ``airlock`` command line: parses options, calls the library, prints the answer.

Every command takes ``--json`` (machine-readable output on stdout) and ``--workspace``
(or ``AIRLOCK_WORKSPACE``). Exit codes come from :mod:`airlock.errors`:

    0 ok · 1 unexpected error · 2 usage error · 3 bad input · 4 not found
    5 conflict (wrong status, stale plan, rollback conflict, invalid plan)
    6 not permitted (needs approval) · 7 busy (scope locked) · 8 storage failure
    9 integrity failure (audit chain broken)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from airlock import audit
from airlock import plan as plan_module
from airlock.errors import AirlockError, InputError, IntegrityError
from airlock.records import PlanRecord
from airlock.report import report_lines
from airlock.sandbox.base import MAX_TIMEOUT
from airlock.workspace import Workspace

app = typer.Typer(
    name="airlock",
    help="Let AI agents change real files safely: every change is a plan that is validated, "
    "approved, applied all-or-nothing, audited, and can be rolled back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(
    help="Submit, review, approve, apply and roll back plans.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="Read, verify and export the hash-chained audit log.", no_args_is_help=True
)
token_app = typer.Typer(
    help="Create, list and revoke API tokens (stored only as hashes).", no_args_is_help=True
)
app.add_typer(plan_app, name="plan")
app.add_typer(audit_app, name="audit")
app.add_typer(token_app, name="token")

out = Console()
err = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="AIRLOCK_WORKSPACE",
        help="The workspace folder (or set AIRLOCK_WORKSPACE).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ActorOpt = Annotated[
    str, typer.Option("--actor", help="Who is acting (recorded in the audit log).")
]
PlanId = Annotated[str, typer.Argument(help="The plan's id (see `airlock plan list`).")]


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        human()


def _fail(error: AirlockError, as_json: bool) -> NoReturn:
    if as_json:
        sys.stdout.write(json.dumps(error.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        err.print(Text(f"error: {error.message}", style="bold red"))
        for line in error.details:
            err.print(Text(f"  - {line}", style="red"))
        if error.hint:
            err.print(Text(f"hint: {error.hint}", style="yellow"))
    raise typer.Exit(error.exit_code)


@contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    try:
        yield
    except AirlockError as error:
        _fail(error, as_json)


@contextmanager
def _open(workspace: Path | None, as_json: bool) -> Iterator[Workspace]:
    with _guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        ws = Workspace(workspace)
        if ws.recovered and not as_json:
            for item in ws.recovered:
                err.print(
                    f"[yellow]recovered an interrupted {item.kind} of plan {item.plan_id}: "
                    + (
                        "the workspace is back to the state before it[/yellow]"
                        if not item.differs and not item.skipped
                        else f"undone, but {len(item.differs)} path(s) are not as before "
                        f"(see `airlock plan show {item.plan_id}`)[/yellow]"
                    )
                )
        try:
            yield ws
        finally:
            ws.close()


def raise_missing_workspace() -> NoReturn:
    raise InputError("no workspace given", hint="pass --workspace DIR or set AIRLOCK_WORKSPACE")


def _print_report(record: PlanRecord) -> None:
    lines = report_lines(
        record.id,
        record.plan.scope,
        record.plan.description,
        record.plan.author,
        record.digest,
        record.status,
        record.validation,
    )
    styles = {"+": "green", "→": "cyan", "~": "yellow", "-": "red"}
    for line in lines:
        stripped = line.strip()
        style = ""
        if stripped[:1] in styles:
            style = styles[stripped[:1]]
        elif stripped.startswith("error:") or stripped.startswith("Invalid"):
            style = "bold red"
        elif stripped.startswith("warning:") or stripped.startswith("Needs"):
            style = "yellow"
        elif stripped.startswith("Plan:"):
            style = "bold"
        out.print(Text(line, style=style), soft_wrap=True)


def _progress_bar(
    as_json: bool, label: str
) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    if as_json or not err.is_terminal:
        return None, None
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


# --- commands ---------------------------------------------------------------------------------


@app.command()
def init(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Prepare a folder as an Airlock workspace (state in DIR/.airlock, default policy)."""
    with _guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        ws = Workspace.init(workspace)
        ws.close()
    _emit(
        as_json,
        {
            "workspace": str(ws.root),
            "state": str(ws.state_dir),
            "policy": str(ws.state_dir / "policy.toml"),
        },
        lambda: out.print(
            f"Workspace ready at [bold]{ws.root}[/bold]; policy in {ws.state_dir / 'policy.toml'}"
        ),
    )


@app.command()
def schema(as_json: JsonOpt = True) -> None:
    """Print the plan format's JSON Schema."""
    sys.stdout.write(json.dumps(plan_module.json_schema(), indent=2) + "\n")


@plan_app.command("submit")
def plan_submit(
    file: Annotated[Path, typer.Argument(help="A plan as JSON ('-' reads standard input).")],
    workspace: WorkspaceOpt = None,
    plan_id: Annotated[str | None, typer.Option("--id", help="Choose the plan's id.")] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who submits (default: the plan's author).")
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Validate right away.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Submit a plan (and validate it, unless --no-validate)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        data = json.load(sys.stdin) if str(file) == "-" else load_json_file(file)
        record = ws.submit(data, plan_id=plan_id, actor=actor)
        if validate:
            record = ws.validate(record.id, actor=actor or record.plan.author)
        _emit(as_json, record.to_dict(), lambda: _print_report(record))
        if record.status == "invalid":
            raise typer.Exit(5)


@plan_app.command("show")
def plan_show(plan_id: PlanId, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Show a plan with its latest validation report and decisions."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        record = ws.get(plan_id)

        def human() -> None:
            _print_report(record)
            for d in record.decisions:
                out.print(f"{d['decision']} by {d['actor']} at {d['at']}: {d['comment']}")

        _emit(as_json, record.to_dict(), human)


@plan_app.command("list")
def plan_list(
    workspace: WorkspaceOpt = None,
    status: Annotated[str | None, typer.Option(help="Only plans with this status.")] = None,
    scope: Annotated[str | None, typer.Option(help="Only plans for this scope.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List plans, newest first."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        records = ws.list_plans(status=status, scope=scope)

        def human() -> None:
            if not records:
                out.print("No plans.")
            for r in records:
                out.print(
                    f"{r.id}  {r.status:<12} {r.plan.scope}  {len(r.plan.operations)} op(s)  "
                    f"by {r.plan.author}  {r.plan.description[:60]}"
                )

        _emit(as_json, [r.to_dict() for r in records], human)


@plan_app.command("validate")
def plan_validate(
    plan_id: PlanId,
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = "airlock",
    as_json: JsonOpt = False,
) -> None:
    """Dry-run a plan against the workspace now and print its report (exit 5 if invalid)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        record = ws.validate(plan_id, actor=actor)
        _emit(as_json, record.to_dict(), lambda: _print_report(record))
        if record.status == "invalid":
            raise typer.Exit(5)


def _decide(
    kind: str,
    plan_id: str,
    workspace: Path | None,
    actor: str,
    comment: str,
    as_json: bool,
    validation: int | None = None,
) -> None:
    with _open(workspace, as_json) as ws, _guard(as_json):
        method = ws.approve if kind == "approve" else ws.reject
        record = method(plan_id, actor=actor, comment=comment, validation_id=validation)
        _emit(
            as_json,
            {
                "plan_id": record.id,
                "status": record.status,
                "digest": record.digest,
                "actor": actor,
            },
            lambda: out.print(
                f"Plan {record.id} {record.status} by {actor} (digest {record.digest})."
            ),
        )


ValidationOpt = Annotated[
    int | None,
    typer.Option(
        "--validation",
        help="The validation id you reviewed (`plan show --json`: validation_id); refused if "
        "the plan was checked again since.",
    ),
]


@plan_app.command("approve")
def plan_approve(
    plan_id: PlanId,
    actor: Annotated[str, typer.Option("--actor", help="Who approves (must not be the author).")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    validation: ValidationOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a validated plan; the approval is bound to its digest and that validation."""
    _decide("approve", plan_id, workspace, actor, comment, as_json, validation)


@plan_app.command("reject")
def plan_reject(
    plan_id: PlanId,
    actor: Annotated[str, typer.Option("--actor", help="Who rejects.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    validation: ValidationOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a validated plan; it can never be applied."""
    _decide("reject", plan_id, workspace, actor, comment, as_json, validation)


@plan_app.command("apply")
def plan_apply(
    plan_id: PlanId,
    workspace: WorkspaceOpt = None,
    actor: ActorOpt = "airlock",
    as_json: JsonOpt = False,
) -> None:
    """Apply a plan all-or-nothing (with a progress bar on a terminal)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        bar, update = _progress_bar(as_json, "applying")
        if bar is not None:
            with bar:
                result = ws.apply(plan_id, actor=actor, progress=update)
        else:
            result = ws.apply(plan_id, actor=actor)

        def human() -> None:
            if result.success:
                out.print(
                    f"[green]Applied plan {plan_id}: {result.operations_completed} operation(s).[/green] "
                    f"Undo with `airlock plan rollback {plan_id} --actor NAME`."
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

        _emit(as_json, result.to_dict(), human)
        if not result.success:
            raise typer.Exit(8)


@plan_app.command("rollback")
def plan_rollback(
    plan_id: PlanId,
    actor: Annotated[str, typer.Option("--actor", help="Who rolls back.")],
    force: Annotated[
        bool,
        typer.Option(
            help="Roll back even over changes made since the apply (they are set aside, not lost)."
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the exact bytes from before an applied plan."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        if force and not as_json:
            conflicts = ws.rollback_conflicts(plan_id)
            for conflict in conflicts:
                err.print(f"[yellow]--force sets aside (kept in trash): {conflict}[/yellow]")
        bar, update = _progress_bar(as_json, "rolling back")
        if bar is not None:
            with bar:
                result = ws.rollback(plan_id, actor=actor, force=force, progress=update)
        else:
            result = ws.rollback(plan_id, actor=actor, force=force)
        _emit(
            as_json,
            result.to_dict(),
            lambda: out.print(f"[green]Rolled back plan {plan_id}.[/green]"),
        )


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """'512M', '2G', '1000' -> bytes."""
    if isinstance(text, int):
        return text
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = cleaned, ""
    if cleaned[-1:] in _SIZE_UNITS:
        number, unit = cleaned[:-1], cleaned[-1]
    try:
        value = float(number)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size; write e.g. 512M or 2G") from None
    if value <= 0:
        raise typer.BadParameter(f"{text!r} must be more than zero")
    return int(value * _SIZE_UNITS[unit])


def _size_option(flag: str, help_text: str) -> Any:
    return typer.Option(flag, help=help_text, parser=parse_size, metavar="SIZE")


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[
        list[str], typer.Argument(help="The command to run, after `--` (e.g. -- python3 sort.py).")
    ],
    scope: Annotated[
        str, typer.Option("--scope", help="The case folder the code may change, e.g. projects/X.")
    ],
    workspace: WorkspaceOpt = None,
    sandbox: Annotated[
        str, typer.Option("--sandbox", help="bwrap (default) or gvisor (needs root).")
    ] = "bwrap",
    network: Annotated[
        bool, typer.Option("--network", help="Let the code use the network (off by default).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Stop the run after this many seconds.", min=0.1, max=MAX_TIMEOUT
        ),
    ] = 300.0,
    memory: Annotated[int, _size_option("--memory", "Memory the code may use.")] = 2 << 30,
    processes: Annotated[
        int, typer.Option("--processes", help="How many processes it may run at once.", min=1)
    ] = 256,
    output: Annotated[
        int, _size_option("--output", "Output (stdout+stderr) kept before the run is stopped.")
    ] = 1 << 20,
    write: Annotated[
        int | None,
        _size_option("--write", "Bytes the code may write (default: the policy's limit)."),
    ] = None,
    actor: ActorOpt = "agent",
    description: Annotated[
        str, typer.Option("--description", help="What the run is for (shown to the reviewer).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Run code over a case in a sandbox; every file it changed comes back as a plan to review.

    Inside, the scope is writable at /scope (and /workspace/<scope>); of the rest of the workspace only the policy's [runs] read areas (Tools/) are there, read-only: never another case. The code runs as ids of its own, never root or the workspace's owner, and there is no network unless --network. The real files change only when the plan is approved and applied.

    Example: airlock run --scope projects/Smith -- python3 /workspace/Tools/sort_records.py

    Exit code: 0 when the command succeeded, 1 when it failed or was stopped (timeout, output limit); Airlock's own errors keep their codes (see `airlock --help`).
    """
    from airlock import runs
    from airlock.sandbox.base import Limits

    with _open(workspace, as_json) as ws, _guard(as_json):
        limits = Limits(
            timeout=timeout,
            memory=memory,
            processes=processes,
            output=output,
            write=write or ws.policy.limits.max_bytes_written,
        )
        result = runs.run(
            ws,
            scope,
            command,
            sandbox=sandbox,
            network=network,
            limits=limits,
            actor=actor,
            description=description,
        )

        def human() -> None:
            sys.stdout.write(result.outcome.stdout.decode("utf-8", "replace"))
            sys.stdout.flush()
            err.print(Text(result.outcome.stderr.decode("utf-8", "replace"), style="dim"), end="")
            for item in result.skipped:
                err.print(Text(f"skipped {item['path']}: {item['reason']}", style="yellow"))
            err.print(Text(f"run {result.run_id}: {result.summary}", style="bold"))
            if result.plan is not None:
                _print_report(result.plan)

        _emit(as_json, result.to_dict(), human)
        if result.outcome.exit_code != 0:
            raise typer.Exit(1)


@app.command()
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
    as_json: JsonOpt = False,
) -> None:
    """Undo any apply or rollback a crashed process left half-done (exit 8 if one cannot be)."""
    with _guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        ws = Workspace(workspace, recover=False)
    try:
        with _guard(as_json):
            if check:
                unfinished = ws.unfinished()
                _emit(
                    as_json,
                    {"unfinished": unfinished},
                    lambda: out.print("\n".join(unfinished) or "Nothing to recover."),
                )
                if unfinished:
                    raise typer.Exit(8)
                return
            done, failures = ws.recover(actor=_os_actor(), resolve=resolve), ws.recovery_failures

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

        _emit(as_json, {"recovered": [r.to_dict() for r in done], "failures": failures}, human)
        if failures:
            raise typer.Exit(8)
    finally:
        ws.close()


def _os_actor() -> str:
    """Who runs a local command: the operating-system account."""
    import getpass

    try:
        return "os:" + getpass.getuser()
    except (KeyError, OSError):
        return f"os:uid-{os.getuid()}"


@app.command()
def gc(
    workspace: WorkspaceOpt = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Days (default: the policy's retention).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Purge kept-aside files older than the retention period (their plans can no longer roll back)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        purged = ws.gc(actor="airlock gc", older_than_days=older_than)

        def human() -> None:
            out.print(f"Purged the kept-aside files of {len(purged)} transaction(s).")
            for kept in ws.gc_kept:
                err.print(Text(f"kept: {kept}", style="yellow"))

        _emit(as_json, {"purged": purged, "kept": ws.gc_kept}, human)


@audit_app.command("verify")
def audit_verify(
    workspace: WorkspaceOpt = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="A head hash kept elsewhere (printed by an earlier verify): refuse unless it "
            "is the hash of an event in the chain; says how many events came after it.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit chain, its signatures and head record, and the plans and decisions
    against it: any edited, forged, deleted, cut-off or reordered event is reported (exit 9)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        report = ws.audit_verify(expect_head=expect_head)

        def human() -> None:
            for warning in report.warnings:
                err.print(Text(warning, style="yellow"))
            for problem in report.problems:
                err.print(Text(problem, style="red"))
            if report.ok:
                out.print(
                    f"[green]Audit chain verifies: {report.events} event(s).[/green] Head: {report.head}"
                )
            signed = report.signatures.signed
            old = report.signatures.unsigned_before_signing
            out.print(
                f"Signatures: {signed} event(s) signed with the audit key"
                + (f", {old} from before signing was enabled." if old else ".")
            )
            if report.anchor is not None and report.anchor["events_after"] is not None:
                out.print(
                    f"Head record: event {report.anchor['seq']}, "
                    f"{report.anchor['events_after']} event(s) after it."
                )
            expected = report.expected_head
            if expected is not None and expected["seq"] is not None:
                out.print(
                    f"Expected head: event {expected['seq']}; "
                    f"{expected['events_after']} event(s) came after it."
                )

        _emit(as_json, report.to_dict(), human)
        if not report.ok:
            if as_json:  # the report says what is wrong; one JSON document on stdout
                raise typer.Exit(IntegrityError.exit_code)
            raise IntegrityError(
                f"the audit log does not verify ({len(report.problems)} problem(s))",
                hint="see docs/operating.md, 'The audit log', for what each problem means",
            )


@audit_app.command("anchor")
def audit_anchor(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Re-anchor the head record at the chain's newest event, on purpose: after restoring a
    backup of the database alone, once the events it lost are accounted for. Prints the old head."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        old, new = ws.audit_reanchor()
        before: dict[str, Any] | str | None = None
        if isinstance(old, audit.Head):
            before = {"seq": old.seq, "hash": old.hash}
        elif old is not None:
            before = old.message

        def human() -> None:
            if isinstance(before, dict):
                out.print(f"The head record said: event {before['seq']}, {before['hash']}")
            elif before:
                err.print(Text(f"The head record was unreadable: {before}", style="yellow"))
            out.print(f"Anchored at event {new.seq}: {new.hash}")

        _emit(as_json, {"previous": before, "head": {"seq": new.seq, "hash": new.hash}}, human)


@audit_app.command("log")
def audit_log(
    workspace: WorkspaceOpt = None,
    plan_id: Annotated[str | None, typer.Option("--plan", help="Only this plan's events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print audit events, oldest first."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        events = ws.audit_events(plan_id)

        def human() -> None:
            for e in events:
                out.print(
                    f"{e['seq']:>5} {e['at']} {e['kind']:<12} {e['plan_id'] or '-'}  by {e['actor']}"
                )

        _emit(as_json, events, human)


@audit_app.command("export")
def audit_export(
    workspace: WorkspaceOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write every audit event as JSON Lines (one event per line, with its hashes)."""
    with _open(workspace, as_json) as ws, _guard(as_json):
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in ws.audit_events()]
        text = "".join(line + "\n" for line in lines)
        if output is None:
            sys.stdout.write(text)
            return
        output.write_text(text, encoding="utf-8")
        _emit(
            as_json,
            {"events": len(lines), "output": str(output)},
            lambda: out.print(f"Wrote {len(lines)} event(s) to {output}."),
        )


@app.command()
def demo(
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Where to build the sample workspace.")
    ] = Path("demo-workspace"),
    reset: Annotated[
        bool, typer.Option(help="Delete and rebuild an existing demo workspace.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build a sample law-firm workspace and walk through reviewing, applying and undoing a plan."""
    from airlock.demo import run_demo

    with _guard(as_json):
        summary = run_demo(workspace, reset=reset, console=None if as_json else out)
    if as_json:
        _emit(True, summary, lambda: None)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="agent, approver or admin.")],
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. paralegal-agent.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from airlock.tokens import create_token, parse_role

    with _open(workspace, as_json) as ws, _guard(as_json):
        token_id, token = create_token(ws, name, parse_role(role), actor="cli")
        _emit(
            as_json,
            {"token": token, "id": token_id, "name": name, "role": role},
            lambda: out.print(
                f"{token}\n[dim]id {token_id}, role {role}: store it now, it is not shown again[/dim]"
            ),
        )


@token_app.command("list")
def token_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    from airlock.tokens import list_tokens

    with _open(workspace, as_json) as ws, _guard(as_json):
        rows = list_tokens(ws)

        def human() -> None:
            for row in rows:
                state = "revoked" if row["revoked"] else "active"
                out.print(
                    f"{row['id']}  {row['role']:<9} {state:<8} {row['name']}  {row['created_at']}"
                )

        _emit(as_json, rows, human)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `airlock token list`).")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token at once."""
    from airlock.tokens import revoke_token

    with _open(workspace, as_json) as ws, _guard(as_json):
        revoke_token(ws, token_id, actor="cli")
        _emit(as_json, {"revoked": token_id}, lambda: out.print(f"Revoked token {token_id}."))


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8124).")] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host name the service answers besides localhost, 127.0.0.1, [::1] and the "
            "bind address (e.g. the name a proxy forwards); repeat for several. Replaces the "
            "allowed_hosts setting.",
        ),
    ] = None,
    docs: Annotated[
        bool | None,
        typer.Option(
            "--docs/--no-docs",
            help="Serve Swagger UI at /docs (loads it from a CDN; off by default).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", envvar="AIRLOCK_CONFIG", help="A TOML settings file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the HTTP service: native API, seed-compatible API and the review web page."""
    import uvicorn

    from airlock.errors import InputError
    from airlock.service.app import configure_logging, create_app
    from airlock.service.settings import load_settings
    from airlock.tokens import any_active_token

    with _guard(as_json):
        settings = load_settings(config).with_overrides(
            workspace=workspace,
            host=host,
            port=port,
            allowed_hosts=tuple(allowed_host) if allowed_host else None,
            docs=docs,
        )
        if workspace is None and "AIRLOCK_WORKSPACE" not in os.environ and config is None:
            raise_missing_workspace()
        ws = Workspace(settings.workspace, database_url=settings.database_url)
        if settings.host not in LOOPBACK and not any_active_token(ws):
            ws.close()
            raise InputError(
                f"refusing to listen on {settings.host}: no API token exists, so anyone could call it",
                hint="create one with `airlock token create --role admin --name NAME`, or listen on 127.0.0.1",
            )
    configure_logging(settings.log_level)
    for item in ws.recovered:
        err.print(f"recovered an interrupted {item.kind} of plan {item.plan_id}")
    app_ = create_app(ws, settings)
    try:
        uvicorn.run(
            app_, host=settings.host, port=settings.port, log_level="warning", access_log=False
        )
    finally:
        ws.close()


def load_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file {str(path)!r}", hint="check the path") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{str(path)!r} is not valid JSON: {exc}", hint="fix the JSON") from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
