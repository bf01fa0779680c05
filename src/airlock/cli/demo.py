"""``airlock demo``: a sample law-firm workspace and a walk through one plan's life."""

from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.options import JsonOpt
from airlock.cli.output import emit, guard, out


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

    with guard(as_json):
        summary = run_demo(workspace, reset=reset, console=None if as_json else out)
    if as_json:
        emit(True, summary, lambda: None)
