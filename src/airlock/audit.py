"""The audit log: append-only, hash-chained, and signed with a key kept outside the database.

Each event's hash is ``sha256(previous hash + canonical JSON of the event)``, and events are
numbered 1, 2, 3, ... without gaps. Editing an event breaks its hash; deleting one leaves a gap
or breaks the next event's link; reordering breaks the links. That stops accidents, not a
forger: anyone who can write the database can recompute every hash after an edit. So each event
also carries ``HMAC-SHA256(audit key, its hash as hex text)`` (:func:`sign`), and the key lives
outside the database (:mod:`airlock.audit_anchor`, which also keeps the signed *head*: how far
the chain reached, so a chain cut short or emptied shows).

:func:`verify` checks all of it, and cross-checks the state tables against the chain: a
``decisions`` row, a validation or a plan status that no event accounts for was written by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from airlock.db import AuditRow, DecisionRow, PlanRow, ValidationRow
from airlock.permissions import Principal
from airlock.plan import canonical_json

GENESIS = "0" * 64

KEY_INFO = "airlock.audit_key"
"""``Session.info`` key: the audit key :func:`append` signs with (Workspace's sessions carry it)."""
APPENDED_INFO = "airlock.audit_appended"
"""``Session.info`` key set by :func:`append`: after this session commits, advance the head."""

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

UNREADABLE = "unreadable"
"""The one key of the payload :func:`event_dict` shows for a payload that is not a JSON object."""


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


def sign(key: bytes, event_hash: str) -> str:
    """An event's signature: HMAC-SHA256 under the audit key of its hash (the hex text)."""
    return hmac.new(key, event_hash.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def append_by(
    session: Session, kind: str, by: Principal, plan_id: str | None, payload: dict[str, Any]
) -> AuditRow:
    """:func:`append` an event made by ``by``: its name as the actor, and beside the payload the
    note it gave about itself, if any (the command line's ``--actor``)."""
    note = {"note": by.note} if by.note else {}
    return append(session, kind, by.name, plan_id, {**payload, **note})


def append(
    session: Session, kind: str, actor: str, plan_id: str | None, payload: dict[str, Any]
) -> AuditRow:
    """Add a signed event in the caller's transaction (so it commits with the change it records).

    The session must carry the audit key in ``session.info[KEY_INFO]``, as every session of a
    :class:`~airlock.workspace.Workspace` does.
    """
    assert kind in EVENT_KINDS, kind
    key = session.info.get(KEY_INFO)
    if not isinstance(key, bytes):
        raise TypeError("audit.append needs a session from Workspace.session() (the audit key)")
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
    row.signature = sign(key, row.hash)
    session.add(row)
    session.flush()
    session.info[APPENDED_INFO] = True
    return row


@dataclass(frozen=True)
class Head:
    """How far the chain reached: its newest event's number and hash (0 and GENESIS: empty)."""

    seq: int
    hash: str


@dataclass
class Signatures:
    """What :func:`verify` found of the events' signatures."""

    checked: bool = False
    """False when no key was given: then nothing below was looked at."""
    signed: int = 0
    """Events whose signature matches the key."""
    unsigned_before_signing: int = 0
    """Unsigned events older than every signed one: written before signing was enabled."""
    unsigned_after_signing: int = 0
    bad: int = 0
    """Events whose signature does not match the key."""


@dataclass
class ChainReport:
    events: int
    head: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Worth knowing, not a failure (events written before signing was enabled)."""
    signatures: Signatures = field(default_factory=Signatures)
    anchor: dict[str, Any] | None = None
    """The head record checked against the chain: seq, hash, and events written after it."""
    expected_head: dict[str, Any] | None = None
    """The ``--expect-head`` hash: the event it is (seq) and how many came after it."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "problems": self.problems,
            "warnings": self.warnings,
            "signatures": asdict(self.signatures),
            "anchor": self.anchor,
            "expected_head": self.expected_head,
        }


def _payload(row: AuditRow) -> dict[str, Any] | None:
    """The event's payload, or None if the stored text is not a JSON object."""
    try:
        value = json.loads(row.payload)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _check_event(
    row: AuditRow,
    key: bytes | None,
    sigs: Signatures,
    problems: list[str],
    signing_began: bool,
) -> dict[str, Any] | None:
    """One event on its own: its hash over its stored link, its signature under ``key`` (an
    unsigned one is a problem once ``signing_began``), its payload; returns the payload, or None
    if it is unreadable. Counts go to ``sigs``, what is wrong to ``problems``."""
    if _event_hash(row.prev_hash, row) != row.hash:
        problems.append(f"event {row.seq}: its content was changed after it was written")
    if key is not None:
        if row.signature is None:
            if signing_began:
                sigs.unsigned_after_signing += 1
                problems.append(
                    f"event {row.seq}: it is not signed, though events before it are: it "
                    "was added or rewritten by someone without the audit key"
                )
            else:
                sigs.unsigned_before_signing += 1
        elif hmac.compare_digest(row.signature, sign(key, row.hash)):
            sigs.signed += 1
        else:
            sigs.bad += 1
            problems.append(
                f"event {row.seq}: its signature does not match: it was forged or "
                "rewritten by someone without the audit key"
            )
    payload = _payload(row)
    if payload is None:
        problems.append(
            f"event {row.seq}: its payload is not a JSON object (the database was edited)"
        )
    return payload


def verify(
    session: Session,
    key: bytes | None = None,
    *,
    head: Head | None = None,
    expect_head: str | None = None,
) -> ChainReport:
    """Check the chain's links and hashes, its signatures under ``key``, that it reaches ``head``
    (the signed head record) and holds ``expect_head``, and that the state tables agree with it.

    A ``head`` *behind* the chain is fine (a crash between a commit and the head's rewrite); a
    chain shorter than ``head``, or with another event at its seq, was cut off or rewritten.
    """
    prev = GENESIS
    expected_seq = 1
    problems: list[str] = []
    report = ChainReport(events=0, head=GENESIS, problems=problems)
    sigs = report.signatures
    sigs.checked = key is not None
    legacy_last = 0
    head_hash = GENESIS if head is not None and head.seq == 0 else None
    expected_seq_of = 0 if expect_head == GENESIS else None
    trail = _Trail()
    for row in session.scalars(select(AuditRow).order_by(AuditRow.seq)):
        report.events += 1
        if row.seq != expected_seq:
            problems.append(
                f"event {row.seq}: expected event {expected_seq} here; "
                f"{'events are missing' if row.seq > expected_seq else 'events are out of order'}"
            )
        if row.prev_hash != prev:
            problems.append(f"event {row.seq}: does not link to the event before it")
        signing_began = bool(sigs.signed or sigs.bad)
        payload = _check_event(row, key, sigs, problems, signing_began)
        if key is not None and row.signature is None and not signing_began:
            legacy_last = row.seq
        trail.add(row, payload or {})
        if head is not None and row.seq == head.seq:
            head_hash = row.hash
        if expect_head is not None and row.hash == expect_head and expected_seq_of is None:
            expected_seq_of = row.seq
        prev = row.hash
        expected_seq = row.seq + 1
    report.head = prev
    last_seq = expected_seq - 1
    if legacy_last:
        report.warnings.append(
            f"events 1-{legacy_last}: unsigned (written before signing was enabled)"
            if legacy_last > 1
            else "event 1: unsigned (written before signing was enabled)"
        )
    if sigs.bad and not sigs.signed:
        report.warnings.append(
            "no signature matches the audit key: if every event looks forged, check that the "
            "key file is the one these events were signed with"
        )
    if head is not None:
        reached = head_hash == head.hash  # else events_after means nothing: None
        report.anchor = {
            "seq": head.seq,
            "hash": head.hash,
            "events_after": last_seq - head.seq if reached else None,
        }
        if head_hash is None:
            problems.append(
                f"the chain is empty, but the head record says {head.seq} event(s) were written: "
                "every event was deleted"
                if report.events == 0
                else f"the chain ends at event {last_seq}, but the head record says event "
                f"{head.seq} was written: events after {last_seq} were cut off"
            )
        elif head_hash != head.hash:
            problems.append(
                f"event {head.seq} is not the event the head record anchors: the chain was "
                f"rewritten at or before event {head.seq}"
            )
    if expect_head is not None:
        report.expected_head = {
            "hash": expect_head,
            "seq": expected_seq_of,
            "events_after": None if expected_seq_of is None else last_seq - expected_seq_of,
        }
        if expected_seq_of is None:
            problems.append(
                f"the expected head {expect_head} is not the hash of any event in the chain: "
                "the chain was cut off before it, or rewritten"
            )
    problems.extend(trail.check(session))
    return report


def _status_after(kind: str, payload: Mapping[str, Any]) -> str | None:
    """The plan status an event leaves its plan in (None: the event does not change it)."""
    if kind == "validated":
        return "validated" if payload.get("valid") else "invalid"
    if kind == "failed":
        return "applied" if payload.get("rollback") else "failed"
    if kind == "recovered":
        return "applied" if payload.get("kind") == "rollback" else "failed"
    if kind in ("submitted", "approved", "rejected", "applied", "rolled_back"):
        return kind
    return None


_IN_FLIGHT = {"applying": ("validated", "approved"), "rolling_back": ("applied",)}
"""Statuses a plan holds while a transaction runs (no event yet), and the ones it came from."""

_Decision = tuple[str, str, str, Any, Any, Any]
"""(plan, decision, actor, validation id, digest, comment): a decision as both sides record it."""


@dataclass
class _Trail:
    """What the chain says about the plans: enough to check the state tables against it."""

    digests: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    validations: defaultdict[str, list[tuple[Any, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    decisions: Counter[_Decision] = field(default_factory=Counter)

    def add(self, row: AuditRow, payload: Mapping[str, Any]) -> None:
        plan_id = row.plan_id
        if plan_id is None:
            return
        if row.kind == "submitted":
            self.digests.setdefault(plan_id, str(payload.get("digest")))
        elif row.kind == "validated":
            self.validations[plan_id].append((payload.get("valid"), payload.get("needs_approval")))
        elif row.kind in ("approved", "rejected"):
            self.decisions[
                (
                    plan_id,
                    row.kind,
                    row.actor,
                    payload.get("validation"),
                    payload.get("digest"),
                    payload.get("comment"),
                )
            ] += 1
        status = _status_after(row.kind, payload)
        if status is not None:
            self.statuses[plan_id] = status

    def check(self, session: Session) -> Iterator[str]:
        """Every plan, validation and decision the chain does not account for (and back)."""
        plans = session.execute(select(PlanRow.id, PlanRow.digest, PlanRow.status)).all()
        for plan_id, digest, status in plans:
            if plan_id not in self.digests:
                yield (
                    f"plan {plan_id!r}: no `submitted` event in the audit log: it was added to "
                    "the database by hand"
                )
                continue
            if self.digests[plan_id] != digest:
                yield (
                    f"plan {plan_id!r}: its digest is not the one the audit log recorded when it "
                    "was submitted: its content was replaced"
                )
            expected = self.statuses[plan_id]
            if status != expected and expected not in _IN_FLIGHT.get(status, ()):
                yield (
                    f"plan {plan_id!r} is {status}, but by the audit log it is {expected}: its "
                    "status was changed by hand"
                )
        known = {plan_id for plan_id, _digest, _status in plans}
        for plan_id in self.digests.keys() - known:
            yield f"plan {plan_id!r}: in the audit log but not in the database: it was deleted"
        yield from self._check_validations(session)
        yield from self._check_decisions(session)

    def _check_validations(self, session: Session) -> Iterator[str]:
        stored: defaultdict[str, list[tuple[int, Any, Any]]] = defaultdict(list)
        query = select(
            ValidationRow.id,
            ValidationRow.plan_id,
            ValidationRow.valid,
            ValidationRow.report["needs_approval"],
        ).order_by(ValidationRow.id)
        for validation_id, plan_id, valid, needs in session.execute(query):
            stored[plan_id].append((validation_id, valid, needs))
        for plan_id in stored.keys() | self.validations.keys():
            rows, events = stored.get(plan_id, []), self.validations.get(plan_id, [])
            for (validation_id, valid, needs), recorded in zip(rows, events, strict=False):
                if (valid, needs) != recorded:
                    yield (
                        f"plan {plan_id!r}: validation {validation_id} does not match the audit "
                        "log's `validated` event for it: it was forged or edited"
                    )
            for validation_id, _valid, _needs in rows[len(events) :]:
                yield (
                    f"plan {plan_id!r}: validation {validation_id} is not in the audit log: it "
                    "was forged"
                )
            if len(events) > len(rows):
                yield (
                    f"plan {plan_id!r}: the audit log records {len(events)} validation(s), the "
                    f"database holds {len(rows)}: some were deleted"
                )

    def _check_decisions(self, session: Session) -> Iterator[str]:
        unmatched = Counter(self.decisions)
        for d in session.scalars(select(DecisionRow).order_by(DecisionRow.id)):
            entry = (d.plan_id, d.decision, d.actor, d.validation_id, d.digest, d.comment)
            if unmatched[entry] > 0:
                unmatched[entry] -= 1
                continue
            yield (
                f"plan {d.plan_id!r}: the decisions table holds {_a(d.decision)} by {d.actor!r} "
                f"(validation {d.validation_id}) that is not in the audit log: it was forged"
            )
        for (plan_id, decision, actor, validation, _digest, _comment), n in unmatched.items():
            if n > 0:
                yield (
                    f"plan {plan_id!r}: the audit log records {_a(decision)} by {actor!r} "
                    f"(validation {validation}) that the decisions table does not hold: it was "
                    "deleted or altered"
                )


def _a(decision: str) -> str:
    return "an approval" if decision == "approved" else "a rejection"


def vouches(
    session: Session,
    key: bytes,
    kind: str,
    plan_id: str,
    *,
    actor: str | None = None,
    payload: Mapping[str, Any] | None = None,
    latest: bool = False,
) -> bool:
    """Whether the chain holds a genuine ``kind`` event for ``plan_id`` by ``actor`` whose payload
    has these fields (``latest``: only the plan's newest ``kind`` event counts).

    Genuine: its hash is right and it is signed with ``key``, or it is unsigned and older than
    every signed event (written before signing was enabled). One indexed query (one more for an
    unsigned event): cheap enough for apply to ask; the full check is :func:`verify`'s.
    """
    query = (
        select(AuditRow)
        .where(AuditRow.plan_id == plan_id)
        .where(AuditRow.kind == kind)
        .order_by(AuditRow.seq.desc())
    )
    for row in session.scalars(query.limit(1) if latest else query):
        data = _payload(row)
        if data is None or (actor is not None and row.actor != actor):
            continue
        if any(data.get(name) != value for name, value in (payload or {}).items()):
            continue
        if _event_hash(row.prev_hash, row) != row.hash:
            continue
        if row.signature is not None:
            if hmac.compare_digest(row.signature, sign(key, row.hash)):
                return True
            continue
        signed_before = session.scalars(
            select(AuditRow.seq)
            .where(AuditRow.seq < row.seq)
            .where(AuditRow.signature.is_not(None))
            .limit(1)
        ).first()
        if signed_before is None:
            return True
    return False


def verify_plan_events(session: Session, key: bytes | None, plan_id: str) -> ChainReport:
    """Check one plan's events on their own: each one's hash over its stored link, and its
    signature under ``key``. What a plan's page shows on every render, in time proportional to
    that plan's events; the whole chain (links, gaps, head record, the state tables) is
    :func:`verify`'s, run by ``airlock audit verify``."""
    problems: list[str] = []
    report = ChainReport(events=0, head=GENESIS, problems=problems)
    sigs = report.signatures
    sigs.checked = key is not None
    first_signed = session.scalars(
        select(AuditRow.seq).where(AuditRow.signature.is_not(None)).order_by(AuditRow.seq)
    ).first()
    query = select(AuditRow).where(AuditRow.plan_id == plan_id).order_by(AuditRow.seq)
    for row in session.scalars(query):
        report.events += 1
        report.head = row.hash
        _check_event(row, key, sigs, problems, first_signed is not None and row.seq > first_signed)
    return report


def event_dict(row: AuditRow) -> dict[str, Any]:
    """An event as the doors show it. A payload that is not a JSON object (someone edited the
    database) is shown as ``{"unreadable": <the stored text>}``; :func:`verify` reports it."""
    payload = _payload(row)
    return {
        "seq": row.seq,
        "at": str(row.at),
        "actor": str(row.actor),
        "kind": str(row.kind),
        "plan_id": None if row.plan_id is None else str(row.plan_id),
        "payload": payload if payload is not None else {UNREADABLE: str(row.payload)},
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "signature": row.signature,
    }


def events(session: Session, plan_id: str | None = None) -> Iterator[dict[str, Any]]:
    query = select(AuditRow).order_by(AuditRow.seq)
    if plan_id is not None:
        query = query.where(AuditRow.plan_id == plan_id)
    for row in session.scalars(query):
        yield event_dict(row)
