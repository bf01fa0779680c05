"""The options most commands share: where the workspace is, who acts, and ``--json``.

Only types and help texts live here, so that parsing a command line and printing its
``--help`` need nothing of the library.
"""

from pathlib import Path
from typing import Annotated

import typer

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
    str,
    typer.Option(
        "--actor",
        help="A note on whom you act for, recorded beside your identity (never instead of it).",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="AIRLOCK_TOKEN",
        help="Act as this API token's principal (or set AIRLOCK_TOKEN); without one you act as "
        "the local operator, recorded as os:<your account>.",
        show_default=False,
    ),
]
PlanId = Annotated[str, typer.Argument(help="The plan's id (see `airlock plan list`).")]
