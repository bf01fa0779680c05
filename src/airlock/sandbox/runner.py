"""Run a backend's command line inside the run's own mount namespace, and watch over it.

The command runs under a small ``bash`` launcher (bash, not dash: the pipe descriptors it is
handed may be numbered above 9), started in a private mount namespace (``unshare``; in a user
namespace of its own, with the subordinate ids mapped, when Airlock is not root). There it
mounts a size-limited tmpfs (the *stage*) and makes the writable view of the scope, owned by
the sandbox's ids (:mod:`airlock.sandbox.ids`), never by the workspace's owner:

- ``overlay``: ``fuse-overlayfs`` (Debian's package) with the real scope as its lower layer and
  the stage as its upper layer, every file shown as the sandbox's; nothing is copied;
- ``copy``: where no overlay can be had, a copy of the scope on the stage, given to those ids.

It then opens the view on the descriptor the backend was told and runs the backend. When the
command is done the launcher reports its exit code on a pipe and waits: the namespace, and with
it the stage, stays alive until Airlock has read the changes through ``/proc/<launcher>/root``.
Nothing of it is ever mounted on the host.

Airlock enforces the wall-clock timeout and the output limit here; memory and process limits
come from the run's cgroup (:mod:`airlock.sandbox.cgroup`) or, without one, from rlimits.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlock.sandbox.cgroup import Cgroup
from airlock.sandbox.ids import SandboxIds

LAUNCHER = r"""
set -eu
procs=$1 stage=$2 lower=$3 view=$4 size=$5 mode=$6 code_fd=$7 hold_fd=$8 reads=$9 ids=${10}
shift 10  # then $reads triples (descriptor, host folder, mount point), then the backend's argv
uid=${ids%:*} gid=${ids#*:} overlay=
mount -t tmpfs -o "size=$size,mode=0700,nosuid,nodev" airlock-stage "$stage"
case $mode in
overlay)
  mkdir "$stage/upper" "$stage/work"
  eval 'fuse-overlayfs -f -o "lowerdir=$lower,upperdir=$stage/upper,workdir=$stage/work" \
    -o "squash_to_uid=$uid,squash_to_gid=$gid,allow_other,noacl,writeback=0,nosuid,nodev" "$view"' \
    "</dev/null >/dev/null 2>\"\$stage/overlay.log\" $code_fd>&- $hold_fd<&- &"
  overlay=$!
  trap 'kill "$overlay" 2>/dev/null && wait "$overlay"' EXIT  # however the launcher ends
  tries=0
  until mountpoint -q "$view"; do
    if ! kill -0 "$overlay" 2>/dev/null || [ $tries -gt 5000 ]; then
      echo "the overlay did not come up: $(cat "$stage/overlay.log")" >&2; exit 90
    fi
    tries=$((tries + 1))
  done ;;
copy)
  mkdir "$stage/copy"
  cp -a "$lower/." "$stage/copy/"
  chown -R -P "$uid:$gid" "$stage/copy"
  touch "$stage/copied"
  mount --bind "$stage/copy" "$view" ;;
esac
while [ "$reads" -gt 0 ]; do
  mount --bind "$2" "$3"
  if ! [ "$3" -ef "/proc/self/fd/$1" ]; then
    echo "a read area changed while the run started; try again" >&2; exit 90
  fi
  shift 3; reads=$((reads - 1))
done
eval 'read -r _' "<&$hold_fd"  # Airlock has put this launcher in the run's cgroup
for file in $procs; do [ -z "$overlay" ] || echo "$overlay" > "$file"; done
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
    """Where a run's view lives, and whose it is.

    ``stage`` is a host folder the launcher mounts a tmpfs of ``size`` bytes on, in its own
    mount namespace: in ``overlay`` mode the overlay's upper layer, in ``copy`` mode a copy of
    the scope. ``view`` is where the writable scope appears, owned by ``ids``. ``reads`` are
    (descriptor, host folder, mount point) triples: each host folder is bound on its (empty)
    mount point, then checked to be the folder the descriptor was opened on.
    """

    stage: Path
    lower: Path
    view: Path
    size: int
    mode: str  # "overlay" | "copy"
    ids: SandboxIds
    reads: tuple[tuple[int, Path, Path], ...] = ()

    @property
    def result(self) -> str:
        """The folder, inside the launcher's namespace, holding what the run changed."""
        return str(self.stage / ("upper" if self.mode == "overlay" else "copy"))


class Running:
    """A launched run: wait for it, then read its result while the namespace lives."""

    def __init__(self, proc: subprocess.Popen[bytes], code_r: int, hold_w: int) -> None:
        self.proc = proc
        self.code_r = code_r
        self.hold_w = hold_w

    def root(self) -> Path:
        """The run's view of the filesystem (its mount namespace), while it is alive."""
        return Path(f"/proc/{self.proc.pid}/root")

    def path(self, host: str | Path) -> Path:
        """``host`` (an absolute path) as the run's mount namespace sees it."""
        return self.root() / str(host).lstrip("/")


def _launcher_argv(layout: Layout, cgroup: Cgroup | None, code_fd: int, hold_fd: int) -> list[str]:
    prefix = ["unshare", "--mount", "--propagation", "private"]
    ids = layout.ids
    if ids.subordinate is not None:
        uid, gid, count = ids.subordinate
        prefix[1:1] = [
            "--user",
            "--map-root-user",
            f"--map-users={uid},{ids.launch_uid},{count}",
            f"--map-groups={gid},{ids.launch_gid},{count}",
        ]
    return [
        *prefix,
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        LAUNCHER,
        "airlock-launcher",
        " ".join(cgroup.procs_files) if cgroup else "",
        str(layout.stage),
        str(layout.lower),
        str(layout.view),
        str(layout.size),
        layout.mode,
        str(code_fd),
        str(hold_fd),
        str(len(layout.reads)),
        f"{ids.launch_uid}:{ids.launch_gid}",
        *(str(part) for read in layout.reads for part in read),
    ]


@contextlib.contextmanager
def launch(
    argv: list[str],
    layout: Layout,
    *,
    timeout: float,
    output_limit: int,
    cgroup: Cgroup | None,
    extra_fds: Sequence[int] = (),
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
            pass_fds=(code_w, hold_r, *(fd for fd, _, _ in layout.reads), *extra_fds),
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
        # While the launcher mounts the view, move it into the cgroup (on cgroup v1 the first
        # move costs a kernel-wide synchronisation, some milliseconds); then let it go on.
        if cgroup is not None:
            cgroup.add(proc.pid)
        with contextlib.suppress(BrokenPipeError):  # the launcher already failed: it said why
            os.write(hold_w, b"go\n")
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
        if not _exits_within(proc, 10):
            _kill(proc, cgroup)
        proc.wait()
        if cgroup is not None:
            cgroup.kill()


def _exits_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Wait for ``proc`` to end, on a pidfd: Popen.wait(timeout=...) polls with sleeps that
    would cost every run milliseconds."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return True  # already gone
    try:
        return bool(select.select([pidfd], [], [], seconds)[0])
    finally:
        os.close(pidfd)


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
