"""How a command's answer, its errors and its exit code come out.

``--json`` puts one JSON document on stdout (the answer, or the error's ``to_dict()``);
otherwise people get Rich text, errors and warnings on stderr. Exit codes come from the error
tree in :mod:`airlock.errors`, never from numbers written here.

Light on purpose: this module is loaded for every command, ``--help`` included, so what it needs
of the library (reports, progress bars) is imported inside the function that prints it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from airlock import errors
from airlock.errors import AirlockError

if TYPE_CHECKING:
    from rich.progress import Progress

    from airlock.records import PlanRecord

out = Console()
err = Console(stderr=True)

# Outcomes that end a command without raising an error, and the code of the error they amount
# to (airlock.errors is to give these their own names; until then, its classes' codes):
EXIT_PLAN_INVALID = errors.PlanInvalidError.exit_code  # validation found errors
EXIT_APPLY_FAILED = errors.StorageError.exit_code  # an apply failed and was undone
EXIT_NOT_RECOVERED = errors.StorageError.exit_code  # a transaction is left unfinished
EXIT_AUDIT_BROKEN = errors.IntegrityError.exit_code  # the audit log does not verify
EXIT_RUN_FAILED = errors.AirlockError.exit_code  # `airlock run`: the code failed or was stopped


def exit_codes() -> dict[int, str]:
    """Every exit code, with what it means: 0 and click's 2, then for each code in
    :mod:`airlock.errors` the most general class that carries it."""
    codes = {0: "ok", 2: "usage error"}
    classes = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, AirlockError)
    ]
    for cls in sorted(classes, key=lambda c: len(c.__mro__)):
        name = cls.__name__ + (" (or any unexpected error)" if cls is AirlockError else "")
        codes.setdefault(cls.exit_code, name)
    return dict(sorted(codes.items()))


def exit_codes_help() -> str:
    """The line ``airlock --help`` ends with."""
    listed = " · ".join(f"{code} {meaning}" for code, meaning in exit_codes().items())
    return f"Exit codes: {listed} (with --json, the error's name and hint are on stdout)."


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for a person."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        human()


def fail(error: AirlockError, as_json: bool) -> NoReturn:
    """Print ``error`` (message, details, hint) and exit with its class's code."""
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
def guard(as_json: bool) -> Iterator[None]:
    """Turn an Airlock error raised inside into its printed form and exit code."""
    try:
        yield
    except AirlockError as error:
        fail(error, as_json)


def print_report(record: PlanRecord) -> None:
    """A plan's validation report, coloured by line: creations green, moves cyan, and so on."""
    from airlock.report import record_lines

    lines = record_lines(record)
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


def progress_bar(
    as_json: bool, label: str
) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    """A progress bar on stderr and its update function, or (None, None) off a terminal."""
    if as_json or not err.is_terminal:
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

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
