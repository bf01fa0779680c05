"""The bubblewrap backend against the sandbox conformance suite."""

from __future__ import annotations

import shutil

import pytest

pytest.register_assert_rewrite("sandbox_conformance")

from airlock import runs  # noqa: E402
from sandbox_conformance import SandboxConformance  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)


class TestBwrapSandbox(SandboxConformance):
    @pytest.fixture
    def sandbox(self) -> str:
        return "bwrap"


class TestBwrapSandboxCopyMode(SandboxConformance):
    """The same contract where no FUSE overlay can be had: the scope is copied for the run."""

    capture_mode = "copy"

    @pytest.fixture
    def sandbox(self, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.setattr(runs, "overlay_problem", lambda layout: "forced by the test")
        return "bwrap"
