"""The sandbox interface: run a command with these mounts and limits, nothing else.

A backend turns a :class:`Request` into the command line that runs it isolated. Airlock runs
that command line itself, inside a private mount namespace that already holds the writable view
of the scope, and around it enforces the wall-clock timeout and the output limit, so a backend
need not. What every backend must guarantee, checked by ``tests/sandbox_conformance.py``:

- the code never runs as host root nor as the workspace's owner: a backend that runs it as a
  host process starts as ``request.run_as`` (uid, gid, as the launcher names them); no sysctl,
  ``/proc/sysrq-trigger`` or other host knob is writable;
- ``request.view`` (a host folder) appears writable at ``/scope`` and at
  ``/workspace/<scope>``, and the working directory is ``/scope``;
- of the rest of the workspace, only ``request.reads`` appear, read-only, each at
  ``/workspace/<path>``, bound from its ``host`` folder: the policy's read areas (``Tools`` by
  default) and what it grants this scope, never another case, never Airlock's state (the
  ethical wall); ``/workspace/Tools`` stays runnable;
- nothing else of the host is visible but the system's programs and libraries (``/usr``), a few
  harmless files of ``/etc``, an empty private ``/tmp``, and ``/proc`` and ``/dev`` of its own:
  no home folders, no keys, no ``/etc/shadow``, no host paths in what the code can read;
- the environment holds only ``request.env``; there is no network unless ``request.network``;
- no privilege: no capabilities, no setuid, no new user namespaces where the backend can stop them;
- ``request.limits.memory`` bounds the memory and ``request.limits.processes`` the number of
  processes the command may use, unless Airlock's cgroup already does (``request.cgroup``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from airlock.paths import RelPath

SCOPE_MOUNT = "/scope"
WORKSPACE_MOUNT = "/workspace"
SANDBOX_TMP = "/tmp"  # noqa: S108 - inside the sandbox: a private, empty tmpfs
SANDBOX_SHM = "/dev/shm"  # noqa: S108 - inside the sandbox: a private tmpfs, sized like /tmp
SANDBOX_PATH = "/workspace/Tools:/usr/local/bin:/usr/bin:/bin"


MAX_TIMEOUT = 24 * 3600
"""The longest a run may last, in seconds, at every door."""


@dataclass(frozen=True)
class Limits:
    """What a run may use. Sizes are bytes, times seconds."""

    timeout: float = 300.0
    memory: int = 2 << 30
    processes: int = 256
    output: int = 1 << 20
    write: int = 1 << 30

    def describe(self) -> dict[str, float | int]:
        return {
            "timeout_s": self.timeout,
            "memory_bytes": self.memory,
            "processes": self.processes,
            "output_bytes": self.output,
            "write_bytes": self.write,
        }


@dataclass(frozen=True)
class ReadArea:
    """A workspace folder the code may read (``path``), bound at host folder ``host``."""

    path: RelPath
    host: Path


@dataclass(frozen=True)
class Request:
    """One command to run isolated, and everything it may see."""

    command: tuple[str, ...]
    scope: RelPath
    view: Path
    scratch: Path
    run_as: tuple[int, int]
    reads: tuple[ReadArea, ...] = ()
    descriptors: list[int] = field(default_factory=list)
    """Descriptors the command line refers to (``seccomp_fd``; a backend may add its own):
    Airlock passes them all to the launcher and closes them when the run is done."""
    seccomp_fd: int | None = None
    """A seccomp filter (BPF) open on a descriptor, for backends that load one."""
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    cgroup: bool = False
    env: tuple[tuple[str, str], ...] = ()


class Sandbox(ABC):
    """A way to run a :class:`Request` isolated. Register new ones in :mod:`airlock.sandbox`."""

    name: ClassVar[str]
    needs_root: ClassVar[bool] = False
    helper_tasks: ClassVar[int] = 0
    """Host threads the backend itself runs in the run's cgroup, beyond the code's processes."""
    seccomp: ClassVar[bool] = False
    """True for a backend that loads Airlock's seccomp filter (``Request.seccomp_fd``)."""

    @abstractmethod
    def problem(self) -> str | None:
        """None if this backend can run here, else what is missing and how to get it."""

    @abstractmethod
    def argv(self, request: Request) -> list[str]:
        """The command line that runs ``request`` isolated (it may write into request.scratch)."""


def default_env(request: Request) -> list[tuple[str, str]]:
    """The whole environment a sandboxed command sees."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": SANDBOX_TMP,
        "LANG": "C.UTF-8",
        "TMPDIR": SANDBOX_TMP,
        "AIRLOCK_SCOPE": "/".join(request.scope),
    }
    env.update(dict(request.env))
    return sorted(env.items())
