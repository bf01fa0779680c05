"""What a new user hit first: `airlock serve` says where it listens (and a busy port is a clear
error), `plan list` refuses an unknown status and carries each plan's validation, operations are
numbered from 1, and the README's commands, sample plan and script are real.

Every CLI check runs `airlock` as a real process; the busy port is a real socket held here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from airlock import errors
from airlock.demo.sample import build_sample_workspace
from airlock.workspace import Workspace
from servicekit import DEMO_CASE, ServerProcess, child_env, free_port, poll_until, serve_command
from support import CASE, make_plan, person

ROOT = Path(__file__).parent.parent
DEMO_DATA = ROOT / "src" / "airlock" / "demo" / "data"


def airlock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airlock", *args],
        capture_output=True,
        text=True,
        env={**child_env(), **(env or {})},
        check=False,
        timeout=120,
    )


# --- airlock serve ---------------------------------------------------------------------------


@contextmanager
def held_port() -> Iterator[int]:
    """A loopback port another process (this one) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_serve_on_a_busy_port_is_a_clear_error(root: Path, as_json: bool) -> None:
    Workspace.init(root).close()
    with held_port() as port:
        done = subprocess.run(
            serve_command(root, "--port", str(port), *(["--json"] if as_json else [])),
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=120,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == errors.BusyError.exit_code, output
    assert "Traceback" not in output, output
    if as_json:
        body = json.loads(done.stdout)
        assert body["error"] == "BusyError"
        assert body["message"] == f"another process listens on 127.0.0.1:{port}"
        assert "--port" in body["hint"] and "stop" in body["hint"]
    else:
        assert f"error: another process listens on 127.0.0.1:{port}" in done.stderr
        assert "hint: stop that process, or pass another port with --port" in done.stderr


@contextmanager
def serving(root: Path, log: Path, *extra: str) -> Iterator[ServerProcess]:
    """``airlock serve`` as a child process until /health answers (another port if it lost
    the race for the one it was given)."""
    for _attempt in range(5):
        port = free_port()
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                serve_command(root, "--port", str(port), *extra),
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}", port=port, log=log)

        def healthy(server: ServerProcess = server) -> bool | None:
            if server.proc.poll() is not None:
                return False
            try:
                return httpx.get(server.url + "/health", timeout=5).status_code == 200 or None
            except httpx.TransportError:
                return None

        try:
            if poll_until(healthy, deadline=60, every=0.05, what="/health"):
                break
        except BaseException:
            server.kill()
            raise
        assert server.proc.returncode == errors.BusyError.exit_code, server.output()
    else:
        raise AssertionError(f"airlock serve did not start:\n{log.read_text(errors='replace')}")
    try:
        yield server
    finally:
        server.stop()


def test_serve_prints_where_it_listens_and_what_to_open(root: Path, tmp_path: Path) -> None:
    Workspace.init(root).close()
    with serving(root, tmp_path / "serve.log", "--docs") as server:
        printed = poll_until(
            lambda: server.output() if "/docs" in server.output() else None, what="the banner"
        )
        base = server.url
        assert f"listening on 127.0.0.1:{server.port}" in printed, printed
        for line in (f"Review page: {base}/ui/", f"Health:      {base}/health", f"{base}/docs"):
            assert line in printed, printed
        for path in ("/ui/", "/health", "/docs"):  # each address it prints answers
            answer = httpx.get(base + path, timeout=30)
            assert answer.status_code in (200, 303), (path, answer.status_code)


def test_serve_json_says_where_without_docs_when_off(root: Path, tmp_path: Path) -> None:
    Workspace.init(root).close()
    with serving(root, tmp_path / "serve.log", "--json") as server:
        text = poll_until(lambda: server.output() if "}" in server.output() else None)
        where = json.loads(text[text.index("{") : text.index("}") + 1])
        assert where == {
            "listening": f"127.0.0.1:{server.port}",
            "review_page": f"{server.url}/ui/",
            "health": f"{server.url}/health",
            "docs": None,
        }
        assert httpx.get(server.url + "/docs", timeout=30).status_code == 404


def test_serve_on_an_address_this_machine_lacks(root: Path) -> None:
    Workspace.init(root).close()
    done = airlock("serve", "--workspace", str(root), "--host", "192.0.2.1", "--port", "8124")
    output = done.stdout + done.stderr
    # TEST-NET-1 is never this machine's: either no token exists (refused first) or no interface
    assert done.returncode == errors.InputError.exit_code, output
    assert "Traceback" not in output


# --- airlock plan list -----------------------------------------------------------------------


