"""Tokens: shown once, stored only as hashes, revocable; roles nest."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from airlock.errors import InputError, NotFoundError, NotPermittedError
from airlock.tokens import Role, authenticate, create_token, list_tokens, parse_role, revoke_token
from airlock.workspace import Workspace


def test_token_round_trip_and_only_hash_is_stored(ws: Workspace, root: Path) -> None:
    token_id, token = create_token(ws, "paralegal-agent", Role.AGENT)
    principal = authenticate(ws, token)
    assert (
        principal is not None
        and principal.name == "paralegal-agent"
        and principal.role is Role.AGENT
    )
    secret = token.split("_", 2)[2]
    raw = (root / ".airlock" / "airlock.db").read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(root / ".airlock" / "airlock.db") as db:
        (stored,) = db.execute(
            "SELECT secret_sha256 FROM tokens WHERE id = ?", (token_id,)
        ).fetchone()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert [t["name"] for t in list_tokens(ws)] == ["paralegal-agent"]
    assert "secret" not in str(list_tokens(ws))


@pytest.mark.parametrize(
    "bad",
    ["", "alk_", "alk__", "Bearer x", "alk_nosuchid_secret", "xyz_abc_def", "alk_abc", "\x00"],
)
def test_malformed_or_unknown_tokens_are_refused(ws: Workspace, bad: str) -> None:
    create_token(ws, "someone", Role.ADMIN)
    assert authenticate(ws, bad) is None


def test_wrong_secret_for_a_real_id_is_refused(ws: Workspace) -> None:
    token_id, token = create_token(ws, "a", Role.APPROVER)
    assert authenticate(ws, f"alk_{token_id}_{'x' * 43}") is None
    assert authenticate(ws, token + "x") is None


def test_revoked_tokens_stop_working_and_are_audited(ws: Workspace) -> None:
    token_id, token = create_token(ws, "a", Role.APPROVER)
    revoke_token(ws, token_id)
    assert authenticate(ws, token) is None
    assert list_tokens(ws)[0]["revoked"] is True
    kinds = [e["kind"] for e in ws.audit_events()]
    assert kinds == ["token_created", "token_revoked"]
    with pytest.raises(NotFoundError, match="airlock token list"):
        revoke_token(ws, "nope")


def test_roles_nest_and_refusals_name_the_role() -> None:
    from airlock.permissions import PERMITTED, Action, Principal, authorize

    assert PERMITTED[Role.AGENT] < PERMITTED[Role.APPROVER] < PERMITTED[Role.ADMIN]
    agent = Principal("bot", Role.AGENT, via="token:t")
    with pytest.raises(NotPermittedError, match="role agent, which may not approve plans"):
        authorize(agent, Action.APPROVE)
    with pytest.raises(InputError, match="agent, approver, admin"):
        parse_role("superuser")
