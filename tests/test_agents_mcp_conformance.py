"""The official MCP conformance suite (``@modelcontextprotocol/conformance`` from npm, run by
Node 22; ``make node22`` installs both in .tools/node22) against ``airlock mcp --http``, started
as a child process the way an operator starts it.

The suite's client cannot send headers, and Airlock answers no HTTP request without a token; a
Node preload gives it the agent's token as any configured client would have it: an undici
interceptor adds ``Authorization: Bearer`` to each request it sends (fetch and undici alike),
nothing else. Each scenario that applies to a tools-only server must pass; each other is listed
with the reason it does not apply (most call the fixture tools, resources or prompts that only
the suite's own reference test server has).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.tokens import Role, create_token
from airlock.workspace import Workspace
from servicekit import free_port, poll_until

REPO = Path(__file__).parent.parent
MODULES = REPO / ".tools" / "node22" / "node_modules"
NODE = MODULES / ".bin" / "node"
SUITE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

pytestmark = pytest.mark.skipif(
    not (NODE.exists() and SUITE.exists()),
    reason="Node 22 and @modelcontextprotocol/conformance are not installed in .tools/node22 "
    "(run `make node22`)",
)

APPLIES = {
    "server-initialize": "the initialize handshake",
    "ping": "ping",
    "tools-list": "every tool has a name, a description and an input schema",
    "server-sse-multiple-streams": "concurrent POST streams on one session",
    "dns-rebinding-protection": "a foreign Host/Origin is refused, the bound one answered",
    "resources-list": "the SDK's server advertises resources: an empty list",
    "prompts-list": "the SDK's server advertises prompts: an empty list",
}


def _fixture(what: str) -> str:
    return f"calls {what}, which only the suite's reference test server has"


_VACUOUS = " (it passes here only because an unknown tool's answer is an isError text result)"
DOES_NOT_APPLY = {
    "logging-set-level": "Airlock's server offers no logging capability (answers are tool results)",
    "completion-complete": "no prompts or resource templates, so no completion capability",
    "tools-call-simple-text": _fixture("the fixture tool test_simple_text") + _VACUOUS,
    "tools-call-image": _fixture("the fixture tool test_image_content"),
    "tools-call-audio": _fixture("the fixture tool test_audio_content"),
    "tools-call-embedded-resource": _fixture("the fixture tool test_embedded_resource"),
    "tools-call-mixed-content": _fixture("the fixture tool test_multiple_content_types"),
    "tools-call-with-logging": _fixture("the fixture tool test_tool_with_logging"),
    "tools-call-error": _fixture("the fixture tool test_error_handling") + _VACUOUS,
    "tools-call-with-progress": _fixture("the fixture tool test_tool_with_progress"),
    "tools-call-sampling": _fixture("the fixture tool test_sampling"),
    "tools-call-elicitation": _fixture("the fixture tool test_elicitation"),
    "json-schema-2020-12": _fixture("the fixture tool json_schema_2020_12_tool"),
    "elicitation-sep1034-defaults": _fixture("the fixture tool test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _fixture("the fixture tool test_elicitation_sep1330_enums"),
    "server-sse-polling": _fixture("the fixture tool test_reconnection"),
    "resources-read-text": _fixture("the fixture resource test://static-text"),
    "resources-read-binary": _fixture("the fixture resource test://static-binary"),
    "resources-templates-read": _fixture("the fixture template test://template/{id}/data"),
    "resources-subscribe": _fixture("the fixture resource test://watched-resource"),
    "resources-unsubscribe": _fixture("the fixture resource test://watched-resource"),
    "prompts-get-simple": _fixture("the fixture prompt test_simple_prompt"),
    "prompts-get-with-args": _fixture("the fixture prompt test_prompt_with_arguments"),
    "prompts-get-embedded-resource": _fixture(
        "the fixture prompt test_prompt_with_embedded_resource"
    ),
    "prompts-get-with-image": _fixture("the fixture prompt test_prompt_with_image"),
}

# Adds the token to every request the suite sends: its SDK client and raw calls use fetch, its
# DNS-rebinding check undici's request; both go through undici's global dispatcher here.
PRELOAD = """\
import { createRequire } from "node:module";
const undici = createRequire(process.env.AIRLOCK_NODE_MODULES + "/")("undici");
const bearer = "Bearer " + process.env.AIRLOCK_TOKEN;
function asObject(headers) {
  const out = {};
  if (!headers) return out;
  if (Array.isArray(headers)) {
    if (headers.length && Array.isArray(headers[0])) for (const [k, v] of headers) out[k] = v;
    else for (let i = 0; i < headers.length; i += 2) out[headers[i]] = headers[i + 1];
  } else if (typeof headers[Symbol.iterator] === "function") {
    for (const [k, v] of headers) out[k] = v;
  } else Object.assign(out, headers);
  return out;
}
const withToken = (dispatch) => (opts, handler) =>
  dispatch({ ...opts, headers: { ...asObject(opts.headers), authorization: bearer } }, handler);
