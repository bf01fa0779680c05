"""Per-scope locks that work across processes (``flock`` on a file in the state folder).

Scopes are locked by their first two components (``projects/<case>``), so plans on nested
scopes of one case serialise while plans on different cases run in parallel. The kernel drops a
``flock`` when its process dies, which is how recovery tells a crashed apply from a live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from airlock.errors import BusyError, storage_error
from airlock.paths import RelPath, render


def lock_key(scope: RelPath) -> str:
    return render(scope[:2])


@contextlib.contextmanager
def scope_lock(lock_dir: Path, scope: RelPath, timeout: float = 30.0) -> Iterator[None]:
    """Hold the lock for ``scope``; wait up to ``timeout`` seconds (0: do not wait)."""
    key = lock_key(scope)
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # e.g. the workspace's filesystem is read-only
        raise storage_error(exc, "open the scope lock", str(path)) from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BusyError(
                        f"another Airlock process is applying a plan in {key!r}",
                        hint="wait for it to finish, then retry",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
