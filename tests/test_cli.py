"""The command line, run as a real process: --json everywhere, documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airlock import plan
from support import CASE, make_plan


def airlock(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airlock", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def ok_json(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    done = airlock(*args, "--json", env=env, stdin=stdin)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_full_lifecycle_with_json_and_env_workspace(root: Path, tmp_path: Path) -> None:
    env = {"AIRLOCK_WORKSPACE": str(root)}
    assert ok_json("init", "--workspace", str(root))["workspace"] == str(root)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan({"op": "delete", "path": "notes.txt"})))
    submitted = ok_json("plan", "submit", str(plan_file), "--id", "cli-1", env=env)
    assert submitted["status"] == "validated"
    assert submitted["validation"]["needs_approval"] == ["1 delete(s)"]

    refused = airlock("plan", "apply", "cli-1", "--json", env=env)
    assert refused.returncode == 6
    assert json.loads(refused.stdout)["error"] == "NotPermittedError"

    assert ok_json("plan", "approve", "cli-1", "--actor", "dana", env=env)["status"] == "approved"
    applied = ok_json("plan", "apply", "cli-1", env=env)
    assert applied["success"] is True
    assert not (root / CASE / "notes.txt").exists()
    assert ok_json("plan", "rollback", "cli-1", "--actor", "dana", env=env)["success"] is True
    assert (root / CASE / "notes.txt").read_text() == "first notes\n"

    listed = ok_json("plan", "list", env=env)
    assert [p["status"] for p in listed] == ["rolled_back"]
    shown = ok_json("plan", "show", "cli-1", env=env)
    assert [d["actor"] for d in shown["decisions"]] == ["dana"]
    assert ok_json("audit", "verify", env=env)["ok"] is True
    events = ok_json("audit", "log", "--plan", "cli-1", env=env)
    assert [e["kind"] for e in events] == [
        "submitted",
        "validated",
        "approved",
        "applied",
        "rolled_back",
    ]
    export = tmp_path / "audit.jsonl"
    assert ok_json("audit", "export", "-o", str(export), env=env)["events"] == 5
    assert all(json.loads(line)["hash"] for line in export.read_text().splitlines())
    assert ok_json("recover", env=env) == {"recovered": [], "failures": []}
    assert ok_json("gc", "--older-than", "0", env=env)["purged"]


def test_submit_from_stdin_and_human_report(root: Path) -> None:
    ok_json("init", "-w", str(root))
    body = json.dumps(make_plan({"op": "move", "source": "notes.txt", "destination": "Notes.md"}))
    done = airlock("plan", "submit", "-", "-w", str(root), stdin=body)
    assert done.returncode == 0, done.stderr
    assert "→ move      notes.txt → Notes.md" in done.stdout
    assert "No approval needed by policy" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (("plan", "show", "nope"), 4, "NotFoundError"),
        (("plan", "approve", "nope", "--actor", "dana"), 4, "NotFoundError"),
        (("plan", "submit", "/no/such/file.json"), 3, "InputError"),
    ],
)
def test_errors_have_exit_codes_and_hints(
    root: Path, args: tuple[str, ...], code: int, error: str
) -> None:
    ok_json("init", "-w", str(root))
    done = airlock(*args, "-w", str(root), "--json")
    assert done.returncode == code, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["error"] == error and answer["hint"]
    human = airlock(*args, "-w", str(root))
    assert human.returncode == code
    assert "error:" in human.stderr and "hint:" in human.stderr


def test_invalid_plan_exits_5_with_the_reason(root: Path, tmp_path: Path) -> None:
    ok_json("init", "-w", str(root))
    plan_file = tmp_path / "bad.json"
    plan_file.write_text(
        json.dumps(make_plan({"op": "move", "source": "missing.pdf", "destination": "x.pdf"}))
    )
    done = airlock("plan", "submit", str(plan_file), "-w", str(root))
    assert done.returncode == 5
    assert "'projects/Case-A/missing.pdf' does not exist" in done.stdout


def test_missing_workspace_says_how_to_give_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRLOCK_WORKSPACE"}
    done = subprocess.run(
        [sys.executable, "-m", "airlock", "plan", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 3
    assert "AIRLOCK_WORKSPACE" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("init",),
        ("plan",),
        ("plan", "submit"),
        ("plan", "apply"),
        ("plan", "rollback"),
        ("audit", "verify"),
        ("gc",),
        ("recover",),
        ("demo",),
    ],
)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    done = airlock(*command, "--help")
    assert done.returncode == 0
    assert "Usage:" in done.stdout and "--help" in done.stdout


def test_published_schema_is_current() -> None:
    published = json.loads(
        (Path(__file__).parent.parent / "schema" / "plan.schema.json").read_text()
    )
    assert published == plan.json_schema()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    summary = ok_json("demo", "--workspace", str(tmp_path / "demo"))
    assert summary == {
        "workspace": str(tmp_path / "demo"),
        "plan_id": "demo-reorganise",
        "applied": True,
        "rolled_back": True,
        "audit_events": 5,
        "audit_ok": True,
    }
    again = airlock("demo", "--workspace", str(tmp_path / "demo"))
    assert again.returncode == 3 and "--reset" in again.stderr
    assert ok_json("demo", "--workspace", str(tmp_path / "demo"), "--reset")["applied"] is True
