"""The operating files stay true to the program: systemd unit, example settings, Dockerfile.

Docker cannot build here, so the Dockerfile is checked piece by piece against the app (its
command, port, health check, copied files); the systemd unit's command and the example settings
are run for real.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
import typer

from airlock.cli import app as cli_app
from airlock.service.app import create_app
from airlock.service.settings import Settings, load_settings
from airlock.workspace import Workspace
from servicekit import free_port, poll_until

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "deploy" / "airlock.service"
EXAMPLE = ROOT / "deploy" / "airlock.toml.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
OPERATING = ROOT / "docs" / "operating.md"


# --- helpers -------------------------------------------------------------------------------------


def unit_sections() -> dict[str, dict[str, list[str]]]:
    """The unit file as section -> key -> values (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}= should be set once, found {values}"
    return values[0]


def serve_options() -> set[str]:
    command = typer.main.get_command(cli_app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    options: set[str] = set()
    for param in serve.params:
        options.update(param.opts)
        options.update(param.secondary_opts)
    return options


def serve_help() -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "airlock", "serve", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout


def check_serve_argv(argv: list[str], help_text: str) -> None:
    assert Path(argv[0]).name == "airlock" and argv[1] == "serve", argv
    known = serve_options()
    for arg in argv[2:]:
        if arg.startswith("-"):
            assert arg in known, f"`airlock serve` has no option {arg}"
            assert arg in help_text, f"{arg} is not in `airlock serve --help`"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def docker(name: str) -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == name]


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def healthcheck_code() -> str:
    (check,) = docker("HEALTHCHECK")
    command = exec_form(check[check.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"], command
    return command[2]


def app_paths(tmp_path: Path) -> set[str]:
    ws = Workspace.init(tmp_path / "routes-ws")
    try:
        app = create_app(ws, Settings(workspace=ws.root))
        app.state.jobs.shutdown()
        return set(app.openapi()["paths"])
    finally:
        ws.close()


# --- systemd ---------------------------------------------------------------------------------------


def test_systemd_execstart_is_a_real_serve_command() -> None:
    service = unit_sections()["Service"]
    argv = shlex.split(one(service, "ExecStart"))
    assert Path(argv[0]).is_absolute(), "systemd wants an absolute program path"
    check_serve_argv(argv, serve_help())
    assert argv[argv.index("--config") + 1] == "/etc/airlock/airlock.toml"


def test_systemd_unit_is_hardened_but_can_write_the_workspace_and_state() -> None:
    units = unit_sections()
    unit, service = units["Unit"], units["Service"]
    workspace = tomllib.loads(EXAMPLE.read_text())["workspace"]
    assert "network-online.target" in " ".join(unit.get("After", []))
    assert "network-online.target" in " ".join(unit.get("Wants", []))
    assert workspace in one(unit, "RequiresMountsFor").split()
    assert one(service, "User") not in ("root", "0")
    assert one(service, "Restart") == "on-failure"
    assert one(service, "ProtectSystem") == "strict"
    assert workspace in one(service, "ReadWritePaths").split()
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert one(service, key) == "yes", key
    # The local database suggested for gcsfuse lives in the state directory systemd makes writable.
    assert one(service, "StateDirectory") == "airlock"
    assert "sqlite:////var/lib/airlock/" in EXAMPLE.read_text()
    assert one(units["Install"], "WantedBy") == "multi-user.target"
    # The storage's system calls (openat2, renameat2, flock) are all in @system-service.
    assert "@system-service" in service["SystemCallFilter"]


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    program = Path(sys.executable).parent / "airlock"
    assert program.exists(), "the airlock command is installed beside this Python"
    unit = tmp_path / "airlock.service"
    unit.write_text(UNIT.read_text().replace("/opt/airlock/venv/bin/airlock", str(program)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    complaints = [line for line in output.splitlines() if "airlock.service" in line]
    assert done.returncode == 0 and not complaints, output


# --- the example settings ------------------------------------------------------------------------


def test_example_settings_name_every_setting_and_nothing_else() -> None:
    keys = set(tomllib.loads(EXAMPLE.read_text()))
    assert keys == {f.name for f in fields(Settings)}
    settings = load_settings(EXAMPLE, environ={})
    defaults = Settings()
    for name in ("host", "port", "max_body_bytes", "apply_workers", "log_level"):
        assert getattr(settings, name) == getattr(defaults, name), f"{name} is not the default"


def test_every_example_setting_has_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert n > 0 and lines[n - 1].startswith("#"), f"no comment above {line!r}"


def test_serve_runs_from_the_example_settings(tmp_path: Path) -> None:
    """The unit's command with the example file (workspace, port and database pointed here)."""
    root = tmp_path / "workspace"
    database = tmp_path / "local-disk" / "airlock.db"
    database.parent.mkdir()
    url = f"sqlite:///{database}"
    Workspace.init(root, database_url=url).close()
    port = free_port()
    text = EXAMPLE.read_text()
    text = re.sub(r'^workspace = ".*"$', f"workspace = {json.dumps(str(root))}", text, flags=re.M)
    text = re.sub(r"^port = \d+$", f"port = {port}", text, flags=re.M)
    text = re.sub(r'^database_url = ".*"$', f"database_url = {json.dumps(url)}", text, flags=re.M)
    config = tmp_path / "airlock.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airlock", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=env,
        )
    try:

        def healthy() -> dict[str, object] | None:
            assert proc.poll() is None, log.read_text()
            try:
                body: dict[str, object] = httpx.get(
                    f"http://127.0.0.1:{port}/health", timeout=5
                ).json()
            except httpx.TransportError:
                return None
            return body

        assert poll_until(healthy, deadline=60, what="/health")["status"] == "healthy"
        # The Dockerfile's HEALTHCHECK, run as Docker would run it.
        check = subprocess.run(
            [sys.executable, "-c", healthcheck_code()],
            env={**env, "AIRLOCK_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # uvicorn shuts down gracefully, then exits by the signal it got (systemd counts that clean).
    assert proc.returncode in (0, -signal.SIGTERM), log.read_text()
    # The database is where the settings file said, not in the workspace.
    assert database.exists() and not (root / ".airlock" / "airlock.db").exists()
    # Logs are JSON lines on stderr.
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("message") == "request" and e.get("path") == "/health" for e in entries)


# --- Docker --------------------------------------------------------------------------------------


def test_dockerfile_base_user_port_and_volume() -> None:
    assert docker("FROM") == ["python:3.11-slim"]
    (user,) = docker("USER")
    assert user not in ("root", "0")
    assert docker("EXPOSE") == [str(Settings().port)]
    (volume,) = docker("VOLUME")
    envs = " ".join(docker("ENV"))
    assert f"AIRLOCK_WORKSPACE={exec_form(volume)[0]}" in envs


def test_dockerfile_command_is_a_real_serve_command_on_all_interfaces() -> None:
    (cmd,) = docker("CMD")
    argv = exec_form(cmd)
    check_serve_argv(argv, serve_help())
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    text = DOCKERFILE.read_text()
    assert "token create" in text, "the Dockerfile says a token is needed before binding 0.0.0.0"


def test_dockerfile_healthcheck_calls_a_route_of_the_app(tmp_path: Path) -> None:
    code = healthcheck_code()
    compile(code, "HEALTHCHECK", "exec")
    paths = re.findall(r"http://127\.0\.0\.1:%s(/[\w/-]*)", code)
    assert paths == ["/health"], code
    assert "/health" in app_paths(tmp_path)
    assert "'8124'" in code and Settings().port == 8124


def test_dockerfile_copies_what_the_package_build_needs() -> None:
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: list[str] = []
    for args in docker("COPY"):
        copied += args.split()[:-1]
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] in copied and "pyproject.toml" in copied and "src" in copied


def test_installed_package_carries_every_data_file() -> None:
    """A non-editable install (the image, a VM's venv) ships templates, static files, migrations."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {
        ROOT / "src" / name.replace(".", "/"): patterns
        for name, patterns in tool["package-data"].items()
    }

    def shipped(path: Path) -> bool:
        return any(
            path.is_relative_to(base) and fnmatch.fnmatch(str(path.relative_to(base)), pattern)
            for base, patterns in declared.items()
            for pattern in patterns
        )

    package = ROOT / "src" / "airlock"
    missing = [
        str(path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not shipped(path)
    ]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


# --- the operating guide -------------------------------------------------------------------------


def test_operating_guide_names_every_setting_and_variable() -> None:
    guide = OPERATING.read_text()
    for field in fields(Settings):
        assert f"AIRLOCK_{field.name.upper()}" in guide, field.name
    for name in ("deploy/airlock.service", "deploy/airlock.toml.example", "Dockerfile"):
        assert name in guide
