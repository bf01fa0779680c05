"""The workspace a command acts on and the principal it acts as.

The library is imported only once a command is about to touch a workspace: a missing
``--workspace`` is reported before SQLAlchemy or pydantic is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airlock.cli.output import err, guard
from airlock.errors import AuthenticationError, InputError

if TYPE_CHECKING:
    from airlock.permissions import Principal
    from airlock.workspace import Workspace


def raise_missing_workspace() -> NoReturn:
    raise InputError("no workspace given", hint="pass --workspace DIR or set AIRLOCK_WORKSPACE")


@contextmanager
def open_workspace(workspace: Path | None, as_json: bool) -> Iterator[Workspace]:
    """Open the workspace (recovering what a crash left half-done, and saying so), then close it."""
    with guard(as_json):
        if workspace is None:
            raise_missing_workspace()
        from airlock.workspace import Workspace

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


def acting_as(ws: Workspace, token: str | None, note: str = "") -> Principal:
    """Who this command acts as: the token's principal, or the local operator (the OS account)."""
    from airlock.permissions import local_operator

    if not token:
        return local_operator(note)
    from airlock.tokens import authenticate

    found = authenticate(ws, token.strip())
    if found is None:
        raise AuthenticationError(
            "the token is not valid (unknown, malformed or revoked)",
            hint="check --token or AIRLOCK_TOKEN; an administrator creates one with "
            "`airlock token create`",
        )
    return dataclasses.replace(found, note=note.strip())


def load_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file {str(path)!r}", hint="check the path") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{str(path)!r} is not valid JSON: {exc}", hint="fix the JSON") from None
