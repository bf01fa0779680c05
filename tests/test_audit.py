"""The audit log catches tampering done with raw SQL on the database, as an attacker would.

The chain catches edited, deleted and reordered events; the signatures (a key outside the
database) catch an edit whose later hashes were all recomputed; the head record catches a chain
cut short or emptied; ``--expect-head`` catches even a holder of the key. Verify also checks the
plans, validations and decisions against the chain, and apply refuses an approval (or a
validation) the chain does not hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.plan import canonical_json
from airlock.workspace import Workspace
from support import CASE, make_plan, person


def _events(root: Path) -> Workspace:
    ws = Workspace.init(root)
    for n in range(3):
        record = ws.submit(make_plan({"op": "mkdir", "path": f"folder-{n}"}))
        ws.validate(record.id)
        ws.apply(record.id, by=person("agent"))
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
        assert report.problems == [
            "event 3: its signature does not match: it was forged or rewritten by someone "
            "without the audit key",
            "event 4: does not link to the event before it",
        ]


def test_export_is_json_lines_with_hashes(root: Path) -> None:
    with _events(root) as ws:
        lines = [json.dumps(e) for e in ws.audit_events()]
        assert all(json.loads(line)["hash"] for line in lines)
        applied = [e for e in ws.audit_events() if e["kind"] == "applied"]
        assert applied[0]["payload"]["operations"][0]["action"] == "mkdir"


# --- tampering as an attacker does it: raw SQL on the database, then the real command line ------


def verify_cli(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return airlock_cli("audit", "verify", "--workspace", str(root), *extra)


def airlock_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env["COLUMNS"] = "1000"  # no wrapped lines
    return subprocess.run(
        [sys.executable, "-m", "airlock", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def _refuses(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 9 (integrity failure), with each ``expected`` text among the problems it names."""
    assert done.returncode == 9, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
    for text in expected:
        assert text in said, said


def _rehash_from(db: sqlite3.Connection, first: int, *, actor: str | None = None) -> None:
    """Edit event ``first`` (its actor) and recompute its hash and every later one's, with the
    same formula as audit._event_hash, so the chain's links all hold again."""
    if actor is not None:
        db.execute("UPDATE audit_events SET actor = ? WHERE seq = ?", (actor, first))
    (prev,) = db.execute("SELECT prev_hash FROM audit_events WHERE seq = ?", (first,)).fetchone()
    rows = db.execute(
        "SELECT seq, at, actor, kind, plan_id, payload FROM audit_events WHERE seq >= ? "
        "ORDER BY seq",
        (first,),
    ).fetchall()
    for seq, at, who, kind, plan_id, payload in rows:
        body = canonical_json(
            {
                "seq": seq,
                "at": at,
                "actor": who,
                "kind": kind,
                "plan_id": plan_id,
                "payload": payload,
            }
        )
        new = hashlib.sha256((prev + body).encode()).hexdigest()
        db.execute(
            "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, seq)
        )
        prev = new


def _closed_events(root: Path) -> None:
    _events(root).close()


def test_cutting_off_the_tail_is_caught_by_the_head_record(root: Path) -> None:
    _closed_events(root)
    with _db(root) as db:
        db.execute("DELETE FROM audit_events WHERE seq > 6")
    _refuses(
        verify_cli(root),
        "the chain ends at event 6, but the head record says event 9 was written: "
        "events after 6 were cut off",
    )


def test_deleting_every_event_is_caught_by_the_head_record(root: Path) -> None:
    _closed_events(root)
    with _db(root) as db:
        db.execute("DELETE FROM audit_events")
    _refuses(
        verify_cli(root),
        "the chain is empty, but the head record says 9 event(s) were written: "
        "every event was deleted",
    )


