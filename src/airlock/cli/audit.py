"""``airlock audit``: verify, re-anchor, read and export the hash-chained audit log."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from airlock.cli.context import acting_as, open_workspace
from airlock.cli.options import JsonOpt, TokenOpt, WorkspaceOpt
from airlock.cli.output import EXIT_AUDIT_BROKEN, emit, err, guard, out
from airlock.cli.typer_light import App
from airlock.errors import IntegrityError

app = App(help="Read, verify and export the hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
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
    with open_workspace(workspace, as_json) as ws, guard(as_json):
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

        emit(as_json, report.to_dict(), human)
        if not report.ok:
            if as_json:  # the report says what is wrong; one JSON document on stdout
                raise typer.Exit(EXIT_AUDIT_BROKEN)
            raise IntegrityError(
                f"the audit log does not verify ({len(report.problems)} problem(s))",
                hint="see docs/operating.md, 'The audit log', for what each problem means",
            )


@app.command("anchor")
def audit_anchor(
    workspace: WorkspaceOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Re-anchor the head record at the chain's newest event, on purpose: after restoring a
    backup of the database alone, once the events it lost are accounted for. Prints the old head."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        from airlock.audit import Head

        old, new = ws.audit_reanchor(by=acting_as(ws, token))
        before: dict[str, Any] | str | None = None
        if isinstance(old, Head):
            before = {"seq": old.seq, "hash": old.hash}
        elif old is not None:
            before = old.message

        def human() -> None:
            if isinstance(before, dict):
                out.print(f"The head record said: event {before['seq']}, {before['hash']}")
            elif before:
                err.print(Text(f"The head record was unreadable: {before}", style="yellow"))
            out.print(f"Anchored at event {new.seq}: {new.hash}")

        emit(as_json, {"previous": before, "head": {"seq": new.seq, "hash": new.hash}}, human)


@app.command("log")
def audit_log(
    workspace: WorkspaceOpt = None,
    plan_id: Annotated[str | None, typer.Option("--plan", help="Only this plan's events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print audit events, oldest first."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        events = ws.audit_events(plan_id)

        def human() -> None:
            for e in events:
                out.print(
                    f"{e['seq']:>5} {e['at']} {e['kind']:<12} {e['plan_id'] or '-'}  by {e['actor']}"
                )

        emit(as_json, events, human)


@app.command("export")
def audit_export(
    workspace: WorkspaceOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write every audit event as JSON Lines (one event per line, with its hashes)."""
    with open_workspace(workspace, as_json) as ws, guard(as_json):
        lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in ws.audit_events()]
        text = "".join(line + "\n" for line in lines)
        if output is None:
            sys.stdout.write(text)
            return
        output.write_text(text, encoding="utf-8")
        emit(
            as_json,
            {"events": len(lines), "output": str(output)},
            lambda: out.print(f"Wrote {len(lines)} event(s) to {output}."),
        )
