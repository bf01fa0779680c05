"""The audit chain detects edited, deleted and reordered events (tampering done with raw SQL)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from airlock.workspace import Workspace
from support import make_plan


def _events(root: Path) -> Workspace:
    ws = Workspace.init(root)
    for n in range(3):
        record = ws.submit(make_plan({"op": "mkdir", "path": f"folder-{n}"}))
        ws.validate(record.id)
        ws.apply(record.id, actor="agent")
    return ws


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".airlock" / "airlock.db", isolation_level=None)


def test_untouched_chain_verifies(root: Path) -> None:
    with _events(root) as ws:
        report = ws.audit_verify()
        assert report.ok and report.events == 9 and report.problems == []
        assert [e["seq"] for e in ws.audit_events()] == list(range(1, 10))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 4",
            "event 4: its content was changed",
        ),
        (
            "UPDATE audit_events SET payload = replace(payload, 'mkdir', 'delete') WHERE seq = 6",
            "event 6: its content was changed",
        ),
        (
            "DELETE FROM audit_events WHERE seq = 5",
            "event 6: expected event 5 here; events are missing",
        ),
        (
            # swap two events' positions, keeping each row's own hashes
            "UPDATE audit_events SET seq = -seq WHERE seq IN (2, 3); "
            "UPDATE audit_events SET seq = CASE seq WHEN -2 THEN 3 WHEN -3 THEN 2 END WHERE seq < 0",
            "does not link to the event before it",
        ),
    ],
)
def test_tampering_is_detected(root: Path, tamper: str, expected: str) -> None:
    with _events(root) as ws:
        with _db(root) as db:
            db.executescript(tamper)
        report = ws.audit_verify()
        assert not report.ok
        assert any(expected in problem for problem in report.problems), report.problems


def test_recomputing_one_hash_still_breaks_the_next_link(root: Path) -> None:
    """An editor who also fixes the edited event's own hash is caught by the following event."""
    import hashlib

    from airlock.plan import canonical_json

    with _events(root) as ws:
        with _db(root) as db:
            seq, at, _actor, kind, plan_id, payload, prev = db.execute(
                "SELECT seq, at, actor, kind, plan_id, payload, prev_hash FROM audit_events WHERE seq = 3"
            ).fetchone()
            body = canonical_json(
                {
                    "seq": seq,
                    "at": at,
                    "actor": "forger",
                    "kind": kind,
                    "plan_id": plan_id,
                    "payload": payload,
                }
            )
            forged = hashlib.sha256((prev + body).encode()).hexdigest()
            db.execute("UPDATE audit_events SET actor='forger', hash=? WHERE seq=3", (forged,))
        report = ws.audit_verify()
        assert report.problems == ["event 4: does not link to the event before it"]


def test_export_is_json_lines_with_hashes(root: Path) -> None:
    with _events(root) as ws:
        lines = [json.dumps(e) for e in ws.audit_events()]
        assert all(json.loads(line)["hash"] for line in lines)
        applied = [e for e in ws.audit_events() if e["kind"] == "applied"]
        assert applied[0]["payload"]["operations"][0]["action"] == "mkdir"