@pytest.mark.parametrize(
    ("signatures", "expected"),
    [
        ("kept", "event 4: its signature does not match: it was forged or rewritten"),
        ("stripped from the edit on", "event 4: it is not signed, though events before it are"),
        ("stripped from every event", "event 9 is not the event the head record anchors"),
    ],
)
def test_an_edit_with_every_later_hash_recomputed_is_caught(
    root: Path, signatures: str, expected: str
) -> None:
    _closed_events(root)
    with _db(root) as db:
        _rehash_from(db, 4, actor="forger")
        if signatures == "stripped from the edit on":
            db.execute("UPDATE audit_events SET signature = NULL WHERE seq >= 4")
        elif signatures == "stripped from every event":
            db.execute("UPDATE audit_events SET signature = NULL")
    with Workspace(root) as ws:  # before the fix: these all verified
        assert [e["actor"] for e in ws.audit_events()][3] == "forger"
    _refuses(verify_cli(root), expected)


def _sign_everything(root: Path, db: sqlite3.Connection) -> None:
    """What someone holding the key (root on the Airlock host) can do: sign every event and
    write a head record for the rewritten chain."""
    key = (root / ".airlock" / "audit.key").read_bytes()
    rows = db.execute("SELECT seq, hash FROM audit_events ORDER BY seq").fetchall()
    for seq, event_hash in rows:
        signature = hmac.new(key, event_hash.encode(), hashlib.sha256).hexdigest()
        db.execute("UPDATE audit_events SET signature = ? WHERE seq = ?", (signature, seq))
    seq, event_hash = rows[-1]
    body = f"airlock audit head {seq} {event_hash}".encode()
    record = {
        "seq": seq,
        "hash": event_hash,
        "signature": hmac.new(key, body, hashlib.sha256).hexdigest(),
    }
    (root / ".airlock" / "audit.head").write_text(json.dumps(record))


