"""The deepagents backend against the sandbox suite LangChain publishes for third-party sandboxes
(``langchain_tests.integration_tests.SandboxIntegrationTests``).

A real workspace, a real agent token, the real bubblewrap sandbox: nothing is faked. Every file
the suite writes goes into the agent's pending plan (the real scope stays empty); every
``execute`` runs in the sandbox over the scope plus the pending changes and folds what it changed
back into the plan, which is why the suite's ``mkdir -p`` + ``write`` + ``ls`` round trips work.

Seven tests contradict deepagents 0.7's own ``BackendProtocol`` contract, which Airlock follows:
``glob`` returns absolute paths of files only (the suite expects paths relative to the search
root, and folders), and ``write`` creates or overwrites (the suite expects it to refuse an
existing file). They are marked ``xfail`` (strict), as the suite itself asks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deepagents.backends.protocol import SandboxBackendProtocol
from langchain_tests.integration_tests import SandboxIntegrationTests

from agentkit import needs_sandbox
from airlock.agents.deepagents import AirlockBackend, airlock_tools
from airlock.agents.langchain import PLAN_TOOLS
from airlock.errors import AuthenticationError
from airlock.permissions import Role
from airlock.tokens import create_token
from airlock.workspace import Workspace
from servicekit import serve_app
from support import CASE, snapshot

SCOPE = "projects/Standard-Suite"
EXAMPLE = Path(__file__).parent.parent / "examples" / "deepagents_quickstart.py"

_CONTRADICTS = "contradicts deepagents 0.7's BackendProtocol, which Airlock follows: "
_UPSTREAM = " (upstream: langchain #39948)"
GLOB_IS_ABSOLUTE = _CONTRADICTS + "glob returns absolute paths, not relative ones" + _UPSTREAM
GLOB_IS_FILES = _CONTRADICTS + "glob returns files only, never folders" + _UPSTREAM
WRITE_OVERWRITES = _CONTRADICTS + "write creates or overwrites a file" + _UPSTREAM


@needs_sandbox
class TestAirlockBackendStandard(SandboxIntegrationTests):
    # Class-scoped fixtures are class methods (pytest 9 deprecates instance methods for them;
    # the suite's own `sandbox_backend` is one, so it is restated here unchanged).
    @pytest.fixture(scope="class")
    @classmethod
    def sandbox(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxBackendProtocol]:
        root = tmp_path_factory.mktemp("deepagents-standard") / "ws"
        (root / SCOPE).mkdir(parents=True)
        with Workspace.init(root) as ws:
            _, token = create_token(ws, "standard-suite-agent", Role.AGENT)
        with AirlockBackend.open(root, scope=SCOPE, token=token) as backend:
            yield backend
        assert not any(Path(root, SCOPE).iterdir()), "the real scope was changed"

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls, sandbox: SandboxBackendProtocol) -> SandboxBackendProtocol:
        return sandbox

    @property
    def sandbox_root_dir(self) -> str:
        return f"/workspace/{SCOPE}/suite/"

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_ABSOLUTE)
    def test_glob(self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str) -> None:
        super().test_glob(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_ABSOLUTE)
    def test_glob_basic_pattern(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_glob_basic_pattern(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_ABSOLUTE)
    def test_glob_hidden_files_explicitly(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_glob_hidden_files_explicitly(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_ABSOLUTE)
    def test_glob_with_character_class(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_glob_with_character_class(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_ABSOLUTE)
    def test_glob_with_question_mark(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_glob_with_question_mark(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=GLOB_IS_FILES)
    def test_glob_with_directories(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_glob_with_directories(sandbox_backend, sandbox_test_root)

    @pytest.mark.xfail(strict=True, reason=WRITE_OVERWRITES)
    def test_write_existing_file_fails(
        self, sandbox_backend: SandboxBackendProtocol, sandbox_test_root: str
    ) -> None:
        super().test_write_existing_file_fails(sandbox_backend, sandbox_test_root)


@needs_sandbox
def test_the_quickstart_example_runs(tmp_path: Path) -> None:
    """docs/agents-deepagents.md's example, as a user runs it: a deep agent (scripted model)
    files a case through Airlock, is approved, applies, rolls back; it checks the real tree at
    each step itself and exits non-zero if anything is off."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approved by m.jones (partner) (authenticated by Airlock)" in done.stdout
    assert "rolled_back by m.jones (partner)" in done.stdout


