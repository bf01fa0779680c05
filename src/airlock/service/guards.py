"""What the service refuses before any route runs: a Host it is not configured for, and a change
that a browser sent from another origin.

* :class:`HostGuard` answers only the Host values in :func:`answered_hosts`: the bind address,
  ``localhost``, ``127.0.0.1`` and ``[::1]`` with the service's port, and the ``allowed_hosts``
  setting. A page on an attacker's domain that resolves to this machine (DNS rebinding) sends its
  own name as Host, and gets 400.
* :class:`OriginGuard` refuses every state-changing request (POST, PUT, PATCH, DELETE) that
  carries ``Sec-Fetch-Site: same-site`` or ``cross-site``, or an ``Origin`` other than the
  service's own. "Same site" is no protection here: a page on another port of this host, or on a
  sibling subdomain, is same-site, and a SameSite=Strict cookie goes with its requests.
  Requests with neither header (programs, not browsers) pass: the APIs authenticate them by
  bearer token, and the review page, which authenticates by cookie, also demands
  :func:`from_own_origin` and its CSRF token (see ``web.py``).

Both answer with the one error body (:func:`~airlock.service.http_errors.send_error`) and log
what they refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.errors import AirlockError, InputError, NotPermittedError
from airlock.service.http_errors import send_error
from airlock.service.settings import Settings

log = logging.getLogger("airlock.service")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 (names, not a bind)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _bracketed(name: str) -> str:
    """An IPv6 literal in the brackets a Host header gives it."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def answered_hosts(settings: Settings) -> tuple[str, ...]:
    """The Host values the service answers: defaults with the port, then ``allowed_hosts``."""
    names = list(LOOPBACK_NAMES)
    if settings.host not in WILDCARD_ADDRESSES:
        names.insert(0, _bracketed(settings.host.lower()))
    hosts = [f"{name}:{settings.port}" for name in dict.fromkeys(names)]
    for entry in settings.allowed_hosts:
        entry = entry.strip().lower()
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = _bracketed(entry)  # a bare IPv6 address
        hosts.append(entry)
    return tuple(dict.fromkeys(hosts))


def _split(value: str) -> tuple[str, str | None]:
    """(name, port or None) of a Host value; a malformed one comes back whole, matching nothing."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        if not rest:
            return name + "]", None
        return (name + "]", rest[1:]) if rest.startswith(":") else (value, None)
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name, port
    return value, None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _own(scope: Scope) -> tuple[str, str, str | None]:
    """(scheme, host name, port) the request was addressed to (the port filled in if default)."""
    scheme = str(scope.get("scheme", "http"))
    name, port = _split(_header(scope, b"host") or "")
    return scheme, name, port or DEFAULT_PORTS.get(scheme)


def _origin(value: str) -> tuple[str, str, str | None] | None:
    """(scheme, host name, port) of an Origin header; None for ``null`` or garbage."""
    try:
        parts = urlsplit(value.strip().lower())
        scheme, netloc = parts.scheme, parts.netloc
    except ValueError:
        return None
    if not scheme or not netloc or parts.path not in ("", "/"):
        return None
    name, port = _split(netloc)
    return scheme, name, port or DEFAULT_PORTS.get(scheme)


def from_own_origin(scope: Scope) -> bool:
    """True if a browser says this request came from one of the service's own pages."""
    if _header(scope, b"sec-fetch-site") == "same-origin":
        return True
    origin = _header(scope, b"origin")
    return origin is not None and _origin(origin) == _own(scope)


async def _refuse(send: Send, scope: Scope, error: AirlockError, reason: str) -> None:
    log.warning(
        "refused",
        extra={
            "fields": {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": error.http_status,
                "reason": reason,
            }
        },
    )
    await send_error(send, error, headers={"Cache-Control": "no-store"})


class HostGuard:
    """Answer only requests whose Host header is one of ``allowed`` (else 400)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = [_split(entry) for entry in allowed]

    def answers(self, host: str, scheme: str = "http") -> bool:
        name, port = _split(host)
        port = port or DEFAULT_PORTS.get(scheme)
        return any(
            name == allowed and (allowed_port is None or port == allowed_port)
            for allowed, allowed_port in self.allowed
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host is not None and self.answers(host, str(scope.get("scheme", "http"))):
            await self.app(scope, receive, send)
            return
        shown = "no Host header" if host is None else f"the host name {host[:200]!r}"
        error = InputError(
            f"this Airlock service does not answer to {shown}",
            hint="if people or a proxy reach it under that name, add the name to the "
            "allowed_hosts setting (AIRLOCK_ALLOWED_HOSTS, or `airlock serve --allowed-host "
            "NAME`); see docs/operating.md",
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _refuse(send, scope, error, f"host {host!r}")


class OriginGuard:
    """Refuse a state-changing request that a browser sent from another origin (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            site = _header(scope, b"sec-fetch-site")
            origin = _header(scope, b"origin")
            reason = ""
            if site is not None and site not in ("same-origin", "none"):
                reason = f"Sec-Fetch-Site: {site}"
            elif origin is not None and _origin(origin) != _own(scope):
                reason = f"Origin: {origin[:200]}"
            if reason:
                scheme, name, port = _own(scope)
                here = f"{scheme}://{name}" + (
                    "" if port == DEFAULT_PORTS.get(scheme) else f":{port}"
                )
                error = NotPermittedError(
                    f"refused a change sent by a page of another origin ({reason})",
                    hint=f"act on the review page at {here} itself; programs send "
                    "'Authorization: Bearer <token>' and no Origin header",
                )
                await _refuse(send, scope, error, reason)
                return
        await self.app(scope, receive, send)


DEFAULT_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
)
"""On every answer that does not set its own: nothing may frame it, sniff it, or run in it (the
API's JSON; the review page and /docs send policies of their own)."""


class DefaultHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _value in headers}
                headers.extend((k, v) for k, v in DEFAULT_HEADERS if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
