"""Run a backend's command line inside the run's mount namespace, and watch over it.

The command runs under a small ``bash`` launcher (bash, not dash: the pipe descriptors it
is handed may be numbered above 9). In overlay mode the launcher is started in a
private mount namespace (``unshare``; a user namespace too when Airlock is not root) where it
mounts a size-limited tmpfs for the upper layer and the overlay of the scope on top of the real
scope, then runs the backend. When the command is done the launcher reports its exit code on a
pipe and waits: the namespace, and with it the upper layer, stays alive until Airlock has read
the changes through ``/proc/<launcher>/root``. Nothing of it is ever mounted on the host.

In copy mode (no overlay possible) the launcher only runs the backend on a copy of the scope.

Airlock enforces the wall-clock timeout and the output limit here; memory and process limits
come from the run's cgroup (:mod:`airlock.sandbox.cgroup`) or, without one, from rlimits.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from airlock.sandbox.cgroup import Cgroup

LAUNCHER = r"""
set -eu
code_fd=$7 hold_fd=$8
for procs in $1; do echo $$ > "$procs"; done
if [ -n "$3" ]; then
  mount -t tmpfs -o "size=$5,mode=0700" airlock-upper "$2"
  mkdir "$2/upper" "$2/work"
  mount -t overlay airlock-scope \
    -o "lowerdir=$3,upperdir=$2/upper,workdir=$2/work,redirect_dir=off,index=off,metacopy=off$6" "$4"
fi
shift 8
set +e
eval '"$@"' "$code_fd>&- $hold_fd<&-"
code=$?
exec >/dev/null 2>&1
eval 'echo "$code"' ">&$code_fd"
eval 'read -r _' "<&$hold_fd" || true
"""


@dataclass
class Outcome:
    """How a run ended. ``exit_code`` is None when Airlock had to stop it."""

    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    output_limited: bool = False
    limits_hit: list[str] = field(default_factory=list)
    seconds: float = 0.0
    launcher_error: str = ""

    @property
    def stopped(self) -> bool:
        return self.timed_out or self.output_limited or self.exit_code is None


@dataclass(frozen=True)
class Layout:
    """Where a run's view lives: ``lower`` is the real scope ('' in copy mode)."""

    upper_mount: Path
    lower: Path | None
    view: Path
    write_limit: int
    userns: bool


class Running:
    """A launched run: wait for it, then read its upper layer while the namespace lives."""

    def __init__(self, proc: subprocess.Popen[bytes], code_r: int, hold_w: int) -> None:
        self.proc = proc
        self.code_r = code_r
        self.hold_w = hold_w

    def root(self) -> Path:
        """The run's view of the filesystem (its mount namespace), while it is alive."""
        return Path(f"/proc/{self.proc.pid}/root")


def _launcher_argv(layout: Layout, cgroup: Cgroup | None, code_fd: int, hold_fd: int) -> list[str]:
    prefix: list[str] = []
    if layout.lower is not None:
        prefix = ["unshare", "--mount", "--propagation", "private"]
        if layout.userns:
            prefix[1:1] = ["--user", "--map-root-user"]
    options = ",userxattr" if layout.userns else ""
    return [
        *prefix,
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        LAUNCHER,
        "airlock-launcher",
        " ".join(cgroup.procs_files) if cgroup else "",
        str(layout.upper_mount),
        str(layout.lower or ""),
        str(layout.view),
        str(layout.write_limit),
        options,
        str(code_fd),
        str(hold_fd),
    ]


@contextlib.contextmanager
def launch(
    argv: list[str], layout: Layout, *, timeout: float, output_limit: int, cgroup: Cgroup | None
) -> Iterator[tuple[Outcome, Running | None]]:
    """Run ``argv`` under the launcher; yield how it ended and, if it ended by itself, the live
    namespace to read changes from. Everything the run started is gone when the block ends."""
    code_r, code_w = os.pipe()
    hold_r, hold_w = os.pipe()
    start = time.monotonic()
    outcome = Outcome()
    try:
        proc = subprocess.Popen(
            [*_launcher_argv(layout, cgroup, code_w, hold_r), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(code_w, hold_r),
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
    except BaseException:
        for fd in (code_r, code_w, hold_r, hold_w):
            os.close(fd)
        raise
    os.close(code_w)
    os.close(hold_r)
    running = Running(proc, code_r, hold_w)
    try:
        _watch(running, outcome, start + timeout, output_limit)
        outcome.seconds = time.monotonic() - start
        if cgroup is not None:
            outcome.limits_hit = cgroup.hits()
        if outcome.exit_code is None and not (outcome.timed_out or outcome.output_limited):
            outcome.launcher_error = outcome.stderr.decode("utf-8", "replace").strip()
        yield outcome, (None if outcome.stopped else running)
    finally:
        os.close(hold_w)
        os.close(code_r)
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill(proc, cgroup)
                proc.wait()
        if cgroup is not None:
            cgroup.kill()


def _kill(proc: subprocess.Popen[bytes], cgroup: Cgroup | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()


def _watch(running: Running, outcome: Outcome, deadline: float, output_limit: int) -> None:
    """Collect output and the exit code until both pipes close, the deadline or the limit."""
    proc = running.proc
    assert proc.stdout is not None and proc.stderr is not None
    buffers = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    code = bytearray()
    open_fds = {*buffers, running.code_r}
    with selectors.DefaultSelector() as selector:
        for fd in open_fds:
            selector.register(fd, selectors.EVENT_READ)
        while open_fds - {running.code_r} or (running.code_r in open_fds and b"\n" not in code):
            left = deadline - time.monotonic()
            if left <= 0:
                outcome.timed_out = True
                break
            for key, _ in selector.select(left):
                fd = int(key.fd)
                data = os.read(fd, 65536)
                if not data:
                    selector.unregister(fd)
                    open_fds.discard(fd)
                elif fd == running.code_r:
                    code += data
                else:
                    buffers[fd] += data
            if sum(len(b) for b in buffers.values()) > output_limit:
                outcome.output_limited = True
                break
    if outcome.timed_out or outcome.output_limited:
        _kill(proc, None)
    outcome.stdout = bytes(buffers[proc.stdout.fileno()][:output_limit])
    outcome.stderr = bytes(buffers[proc.stderr.fileno()][:output_limit])
    proc.stdout.close()
    proc.stderr.close()
    text = code.decode("ascii", "replace").strip()
    if text.isdigit():
        outcome.exit_code = int(text)
