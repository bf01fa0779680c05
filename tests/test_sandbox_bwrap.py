"""The bubblewrap backend against the sandbox conformance suite."""

from __future__ import annotations

import shutil

import pytest

pytest.register_assert_rewrite("sandbox_conformance")

from sandbox_conformance import SandboxConformance  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)


class TestBwrapSandbox(SandboxConformance):
    @pytest.fixture
    def sandbox(self) -> str:
        return "bwrap"