class TestAirlockBackendRemoteStandard(TestAirlockBackendStandard):
    """The same suite against a real ``airlock serve`` (the app under uvicorn on a loopback port,
    in a thread): ``AirlockBackend.remote(url, ...)``, every call one HTTP request."""

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxBackendProtocol]:
        root = tmp_path_factory.mktemp("deepagents-standard-remote") / "ws"
        (root / SCOPE).mkdir(parents=True)
        with Workspace.init(root) as ws:
            _, token = create_token(ws, "standard-suite-agent", Role.AGENT)
            with (
                serve_app(ws) as url,
                AirlockBackend.remote(url, scope=SCOPE, token=token) as backend,
            ):
                yield backend
        assert not any(Path(root, SCOPE).iterdir()), "the real scope was changed"


# -- what the suite does not ask: Airlock's own promises, through the backend -----------------


@pytest.fixture
def backend(ws: Workspace) -> Iterator[AirlockBackend]:
    """An agent's backend over conftest's case (``projects/Case-A``), from a real agent token."""
    (ws.root / "projects" / "Other-Client").mkdir()
    (ws.root / "projects" / "Other-Client" / "secret.txt").write_text("privileged\n")
    _, token = create_token(ws, "paralegal-agent", Role.AGENT)
    with AirlockBackend.open(ws.root, scope=CASE, token=token) as opened:
        yield opened


def test_changes_are_pending_and_read_back(backend: AirlockBackend, root: Path) -> None:
    before = snapshot(root)
    case = backend.root
    assert backend.write(f"{case}/index.md", "# Index\n").error is None
    assert backend.edit(f"{case}/notes.txt", "first", "second").occurrences == 1
    assert backend.delete(f"{case}/inbox/scan2.pdf").error is None
    assert backend.upload_files([(f"{case}/new/a.bin", b"\0\1")])[0].error is None

    assert snapshot(root) == before, "nothing real changes"
    notes = backend.read(f"{case}/notes.txt").file_data
    assert notes is not None and notes["content"] == "second notes"
    assert [e["path"] for e in backend.ls(f"{case}/inbox").entries or []] == [
        f"{case}/inbox/scan1.pdf"
    ]
    assert [m["path"] for m in backend.glob("*", case).matches or []] == [
        f"{case}/inbox/scan1.pdf",
        f"{case}/index.md",
        f"{case}/new/a.bin",
        f"{case}/notes.txt",
    ]
    assert backend.grep("second", case).matches == [
        {"path": f"{case}/notes.txt", "line": 1, "text": "second notes"}
    ]
    assert backend.download_files([f"{case}/new/a.bin"])[0].content == b"\0\1"
    assert [(op["op"], op["path"]) for op in backend.session.pending()] == [
        ("write", "index.md"),
        ("write", "notes.txt"),
        ("delete", "inbox/scan2.pdf"),
        ("write", "new/a.bin"),
    ]


def test_the_ethical_wall_and_refusals_are_answers(backend: AirlockBackend) -> None:
    other = "/workspace/projects/Other-Client/secret.txt"
    assert backend.ls("/").entries == [{"path": "/workspace", "is_dir": True}]
    assert [e["path"] for e in backend.ls("/workspace/projects").entries or []] == [backend.root]
    assert backend.read(other).error == f"File '{other}' not found"
    assert backend.download_files([other])[0].error == "file_not_found"
    assert backend.grep("privileged", "/").matches == []
    assert all("Other-Client" not in m["path"] for m in backend.glob("**", "/").matches or [])
    assert "outside the workspace" in (backend.read("/etc/passwd").error or "")
    refused = backend.write("/workspace/Tools/tool.sh", "rm -rf /\n").error
    assert refused is not None and "outside the scope" in refused
    assert backend.read("/workspace/Tools/tool.sh").error is None  # a read area: readable
    assert backend.session.pending() == []


def test_airlock_tools_add_what_the_protocol_lacks(backend: AirlockBackend) -> None:
    names = [tool.name for tool in airlock_tools(backend)]
    assert names == list(PLAN_TOOLS)
    deepagents_own = {"ls", "read_file", "write_file", "edit_file", "delete", "glob", "grep"}
    assert not deepagents_own & set(names) and "execute" not in names


def test_open_refuses_a_token_it_cannot_authenticate(ws: Workspace) -> None:
    with pytest.raises(AuthenticationError):
        AirlockBackend.open(ws.root, scope=CASE, token="alk_nope_nope")  # noqa: S106 (no such token)
