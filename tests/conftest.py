from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.workspace import Workspace
from crashkit import Mounts
from gcskit import Gcs
from support import CASE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / CASE / "inbox").mkdir(parents=True)
    (root / CASE / "inbox" / "scan1.pdf").write_bytes(b"%PDF-1.4 one")
    (root / CASE / "inbox" / "scan2.pdf").write_bytes(b"%PDF-1.4 two")
    (root / CASE / "notes.txt").write_text("first notes\n")
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.sh").write_text("#!/bin/sh\n")
    return root


@pytest.fixture
def ws(root: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(root)
    yield workspace
    workspace.close()


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a tmpfs")
    made = Mounts()
    try:
        yield made
    finally:
        made.undo()


@pytest.fixture(scope="session")
def gcs() -> Iterator[Gcs]:
    """A GCS emulator behind its precondition proxy (see gcskit), shared by the session: each
    test makes its own bucket."""
    started = Gcs()
    yield started
    started.stop()
