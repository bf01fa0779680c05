"""A control group per run, where Airlock may make one: memory and process limits for everything
the run starts (the sandbox's own helpers included), a sure way to kill all of it, and a record of
which limit was hit.

Where no cgroup can be made (not root, no controllers), :func:`make` returns None and the
backends fall back to per-process rlimits. cgroup v1 (separate ``memory`` and ``pids``
hierarchies) is what the test machines have; v2 (one unified hierarchy) follows the same steps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Cgroup:
    memory: Path
    pids: Path

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(sorted({str(self.memory / "cgroup.procs"), str(self.pids / "cgroup.procs")}))

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the group; what it starts afterwards is in it too."""
        for procs in self.procs_files:
            Path(procs).write_text(str(pid))

    def hits(self) -> list[str]:
        """Which limits the run ran into: "memory", "processes"."""
        found = []
        if self.memory == self.pids:  # v2
            if _count(self.memory / "memory.events", ("max", "oom_kill")):
                found.append("memory")
        elif _read_int(self.memory / "memory.failcnt") or _count(
            self.memory / "memory.oom_control", ("oom_kill",)
        ):
            # Some v1 kernels count an OOM kill in oom_control but leave failcnt at 0.
            found.append("memory")
        if _count(self.pids / "pids.events", ("max",)):
            found.append("processes")
        return found

    def kill(self) -> None:
        """SIGKILL every process in the group, until none is left."""
        for _ in range(100):
            pids = _pids(self.pids / "cgroup.procs") | _pids(self.memory / "cgroup.procs")
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the group; a group whose last processes are still
        exiting (after a timeout, an OOM kill) refuses removal for a moment: retry, briefly."""
        deadline = time.monotonic() + 5
        for folder in {self.memory, self.pids}:
            while True:
                self.kill()
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)


def make(name: str, memory: int, processes: int) -> Cgroup | None:
    """A new cgroup with these limits, or None where this process may not make one."""
    if os.geteuid() != 0:
        return None
    try:
        if (ROOT / "cgroup.controllers").exists():
            parent = ROOT / "airlock"
            parent.mkdir(exist_ok=True)
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
            group = parent / name
            group.mkdir()
            (group / "memory.max").write_text(str(memory))
            (group / "pids.max").write_text(str(processes))
            return Cgroup(group, group)
        memory_dir = ROOT / "memory" / "airlock" / name
        pids_dir = ROOT / "pids" / "airlock" / name
        memory_dir.mkdir(parents=True)
        pids_dir.mkdir(parents=True)
        (memory_dir / "memory.limit_in_bytes").write_text(str(memory))
        swap = memory_dir / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(memory))
        (pids_dir / "pids.max").write_text(str(processes))
        return Cgroup(memory_dir, pids_dir)
    except OSError:
        return None


def _pids(procs: Path) -> set[int]:
    try:
        return {int(line) for line in procs.read_text().split()}
    except OSError:
        return set()


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _count(path: Path, keys: tuple[str, ...]) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        key, _, value = line.partition(" ")
        if key in keys and value.strip().isdigit():
            total += int(value)
    return total
