"""The gVisor backend (runsc) against the sandbox conformance suite."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.register_assert_rewrite("sandbox_conformance")

from sandbox_conformance import SandboxConformance  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        shutil.which("runsc") is None, reason="gVisor is not installed (apt-get install runsc)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the gvisor sandbox needs root"),
]


class TestGvisorSandbox(SandboxConformance):
    @pytest.fixture
    def sandbox(self) -> str:
        return "gvisor"
