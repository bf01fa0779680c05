"""The ``airlock`` command line: parses options, calls the library, prints the answer.

Every command takes ``--json`` (machine-readable output on stdout) and ``--workspace``
(or ``AIRLOCK_WORKSPACE``). Who acts: with ``--token`` (or ``AIRLOCK_TOKEN``) the token's
principal; without one the local operator, recorded as ``os:<account>``. ``--actor`` is only a
note recorded beside that identity. Exit codes come from :mod:`airlock.errors` (``airlock
--help`` lists them from there; tests/test_cli.py checks this list against it):

    0 ok · 1 unexpected error · 2 usage error · 3 bad input · 4 not found
    5 conflict (wrong status, stale plan, rollback conflict, invalid plan)
    6 not permitted (needs approval, invalid token) · 7 busy (scope locked) · 8 storage failure
    9 integrity failure (audit chain broken) · 10 no sandbox can run here · 11 no preview

The modules, one a command or a group of commands: :mod:`~airlock.cli.plans` (``airlock
plan ...``), :mod:`~airlock.cli.runs` (``run``), :mod:`~airlock.cli.maintenance` (``init``,
``schema``, ``recover``, ``gc``), :mod:`~airlock.cli.audit`, :mod:`~airlock.cli.tokens`, :mod:`~airlock.cli.trash`,
:mod:`~airlock.cli.demo`, :mod:`~airlock.cli.serve` and :mod:`~airlock.cli.mcp`; beside them
what they share: :mod:`~airlock.cli.options`, :mod:`~airlock.cli.output` (answers, errors, exit
codes) and :mod:`~airlock.cli.context` (the workspace and who acts).

Start-up is kept light (issue 10: ``airlock --help`` loads Typer and Rich, not SQLAlchemy,
pydantic or the workspace): the command modules import the library inside the function that
needs it, :mod:`~airlock.cli.typer_light` keeps Typer's own ``--help`` from loading pydantic,
and the command modules do without ``from __future__ import annotations`` (Typer would
otherwise evaluate each string annotation when it builds the command tree, for every command).
tests/test_cli.py checks that ``--help`` of every command leaves those modules unloaded;
``make bench-cli`` times it.
"""

from __future__ import annotations

from airlock.cli import audit, demo, maintenance, mcp, plans, runs, serve, tokens, trash
from airlock.cli.output import exit_codes_help
from airlock.cli.typer_light import App

app = App(
    name="airlock",
    help="Let AI agents change real files safely: every change is a plan that is validated, "
    "approved, applied all-or-nothing, audited, and can be rolled back.",
    epilog=exit_codes_help(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(maintenance.init)
app.command()(maintenance.schema)
app.command(context_settings={"allow_interspersed_args": False})(runs.run)
app.command()(maintenance.recover)
app.command()(maintenance.gc)
app.command()(demo.demo)
app.command()(serve.serve)
app.command()(mcp.mcp)
app.add_typer(plans.app, name="plan")
app.add_typer(audit.app, name="audit")
app.add_typer(tokens.app, name="token")
app.add_typer(trash.app, name="trash")


def main() -> None:
    app()
