"""The README's first command: a sample law-firm workspace and one case reorganised, end to end.

Builds the sample workspace (:mod:`airlock.demo.sample`), then walks through what an agent
and a paralegal do: the agent submits a plan, Airlock validates it, a person approves it,
Airlock applies it all-or-nothing, and the person rolls it back, every step in the audit log.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.tree import Tree

from airlock.demo.sample import DEMO_CASE, build_sample_workspace, sample_reorganisation
from airlock.errors import InputError
from airlock.paths import STATE_DIR
from airlock.permissions import Principal, Role
from airlock.report import record_lines
from airlock.workspace import Workspace


def _tree(root: Path, label: str) -> Tree:
    tree = Tree(f"[bold]{label}[/bold]")

    def add(node: Tree, folder: Path) -> None:
        for child in sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name.lower())):
            if child.is_dir() and not child.is_symlink():
                add(node.add(f"[blue]{child.name}/[/blue]"), child)
            else:
                node.add(child.name)

    add(tree, root)
    return tree


def run_demo(workspace: Path, *, reset: bool = False, console: Console | None) -> dict[str, Any]:
    say = console.print if console is not None else (lambda *_a, **_k: None)
    workspace = workspace.absolute()
    if workspace.exists() and any(workspace.iterdir()):
        if not reset:
            raise InputError(
                f"{str(workspace)!r} already exists and is not empty",
                hint="pass --reset to rebuild the demo workspace, or choose another --workspace",
            )
        if not (workspace / STATE_DIR).is_dir() and not (workspace / "projects").is_dir():
            raise InputError(
                f"{str(workspace)!r} does not look like an Airlock demo workspace; not deleting it",
                hint="choose another --workspace",
            )
        shutil.rmtree(workspace)
    build_sample_workspace(workspace)
    case = workspace / "projects" / DEMO_CASE
    say(Rule("1. A law firm's workspace, with one messy case"))
    say(f"Built a sample workspace at [bold]{workspace}[/bold]")
    if console is not None:
        say(_tree(case, f"projects/{DEMO_CASE}/ (before)"))

    ws = Workspace.init(workspace)
    # The demo's two people, as the service would authenticate them by their tokens.
    agent = Principal("paralegal-agent", Role.AGENT, via="demo")
    dana = Principal("dana.whitfield", Role.APPROVER, via="demo")
    try:
        say(Rule("2. The agent submits a plan; Airlock validates it (a dry run)"))
        record = ws.submit(sample_reorganisation(), plan_id="demo-reorganise", by=agent)
        record = ws.validate(record.id, by=agent)
        assert record.validation is not None
        for line in record_lines(record):
            say(line, highlight=False, markup=False, soft_wrap=True)

        say(Rule("3. A paralegal reviews and approves (the agent cannot)"))
        record = ws.approve(record.id, by=dana, comment="Filing looks right.")
        say(f"Approved by dana.whitfield; the approval is bound to {record.digest[:23]}…")

        say(Rule("4. Airlock applies it all-or-nothing, journaled"))
        result = ws.apply(record.id, by=agent)
        say(
            f"Applied: {result.operations_completed} operations, transaction {result.transaction_id}"
        )
        if console is not None:
            say(_tree(case, f"projects/{DEMO_CASE}/ (after)"))

        say(Rule("5. The paralegal changes her mind: rollback restores the exact bytes"))
        rollback = ws.rollback(record.id, by=dana)
        say(
            f"Rolled back ({rollback.operations_completed} changes undone); deleted files restored."
        )

        say(Rule("6. The audit log"))
        events = ws.audit_events(record.id, by=dana)
        for event in events:
            say(f"  {event['seq']:>3}  {event['kind']:<12} by {event['actor']}")
        chain = ws.audit_verify()
        say(f"Audit chain verifies: {chain.ok} ({chain.events} events, head {chain.head[:16]}…)")
        say(Rule())
        say(
            "Try it yourself (after `source .venv/bin/activate`):\n"
            f"  export AIRLOCK_WORKSPACE={workspace}\n"
            "  airlock plan list\n"
            "  airlock plan show demo-reorganise\n"
            "  airlock audit verify\n"
            "  airlock token create --role approver --name you   # prints a token to sign in with\n"
            "  airlock serve                                     # then open http://127.0.0.1:8124/ui/",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return {
            "workspace": str(workspace),
            "plan_id": record.id,
            "applied": result.success,
            "rolled_back": rollback.success,
            "audit_events": len(events),
            "audit_ok": chain.ok,
        }
    finally:
        ws.close()
