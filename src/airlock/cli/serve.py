"""``airlock serve``: the HTTP service (native API, seed-compatible API, the review web page)."""

import os
from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.context import raise_missing_workspace
from airlock.cli.options import JsonOpt, WorkspaceOpt
from airlock.cli.output import err, guard
from airlock.errors import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


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

    from airlock.service.app import configure_logging, create_app
    from airlock.service.settings import load_settings
    from airlock.tokens import any_active_token
    from airlock.workspace import Workspace

    with guard(as_json):
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
