"""``airlock serve``: the HTTP service (native API, seed-compatible API, the review web page)."""

import errno
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.context import raise_missing_workspace
from airlock.cli.options import JsonOpt, WorkspaceOpt
from airlock.cli.output import emit, err, guard, out
from airlock.errors import AirlockError, BusyError, InputError, NotPermittedError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104 - names, not a bind


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
        try:
            sock = listen(settings.host, settings.port)
        except AirlockError:
            ws.close()
            raise
    configure_logging(settings.log_level)
    for item in ws.recovered:
        err.print(f"recovered an interrupted {item.kind} of plan {item.plan_id}")
    app_ = create_app(ws, settings)
    base = base_url(settings.host, settings.port)
    where = {
        "listening": f"{settings.host}:{settings.port}",
        "review_page": f"{base}/ui/",
        "health": f"{base}/health",
        "docs": f"{base}/docs" if settings.docs else None,
    }
    emit(as_json, where, lambda: _print_where(where))
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(
            app_,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        ws.close()


def _print_where(where: dict[str, str | None]) -> None:
    out.print(f"Airlock is listening on {where['listening']} (Ctrl+C stops it).", soft_wrap=True)
    out.print(f"  Review page: {where['review_page']}  (sign in with an API token)", soft_wrap=True)
    out.print(f"  Health:      {where['health']}", soft_wrap=True)
    if where["docs"]:
        out.print(f"  API docs:    {where['docs']}", soft_wrap=True)


def base_url(host: str, port: int) -> str:
    """The address a person opens for a service bound to ``host``: this machine's name for a
    wildcard address, brackets around an IPv6 one."""
    if host in WILDCARD:
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` as uvicorn would bind it (IPv6 for an address with a
    colon), for uvicorn to listen on; or an error that says why not: a port another process
    holds is a BusyError, an address or port that cannot be an InputError."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # never over a listener
        sock.bind((host, port))
    except (OSError, OverflowError, UnicodeError) as exc:
        sock.close()
        raise _bind_error(exc, host, port) from None
    return sock


def _bind_error(exc: Exception, host: str, port: int) -> AirlockError:
    where = f"{host}:{port}"
    if not isinstance(exc, OSError) or isinstance(exc, socket.gaierror):
        return InputError(
            f"cannot listen on {where}: {exc}",
            hint="pass --host an address or name of this machine (e.g. 127.0.0.1) and "
            "--port a number from 1 to 65535",
        )
    if exc.errno == errno.EADDRINUSE:
        return BusyError(
            f"another process listens on {where}",
            hint=f"stop that process, or pass another port with --port (e.g. --port {port % 65535 + 1})",
        )
    if exc.errno == errno.EACCES:
        return NotPermittedError(
            f"not permitted to listen on {where}",
            hint="ports below 1024 need privileges: pass --port 1024 or above",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return InputError(
            f"cannot listen on {where}: no interface of this machine has that address",
            hint="pass --host 127.0.0.1, or an address this machine has",
        )
    return InputError(f"cannot listen on {where}: {exc.strerror}", hint="check --host and --port")
