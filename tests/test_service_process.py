"""``airlock serve`` as a real process: refusing to listen openly without a token, and surviving
kill -9 in the middle of a large apply (the restarted service recovers; the files are as before).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.tokens import Role, create_token, revoke_token
from servicekit import (
    child_env,
    free_port,
    json_of,
    make_tokens,
    make_workspace,
    poll_until,
    serve_command,
    served_process,
)
from support import snapshot

API = "/api/v1"


def run_serve(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        serve_command(root, *args),
        capture_output=True,
        text=True,
        timeout=120,
        env=env or child_env(),
        check=False,
    )


@pytest.mark.parametrize("how", ["flag", "environment", "only-revoked-tokens"])
def test_open_listen_without_a_token_is_refused(tmp_path: Path, how: str) -> None:
    root = tmp_path / "ws"
    ws = make_workspace(root)
    if how == "only-revoked-tokens":
        token_id, _token = create_token(ws, "gone", Role.ADMIN)
        revoke_token(ws, token_id)
    ws.close()
    port = str(free_port())
    if how == "environment":
        env = child_env() | {"AIRLOCK_HOST": "0.0.0.0"}  # noqa: S104 - the point of the test
        done = run_serve(root, "--port", port, env=env)
    else:
        done = run_serve(root, "--host", "0.0.0.0", "--port", port)  # noqa: S104
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    output = done.stdout + done.stderr
    assert "refusing to listen on 0.0.0.0" in output, output
    assert "no API token exists" in output
    assert "airlock token create" in output  # says how to fix it
    assert "Traceback" not in output


def test_open_listen_without_a_token_json_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root).close()
    done = run_serve(root, "--host", "0.0.0.0", "--port", str(free_port()), "--json")  # noqa: S104
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "refusing to listen" in done.stdout + done.stderr


def test_loopback_without_a_token_starts(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root).close()
    with served_process(root, tmp_path / "serve.log") as server:
        health = json_of(httpx.get(server.url + "/health", timeout=30))
        assert health["status"] == "healthy"
        assert health["recovered_transactions"] == 0
        # without tokens, nothing but /health answers
        assert httpx.get(server.url + f"{API}/plans", timeout=30).status_code == 401


def _bulk_plan(count: int) -> dict[str, Any]:
    operations: list[dict[str, Any]] = [{"op": "mkdir", "path": "filed"}]
    operations += [
        {"op": "move", "source": f"inbox/scan-{i:05}.pdf", "destination": f"filed/scan-{i:05}.pdf"}
        for i in range(count)
    ]
    return {
        "scope": "projects/Bulk-Case",
        "description": f"file {count} scans",
        "author": "paralegal-agent",
        "operations": operations,
    }


def test_kill_9_during_a_large_apply_then_restart(tmp_path: Path) -> None:
    count = 5000
    root = tmp_path / "ws"
    ws = make_workspace(root)
    inbox = root / "projects" / "Bulk-Case" / "inbox"
    inbox.mkdir(parents=True)
    for i in range(count):
        (inbox / f"scan-{i:05}.pdf").write_bytes(f"%PDF-1.4 scan {i}\n".encode())
    tokens, _ids = make_tokens(ws)
    ws.close()
    before = snapshot(root)
    headers = {"Authorization": f"Bearer {tokens[Role.AGENT]}"}
    log = tmp_path / "serve.log"

    with (
        served_process(root, log) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=300) as client,
    ):
        response = client.post(f"{API}/plans", json=_bulk_plan(count))
        assert response.status_code == 201, response.text
        record = json_of(response)
        assert record["status"] == "validated", record["validation"]["errors"][:3]
        plan_id = record["plan_id"]
        response = client.post(f"{API}/plans/{plan_id}/apply")
        assert response.status_code == 202, response.text
        job_id = json_of(response)["job_id"]

        def under_way() -> dict[str, Any] | None:
            job: dict[str, Any] = json_of(client.get(f"{API}/jobs/{job_id}"))
            finished = job["state"] in ("succeeded", "failed")
            return job if job["steps_done"] > 0 or finished else None

        job = poll_until(under_way, deadline=120, every=0.0, what="the apply to start its steps")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=60)
        assert server.proc.returncode == -signal.SIGKILL
        assert job["state"] == "running", f"the apply finished before the kill: {job}"
        assert 0 < job["steps_done"] < job["steps_total"], job

    # the workspace is half-moved right now; restarting the service recovers it
    assert snapshot(root) != before
    with (
        served_process(root, tmp_path / "restart.log") as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=120) as client,
    ):
        health = json_of(client.get("/health"))
        assert health["status"] == "healthy", health
        assert health["recovered_transactions"] == 1, health
        shown = json_of(client.get(f"{API}/plans/{plan_id}"))
        assert shown["status"] == "failed", shown["status"]
        assert "restored" in shown["reason"], shown["reason"]
        assert snapshot(root) == before, "byte-identical to the pre-plan workspace"
        audit = json_of(client.get(f"{API}/audit/events", params={"plan_id": plan_id}))
        assert audit[-1]["kind"] == "recovered", audit[-1]
        verify = json_of(client.get(f"{API}/audit/verify"))
        assert verify["ok"] is True, verify
        # the plan can be validated and applied again, to completion this time
        revalidated = json_of(client.post(f"{API}/plans/{plan_id}/validate"))
        assert revalidated["status"] == "validated"
        job_id = json_of(client.post(f"{API}/plans/{plan_id}/apply"))["job_id"]

        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = json_of(client.get(f"{API}/jobs/{job_id}"))
            return job if job["state"] in ("succeeded", "failed") else None

        assert poll_until(finished, deadline=300, what="the re-apply")["state"] == "succeeded"
        assert len(list((root / "projects" / "Bulk-Case" / "filed").iterdir())) == count
    assert "recovered an interrupted apply" in (tmp_path / "restart.log").read_text()
