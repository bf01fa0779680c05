"""The audit log: append-only and hash-chained.

Each event's hash is ``sha256(previous hash + canonical JSON of the event)``, and events are
numbered 1, 2, 3, ... without gaps. Editing an event breaks its hash; deleting one leaves a gap
or breaks the next event's link; reordering breaks the links. Cutting events off the *end*
leaves a shorter chain that still verifies, so :func:`verify` reports the head hash: keep it
somewhere else (a ticket, an email) to prove later that nothing was cut.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from airlock.db import AuditRow
from airlock.plan import canonical_json

GENESIS = "0" * 64

EVENT_KINDS = (
    "submitted",
    "validated",
    "approved",
    "rejected",
    "applied",
    "failed",
    "rolled_back",
    "recovered",
    "ran",
    "purged",
    "token_created",
    "token_revoked",
)


def _event_hash(prev_hash: str, row: AuditRow) -> str:
    body = canonical_json(
        {
            "seq": row.seq,
            "at": row.at,
            "actor": row.actor,
            "kind": row.kind,
            "plan_id": row.plan_id,
            "payload": row.payload,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append(
    session: Session, kind: str, actor: str, plan_id: str | None, payload: dict[str, Any]
) -> AuditRow:
    """Add an event in the caller's transaction (so it commits with the change it records)."""
    assert kind in EVENT_KINDS, kind
    last = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
    row = AuditRow(
        seq=(last.seq + 1) if last else 1,
        at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        actor=actor,
        kind=kind,
        plan_id=plan_id,
        payload=canonical_json(payload),
        prev_hash=last.hash if last else GENESIS,
    )
    row.hash = _event_hash(row.prev_hash, row)
    session.add(row)
    session.flush()
    return row


@dataclass
class ChainReport:
    ok: bool
    events: int
    head: str
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "head": self.head, "problems": self.problems}


def verify(session: Session) -> ChainReport:
    prev = GENESIS
    expected_seq = 1
    problems: list[str] = []
    count = 0
    for row in session.scalars(select(AuditRow).order_by(AuditRow.seq)):
        count += 1
        if row.seq != expected_seq:
            problems.append(
                f"event {row.seq}: expected event {expected_seq} here; "
                f"{'events are missing' if row.seq > expected_seq else 'events are out of order'}"
            )
        if row.prev_hash != prev:
            problems.append(f"event {row.seq}: does not link to the event before it")
        if _event_hash(row.prev_hash, row) != row.hash:
            problems.append(f"event {row.seq}: its content was changed after it was written")
        prev = row.hash
        expected_seq = row.seq + 1
    return ChainReport(ok=not problems, events=count, head=prev, problems=problems)


def event_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "kind": row.kind,
        "plan_id": row.plan_id,
        "payload": json.loads(row.payload),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def events(session: Session, plan_id: str | None = None) -> Iterator[dict[str, Any]]:
    query = select(AuditRow).order_by(AuditRow.seq)
    if plan_id is not None:
        query = query.where(AuditRow.plan_id == plan_id)
    for row in session.scalars(query):
        yield event_dict(row)
