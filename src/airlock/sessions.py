"""Review-page sessions: what a signed-in browser holds instead of the API token.

Signing in with a token starts a session: a random secret that the browser keeps in its cookie
(only the secret's SHA-256 is stored, in ``web_sessions``), bound to that token, with a CSRF token
that the page's forms carry. A session ends when it expires, at sign-out (revoked here, so a
copy of the cookie is dead too), and as soon as its token is revoked. A session is good for the
review page only: the APIs take bearer tokens, never a session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_

from airlock.db import TokenRow, WebSessionRow, utcnow
from airlock.errors import InputError
from airlock.tokens import Principal, Role
from airlock.workspace import Workspace

DEFAULT_LIFETIME = dt.timedelta(hours=12)
MAX_SECRET_LENGTH = 200
"""A presented secret longer than this is not one of ours (ours are 43 characters)."""


@dataclass(frozen=True)
class WebSession:
    """A signed-in review page: who it acts as, and the CSRF token its forms must carry."""

    principal: Principal
    csrf: str
    expires_at: dt.datetime

    def csrf_matches(self, presented: str) -> bool:
        """True if ``presented`` is this session's CSRF token (compared in constant time)."""
        return bool(presented) and hmac.compare_digest(
            presented.encode("utf-8", "backslashreplace"), self.csrf.encode()
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "backslashreplace")).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def start_session(
    ws: Workspace,
    principal: Principal,
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    *,
    now: dt.datetime | None = None,
) -> tuple[str, WebSession]:
    """A new session for ``principal``: (the secret for the cookie, the session).

    The secret is returned once and never stored. Sessions that have expired or were revoked are
    removed on the way.
    """
    if lifetime <= dt.timedelta(0):
        raise InputError("a session must last some time", hint="give a positive lifetime")
    if principal.token_id is None:
        raise InputError(
            f"{principal.name!r} did not sign in with a token", hint="sign in with an API token"
        )
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + lifetime
    with ws.session() as session:
        session.execute(
            delete(WebSessionRow).where(
                or_(WebSessionRow.expires_at < now, WebSessionRow.revoked_at.is_not(None))
            )
        )
        session.add(
            WebSessionRow(
                id_sha256=_hash(secret),
                token_id=principal.token_id,
                csrf=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
    return secret, WebSession(principal=principal, csrf=csrf, expires_at=expires)


def find_session(
    ws: Workspace, secret: str, *, now: dt.datetime | None = None
) -> WebSession | None:
    """The live session behind ``secret``, or None: unknown, expired, signed out, or its token
    revoked."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    now = now or utcnow()
    with ws.read_session() as session:
        row = session.get(WebSessionRow, _hash(secret))
        if row is None or row.revoked_at is not None or _aware(row.expires_at) <= now:
            return None
        token = session.get(TokenRow, row.token_id)
        if token is None or token.revoked_at is not None:
            return None
        return WebSession(
            principal=Principal(name=token.name, role=Role(token.role), via=f"token:{token.id}"),
            csrf=row.csrf,
            expires_at=_aware(row.expires_at),
        )


def end_session(ws: Workspace, secret: str) -> bool:
    """Revoke the session behind ``secret`` (sign-out); False if there was no live one."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return False
    with ws.session() as session:
        row = session.get(WebSessionRow, _hash(secret))
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True