def test_expect_head_catches_what_a_holder_of_the_key_rewrote(root: Path) -> None:
    with _events(root) as ws:
        kept = ws.audit_verify().head  # copied into a ticket
        record = ws.submit(make_plan({"op": "mkdir", "path": "later"}))
        ws.validate(record.id)
    done = verify_cli(root, "--expect-head", kept, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["expected_head"] == {"hash": kept, "seq": 9, "events_after": 2}
    assert report["signatures"]["signed"] == 11 and report["anchor"]["events_after"] == 0
    assert "event 9; 2 event(s) came after it" in verify_cli(root, "--expect-head", kept).stdout

    with _db(root) as db:
        _rehash_from(db, 2, actor="root")
        _sign_everything(root, db)
    assert verify_cli(root).returncode == 0  # the key holder's rewrite passes everything else
    _refuses(
        verify_cli(root, "--expect-head", kept),
        f"the expected head {kept} is not the hash of any event in the chain",
    )
    not_a_hash = verify_cli(root, "--expect-head", "abc123")
    assert not_a_hash.returncode == 3 and "64 hexadecimal" in not_a_hash.stderr


def test_a_head_record_behind_the_chain_verifies(root: Path) -> None:
    """A crash between a commit and the head's rewrite leaves the head behind: not tampering."""
    head = root / ".airlock" / "audit.head"
    with _events(root) as ws:
        behind = head.read_bytes()
        record = ws.submit(make_plan({"op": "mkdir", "path": "later"}))
        head.write_bytes(behind)  # as if the process died right after that commit
        report = ws.audit_verify()
        assert report.ok, report.problems
        assert report.anchor is not None and report.anchor["events_after"] == 1
        ws.validate(record.id)  # the next commit moves the head on from there
        assert json.loads(head.read_text())["seq"] == 11
        assert ws.audit_verify().anchor == {
            "seq": 11,
            "hash": ws.audit_verify().head,
            "events_after": 0,
            "file": str(head),
        }


def test_the_head_record_cannot_be_forged_or_removed(root: Path) -> None:
    head = root / ".airlock" / "audit.head"
    _closed_events(root)
    record = json.loads(head.read_text())
    head.write_text(json.dumps({**record, "seq": 5}))
    _refuses(verify_cli(root), "is not signed with the audit key: it was forged or rewritten")
    head.unlink()
    _refuses(verify_cli(root), "audit.head' is missing")
    with Workspace(root) as ws:
        ws.submit(make_plan({"op": "mkdir", "path": "later"}))
    assert not head.exists(), "a missing head record is evidence: never silently re-created"


def test_events_from_before_signing_verify_and_are_reported(root: Path) -> None:
    _closed_events(root)
    with _db(root) as db:  # a workspace from before signing: no signatures, no head record
        db.execute("UPDATE audit_events SET signature = NULL")
    (root / ".airlock" / "audit.head").unlink()
    with Workspace(root) as ws:
        report = ws.audit_verify()
        assert report.ok, report.problems
        assert report.warnings == ["events 1-9: unsigned (written before signing was enabled)"]
        record = ws.submit(make_plan({"op": "mkdir", "path": "later"}))
        ws.validate(record.id)
        report = ws.audit_verify()
        assert report.ok, report.problems
        assert (report.signatures.signed, report.signatures.unsigned_before_signing) == (2, 9)
    done = verify_cli(root)
    assert done.returncode == 0, done.stderr
    assert "events 1-9: unsigned (written before signing was enabled)" in done.stderr


def test_the_key_is_made_once_outside_the_database(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = root / ".airlock" / "audit.key"
    with _events(root) as ws:
        key = key_file.read_bytes()
        assert len(key) == 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        database = (root / ".airlock" / "airlock.db").read_bytes()
        assert key not in database and key.hex().encode() not in database
    with Workspace(root):
        assert key_file.read_bytes() == key, "an existing key is never overwritten"
    key_file.write_bytes(b"another key, of at least thirty-two bytes")
    _refuses(verify_cli(root), "event 1: its signature does not match")

    key_file.unlink()  # e.g. a command run without the service's AIRLOCK_AUDIT_KEY_FILE
    missing = verify_cli(root)
    assert missing.returncode == 9, missing.stderr
    assert "is missing, but events of the audit log are signed" in missing.stderr
    assert not key_file.exists(), "no new key is made to sign the next events with"

    elsewhere = tmp_path / "keys" / "airlock-audit.key"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY_FILE", str(elsewhere))
    with Workspace.init(tmp_path / "other") as ws:
        assert len(elsewhere.read_bytes()) == 32
        assert not (ws.state_dir / "audit.key").exists()
        ws.submit(make_plan({"op": "mkdir", "path": "x"}))
        assert ws.audit_verify().ok


def test_anchor_accepts_a_restored_database_on_purpose(root: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    with _events(root) as ws:
        with _db(root) as db, sqlite3.connect(backup) as copy:
            db.backup(copy)
        ws.submit(make_plan({"op": "mkdir", "path": "after-the-backup"}))
    with sqlite3.connect(backup) as copy, _db(root) as db:
        copy.backup(db)  # the database alone is restored; .airlock/ is today's
    _refuses(verify_cli(root), "the chain ends at event 9, but the head record says event 10")
    anchored = airlock_cli("audit", "anchor", "--workspace", str(root), "--json")
    assert anchored.returncode == 0, anchored.stderr
    assert json.loads(anchored.stdout)["previous"]["seq"] == 10
    assert json.loads(anchored.stdout)["head"]["seq"] == 9
    assert verify_cli(root).returncode == 0


# --- F10: the state tables must agree with the chain --------------------------------------------


def _validated_delete(root: Path) -> tuple[Workspace, str]:
    ws = Workspace.init(root)
    record = ws.submit(make_plan({"op": "delete", "path": "notes.txt"}), plan_id="del-1")
    assert ws.validate(record.id).validation is not None
    return ws, record.id


def test_a_forged_approval_is_caught_and_never_applied(root: Path) -> None:
    ws, plan_id = _validated_delete(root)
    ws.close()
    with _db(root) as db:
        (digest,) = db.execute("SELECT digest FROM plans WHERE id = ?", (plan_id,)).fetchone()
        db.execute(
            "INSERT INTO decisions (plan_id, validation_id, digest, decision, actor, comment, "
            "created_at) VALUES (?, 1, ?, 'approved', 'dana', '', '2026-01-01 00:00:00')",
            (plan_id, digest),
        )
        db.execute("UPDATE plans SET status = 'approved' WHERE id = ?", (plan_id,))
    _refuses(
        verify_cli(root),
        "plan 'del-1': the decisions table holds an approval by 'dana' (validation 1) that is "
        "not in the audit log: it was forged",
        "plan 'del-1' is approved, but by the audit log it is validated",
    )
    applied = airlock_cli("plan", "apply", plan_id, "--workspace", str(root))
    assert applied.returncode == 6, applied.stdout + applied.stderr
    said = " ".join(applied.stderr.split())
    assert "the approval of plan 'del-1' is not in the audit log; it may have been forged" in said
    assert (root / CASE / "notes.txt").exists()


def test_a_forged_approval_event_without_the_key_is_not_enough(root: Path) -> None:
    """The forger also appends an `approved` event with a correct hash; without the key it is
    unsigned, and apply refuses it as verify does."""
    ws, plan_id = _validated_delete(root)
    ws.close()
    with _db(root) as db:
        (digest,) = db.execute("SELECT digest FROM plans WHERE id = ?", (plan_id,)).fetchone()
        db.execute(
            "INSERT INTO decisions (plan_id, validation_id, digest, decision, actor, comment, "
            "created_at) VALUES (?, 1, ?, 'approved', 'dana', '', '2026-01-01 00:00:00')",
            (plan_id, digest),
        )
        db.execute("UPDATE plans SET status = 'approved' WHERE id = ?", (plan_id,))
        seq, prev = db.execute(
            "SELECT seq + 1, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        payload = canonical_json({"comment": "", "digest": digest, "validation": 1})
        at = "2026-01-01T00:00:00.000000+00:00"
        body = canonical_json(
            {
                "seq": seq,
                "at": at,
                "actor": "dana",
                "kind": "approved",
                "plan_id": plan_id,
                "payload": payload,
            }
        )
        event_hash = hashlib.sha256((prev + body).encode()).hexdigest()
        db.execute(
            "INSERT INTO audit_events (seq, at, actor, kind, plan_id, payload, prev_hash, hash) "
            "VALUES (?, ?, 'dana', 'approved', ?, ?, ?, ?)",
            (seq, at, plan_id, payload, prev, event_hash),
        )
    _refuses(verify_cli(root), f"event {seq}: it is not signed, though events before it are")
    applied = airlock_cli("plan", "apply", plan_id, "--workspace", str(root))
    assert applied.returncode == 6, applied.stdout + applied.stderr
    assert "is not in the audit log" in " ".join(applied.stderr.split())
    assert (root / CASE / "notes.txt").exists()


def test_a_forged_validation_is_caught_and_never_applied(root: Path) -> None:
    """A validation row saying no approval is needed would skip the approval altogether."""
    ws, plan_id = _validated_delete(root)
    ws.close()
    with _db(root) as db:
        (report,) = db.execute("SELECT report FROM validations WHERE id = 1").fetchone()
        forged = json.dumps({**json.loads(report), "needs_approval": []})
        db.execute(
            "INSERT INTO validations (plan_id, digest, valid, report, created_at) "
            "SELECT plan_id, digest, valid, ?, created_at FROM validations WHERE id = 1",
            (forged,),
        )
    _refuses(verify_cli(root), "plan 'del-1': validation 2 is not in the audit log: it was forged")
    applied = airlock_cli("plan", "apply", plan_id, "--workspace", str(root))
    assert applied.returncode == 6, applied.stdout + applied.stderr
    assert "the validation of plan 'del-1' is not the one the audit log recorded" in " ".join(
        applied.stderr.split()
    )
    assert (root / CASE / "notes.txt").exists()


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE plans SET status = 'applied'",
            "plan 'del-1' is applied, but by the audit log it is validated",
        ),
        (
            "UPDATE plans SET status = 'rolled_back'",
            "plan 'del-1' is rolled_back, but by the audit log it is validated",
        ),
        (
            "INSERT INTO plans (id, scope, description, author, digest, body, status, "
            "created_at, updated_at) SELECT 'ghost', scope, description, author, digest, body, "
            "'validated', created_at, updated_at FROM plans",
            "plan 'ghost': no `submitted` event in the audit log",
        ),
        (
            "UPDATE plans SET digest = 'sha256:' || hex(randomblob(32))",
            "plan 'del-1': its digest is not the one the audit log recorded",
        ),
        (
            "DELETE FROM decisions",
            "plan 'del-1': the audit log records an approval by 'dana' (validation 1) that the "
            "decisions table does not hold",
        ),
    ],
)
def test_state_that_the_chain_does_not_account_for_is_reported(
    root: Path, tamper: str, expected: str
) -> None:
    ws, plan_id = _validated_delete(root)
    if "decisions" in tamper:
        ws.approve(plan_id, by=person("dana"))
    ws.close()
    with _db(root) as db:
        db.execute(tamper)
    _refuses(verify_cli(root), expected)


def test_applied_and_rolled_back_plans_verify(root: Path) -> None:
    ws, plan_id = _validated_delete(root)
    with ws:
        ws.approve(plan_id, by=person("dana"))
        assert ws.apply(plan_id, by=person("dana")).success
        assert ws.rollback(plan_id, by=person("dana")).success
        report = ws.audit_verify()
        assert report.ok, report.problems
        assert report.signatures.signed == report.events == 5


# --- F11: a payload that is not JSON -------------------------------------------------------------


def test_an_unreadable_payload_is_shown_and_reported_not_a_500(tmp_path: Path) -> None:
    from airlock.tokens import Role
    from servicekit import DEMO_CASE, json_of, running_service

    with running_service(tmp_path / "ws") as service:
        record = service.ws.submit(
            make_plan({"op": "mkdir", "path": "Filed"}, scope=f"projects/{DEMO_CASE}")
        )
        with _db(service.root) as db:
            db.execute(
                "UPDATE audit_events SET payload = 'not json {' WHERE plan_id = ?", (record.id,)
            )
        agent = service.client(Role.AGENT)
        events = agent.get("/api/v1/audit/events", params={"plan_id": record.id})
        assert events.status_code == 200, events.text
        assert json_of(events)[0]["payload"] == {"unreadable": "not json {"}
        signed_in = agent.post(
            "/ui/sign-in",
            data={"token": service.tokens[Role.AGENT]},
            headers={"Origin": service.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert signed_in.status_code == 303, signed_in.text[:2000]
        page = agent.get(f"/ui/plans/{record.id}")
        assert page.status_code == 200, page.text[:2000]
        assert "unreadable" in page.text and "not json {" in page.text
        assert "This plan's audit events do not verify" in page.text
        assert "its payload is not a JSON object" in page.text
        verify = json_of(agent.get("/api/v1/audit/verify"))
        assert verify["ok"] is False
        assert any("payload is not a JSON object" in p for p in verify["problems"]), verify
        root = service.root
    _refuses(verify_cli(root), "its payload is not a JSON object (the database was edited)")
    exported = airlock_cli("audit", "export", "--workspace", str(root))
    assert exported.returncode == 0, exported.stderr
    assert '"unreadable": "not json {"' in exported.stdout


def test_a_plans_page_checks_its_own_events_without_reading_the_whole_chain(
    tmp_path: Path,
) -> None:
    from airlock.workspace import Workspace

    root = tmp_path / "ws"
    (root / "projects" / "Case-A").mkdir(parents=True)
    with Workspace.init(root) as ws:
        mine = ws.validate(ws.submit(make_plan({"op": "mkdir", "path": "A"})).id).id
        other = ws.validate(ws.submit(make_plan({"op": "mkdir", "path": "B"})).id).id
        assert ws.audit_verify_plan(mine).ok
        with _db(root) as db:  # forge the other plan's signature: only it is reported
            db.execute("UPDATE audit_events SET signature = ? WHERE plan_id = ?", ("0" * 64, other))
        assert ws.audit_verify_plan(mine).ok
        report = ws.audit_verify_plan(other)
        assert report.events == 2 and not report.ok
        assert all("signature does not match" in p for p in report.problems)
