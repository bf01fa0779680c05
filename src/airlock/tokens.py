"""API tokens: each names a principal with a role (see :mod:`airlock.permissions`).

A token reads ``alk_<id>_<secret>``. Only the SHA-256 of the secret is stored; a presented token
is looked up by its id and its secret's hash compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import select

from airlock import audit
from airlock.db import TokenRow, utcnow
from airlock.errors import InputError, NotFoundError
from airlock.permissions import Action, Principal, Role, acting, authorize
from airlock.workspace import Workspace

__all__ = ["Principal", "Role", "authenticate", "create_token", "list_tokens", "revoke_token"]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InputError(
            f"unknown role {text!r}", hint="use one of: agent, approver, admin"
        ) from None


def create_token(
    ws: Workspace, name: str, role: Role, by: Principal | None = None
) -> tuple[str, str]:
    """Make a token; returns (token id, the token). The token is shown once and never stored."""
    by = acting(by)
    authorize(by, Action.MANAGE_TOKENS)
    if not name.strip():
        raise InputError("a token needs a name", hint="pass --name, e.g. --name paralegal-agent")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with ws.session() as session:
        session.add(TokenRow(id=token_id, name=name, role=str(role), secret_sha256=_hash(secret)))
        audit.append(
            session,
            "token_created",
            by.name,
            None,
            {"token": token_id, "name": name, "role": str(role)},
        )
    return token_id, f"alk_{token_id}_{secret}"


def list_tokens(ws: Workspace, by: Principal | None = None) -> list[dict[str, Any]]:
    authorize(acting(by), Action.MANAGE_TOKENS)
    with ws.read_session() as session:
        return [
            {
                "id": row.id,
                "name": row.name,
                "role": row.role,
                "created_at": row.created_at.isoformat(),
                "revoked": row.revoked_at is not None,
            }
            for row in session.scalars(select(TokenRow).order_by(TokenRow.created_at))
        ]


def revoke_token(ws: Workspace, token_id: str, by: Principal | None = None) -> None:
    by = acting(by)
    authorize(by, Action.MANAGE_TOKENS)
    with ws.session() as session:
        row = session.get(TokenRow, token_id)
        if row is None:
            raise NotFoundError(
                f"no token {token_id!r}", hint="list them with `airlock token list`"
            )
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.append(
                session, "token_revoked", by.name, None, {"token": token_id, "name": row.name}
            )


def any_active_token(ws: Workspace) -> bool:
    with ws.read_session() as session:
        return (
            session.scalars(
                select(TokenRow.id).where(TokenRow.revoked_at.is_(None)).limit(1)
            ).first()
            is not None
        )


def authenticate(ws: Workspace, token: str) -> Principal | None:
    """The principal behind ``token``, or None if it is malformed, unknown or revoked."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "alk":
        return None
    token_id, secret = parts[1], parts[2]
    with ws.read_session() as session:
        row = session.get(TokenRow, token_id)
        expected = row.secret_sha256 if row is not None else _hash("no such token")
        matches = hmac.compare_digest(_hash(secret), expected)
        if row is None or not matches or row.revoked_at is not None:
            return None
        return Principal(name=row.name, role=Role(row.role), via=f"token:{row.id}")
