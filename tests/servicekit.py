"""Start the real Airlock service for the HTTP tests: in a thread, or as a separate process.

* :func:`running_service` builds a fresh sample workspace (:func:`build_sample_workspace` +
  ``Workspace.init``), creates one token per role, and serves :func:`create_app` with uvicorn on
  a free loopback port in a background thread. It yields a :class:`Service` whose
  :meth:`Service.client` makes an ``httpx.Client`` acting as a role (or with any token).
* :func:`served_process` runs ``python -m airlock serve`` as a child process and waits until its
  ``/health`` answers; :func:`make_workspace` / :func:`make_tokens` prepare what it serves.
* :func:`poll_until` waits for a condition with a deadline (for things that have no event).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from airlock.demo.sample import build_sample_workspace
from airlock.service.app import create_app
from airlock.service.settings import Settings
from airlock.tokens import Role, create_token, revoke_token
from airlock.workspace import Workspace

T = TypeVar("T")

ROLES: tuple[Role, ...] = (Role.AGENT, Role.APPROVER, Role.ADMIN)
TOKEN_NAMES: dict[Role, str] = {
    Role.AGENT: "paralegal-agent",
    Role.APPROVER: "jane-approver",
    Role.ADMIN: "ops-admin",
}
DEMO_CASE = "Abby-Sitgraves-MVA-7-13-2024"
"""A case folder of the sample workspace (projects/<DEMO_CASE>)."""

STARTUP_DEADLINE = 30.0


def poll_until(
    check: Callable[[], T | None], *, deadline: float = 60.0, every: float = 0.02, what: str = ""
) -> T:
    """Call ``check`` until it returns something other than None; fail after ``deadline`` s."""
    gate = threading.Event()  # never set: its timed wait paces the polling
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline}s waiting for {what or check!r}")
        gate.wait(every)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_workspace(root: Path) -> Workspace:
    """The sample firm share at ``root``, prepared as an Airlock workspace (and opened)."""
    build_sample_workspace(root)
    return Workspace.init(root)


def make_tokens(ws: Workspace) -> tuple[dict[Role, str], dict[Role, str]]:
    """One token per role: (role -> token, role -> token id)."""
    tokens: dict[Role, str] = {}
    ids: dict[Role, str] = {}
    for role in ROLES:
        ids[role], tokens[role] = create_token(ws, TOKEN_NAMES[role], role)
    return tokens, ids


@dataclass
class Service:
    root: Path
    ws: Workspace
    url: str
    tokens: dict[Role, str]
    token_ids: dict[Role, str]
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(
        self, role: Role | str | None = None, *, token: str | None = None, timeout: float = 120.0
    ) -> httpx.Client:
        """A client acting as ``role`` (or sending ``token``; neither: no Authorization header)."""
        headers: dict[str, str] = {}
        if role is not None:
            token = self.tokens[Role(role)]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def revoked_token(self) -> str:
        """A token that was valid (an approver's) and is revoked now."""
        token_id, token = create_token(self.ws, "revoked-approver", Role.APPROVER)
        revoke_token(self.ws, token_id)
        return token

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that never touches signal handlers and reports when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serve_app(ws: Workspace, settings: Settings | None = None) -> Iterator[str]:
    """Serve ``ws`` with the real app on a free loopback port in a thread; yields its base URL.
    ``settings.port`` is set to that port (the service answers only Host values with its port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = dataclasses.replace(settings or Settings(workspace=ws.root), port=port)
    app = create_app(ws, settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _ThreadServer(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
        finally:
            server.ready.set()  # never leave the starter waiting on a server that died

    thread = threading.Thread(target=run, name=f"airlock-test-server-{port}", daemon=True)
    thread.start()
    try:
        if not server.ready.wait(STARTUP_DEADLINE) or not server.started:
            raise AssertionError(f"the test server did not start: {failure!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        assert not thread.is_alive(), "the test server did not stop"


@contextmanager
def running_service(root: Path, settings: Settings | None = None) -> Iterator[Service]:
    """A fresh sample workspace at ``root``, tokens for every role, and the service serving it."""
    ws = make_workspace(root)
    try:
        tokens, ids = make_tokens(ws)
        with serve_app(ws, settings) as url:
            service = Service(root=ws.root, ws=ws, url=url, tokens=tokens, token_ids=ids)
            try:
                yield service
            finally:
                service.close_clients()
    finally:
        ws.close()


# --- the service as a child process ---------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def serve_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "airlock", "serve", "--workspace", str(root), *extra]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AIRLOCK_WORKSPACE", None)
    env.pop("AIRLOCK_CONFIG", None)
    env.pop("AIRLOCK_DATABASE_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def served_process(
    root: Path, log: Path, *, deadline: float = STARTUP_DEADLINE
) -> Iterator[ServerProcess]:
    """``python -m airlock serve --workspace root --port P`` until ``/health`` answers."""
    for _attempt in range(5):
        port = free_port()
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                serve_command(root, "--port", str(port)),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}", port=port, log=log)
        try:
            if _wait_healthy(server, deadline):
                break
        except BaseException:
            server.kill()
            raise
        server.kill()  # lost the race for the port: try another
    else:
        raise AssertionError(f"the service did not start:\n{log.read_text(errors='replace')}")
    try:
        yield server
    finally:
        server.stop()


def _wait_healthy(server: ServerProcess, deadline: float) -> bool:
    """True once /health answers; False if the process exited first (e.g. the port was taken)."""

    def check() -> bool | None:
        if server.proc.poll() is not None:
            return False
        try:
            httpx.get(server.url + "/health", timeout=5).raise_for_status()
        except httpx.TransportError:
            return None
        return True

    return poll_until(check, deadline=deadline, every=0.05, what="the service's /health")


def json_of(response: httpx.Response) -> Any:
    """The response's JSON, with the response in the failure message if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise AssertionError(
            f"{response.request.method} {response.request.url} -> {response.status_code}, "
            f"not JSON: {response.text[:500]!r}"
        ) from None


def signed_in(service: Service, role: Role = Role.APPROVER) -> httpx.Client:
    """A client signed in to the review page with the role's token, as a browser would be."""
    client = service.client()
    response = client.post(
        "/ui/sign-in",
        data={"token": service.tokens[role], "next": "/ui/"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303, response.text
    return client
