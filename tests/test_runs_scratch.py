"""Runs' scratch folders: outside Airlock's state, traversable only, and never left for good."""

from __future__ import annotations

import os
import stat
import time

import pytest

from airlock import runs
from airlock.errors import InputError
from airlock.sandbox.base import MAX_TIMEOUT, Limits
from airlock.workspace import Workspace
from support import CASE


def test_the_scratch_root_is_this_users_and_only_traversable_by_others() -> None:
    root = runs.scratch_root()

    st = root.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
    assert stat.S_IMODE(st.st_mode) == 0o711


def test_scratch_a_killed_airlock_left_is_removed_later_and_a_live_one_is_kept() -> None:
    root = runs.scratch_root()
    old = root / "run-left-by-a-killed-airlock"
    live = root / "run-still-running"
    for folder in (old, live):
        (folder / "stage").mkdir(parents=True)
    then = time.time() - runs.STALE_SCRATCH_SECONDS - 60
    os.utime(old, (then, then))
    try:
        runs.scratch_root()

        assert not old.exists()
        assert live.is_dir()
    finally:
        for folder in (old, live):
            if folder.exists():
                (folder / "stage").rmdir()
                folder.rmdir()


def test_a_timeout_past_a_day_is_refused_before_anything_starts(ws: Workspace) -> None:
    with pytest.raises(InputError) as raised:
        runs.run(ws, CASE, ["true"], limits=Limits(timeout=MAX_TIMEOUT + 1))

    assert "timeout" in raised.value.message and raised.value.hint
