"""The command line, run as a real process: --json everywhere, documented exit codes."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from airlock import cli, errors, plan
from airlock.cli import output, runs
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


OPERATOR = f"os:{getpass.getuser()}"


def token(root: Path, name: str, role: str) -> str:
    made = ok_json("token", "create", "--name", name, "--role", role, "-w", str(root))
    return str(made["token"])


def test_full_lifecycle_with_json_and_env_workspace(root: Path, tmp_path: Path) -> None:
    env = {"AIRLOCK_WORKSPACE": str(root)}
    assert ok_json("init", "--workspace", str(root))["workspace"] == str(root)
    agent = {**env, "AIRLOCK_TOKEN": token(root, "paralegal-agent", "agent")}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan({"op": "delete", "path": "notes.txt"})))
    submitted = ok_json("plan", "submit", str(plan_file), "--id", "cli-1", env=agent)
    assert submitted["status"] == "validated" and submitted["author"] == "paralegal-agent"
    assert submitted["validation"]["needs_approval"] == ["1 delete(s)"]

    refused = airlock("plan", "apply", "cli-1", "--json", env=agent)
    assert refused.returncode == 6
    assert json.loads(refused.stdout)["error"] == "NotPermittedError"

    approved = ok_json("plan", "approve", "cli-1", "--actor", "dana", env=env)
    assert approved["status"] == "approved" and approved["actor"] == OPERATOR
    applied = ok_json("plan", "apply", "cli-1", env=agent)
    assert applied["success"] is True
    assert not (root / CASE / "notes.txt").exists()
    assert ok_json("plan", "rollback", "cli-1", env=env)["success"] is True
    assert (root / CASE / "notes.txt").read_text() == "first notes\n"

    listed = ok_json("plan", "list", env=env)
    assert [p["status"] for p in listed] == ["rolled_back"]
    shown = ok_json("plan", "show", "cli-1", env=env)
    assert [d["actor"] for d in shown["decisions"]] == [OPERATOR]
    assert ok_json("audit", "verify", env=env)["ok"] is True
    events = ok_json("audit", "log", "--plan", "cli-1", env=env)
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("submitted", "paralegal-agent"),
        ("validated", "paralegal-agent"),
        ("approved", OPERATOR),
        ("applied", "paralegal-agent"),
        ("rolled_back", OPERATOR),
    ]
    assert events[2]["payload"]["note"] == "dana"  # what --actor said, beside the identity
    export = tmp_path / "audit.jsonl"
    assert ok_json("audit", "export", "-o", str(export), env=env)["events"] == 6  # + token
    assert all(json.loads(line)["hash"] for line in export.read_text().splitlines())
    assert ok_json("recover", env=env) == {"recovered": [], "failures": []}
    assert ok_json("gc", "--older-than", "0", env=env)["purged"]


def test_actor_is_a_note_never_an_identity(root: Path, tmp_path: Path) -> None:
    """`--actor` once chose who acted: anyone could approve their own plan as someone else."""
    env = {"AIRLOCK_WORKSPACE": str(root)}
    ok_json("init", "-w", str(root))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan({"op": "delete", "path": "notes.txt"})))
    mine = ok_json("plan", "submit", str(plan_file), "--id", "mine", "--actor", "bot", env=env)
    assert mine["author"] == OPERATOR
    done = airlock("plan", "approve", "mine", "--actor", "dana", "--json", env=env)
    assert done.returncode == 6, done.stdout
    assert "cannot approve" in json.loads(done.stdout)["message"]

    agent = {**env, "AIRLOCK_TOKEN": token(root, "bot", "agent")}
    done = airlock("plan", "approve", "mine", "--json", env=agent)
    assert done.returncode == 6 and "role agent" in json.loads(done.stdout)["message"]
    done = airlock("plan", "approve", "mine", "--json", env={**env, "AIRLOCK_TOKEN": "alk_x_y"})
    assert done.returncode == 6 and json.loads(done.stdout)["error"] == "AuthenticationError"
    approver = token(root, "dana", "approver")
    shown = ok_json("plan", "approve", "mine", "--token", approver, env=env)
    assert shown["actor"] == "dana" and shown["status"] == "approved"
    # Maintenance acts as the token too: an agent's token may not make tokens or purge.
    for command in (("token", "create", "--name", "x", "--role", "admin"), ("gc",)):
        done = airlock(*command, "--json", env=agent)
        assert done.returncode == 6 and "role agent" in json.loads(done.stdout)["message"]


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
        (("plan", "approve", "nope"), 4, "NotFoundError"),
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


def command_paths(
    command: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


def test_the_exit_codes_listed_are_the_error_trees() -> None:
    """The module docstring and `airlock --help` list every code of :mod:`airlock.errors`."""
    tree = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AirlockError)
    }
    assert set(output.exit_codes()) == tree | {0, 2}  # 0 ok, 2 click's usage error
    assert output.exit_codes()[errors.StorageError.exit_code] == "StorageError"
    listing = "\n".join(
        line for line in (cli.__doc__ or "").splitlines() if re.match(r"    \d", line)
    )
    documented = {int(n) for n in re.findall(r"(?:^|·)\s*(\d+) [a-z]", listing, re.M)}
    assert documented == set(output.exit_codes()), listing
    shown = " ".join(airlock("--help", env={"COLUMNS": "100"}).stdout.split())
    for code, meaning in output.exit_codes().items():
        assert f"{code} {meaning}" in shown


def test_exit_codes_in_help_texts_are_the_error_trees() -> None:
    mentioned = {
        " ".join(path): [int(n) for n in re.findall(r"\bexit (\d+)", command.help or "")]
        for path, command in command_paths(typer.main.get_command(cli.app))
    }
    assert {path: codes for path, codes in mentioned.items() if codes} == {
        "plan validate": [errors.PlanInvalidError.exit_code],
        "recover": [errors.StorageError.exit_code],
        "audit verify": [errors.IntegrityError.exit_code],
    }
    run_help = typer.main.get_command(cli.app).commands["run"].help  # type: ignore[attr-defined]
    assert f", {output.EXIT_RUN_FAILED} when it failed" in run_help


def test_run_timeout_bound_is_the_sandboxs() -> None:
    from airlock.sandbox.base import MAX_TIMEOUT

    assert runs.MAX_TIMEOUT == MAX_TIMEOUT


HEAVY = (
    "sqlalchemy",
    "pydantic",
    "fastapi",
    "uvicorn",
    "rich.progress",
    "airlock.workspace",
    "airlock.db",
    "airlock.plan",
    "airlock.sandbox",
)
PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import typer
    from airlock.cli import app

    def paths(command, path=()):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, (*path, name))

    codes = {}
    for argv in [[*path, "--help"] for path in paths(typer.main.get_command(app))] + [sys.argv[1:]]:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                app(argv, prog_name="airlock")
            except SystemExit as exit:
                codes[" ".join(argv)] = exit.code
    print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
    """
)


def loaded_by(*argv: str) -> tuple[dict[str, int], set[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_WORKSPACE", "AIRLOCK_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return answer["codes"], set(answer["modules"])


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in names))


def test_help_loads_nothing_heavy() -> None:
    """Every command's --help (issue 10: `airlock --help` under 0.3 s) is Typer and Rich only."""
    codes, modules = loaded_by("--help")
    assert {"--help", "plan --help", "plan list --help", "run --help"} <= set(codes), codes
    assert set(codes.values()) == {0}, codes
    assert heavy(modules) == []


def test_a_command_loads_the_library_only_once_it_touches_the_workspace() -> None:
    codes, modules = loaded_by("plan", "list")
    assert codes["plan list"] == errors.InputError.exit_code  # no workspace given
    # Typer itself coerces option values with pydantic, so only pydantic may be there.
    assert heavy(modules, tuple(h for h in HEAVY if h != "pydantic")) == []
