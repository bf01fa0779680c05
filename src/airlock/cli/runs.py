"""``airlock run``: code over a case in a sandbox, its changes back as a plan to review."""

import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from airlock.cli.context import acting_as, open_workspace
from airlock.cli.options import ActorOpt, JsonOpt, TokenOpt, WorkspaceOpt
from airlock.cli.output import EXIT_RUN_FAILED, emit, err, guard, print_report

# airlock.sandbox.base.MAX_TIMEOUT, repeated so that parsing options and printing --help load no
# sandbox module (tests/test_cli.py checks that the two agree).
MAX_TIMEOUT = 24 * 3600

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


# Registered with context_settings={"allow_interspersed_args": False} (see airlock.cli): what
# follows the command's first word belongs to it, not to airlock.
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
    token: TokenOpt = None,
    actor: ActorOpt = "",
    description: Annotated[
        str, typer.Option("--description", help="What the run is for (shown to the reviewer).")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Run code over a case in a sandbox; every file it changed comes back as a plan to review.

    Inside, the scope is writable at /scope (and /workspace/<scope>); of the rest of the workspace only the policy's \\[runs] read areas (Tools/) are there, read-only: never another case. The code runs as ids of its own, never root or the workspace's owner, and there is no network unless --network. The real files change only when the plan is approved and applied.

    Example: airlock run --scope projects/Smith -- python3 /workspace/Tools/sort_records.py

    Exit code: 0 when the command succeeded, 1 when it failed or was stopped (timeout, output limit); Airlock's own errors keep their codes (see `airlock --help`).
    """
    from airlock import runs
    from airlock.sandbox.base import Limits

    with open_workspace(workspace, as_json) as ws, guard(as_json):
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
            by=acting_as(ws, token, actor),
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
                print_report(result.plan)

        emit(as_json, result.to_dict(), human)
        if result.outcome.exit_code != 0:
            raise typer.Exit(EXIT_RUN_FAILED)