undici.setGlobalDispatcher(new undici.Agent().compose(withToken));
globalThis.fetch = undici.fetch;
"""


@dataclass
class Served:
    url: str
    token: str
    work: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("conformance")
    root = work / "ws"
    (root / "projects" / "Smith").mkdir(parents=True)
    (root / "projects" / "Smith" / "notes.txt").write_text("notes\n")
    (root / "Tools").mkdir()
    ws = Workspace.init(root)
    try:
        _, token = create_token(ws, "conformance-agent", Role.AGENT)
    finally:
        ws.close()
    (work / "with_token.mjs").write_text(PRELOAD)
    port = free_port()
    command = [sys.executable, "-m", "airlock", "mcp", "-w", str(root), "--scope", "projects/Smith"]
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_TOKEN", "AIRLOCK_WORKSPACE")}
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--http", "--port", str(port)], stdout=log, stderr=log, env=env
        )
    url = f"http://127.0.0.1:{port}/mcp"

    def listening() -> bool | None:
        assert proc.poll() is None, (work / "server.log").read_text()
        try:
            return httpx.post(url, json={}).status_code == 401 or None
        except httpx.TransportError:
            return None

    try:
        poll_until(listening, deadline=60, what="airlock mcp --http to listen")
        yield Served(url, token, work)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_suite(served: Served, scenario: str, *, with_token: bool = True) -> list[dict[str, Any]]:
    """Run one scenario; the checks it recorded."""
    out = served.work / ("out" if with_token else "out-no-token") / scenario
    env = {
        "PATH": f"{NODE.parent}:{os.environ.get('PATH', '')}",
        "HOME": str(served.work),
        "AIRLOCK_NODE_MODULES": str(MODULES),
        "AIRLOCK_TOKEN": served.token,
    }
    if with_token:
        env["NODE_OPTIONS"] = f"--import={served.work / 'with_token.mjs'}"
    done = subprocess.run(
        [
            str(NODE),
            str(SUITE),
            "server",
            "--url",
            served.url,
            "--scenario",
            scenario,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    found = sorted(out.glob(f"server-{scenario}-*/checks.json"))
    assert found, done.stdout + done.stderr
    checks: list[dict[str, Any]] = json.loads(found[-1].read_text())
    if with_token:
        assert done.returncode == 0, done.stdout + done.stderr
    return checks


def test_node_is_22() -> None:
    done = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("v22."), done.stdout


def test_every_server_scenario_of_the_suite_is_accounted_for() -> None:
    done = subprocess.run(
        [str(NODE), str(SUITE), "list", "--server"], capture_output=True, text=True, check=True
    )
    listed = {
        line.strip()[2:].split(" ")[0]
        for line in done.stdout.splitlines()
        if line.strip().startswith("- ")
    }
    assert listed == set(APPLIES) | set(DOES_NOT_APPLY)
    assert not set(APPLIES) & set(DOES_NOT_APPLY)


@pytest.mark.parametrize(
    "scenario",
    [
        *APPLIES,
        *(
            pytest.param(name, marks=pytest.mark.skip(reason=why))
            for name, why in DOES_NOT_APPLY.items()
        ),
    ],
)
def test_conformance_scenario(served: Served, scenario: str) -> None:
    checks = run_suite(served, scenario)
    statuses = [check["status"] for check in checks]
    assert "SUCCESS" in statuses, checks
    assert set(statuses) <= {"SUCCESS", "INFO"}, checks


def test_the_suite_without_a_token_is_refused(served: Served) -> None:
    checks = run_suite(served, "server-initialize", with_token=False)
    assert [check["status"] for check in checks] == ["FAILURE"]
    assert "invalid_token" in checks[0].get("errorMessage", ""), checks
