"""The default sandbox: bubblewrap (Debian's ``bubblewrap``), namespaces and bind mounts.

bwrap is started as the sandbox's own unprivileged ids (``setpriv``), never as root: it makes
its user namespace from there, so the code's uid 1000 inside is that id on the host, and
``/proc/sys`` and the like, owned by the host's root, stay out of its reach (and are bound
read-only on top). Every bind source is in the run's scratch folder, which those ids may
traverse (the launcher binds the read areas there). A seccomp filter
(:mod:`airlock.sandbox.seccomp`) refuses the system calls sandboxed code has no use for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from airlock.sandbox import seccomp
from airlock.sandbox.base import (
    SANDBOX_SHM,
    SANDBOX_TMP,
    SCOPE_MOUNT,
    WORKSPACE_MOUNT,
    Request,
    Sandbox,
    default_env,
)
from airlock.sandbox.ids import INNER_ID
from airlock.sandbox.system import ETC_FILES, PROC_READ_ONLY, ROOT_LINKS, passwd_files


class Bwrap(Sandbox):
    name = "bwrap"
    seccomp = True

    def problem(self) -> str | None:
        for program, package in (("bwrap", "bubblewrap"), ("setpriv", "util-linux")):
            if shutil.which(program) is None:
                return f"{program} is not installed (apt-get install {package}, or `make sandbox-tools`)"
        return seccomp.problem()

    def argv(self, request: Request) -> list[str]:
        argv = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(INNER_ID),
            "--gid",
            str(INNER_ID),
            "--hostname",
            "airlock",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        if request.network:
            argv.append("--share-net")
        for name in ROOT_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        etc = [*ETC_FILES, *(("resolv.conf", "hosts") if request.network else ())]
        for name in etc:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for name, text in passwd_files(INNER_ID).items():  # as data: no host path shows
            data = _memfd(f"airlock-{name}", text.encode())
            request.descriptors.append(data)
            argv += ["--ro-bind-data", str(data), f"/etc/{name}"]
        argv += ["--proc", "/proc"]
        for name in PROC_READ_ONLY:
            argv += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
        # /dev is bwrap's own tmpfs: read-only once /dev/shm (sized like /tmp) is on it.
        argv += ["--dev", "/dev", "--size", str(request.limits.write), "--tmpfs", SANDBOX_SHM]
        argv += [
            "--remount-ro",
            "/dev",
            "--size",
            str(request.limits.write),
            "--tmpfs",
            SANDBOX_TMP,
        ]
        argv += ["--size", "4096", "--tmpfs", WORKSPACE_MOUNT]
        for area in request.reads:
            argv += ["--ro-bind", str(area.host), "/".join((WORKSPACE_MOUNT, *area.path))]
        inside = "/".join((WORKSPACE_MOUNT, *request.scope))
        view = str(request.view)
        argv += ["--bind", view, inside, "--bind", view, SCOPE_MOUNT]
        argv += ["--remount-ro", WORKSPACE_MOUNT, "--remount-ro", "/"]
        if request.seccomp_fd is not None:
            argv += ["--seccomp", str(request.seccomp_fd)]
        argv += ["--chdir", SCOPE_MOUNT, "--clearenv"]
        for key, value in default_env(request):
            argv += ["--setenv", key, value]
        # The options are handed over on a descriptor, so that bwrap's own command line, which
        # the code sees as its pid 1, names no host path: only the command itself.
        args = _memfd("airlock-bwrap-args", b"".join(arg.encode() + b"\0" for arg in argv[1:]))
        request.descriptors.append(args)
        uid, gid = request.run_as
        argv = [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            argv[0],
            "--args",
            str(args),
            "--",
            *request.command,
        ]
        if request.cgroup:
            return argv
        limits = request.limits
        return ["prlimit", f"--as={limits.memory}", f"--nproc={limits.processes}", "--", *argv]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
