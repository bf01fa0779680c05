"""Collect what a run changed, from where its files can be read.

:func:`collect` walks the run's result beside the real scope (:mod:`airlock.sandbox.layers`)
and turns it into plan operations (:mod:`airlock.capture`), staging file bodies into the
content store. Where Airlock is root it runs in Airlock's own process, through
``/proc/<launcher>/root``. Where it is not, the run's files belong to subordinate ids and its
overlay to the launcher's user namespace, neither readable from outside; then Airlock runs this
module *inside* the run's namespaces (``nsenter``), as that namespace's root, and reads its
answer (JSON on stdout). Nothing here touches Airlock's database.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from airlock.capture import Captured, capture
from airlock.content import ContentStore
from airlock.paths import RelPath
from airlock.sandbox.changes import LocalSides
from airlock.sandbox.layers import copy_changes, upper_changes
from airlock.storage.local import LocalStorage


@dataclasses.dataclass(frozen=True)
class Where:
    """Everything :func:`collect` needs, as paths valid where it runs."""

    workspace: str
    content: str
    scope: RelPath
    mode: str  # "overlay" | "copy"
    result: str  # the upper layer, or the copy
    view: str  # the merged view (overlay mode)
    copied: str  # touched once the copy was finished (copy mode)
    write_limit: int

    def under(self, root: Path) -> Where:
        """The same, seen through ``root`` (``/proc/<pid>/root``) from Airlock's namespace."""

        def inside(path: str) -> str:
            return str(root / path.lstrip("/"))

        return dataclasses.replace(
            self, result=inside(self.result), view=inside(self.view), copied=inside(self.copied)
        )


def collect(where: Where) -> Captured:
    """What the run changed, as operations; what could not be taken is in ``skipped``."""
    lower = Path(where.workspace).joinpath(*where.scope)
    if where.mode == "overlay":
        found = upper_changes(Path(where.result), Path(where.view), lower)
    else:
        found = copy_changes(lower, Path(where.result), Path(where.copied))
    storage = LocalStorage(Path(where.workspace))
    try:
        content = ContentStore(Path(where.content))
        sides = LocalSides(storage, where.scope, Path(where.result), content)
        captured = capture(found.changes, sides, write_limit=where.write_limit)
    finally:
        storage.close()
    captured.skipped[:0] = found.skipped
    return captured


def collect_in(pid: int, where: Where, timeout: float = 600) -> Captured:
    """:func:`collect`, run inside the namespaces of process ``pid`` (the run's launcher)."""
    argv = ["nsenter", f"--target={pid}", "--user", "--mount", "--"]
    argv += [sys.executable, "-m", "airlock.sandbox.collect"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        argv,
        input=json.dumps(dataclasses.asdict(where)),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"capture inside the run's namespace failed: {done.stderr.strip()}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return Captured(**answer)


def main() -> None:
    data = json.loads(sys.stdin.read())
    data["scope"] = tuple(data["scope"])
    captured = collect(Where(**data))
    json.dump(dataclasses.asdict(captured), sys.stdout)


if __name__ == "__main__":
    main()
