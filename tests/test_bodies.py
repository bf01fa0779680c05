"""File bodies live in the content store, never in the state database (issue 10, item 4)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.errors import InputError
from airlock.workspace import Workspace
from servicekit import poll_until
from support import CASE, make_plan, person, snapshot

CONFIDENTIAL = "the client's settlement figure: 1,234,567\n"


def _bodies(root: Path) -> list[str]:
    with sqlite3.connect(root / ".airlock" / "airlock.db") as db:
        return [row[0] for row in db.execute("SELECT body FROM plans")]


def test_inline_bodies_go_to_the_content_store_and_apply_from_there(
    ws: Workspace, root: Path
) -> None:
    before = snapshot(root)
    binary = bytes(range(256)) * 64
    record = ws.submit(
        make_plan(
            {"op": "write", "path": "letter.txt", "text": CONFIDENTIAL},
            {"op": "write", "path": "scan.bin", "base64": base64.b64encode(binary).decode()},
        ),
        by=person("agent"),
    )
    (text_op, binary_op) = record.plan.operations
    assert getattr(text_op, "sha256", None) and getattr(binary_op, "size", None) == len(binary)
    assert not any("settlement" in body or "AAEC" in body for body in _bodies(root))
    assert ws.validate(record.id).status == "validated"
    assert ws.apply(record.id, by=person("agent")).success
    assert (root / CASE / "letter.txt").read_text() == CONFIDENTIAL
    assert (root / CASE / "scan.bin").read_bytes() == binary
    assert ws.rollback(record.id, by=person("dana")).success
    assert snapshot(root) == before


def test_the_same_inline_plan_again_is_the_same_plan(ws: Workspace) -> None:
    body = make_plan({"op": "write", "path": "a.txt", "text": CONFIDENTIAL})
    first = ws.submit(body, plan_id="same", by=person("agent"))
    again = ws.submit(body, plan_id="same", by=person("agent"))
    assert first.digest == again.digest


def test_only_the_uploader_can_name_an_uploaded_body(ws: Workspace, root: Path) -> None:
    blob = ws.upload(iter([b"part one, ", b"part two\n"]), by=person("agent"))
    named = {"op": "write", "path": "up.txt", "sha256": blob.sha256, "size": blob.size}
    with pytest.raises(InputError, match="put into the store"):
        ws.submit(make_plan(named), by=person("someone-else"))
    record = ws.validate(ws.submit(make_plan(named), by=person("agent")).id)
    assert ws.apply(record.id, by=person("agent")).success
    assert (root / CASE / "up.txt").read_bytes() == b"part one, part two\n"


def test_a_digest_from_the_audit_log_cannot_copy_another_case_file(ws: Workspace) -> None:
    """A body stored for one plan (its digest is in the audit log) is not anyone's to name."""
    record = ws.submit(make_plan({"op": "write", "path": "a.txt", "text": CONFIDENTIAL}))
    op = record.plan.operations[0]
    stolen = {"op": "write", "path": "copy.txt", "sha256": op.sha256, "size": op.size}  # type: ignore[union-attr]
    with pytest.raises(InputError, match="put into the store"):
        ws.submit(make_plan(stolen, scope="projects/Case-B"), by=person("agent"))


def test_gc_removes_bodies_no_plan_names_once_they_are_old(ws: Workspace) -> None:
    named = ws.submit(make_plan({"op": "write", "path": "a.txt", "text": "kept\n"}))
    kept = str(named.plan.operations[0].sha256)  # type: ignore[union-attr]
    orphan = ws.content.put([b"nobody names me\n"])
    fresh = ws.content.put([b"just stored by a run that has not submitted yet\n"])
    uploaded = ws.upload(iter([b"uploaded, plan still being written\n"]), by=person("agent"))
    old = time.time() - 2 * 3600
    for sha256 in (kept, orphan.sha256, uploaded.sha256):
        os.utime(ws.content.path(sha256), (old, old))
    ws.gc()
    assert ws.gc_content == [orphan.sha256]
    held = {sha256 for sha256, _at in ws.content.blobs()}
    assert {kept, fresh.sha256, uploaded.sha256} <= held and orphan.sha256 not in held
    # Once the retention has passed, an upload no plan named goes too.
    ws.gc(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=ws.policy.retention_days + 1))
    assert uploaded.sha256 in ws.gc_content and kept not in ws.gc_content


# --- the door: PUT /api/v1/content ------------------------------------------------------------


def test_a_body_uploads_as_a_stream_and_only_its_uploader_names_it(tmp_path: Path) -> None:
    from airlock.permissions import Role
    from servicekit import running_service

    part = os.urandom(1 << 20)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server reads it as it comes
        for _ in range(8):
            yield part

    with running_service(tmp_path / "ws") as service:
        agent, approver = service.client(Role.AGENT), service.client(Role.APPROVER)
        uploaded = agent.put("/api/v1/content", content=chunked())
        assert uploaded.status_code == 201, uploaded.text
        blob = uploaded.json()
        assert blob == {"sha256": hashlib.sha256(part * 8).hexdigest(), "size": 8 << 20}
        case = "projects/Uploads"
        (service.root / case).mkdir()
        plan = {"scope": case, "operations": [{"op": "write", "path": "big.bin", **blob}]}
        refused = approver.post("/api/v1/plans", json=plan)
        assert refused.status_code == 400 and "put into the store" in refused.text
        submitted = agent.post("/api/v1/plans", json=plan)
        assert submitted.status_code == 201, submitted.text
        job = agent.post(f"/api/v1/plans/{submitted.json()['plan_id']}/apply").json()

        def finished() -> dict[str, str] | None:
            seen: dict[str, str] = agent.get(f"/api/v1/jobs/{job['job_id']}").json()
            return seen if seen["state"] in ("succeeded", "failed") else None

        done = poll_until(finished, what="the apply")
        assert done["state"] == "succeeded", done
        assert (service.root / case / "big.bin").read_bytes() == part * 8
        assert service.client().put("/api/v1/content", content=b"x").status_code == 401


def test_an_upload_past_the_policy_write_limit_is_refused(tmp_path: Path) -> None:
    from airlock.permissions import Role
    from airlock.service.settings import Settings
    from servicekit import running_service

    limit = 4 << 20
    with running_service(tmp_path / "ws", Settings(max_upload_bytes=limit)) as service:

        def endless() -> Iterator[bytes]:
            block = b"\0" * (1 << 20)
            for _ in range(limit // len(block) + 2):
                yield block

        answer = service.client(Role.AGENT).put("/api/v1/content", content=endless())
        assert answer.status_code == 413, answer.text
        assert not [name for name, _at in service.ws.content.blobs()]