def test_plan_list_refuses_an_unknown_status(root: Path) -> None:
    Workspace.init(root).close()
    done = airlock("plan", "list", "--workspace", str(root), "--status", "aproved")
    assert done.returncode == errors.InputError.exit_code, done.stderr
    assert "no plan status 'aproved'" in done.stderr
    for status in ("submitted", "validated", "approved", "applied", "rolled_back"):
        assert status in done.stderr
    as_json = airlock("plan", "list", "--workspace", str(root), "--status", "x", "--json")
    assert as_json.returncode == errors.InputError.exit_code
    assert json.loads(as_json.stdout)["error"] == "InputError"
    listed = airlock("plan", "list", "--workspace", str(root), "--status", "approved", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def submit(ws: Workspace, plan_id: str, *ops: dict[str, Any], validate: bool = True) -> None:
    agent = person("agent")
    ws.submit(make_plan(*ops), plan_id=plan_id, by=agent)
    if validate:
        ws.validate(plan_id, by=agent)


def test_plan_list_json_carries_each_plans_validation(root: Path) -> None:
    with Workspace.init(root) as ws:
        submit(ws, "deletes", {"op": "delete", "path": "notes.txt"})
        submit(ws, "broken", {"op": "move", "source": "absent.pdf", "destination": "x.pdf"})
        submit(ws, "unchecked", {"op": "mkdir", "path": "new"}, validate=False)
        submit(ws, "twice", {"op": "mkdir", "path": "again"})
        ws.validate("twice", by=person("agent"))
        latest = ws.get("twice").validation_id
    done = airlock("plan", "list", "--workspace", str(root), "--json")
    assert done.returncode == 0, done.stderr
    listed = {entry["plan_id"]: entry for entry in json.loads(done.stdout)}
    deletes = listed["deletes"]["validation"]
    assert deletes["valid"] is True and deletes["needs_approval"] == ["1 delete(s)"]
    assert deletes["counts"]["delete"] == 1 and deletes["error_count"] == 0
    assert deletes["warning_count"] == len(deletes["warnings"])
    assert "changes" not in deletes and "preconditions" not in deletes  # a list stays small
    broken = listed["broken"]["validation"]
    assert broken["valid"] is False and broken["error_count"] == len(broken["errors"]) >= 1
    assert "operation 1 (move)" in broken["errors"][0]["message"]
    assert listed["unchecked"]["validation"] is None
    assert listed["twice"]["validation_id"] == latest  # the latest of its validations
    text = airlock("plan", "list", "--workspace", str(root))
    assert re.search(r"deletes\s+validated\s+needs approval", text.stdout), text.stdout
    assert re.search(r"broken\s+invalid\s+1 error\(s\)", text.stdout), text.stdout
    assert re.search(r"unchecked\s+submitted\s+not validated", text.stdout), text.stdout


def test_plan_validations_are_read_in_one_query_for_the_list(root: Path) -> None:
    with Workspace.init(root) as ws:
        for number in range(12):
            submit(ws, f"p{number}", {"op": "mkdir", "path": f"folder {number}"})
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2])

        event.listen(ws.store.engine, "before_cursor_execute", seen)
        try:
            with ws.store.read() as session:
                summaries = ws.store.validation_summaries(session, None, CASE)
        finally:
            event.remove(ws.store.engine, "before_cursor_execute", seen)
    assert len(summaries) == 12
    queries = [s for s in statements if s != "BEGIN"]  # SQLite's BEGIN, sent by airlock.db
    assert len(queries) == 1 and "validations" in queries[0], queries


# --- numbering -------------------------------------------------------------------------------


def test_operations_are_numbered_from_1_in_the_report(root: Path) -> None:
    with Workspace.init(root) as ws:
        submit(
            ws,
            "two",
            {"op": "mkdir", "path": "a"},
            {"op": "move", "source": "absent.pdf", "destination": "a/x.pdf"},
        )
    done = airlock("plan", "show", "two", "--workspace", str(root))
    assert "operation 2 (move)" in done.stdout, done.stdout
    assert "operation 1 (move)" not in done.stdout


# --- the README ------------------------------------------------------------------------------


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_says_how_to_get_airlock_on_path_and_what_make_test_installs() -> None:
    text = readme()
    assert ". .venv/bin/activate" in text and ".venv/bin/airlock" in text
    setup = text[: text.index("## Using it")]
    for tool in ("bubblewrap", "runsc", "chromium", "Node 22", "root"):
        assert tool in setup, tool


def test_readme_sample_plan_is_the_demo_file_and_validates_on_the_demo(tmp_path: Path) -> None:
    text = readme()
    block = re.search(r"```json\n(\{\"scope\".*?)```", text, re.S)
    assert block, "the README shows a sample plan"
    plan_file = DEMO_DATA / "plan.json"
    assert "submit src/airlock/demo/data/plan.json" in text
    assert json.loads(block.group(1)) == json.loads(plan_file.read_text(encoding="utf-8"))
    workspace = tmp_path / "demo"
    build_sample_workspace(workspace)
    env = {"AIRLOCK_WORKSPACE": str(workspace)}
    assert airlock("init", env=env).returncode == 0
    done = airlock("plan", "submit", str(plan_file), "--id", "reorg-1", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "validated", record["validation"]["errors"]
    assert record["scope"] == f"projects/{DEMO_CASE}"


def test_readme_scripts_and_demo_paths_exist() -> None:
    text = readme()
    tools = re.findall(r"/workspace/Tools/([\w.-]+)", text)
    assert tools, "the README runs a script of the demo's Tools folder"
    for name in tools:
        assert (DEMO_DATA / "workspace" / "Tools" / name).is_file(), name
    for path in re.findall(r"src/airlock/demo/[\w./-]+\w", text):
        assert (ROOT / path).exists(), path
    assert os.access(DEMO_DATA / "workspace" / "Tools" / "organize_medical_subfolders.sh", os.R_OK)
